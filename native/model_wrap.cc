#include "model_wrap.h"

#include "dist/state_broadcast.h"
#include "process_group_wrap.h"
#include "task_worker.h"

#include <set>

#include "addon_data.h"
#include "evaluate_worker.h"
#include "item_store_wrap.h"
#include "io/state_dict_reader.h"
#include "item_vectors_worker.h"
#include "models/image_item_tower.h"
#include "models/text_item_tower.h"
#include "sequences_wrap.h"
#include "state_copy_worker.h"
#include "assign_state_worker.h"
#include "create_model_worker.h"
#include "train/epoch_batches.h"
#include "train_epoch_worker.h"

namespace morec {

Napi::Function ModelWrap::define(Napi::Env env) {
  return DefineClass(env, "Model",
                     {InstanceAccessor<&ModelWrap::config>("config"),
                      InstanceMethod<&ModelWrap::trainEpoch>("trainEpoch"),
                      InstanceMethod<&ModelWrap::epochBatches>("epochBatches"),
                      InstanceMethod<&ModelWrap::evaluate>("evaluate"),
                      InstanceMethod<&ModelWrap::cancel>("cancel"),
                      InstanceMethod<&ModelWrap::encodeSequences>("encodeSequences"),
                      InstanceMethod<&ModelWrap::itemVectors>("itemVectors"),
                      InstanceMethod<&ModelWrap::encoderHiddenStates>("encoderHiddenStates"),
                      InstanceMethod<&ModelWrap::loadEncoderWeights>("loadEncoderWeights"),
                      InstanceMethod<&ModelWrap::encoderFeatures>("encoderFeatures"),
                      InstanceMethod<&ModelWrap::parameters>("parameters"),
                      InstanceMethod<&ModelWrap::setParameters>("setParameters"),
                      InstanceMethod<&ModelWrap::snapshotWeights>("snapshotWeights"),
                      InstanceMethod<&ModelWrap::restoreWeights>("restoreWeights"),
                      InstanceMethod<&ModelWrap::optimizerState>("optimizerState"),
                      InstanceMethod<&ModelWrap::stateCopy>("stateCopy"),
                      InstanceMethod<&ModelWrap::assignState>("assignState"),
                      InstanceMethod<&ModelWrap::setOptimizerState>("setOptimizerState"),
                      InstanceMethod<&ModelWrap::joinGroup>("joinGroup")});
}

// Marks the External that carries a core built on the job thread into the constructor.
static const napi_type_tag kAdoptTag = {0x6d6f726563436f72ULL, 0x6541646f70743031ULL};

Napi::Value ModelWrap::adopt(Napi::Env env, std::shared_ptr<ModelCore> core) {
  auto* addon = env.GetInstanceData<AddonData>();
  auto ext = Napi::External<std::shared_ptr<ModelCore>>::New(env, new std::shared_ptr<ModelCore>(std::move(core)),
                                                             [](Napi::Env, std::shared_ptr<ModelCore>* p) { delete p; });
  ext.TypeTag(&kAdoptTag);
  return addon->model.New({ext});
}

// (config, items?) of new Model() and createModel().
static std::pair<ModelConfig, std::shared_ptr<const ItemStoreData>> readCreateArgs(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray())
    throw invalidArg("Expected a config object for config but received " +
                     (info.Length() ? describeValue(info[0]) : std::string("undefined")));
  ModelConfig cfg = ModelConfig::fromJs(info[0].As<Napi::Object>());
  std::shared_ptr<const ItemStoreData> store;
  if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) store = ItemStoreWrap::unwrap(info[1], "items");
  return {std::move(cfg), std::move(store)};
}

Napi::Value ModelWrap::createAsync(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    auto [cfg, store] = readCreateArgs(info);
    return std::make_shared<CreateModelWorker>(cfg, store)->start(info.Env(), Napi::Function());
  });
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  guarded(info.Env(), [&] {
    if (info.Length() == 1 && info[0].IsExternal() && info[0].As<Napi::External<void>>().CheckTypeTag(&kAdoptTag)) {
      core_ = *info[0].As<Napi::External<std::shared_ptr<ModelCore>>>().Data();
      ModelConfig cfg = core_->model->config();
      configObject_ = Napi::Persistent(cfg.toJs(info.Env()));
      return;
    }
    auto [cfg, store] = readCreateArgs(info);
    useThreads(cfg.threads);
    core_ = std::make_shared<ModelCore>();
    core_->model = std::make_shared<Recommender>(cfg, store);
    core_->model->eval();
    configObject_ = Napi::Persistent(cfg.toJs(info.Env()));
  });
}

void ModelWrap::ensureIdle() const {
  if (core_->busy)
    throw MorecException("EBUSY", "the model is busy with a training epoch or an evaluation; await it first");
  if (core_->serving)
    throw MorecException("EBUSY", "the model is being served (a Recommender over it is open); close the Recommender first");
}

std::shared_ptr<ModelCore> ModelWrap::coreOf(const Napi::Value& v, const char* name) {
  auto* addon = v.Env().GetInstanceData<AddonData>();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon->model.Value()))
    throw invalidArg(std::string("Expected a Model for ") + name + " but received " + describeValue(v));
  return Napi::ObjectWrap<ModelWrap>::Unwrap(v.As<Napi::Object>())->core_;
}

Napi::Value ModelWrap::config(const Napi::CallbackInfo& info) {
  return core_ ? configObject_.Value() : info.Env().Undefined();
}

static Napi::Function optionalFunction(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return Napi::Function();
  if (!info[i].IsFunction())
    throw invalidArg(std::string("Expected a function for ") + name + " but received " + describeValue(info[i]));
  return info[i].As<Napi::Function>();
}

static EpochOptions readEpochOptions(const Napi::Object& o) {
  EpochOptions opt;
  opt.epoch = readInt(o, "epoch", 0, 0, INT32_MAX);
  opt.batchSize = readInt(o, "batchSize", opt.batchSize, 1, 1 << 20);
  opt.lr = readNumber(o, "lr", opt.lr, 0.0, 10.0);
  opt.weightDecay = readNumber(o, "weightDecay", opt.weightDecay, 0.0, 10.0);
  opt.encoderLr = readNumber(o, "encoderLr", opt.encoderLr, 0.0, 10.0);
  opt.encoderWeightDecay = readNumber(o, "encoderWeightDecay", opt.weightDecay, 0.0, 10.0);
  opt.gradAccum = readInt(o, "gradAccum", 1, 1, 1 << 16);
  opt.bucketByLength = readBool(o, "bucketByLength", opt.bucketByLength);
  opt.maxBatches = readInt(o, "maxBatches", 0, 0, INT32_MAX);
  opt.progressEvery = readInt(o, "progressEvery", opt.progressEvery, 1, INT32_MAX);
  opt.parts = readInt(o, "parts", 1, 1, 1024);
  opt.part = readInt(o, "part", 0, 0, opt.parts - 1);
  const std::string loss = readString(o, "loss", "bce");
  if (loss != "bce" && loss != "inbatch")
    throw invalidArg("Expected 'bce' or 'inbatch' for loss but received '" + loss + "'");
  opt.inBatchLoss = loss == "inbatch";
  const std::string batching = readString(o, "dssmBatching", "pairs");
  if (batching != "pairs" && batching != "users")
    throw invalidArg("Expected 'pairs' or 'users' for dssmBatching but received '" + batching + "'");
  opt.dssmPairs = batching == "pairs";
  return opt;
}

Napi::Value ModelWrap::trainEpoch(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    auto seqs = SequencesWrap::unwrap(info.Length() ? info[0] : info.Env().Undefined(), "sequences");
    EpochOptions opt = readEpochOptions(readObjectArg(info, 1, "options"));
    Napi::Function onProgress = optionalFunction(info, 2, "onProgress");
    return std::make_shared<TrainEpochWorker>(core_, seqs, opt)->start(info.Env(), onProgress);
  });
}

// The positions trainEpoch(seqs, options) would train on, batch by batch, built by the same code with the
// same seeds (negatives included) but without training: { batchOffsets: Int32Array (batches + 1, into the
// per-position arrays), users, positives, negatives (empty with the in-batch loss) }. Sync, for tests and
// inspection.
Napi::Value ModelWrap::epochBatches(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    auto seqs = SequencesWrap::unwrap(info.Length() ? info[0] : info.Env().Undefined(), "sequences");
    Napi::Object o = readObjectArg(info, 1, "options");
    EpochOptions opt = readEpochOptions(o);
    // One rank's share of each global batch, as a data-parallel epoch on that rank trains it.
    opt.worldSize = readInt(o, "worldSize", 1, 1, 1 << 16);
    opt.rank = readInt(o, "rank", 0, 0, opt.worldSize - 1);
    auto& model = *core_->model;
    model.checkSequences(*seqs);
    EpochBatches batches(*seqs, model.config(), model.packed(), opt);
    std::vector<int32_t> offsets{0}, users, positives, negatives;
    for (int64_t i = 0; i < batches.size(); ++i) {
      Batch b = batches.build(i);
      auto user = b.userIds.index_select(0, b.rowOfValid).contiguous();
      const int64_t M = b.posIds.size(0);
      const int64_t* u = user.data_ptr<int64_t>();
      const int64_t* pos = b.posIds.data_ptr<int64_t>();
      const int64_t* neg = b.negIds.defined() ? b.negIds.data_ptr<int64_t>() : nullptr;
      for (int64_t m = 0; m < M; ++m) {
        users.push_back(int32_t(u[m]));
        positives.push_back(int32_t(pos[m]));
        if (neg) negatives.push_back(int32_t(neg[m]));
      }
      offsets.push_back(int32_t(users.size()));
    }
    auto toArray = [&](const std::vector<int32_t>& v) {
      auto t = torch::empty({int64_t(v.size())}, torch::kInt);
      std::copy(v.begin(), v.end(), t.data_ptr<int32_t>());
      return tensorToTypedArray(info.Env(), t);
    };
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("batchOffsets", toArray(offsets));
    out.Set("users", toArray(users));
    out.Set("positives", toArray(positives));
    out.Set("negatives", toArray(negatives));
    return out;
  });
}

Napi::Value ModelWrap::evaluate(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    auto seqs = SequencesWrap::unwrap(info.Length() ? info[0] : info.Env().Undefined(), "sequences");
    Napi::Object o = readObjectArg(info, 1, "options");
    EvalOptions opt;
    const std::string split = readString(o, "split", "valid");
    if (split != "valid" && split != "test")
      throw invalidArg("Expected 'valid' or 'test' for split but received '" + split + "'");
    opt.holdOut = split == "valid" ? 2 : 1;
    const std::string mode = readString(o, "mode", "full");
    if (mode != "full" && mode != "sampled")
      throw invalidArg("Expected 'full' or 'sampled' for mode but received '" + mode + "'");
    opt.sampled = mode == "sampled";
    opt.numNegatives = readInt(o, "numNegatives", opt.numNegatives, 1, INT32_MAX);
    opt.seed = readInt(o, "seed", 0, 0, INT32_MAX);
    opt.batchSize = readInt(o, "batchSize", opt.batchSize, 1, 1 << 20);
    opt.chunkRows = readInt(o, "chunkRows", opt.chunkRows, 1, 1 << 20);
    opt.maskRepeatedTarget = readBool(o, "maskRepeatedTarget", opt.maskRepeatedTarget);
    Napi::Function onProgress = optionalFunction(info, 2, "onProgress");
    return std::make_shared<EvaluateWorker>(core_, seqs, opt)->start(info.Env(), onProgress);
  });
}

Napi::Value ModelWrap::encodeSequences(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    const auto& cfg = core_->model->config();
    if (cfg.backbone != "sasrec") throw invalidArg("encodeSequences needs the sasrec backbone");
    auto ids = readInt32Array(info.Length() ? info[0] : info.Env().Undefined(), "inputIds");
    Napi::Object holder = Napi::Object::New(info.Env());
    holder.Set("rows", info.Length() > 1 ? info[1] : info.Env().Undefined());
    const int64_t rows = readInt(holder, "rows", -1, 1, INT32_MAX);
    const int64_t n = int64_t(ids.ElementLength());
    if (n % rows != 0 || n / rows < 1 || n / rows > cfg.maxLen)
      throw invalidArg("Expected inputIds of rows x T values with 1 <= T <= maxLen (" + std::to_string(cfg.maxLen) +
                       ") but received " + std::to_string(n) + " values for " + std::to_string(rows) + " rows");
    for (int64_t i = 0; i < n; ++i)
      if (ids[size_t(i)] < 0 || ids[size_t(i)] > cfg.numItems)
        throw invalidArg("Expected item indices in 0.." + std::to_string(cfg.numItems) + " but inputIds[" +
                         std::to_string(i) + "] is " + std::to_string(ids[size_t(i)]));
    useThreads(cfg.threads);
    torch::NoGradGuard noGrad;
    core_->model->eval();
    auto t = torch::from_blob(ids.Data(), {rows, n / rows}, torch::kInt).to(core_->model->device(), torch::kLong);
    return tensorToTypedArray(info.Env(), core_->model->sequenceHidden(t));
  });
}

Napi::Value ModelWrap::itemVectors(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    Napi::Function onProgress = optionalFunction(info, 0, "onProgress");
    return std::make_shared<ItemVectorsWorker>(core_)->start(info.Env(), onProgress);
  });
}

// Stops the running (or queued) job at its next batch; it then rejects with EABORT. Without a job: no effect
// (the flag is cleared when the next job is queued).
Napi::Value ModelWrap::cancel(const Napi::CallbackInfo& info) {
  if (core_) core_->cancel = true;
  return info.Env().Undefined();
}

// An Int32Array of item indices 1..numItems (at least one) -> int64 on the model's device.
static torch::Tensor itemIndices(ModelCore& core, const Napi::Value& v) {
  auto ids = readInt32Array(v, "items");
  const int64_t N = core.model->config().numItems;
  if (ids.ElementLength() == 0) throw invalidArg("Expected at least one item in items but received an empty array");
  for (size_t i = 0; i < ids.ElementLength(); ++i)
    if (ids[i] < 1 || ids[i] > N)
      throw invalidArg("Expected item indices in 1.." + std::to_string(N) + " but items[" + std::to_string(i) + "] is " +
                       std::to_string(ids[i]));
  return torch::from_blob(ids.Data(), {int64_t(ids.ElementLength())}, torch::kInt).to(core.model->device(), torch::kLong);
}

static TextItemTower& textTower(ModelCore& core, const char* method) {
  auto* tower = dynamic_cast<TextItemTower*>(&core.model->itemTower().modality());
  if (!tower)
    throw invalidArg(std::string(method) + " needs itemTower 'text' but this model has '" + core.model->config().itemTower + "'");
  return *tower;
}

// Last-layer hidden states of the text encoder for items (Int32Array of indices 1..numItems):
// { shape: [n, T, hidden], data: Float32Array }.
Napi::Value ModelWrap::encoderHiddenStates(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    auto& tower = textTower(*core_, "encoderHiddenStates");
    auto items = itemIndices(*core_, info.Length() ? info[0] : info.Env().Undefined());
    useThreads(core_->model->config().threads);
    auto h = tower.hiddenStates(items);
    Napi::Object out = Napi::Object::New(info.Env());
    Napi::Array shape = Napi::Array::New(info.Env(), 3);
    for (uint32_t i = 0; i < 3; ++i) shape.Set(i, double(h.size(i)));
    out.Set("shape", shape);
    out.Set("data", tensorToTypedArray(info.Env(), h.to(torch::kCPU, torch::kFloat, false, true)));
    return out;
  });
}

static Napi::Object importReport(Napi::Env env, const ImportReport& report) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loaded", double(report.loaded));
  Napi::Array ignored = Napi::Array::New(env, report.ignored.size());
  for (size_t i = 0; i < report.ignored.size(); ++i) ignored.Set(uint32_t(i), report.ignored[i]);
  out.Set("ignored", ignored);
  return out;
}

// The modality encoder's pooled output for items (Int32Array of indices 1..numItems), no gradients:
// { shape: [n, features], data: Float32Array }. Image: train runs it in train mode (BatchNorm statistics
// update). Text: the configured pooling of the last layer, eval mode.
Napi::Value ModelWrap::encoderFeatures(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    auto* image = dynamic_cast<ImageItemTower*>(&core_->model->itemTower().modality());
    auto* text = dynamic_cast<TextItemTower*>(&core_->model->itemTower().modality());
    if (!image && !text)
      throw invalidArg("encoderFeatures needs itemTower 'text' or 'image' but this model has '" + core_->model->config().itemTower + "'");
    auto items = itemIndices(*core_, info.Length() ? info[0] : info.Env().Undefined());
    const bool train = info.Length() > 1 && info[1].ToBoolean().Value();
    useThreads(core_->model->config().threads);
    auto h = image ? image->features(items, train) : text->features(items);
    Napi::Object out = Napi::Object::New(info.Env());
    Napi::Array shape = Napi::Array::New(info.Env(), 2);
    for (uint32_t i = 0; i < 2; ++i) shape.Set(i, double(h.size(i)));
    out.Set("shape", shape);
    out.Set("data", tensorToTypedArray(info.Env(), h.to(torch::kCPU, torch::kFloat, false, true)));
    return out;
  });
}

// Reads a public checkpoint file (safetensors or PyTorch zip) and loads it into the text or image encoder.
Napi::Value ModelWrap::loadEncoderWeights(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    auto* text = dynamic_cast<TextItemTower*>(&core_->model->itemTower().modality());
    auto* image = dynamic_cast<ImageItemTower*>(&core_->model->itemTower().modality());
    if (!text && !image)
      throw invalidArg("loadEncoderWeights needs itemTower 'text' or 'image' but this model has '" +
                       core_->model->config().itemTower + "'");
    Napi::Object holder = Napi::Object::New(info.Env());
    holder.Set("file", info.Length() ? info[0] : info.Env().Undefined());
    const std::string file = readString(holder, "file", "");
    if (file.empty()) throw invalidArg("Expected a checkpoint file path for file but received " + describeValue(holder.Get("file")));
    auto stateDict = readStateDict(file);
    return importReport(info.Env(), text ? text->importEncoder(stateDict, file) : image->importEncoder(stateDict, file));
  });
}

static Napi::Object namedTensors(Napi::Env env, const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::vector<std::pair<std::string, torch::Tensor>> copies;
  // Copies: the arrays are snapshots, not views of weights that later training would change.
  for (const auto& [name, t] : tensors) copies.emplace_back(name, t.detach().to(torch::kCPU, torch::kFloat, false, true));
  return namedTensorViews(env, copies);
}

// Copies {name: Float32Array | {data: Float32Array}} into the given tensors; every tensor must be present.
static void assignNamed(const Napi::Object& src, const std::vector<std::pair<std::string, torch::Tensor>>& dst,
                        const char* what) {
  torch::NoGradGuard noGrad;
  std::set<std::string> known;
  for (const auto& kv : dst) known.insert(kv.first);
  checkKnownNames(src, known, what);
  for (const auto& [name, t] : dst)
    t.copy_(torch::from_blob(namedFloat32Array(src, name, t.numel(), what).Data(), t.sizes(), torch::kFloat));
}


Napi::Value ModelWrap::parameters(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    return namedTensors(info.Env(), modelState(*core_->model));
  });
}

Napi::Value ModelWrap::setParameters(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    Napi::Object src = readObjectArg(info, 0, "parameters");
    assignNamed(src, modelState(*core_->model), "parameter");
    core_->model->itemTower().weightsChanged();
    return info.Env().Undefined();
  });
}

Napi::Value ModelWrap::snapshotWeights(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    torch::NoGradGuard noGrad;
    auto state = modelState(*core_->model);
    if (core_->snapshot.size() != state.size()) {
      core_->snapshot.clear();
      for (auto& [name, t] : state) core_->snapshot.push_back(t.detach().clone());
    } else {
      for (size_t i = 0; i < state.size(); ++i) core_->snapshot[i].copy_(state[i].second);  // reuse the buffers
    }
    return info.Env().Undefined();
  });
}

Napi::Value ModelWrap::restoreWeights(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    if (core_->snapshot.empty()) throw invalidArg("restoreWeights: no snapshot was taken (call snapshotWeights first)");
    torch::NoGradGuard noGrad;
    auto state = modelState(*core_->model);
    for (size_t i = 0; i < state.size(); ++i) state[i].second.copy_(core_->snapshot[i]);
    core_->model->itemTower().weightsChanged();
    return info.Env().Undefined();
  });
}

// The weights and the optimizer state copied together on the job thread (a consistent snapshot that never
// holds the event loop): { params, optimizer: { step, tensors } }, arrays over the copies' memory.
Napi::Value ModelWrap::stateCopy(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    return std::make_shared<StateCopyWorker>(core_)->start(info.Env(), Napi::Function());
  });
}

// assignState(params, optimizer?): Promise<void>; setParameters (and setOptimizerState) on the job thread.
Napi::Value ModelWrap::assignState(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    Napi::Object params = readObjectArg(info, 0, "parameters");
    Napi::Value optimizer = info.Length() > 1 ? info[1] : info.Env().Undefined();
    return std::make_shared<AssignStateWorker>(info.Env(), core_, params, optimizer)->start(info.Env(), Napi::Function());
  });
}

Napi::Value ModelWrap::optimizerState(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    auto& opt = core_->trainer().optimizer();
    std::vector<std::pair<std::string, torch::Tensor>> all;
    for (auto& kv : opt.state()) all.emplace_back(kv.first, kv.second);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("step", double(opt.steps()));
    out.Set("tensors", namedTensors(info.Env(), all));
    return out;
  });
}

Napi::Value ModelWrap::setOptimizerState(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    Napi::Object o = readObjectArg(info, 0, "state");
    const int64_t step = readInt(o, "step", 0, 0, INT64_C(1) << 50);
    Napi::Value tv = o.Get("tensors");
    if (!tv.IsObject()) throw invalidArg("Expected an object for tensors but received " + describeValue(tv));
    auto& opt = core_->trainer().optimizer();
    std::map<std::string, torch::Tensor> fresh;
    std::vector<std::pair<std::string, torch::Tensor>> dst;
    for (auto& kv : opt.state()) {
      fresh[kv.first] = torch::empty_like(kv.second, torch::TensorOptions().device(torch::kCPU));
      dst.emplace_back(kv.first, fresh[kv.first]);
    }
    assignNamed(tv.As<Napi::Object>(), dst, "optimizer tensor");
    opt.loadState(step, fresh);
    return info.Env().Undefined();
  });
}

// joinGroup(group | null): Promise. With a group: every rank's model takes rank 0's weights, optimizer state
// and best-weights snapshot (a collective: every rank calls it), and its epochs and evaluations run
// data-parallel over the group from then on. null: this process alone again.
Napi::Value ModelWrap::joinGroup(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    ensureIdle();
    std::shared_ptr<ProcessGroup> group;
    if (info.Length() > 0 && !info[0].IsNull() && !info[0].IsUndefined()) group = ProcessGroupWrap::unwrap(info[0], "group");
    auto core = core_;
    return std::make_shared<TaskWorker>(
               "morec.joinGroup", core_,
               [core, group] {
                 useThreads(core->model->config().threads);
                 if (group && group->size() > 1) broadcastModelState(*core, *group);
                 core->group = group;
               },
               nullptr)
        ->start(info.Env(), Napi::Function());
  });
}

}  // namespace morec
