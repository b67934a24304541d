#include "scorer_wrap.h"

#include <atomic>
#include <functional>
#include <unordered_map>

#include "model_wrap.h"
#include "serve/serve_queue.h"

namespace morec {

// A scorer's state shared by its JS object, the serving thread and its thread-safe function. Everything JS
// (the requests' Promises) lives in the function's context and is touched on the JS thread only.
class ScorerSession : public ServeClient {
 public:
  struct JsSide {
    std::unordered_map<uint64_t, Napi::Promise::Deferred> pending;
    std::shared_ptr<ScorerSession> session;
  };
  using Answers = std::vector<RecommendResult>;
  static void deliver(Napi::Env env, Napi::Function, JsSide* js, Answers* answers);
  using Channel = Napi::TypedThreadSafeFunction<JsSide, Answers, deliver>;

  ScorerSession(std::shared_ptr<ModelCore> core, std::shared_ptr<Scorer> scorer, int64_t maxBatch)
      : core_(std::move(core)), scorer_(std::move(scorer)), maxBatch_(maxBatch) {}

  int64_t maxBatch() const override { return maxBatch_; }
  bool open() const override { return channelOpen_.load(); }

  // Serving thread.
  void serve(std::vector<RecommendRequest>& batch) override {
    std::vector<const RecommendRequest*> ptrs;
    for (const auto& r : batch) ptrs.push_back(&r);
    auto answers = new Answers();
    try {
      *answers = scorer_->score(ptrs);
    } catch (...) {
      std::string code, message;
      describeCurrentException(code, message);
      answers->resize(batch.size());
      for (size_t i = 0; i < batch.size(); ++i) answers->at(i) = {batch[i].id, {}, {}, code, message};
    }
    requests_ += int64_t(batch.size());
    batches_ += 1;
    for (int64_t seen = largest_.load(); int64_t(batch.size()) > seen && !largest_.compare_exchange_weak(seen, int64_t(batch.size()));) {
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (!channelOpen_ || channel_.NonBlockingCall(answers) != napi_ok) delete answers;
  }

  // JS thread: queues the requests together (every one checked first: a bad one queues none).
  Napi::Array submit(Napi::Env env, std::vector<RecommendRequest> requests) {
    if (closed_) throw MorecException("ECLOSED", "the scorer is closed");
    for (const auto& r : requests) scorer_->check(r);
    Napi::Array promises = Napi::Array::New(env, requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      auto& r = requests[i];
      r.id = nextId_++;
      auto deferred = Napi::Promise::Deferred::New(env);
      js_->pending.emplace(r.id, deferred);
      if (inFlight_++ == 0) channel_.Ref(env);
      promises.Set(uint32_t(i), deferred.Promise());
    }
    ServeQueue::instance().push(self(), std::move(requests));
    return promises;
  }

  // JS thread: rejects what is still queued, and gives the model back once nothing is in flight.
  void close(Napi::Env env) {
    if (closed_) return;
    closed_ = true;
    for (auto& r : ServeQueue::instance().drop(this)) settle(env, {r.id, {}, {}, "ECLOSED", "the scorer was closed before this request was served"});
    finishIfIdle(env);
  }

  Napi::Object stats(Napi::Env env) {
    auto o = Napi::Object::New(env);
    o.Set("requests", double(requests_.load()));
    o.Set("batches", double(batches_.load()));
    o.Set("largestBatch", double(largest_.load()));
    o.Set("queued", double(ServeQueue::instance().queued(this)));
    o.Set("threads", double(scorer_ ? scorer_->lastThreads() : lastThreads_));
    return o;
  }

  void start(Napi::Env env, std::shared_ptr<ScorerSession> self) {
    weak_ = self;
    js_ = new JsSide{{}, self};
    // Unlimited queue (the serving thread never blocks on JS); unref'd while nothing is in flight, so an idle
    // scorer keeps no handle open.
    channel_ = Channel::New(env, "morec.Scorer", 0, 1, js_, [](Napi::Env, void*, JsSide* js) {
      js->session->channelOpen_ = false;
      delete js;
    });
    channel_.Unref(env);
    core_->serving++;
  }

 private:
  std::shared_ptr<ScorerSession> self() { return weak_.lock(); }

  void settle(Napi::Env env, const RecommendResult& a) {
    auto it = js_->pending.find(a.id);
    if (it == js_->pending.end()) return;
    if (!a.errorCode.empty()) {
      it->second.Reject(makeError(env, a.errorCode, a.errorMessage).Value());
    } else {
      auto out = Napi::Object::New(env);
      auto items = Napi::Int32Array::New(env, a.items.size());
      auto scores = Napi::Float32Array::New(env, a.scores.size());
      std::copy(a.items.begin(), a.items.end(), items.Data());
      std::copy(a.scores.begin(), a.scores.end(), scores.Data());
      out.Set("items", items);
      out.Set("scores", scores);
      it->second.Resolve(out);
    }
    js_->pending.erase(it);
    if (--inFlight_ == 0) channel_.Unref(env);
  }

  // Closed and nothing in flight: the model is writable again and the channel is released.
  void finishIfIdle(Napi::Env env) {
    if (!closed_ || inFlight_ != 0 || finished_) return;
    finished_ = true;
    core_->serving--;
    lastThreads_ = scorer_->lastThreads();
    scorer_.reset();  // the item table is freed now, not when JS collects this object
    std::lock_guard<std::mutex> lock(mutex_);
    if (channelOpen_) {
      channelOpen_ = false;
      channel_.Release();
    }
  }

  friend class ScorerWrap;
  std::shared_ptr<ModelCore> core_;
  std::shared_ptr<Scorer> scorer_;
  const int64_t maxBatch_;
  std::weak_ptr<ScorerSession> weak_;
  JsSide* js_ = nullptr;  // owned by the channel
  Channel channel_;
  std::mutex mutex_;  // guards calls on channel_ from the serving thread against its release
  std::atomic<bool> channelOpen_{true};
  std::atomic<int64_t> requests_{0}, batches_{0}, largest_{0};
  // JS thread only.
  uint64_t nextId_ = 1;
  int64_t inFlight_ = 0;
  bool closed_ = false, finished_ = false;
  int64_t lastThreads_ = 0;
};

void ScorerSession::deliver(Napi::Env env, Napi::Function, JsSide* js, Answers* answers) {
  std::unique_ptr<Answers> owned(answers);
  if (static_cast<napi_env>(env) == nullptr || js == nullptr) return;  // the environment is going away
  auto session = js->session;
  for (const auto& a : *owned) session->settle(env, a);
  session->finishIfIdle(env);
}

Napi::Function ScorerWrap::define(Napi::Env env) {
  return DefineClass(env, "Scorer",
                     {InstanceMethod<&ScorerWrap::recommend>("recommend"), InstanceMethod<&ScorerWrap::recommendMany>("recommendMany"),
                      InstanceMethod<&ScorerWrap::stats>("stats"),
                      InstanceMethod<&ScorerWrap::close>("close")});
}

// new Scorer(model, itemTable: Float32Array (numItems + 1) x d, { maxBatch, threads })
ScorerWrap::ScorerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ScorerWrap>(info) {
  guarded(info.Env(), [&] {
    auto core = ModelWrap::coreOf(info.Length() ? info[0] : info.Env().Undefined(), "model");
    if (core->busy) throw MorecException("EBUSY", "the model is busy with a training epoch or an evaluation; await it first");
    auto table = readFloat32Array(info.Length() > 1 ? info[1] : info.Env().Undefined(), "itemTable");
    Napi::Object o = readObjectArg(info, 2, "options");
    const int64_t maxBatch = readInt(o, "maxBatch", 256, 1, 1 << 16);
    const int64_t threads = readInt(o, "threads", 0, 0, 1 << 16);
    const auto& cfg = core->model->config();
    if (int64_t(table.ElementLength()) != (cfg.numItems + 1) * cfg.d)
      throw invalidArg("Expected an item table of (numItems + 1) x d = " + std::to_string(cfg.numItems + 1) + " x " +
                       std::to_string(cfg.d) + " floats for itemTable but received " + std::to_string(table.ElementLength()));
    auto view = torch::from_blob(table.Data(), {cfg.numItems + 1, cfg.d}, torch::kFloat);
    auto scorer = std::make_shared<Scorer>(core->model, view, threads);
    session_ = std::make_shared<ScorerSession>(core, scorer, maxBatch);
    session_->start(info.Env(), session_);
  });
}

ScorerWrap::~ScorerWrap() {
  // Collected without close(): nothing new can be asked; what is in flight is still answered, then the model
  // is given back.
  if (session_ && !session_->closed_) {
    session_->closed_ = true;
    session_->finishIfIdle(Env());
  }
}

// One request from its six arguments (history, user, k, exclude, filter, maskHistory).
static RecommendRequest readRequest(const std::function<Napi::Value(size_t)>& arg) {
  RecommendRequest r;
  auto history = readInt32Array(arg(0), "history");
  r.history.assign(history.Data(), history.Data() + history.ElementLength());
  if (!arg(1).IsNumber()) throw invalidArg("Expected a user row (a number, -1 for none) for user but received " + describeValue(arg(1)));
  r.user = arg(1).As<Napi::Number>().Int64Value();
  if (!arg(2).IsNumber()) throw invalidArg("Expected a positive integer for k but received " + describeValue(arg(2)));
  r.k = arg(2).As<Napi::Number>().Int64Value();
  auto exclude = readInt32Array(arg(3), "exclude");
  r.exclude.assign(exclude.Data(), exclude.Data() + exclude.ElementLength());
  if (!arg(4).IsNull() && !arg(4).IsUndefined()) {
    auto allowed = readInt32Array(arg(4), "filter");
    r.allowed.assign(allowed.Data(), allowed.Data() + allowed.ElementLength());
    r.filtered = true;
  }
  if (!arg(5).IsBoolean()) throw invalidArg("Expected a boolean for maskHistory but received " + describeValue(arg(5)));
  r.maskHistory = arg(5).As<Napi::Boolean>().Value();
  return r;
}

Napi::Value ScorerWrap::recommend(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    std::vector<RecommendRequest> one;
    one.push_back(readRequest([&](size_t i) { return info.Length() > i ? info[i] : info.Env().Undefined(); }));
    return session_->submit(info.Env(), std::move(one)).Get(uint32_t(0));
  });
}

// recommendMany([[history, user, k, exclude, filter, maskHistory], ...]) -> Promise[]: queued together, so
// they share a pass.
Napi::Value ScorerWrap::recommendMany(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsArray()) throw invalidArg("Expected an array of requests for requests but received " + (info.Length() ? describeValue(info[0]) : std::string("undefined")));
    Napi::Array list = info[0].As<Napi::Array>();
    std::vector<RecommendRequest> requests;
    for (uint32_t q = 0; q < list.Length(); ++q) {
      Napi::Value item = list.Get(q);
      if (!item.IsArray()) throw invalidArg("Expected an array of six arguments for requests[" + std::to_string(q) + "] but received " + describeValue(item));
      Napi::Array a = item.As<Napi::Array>();
      requests.push_back(readRequest([&](size_t i) { return a.Get(uint32_t(i)); }));
    }
    return session_->submit(info.Env(), std::move(requests));
  });
}

Napi::Value ScorerWrap::stats(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return session_->stats(info.Env()); });
}

Napi::Value ScorerWrap::close(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    session_->close(info.Env());
    return info.Env().Undefined();
  });
}

}  // namespace morec
