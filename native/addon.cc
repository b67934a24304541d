// Module init: the Model and Sequences classes, plus the ranking and sampling primitives they are built
// on, exported so they can be checked against independent implementations.
#include <random>

#include "addon_data.h"
#include "common.h"
#include "eval/ranker.h"
#include "item_store_wrap.h"
#include "job_queue.h"
#include "model_wrap.h"
#include "process_group_wrap.h"
#include "scorer_wrap.h"
#include "sequences_wrap.h"
#include "train/negative_sampler.h"

namespace morec {

static Napi::Value fullRankingRanks(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 6)
      throw invalidArg("Expected (userVectors, itemVectors, d, historyOffsets, historyItems, targets[, options])");
    auto users = readFloat32Array(info[0], "userVectors");
    auto items = readFloat32Array(info[1], "itemVectors");
    Napi::Object holder = Napi::Object::New(info.Env());
    holder.Set("d", info[2]);
    const int64_t d = readInt(holder, "d", 0, 1, INT32_MAX);
    auto hOff = readInt32Array(info[3], "historyOffsets");
    auto hItems = readInt32Array(info[4], "historyItems");
    auto targets = readInt32Array(info[5], "targets");
    Napi::Object o = readObjectArg(info, 6, "options");
    const int64_t chunkRows = readInt(o, "chunkRows", 1024, 1, 1 << 20);
    const bool maskRepeatedTarget = readBool(o, "maskRepeatedTarget", false);
    useThreads(readInt(o, "threads", 0, 0, 1024));
    if (users.ElementLength() % size_t(d) || items.ElementLength() % size_t(d) || items.ElementLength() < size_t(2 * d))
      throw invalidArg("Expected userVectors and itemVectors lengths to be multiples of d with at least 2 item rows");
    const int64_t U = int64_t(users.ElementLength()) / d, N1 = int64_t(items.ElementLength()) / d;
    if (int64_t(targets.ElementLength()) != U || int64_t(hOff.ElementLength()) != U + 1)
      throw invalidArg("Expected targets of length " + std::to_string(U) + " and historyOffsets of length " +
                       std::to_string(U + 1));
    std::vector<RankQuery> q(static_cast<size_t>(U));
    for (int64_t u = 0; u < U; ++u) {
      const int64_t b = hOff[size_t(u)], e = hOff[size_t(u + 1)];
      if (b < 0 || e < b || size_t(e) > hItems.ElementLength())
        throw invalidArg("historyOffsets[" + std::to_string(u) + ".." + std::to_string(u + 1) + "] is out of range");
      for (int64_t i = b; i < e; ++i)
        if (hItems[size_t(i)] < 1 || hItems[size_t(i)] >= N1)
          throw invalidArg("Expected history items in 1.." + std::to_string(N1 - 1) + " but received " +
                           std::to_string(hItems[size_t(i)]));
      if (targets[size_t(u)] < 1 || targets[size_t(u)] >= N1)
        throw invalidArg("Expected targets in 1.." + std::to_string(N1 - 1) + " but targets[" + std::to_string(u) +
                         "] is " + std::to_string(targets[size_t(u)]));
      bool repeated = false;
      for (int64_t i = b; i < e; ++i) repeated = repeated || hItems[size_t(i)] == targets[size_t(u)];
      q[size_t(u)] = {hItems.Data() + b, e - b, targets[size_t(u)], maskRepeatedTarget && repeated};
    }
    auto ut = torch::from_blob(users.Data(), {U, d}, torch::kFloat);
    auto it = torch::from_blob(items.Data(), {N1, d}, torch::kFloat);
    auto out = torch::empty({U}, torch::kInt);
    Ranker::fullRanking(ut, it, q.data(), out.data_ptr<int32_t>(), chunkRows);
    return tensorToTypedArray(info.Env(), out);
  });
}

// Negatives for every user of a Sequences object, excluding the user's whole sequence: `count` per user,
// independent draws (training sampler) or distinct (sampled-evaluation sampler).
static Napi::Value sampleNegatives(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    auto seqs = SequencesWrap::unwrap(info.Length() ? info[0] : info.Env().Undefined(), "sequences");
    Napi::Object o = readObjectArg(info, 1, "options");
    const int64_t count = readInt(o, "count", 1, 1, 1 << 20);
    const int64_t seed = readInt(o, "seed", 0, 0, INT32_MAX);
    const bool distinct = readBool(o, "distinct", false);
    const NegativeSampler sampler(seqs->numItems);
    std::mt19937_64 rng{uint64_t(seed)};
    auto out = torch::empty({seqs->users() * count}, torch::kInt);
    int32_t* p = out.data_ptr<int32_t>();
    std::vector<int32_t> seen;
    for (int64_t u = 0; u < seqs->users(); ++u) {
      NegativeSampler::setOf(seqs->begin(u), seqs->length(u), seen);
      if (distinct)
        sampler.drawDistinct(rng, seen, count, p + u * count);
      else
        for (int64_t k = 0; k < count; ++k) p[u * count + k] = sampler.draw(rng, seen);
    }
    return tensorToTypedArray(info.Env(), out);
  });
}

static Napi::Value torchInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                       std::to_string(TORCH_VERSION_PATCH));
  o.Set("cuda", torch::cuda::is_available());
  o.Set("cudaDevices", double(torch::cuda::is_available() ? torch::cuda::device_count() : 0));
  o.Set("threads", double(at::get_num_threads()));
  o.Set("parallel", at::get_parallel_info());
  return o;
}

// The process-wide thread budget shared by every model's jobs: setThreads(n) -> the budget in force (n clamped
// to [1, cores]); getThreads() -> { threads, cores }.
static Napi::Value setThreads(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Object holder = Napi::Object::New(info.Env());
    holder.Set("threads", info.Length() ? info[0] : info.Env().Undefined());
    return Napi::Number::New(info.Env(), setThreadBudget(readInt(holder, "threads", -1, 1, INT32_MAX)));
  });
}

static Napi::Value getThreads(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("threads", threadBudget());
  o.Set("cores", availableCores());
  return o;
}

// The model config's fields (type, range, choices), from the one list in model_config.h.
static Napi::Value configSchema(const Napi::CallbackInfo& info) { return ModelConfig::schema(info.Env()); }

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  Napi::Function sequences = SequencesWrap::define(env);
  Napi::Function model = ModelWrap::define(env);
  Napi::Function itemStore = ItemStoreWrap::define(env);
  data->itemStore = Napi::Persistent(itemStore);
  exports.Set("ItemStore", itemStore);
  data->sequences = Napi::Persistent(sequences);
  data->model = Napi::Persistent(model);
  exports.Set("Sequences", sequences);
  exports.Set("Model", model);
  exports.Set("Scorer", ScorerWrap::define(env));
  Napi::Function processGroup = ProcessGroupWrap::define(env);
  data->processGroup = Napi::Persistent(processGroup);
  exports.Set("ProcessGroup", processGroup);
  exports.Set("connectProcessGroup", Napi::Function::New(env, ProcessGroupWrap::connect, "connectProcessGroup"));
  exports.Set("createModel", Napi::Function::New(env, ModelWrap::createAsync, "createModel"));
  exports.Set("fullRankingRanks", Napi::Function::New(env, fullRankingRanks, "fullRankingRanks"));
  exports.Set("sampleNegatives", Napi::Function::New(env, sampleNegatives, "sampleNegatives"));
  exports.Set("torchInfo", Napi::Function::New(env, torchInfo, "torchInfo"));
  exports.Set("configSchema", Napi::Function::New(env, configSchema, "configSchema"));
  exports.Set("setThreads", Napi::Function::New(env, setThreads, "setThreads"));
  exports.Set("getThreads", Napi::Function::New(env, getThreads, "getThreads"));
  // A worker thread's environment going away takes its queued jobs with it and stops its running one.
  napi_env raw = env;
  env.AddCleanupHook([raw] { JobQueue::instance().dropOwner(raw); });
  return exports;
}

}  // namespace morec

static Napi::Object InitMorec(Napi::Env env, Napi::Object exports) { return morec::init(env, exports); }

NODE_API_MODULE(morec, InitMorec)
