#include "process_group_wrap.h"

#include "addon_data.h"
#include "task_worker.h"

namespace morec {

static const napi_type_tag kGroupTag = {0x6d6f726563477270ULL, 0x50726f6347727031ULL};

Napi::Function ProcessGroupWrap::define(Napi::Env env) {
  return DefineClass(env, "ProcessGroup",
                     {InstanceAccessor<&ProcessGroupWrap::rank>("rank"),
                      InstanceAccessor<&ProcessGroupWrap::worldSize>("worldSize"),
                      InstanceAccessor<&ProcessGroupWrap::backend>("backend"),
                      InstanceMethod<&ProcessGroupWrap::storeSet>("storeSet"),
                      InstanceMethod<&ProcessGroupWrap::storeGet>("storeGet"),
                      InstanceMethod<&ProcessGroupWrap::allreduce>("allreduce"),
                      InstanceMethod<&ProcessGroupWrap::barrier>("barrier"),
                      InstanceMethod<&ProcessGroupWrap::recordFailure>("recordFailure"),
                      InstanceMethod<&ProcessGroupWrap::close>("close")});
}

// Only connect() makes one: it passes the connected group in a type-tagged External.
ProcessGroupWrap::ProcessGroupWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroupWrap>(info) {
  guarded(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal() || !info[0].As<Napi::External<void>>().CheckTypeTag(&kGroupTag))
      throw invalidArg("a ProcessGroup is made by connectProcessGroup(options), not new ProcessGroup()");
    group_ = *info[0].As<Napi::External<std::shared_ptr<ProcessGroup>>>().Data();
  });
}

Napi::Value ProcessGroupWrap::connect(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Object o = readObjectArg(info, 0, "options");
    ProcessGroupOptions opt;
    opt.masterAddr = readString(o, "masterAddr", opt.masterAddr);
    opt.masterPort = readInt(o, "masterPort", opt.masterPort, 1, 65535);
    opt.worldSize = readInt(o, "worldSize", 1, 1, 1 << 16);
    opt.rank = readInt(o, "rank", 0, 0, opt.worldSize - 1);
    opt.timeout = std::chrono::milliseconds(readInt(o, "timeoutMs", opt.timeout.count(), 1, int64_t(1) << 40));
    opt.backend = readString(o, "backend", "gloo");
    if (!ProcessGroup::hasBackend(opt.backend))
      throw invalidArg("Expected a backend this build has (gloo" + std::string(ProcessGroup::hasBackend("nccl") ? ", nccl" : "") +
                       ") for backend but received '" + opt.backend + "'");
    auto made = std::make_shared<std::shared_ptr<ProcessGroup>>();
    return std::make_shared<TaskWorker>(
               "morec.connectProcessGroup", nullptr, [made, opt] { *made = std::make_shared<ProcessGroup>(opt); },
               [made](Napi::Env env) -> Napi::Value {
                 auto* addon = env.GetInstanceData<AddonData>();
                 auto ext = Napi::External<std::shared_ptr<ProcessGroup>>::New(
                     env, new std::shared_ptr<ProcessGroup>(*made), [](Napi::Env, std::shared_ptr<ProcessGroup>* p) { delete p; });
                 ext.TypeTag(&kGroupTag);
                 return addon->processGroup.New({ext});
               })
        ->start(info.Env(), Napi::Function());
  });
}

std::shared_ptr<ProcessGroup> ProcessGroupWrap::unwrap(const Napi::Value& v, const char* name) {
  auto* addon = v.Env().GetInstanceData<AddonData>();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon->processGroup.Value()))
    throw invalidArg(std::string("Expected a ProcessGroup for ") + name + " but received " + describeValue(v));
  auto g = Napi::ObjectWrap<ProcessGroupWrap>::Unwrap(v.As<Napi::Object>())->group_;
  if (!g) throw MorecException("ECLOSED", "the process group was closed");
  return g;
}

ProcessGroup& ProcessGroupWrap::group() {
  if (!group_) throw MorecException("ECLOSED", "the process group was closed");
  return *group_;
}

Napi::Value ProcessGroupWrap::rank(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), double(group().rank())); });
}

Napi::Value ProcessGroupWrap::worldSize(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), double(group().size())); });
}

Napi::Value ProcessGroupWrap::backend(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), group().backend()); });
}

static std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString())
    throw invalidArg(std::string("Expected a string for ") + name + " but received " +
                     (info.Length() > i ? describeValue(info[i]) : std::string("undefined")));
  return info[i].As<Napi::String>().Utf8Value();
}

// storeSet(key, value): sync (one small message to the store).
Napi::Value ProcessGroupWrap::storeSet(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    group().storeSet(stringArg(info, 0, "key"), stringArg(info, 1, "value"));
    return info.Env().Undefined();
  });
}

// storeGet(key, timeoutMs?): Promise<string>, waiting until some rank sets the key (EDIST after the timeout).
Napi::Value ProcessGroupWrap::storeGet(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const std::string key = stringArg(info, 0, "key");
    Napi::Object holder = Napi::Object::New(info.Env());
    holder.Set("timeoutMs", info.Length() > 1 ? info[1] : info.Env().Undefined());
    const int64_t timeoutMs = readInt(holder, "timeoutMs", 0, 0, int64_t(1) << 40);
    auto g = group_;
    group();
    auto value = std::make_shared<std::string>();
    return std::make_shared<TaskWorker>(
               "morec.storeGet", nullptr, [g, key, timeoutMs, value] { *value = g->storeGet(key, std::chrono::milliseconds(timeoutMs)); },
               [value](Napi::Env env) -> Napi::Value { return Napi::String::New(env, *value); })
        ->start(info.Env(), Napi::Function());
  });
}

// allreduce(Float64Array, 'sum' | 'max'): Promise<Float64Array>, every rank's values reduced (a copy).
Napi::Value ProcessGroupWrap::allreduce(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw invalidArg("Expected a Float64Array for values but received " + (info.Length() ? describeValue(info[0]) : std::string("undefined")));
    auto arr = info[0].As<Napi::Float64Array>();
    const std::string op = info.Length() > 1 && !info[1].IsUndefined() ? stringArg(info, 1, "op") : "sum";
    if (op != "sum" && op != "max") throw invalidArg("Expected 'sum' or 'max' for op but received '" + op + "'");
    auto t = torch::from_blob(arr.Data(), {int64_t(arr.ElementLength())}, torch::kDouble).clone();
    auto g = group_;
    group();
    return std::make_shared<TaskWorker>(
               "morec.allreduce", nullptr,
               [g, t, op]() mutable {
                 std::vector<torch::Tensor> one{t};
                 if (op == "sum") g->allreduceSum(one, "an all-reduce from JS");
                 else g->allreduceMax(one, "an all-reduce from JS");
               },
               [t](Napi::Env env) -> Napi::Value {
                 auto out = Napi::Float64Array::New(env, size_t(t.numel()));
                 std::copy(t.data_ptr<double>(), t.data_ptr<double>() + t.numel(), out.Data());
                 return out;
               })
        ->start(info.Env(), Napi::Function());
  });
}

Napi::Value ProcessGroupWrap::barrier(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    auto g = group_;
    group();
    return std::make_shared<TaskWorker>("morec.barrier", nullptr, [g] { g->barrier("a barrier"); }, nullptr)
        ->start(info.Env(), Napi::Function());
  });
}

// recordFailure(message): tells the other ranks why this one stops (their EDIST errors quote it).
Napi::Value ProcessGroupWrap::recordFailure(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    group().recordFailure(stringArg(info, 0, "message"));
    return info.Env().Undefined();
  });
}

// close(): drops this handle; the connections close once no model holds the group either.
Napi::Value ProcessGroupWrap::close(const Napi::CallbackInfo& info) {
  group_.reset();
  return info.Env().Undefined();
}

}  // namespace morec
