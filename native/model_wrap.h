// JS class `Model`: a recommender (backbone + item tower) and its optimizer. Training epochs and
// evaluation passes are async (Promises, progress callbacks, cancel()) and run on the job thread; the small
// inspection methods are sync.
#pragma once

#include <memory>

#include "common.h"
#include "model_core.h"

namespace morec {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info);
  // The native state of a JS Model (EINVAL naming `name` when v is not one).
  static std::shared_ptr<ModelCore> coreOf(const Napi::Value& v, const char* name);
  // A JS Model over a core built elsewhere (CreateModelWorker).
  static Napi::Value adopt(Napi::Env env, std::shared_ptr<ModelCore> core);
  // createModel(config, items?): Promise<Model>, the model built on the job thread.
  static Napi::Value createAsync(const Napi::CallbackInfo& info);

 private:
  Napi::Value config(const Napi::CallbackInfo& info);
  Napi::Value trainEpoch(const Napi::CallbackInfo& info);
  Napi::Value epochBatches(const Napi::CallbackInfo& info);
  Napi::Value evaluate(const Napi::CallbackInfo& info);
  Napi::Value cancel(const Napi::CallbackInfo& info);
  Napi::Value encodeSequences(const Napi::CallbackInfo& info);
  Napi::Value itemVectors(const Napi::CallbackInfo& info);
  Napi::Value encoderHiddenStates(const Napi::CallbackInfo& info);
  Napi::Value loadEncoderWeights(const Napi::CallbackInfo& info);
  Napi::Value encoderFeatures(const Napi::CallbackInfo& info);
  Napi::Value parameters(const Napi::CallbackInfo& info);
  Napi::Value setParameters(const Napi::CallbackInfo& info);
  Napi::Value snapshotWeights(const Napi::CallbackInfo& info);
  Napi::Value restoreWeights(const Napi::CallbackInfo& info);
  Napi::Value optimizerState(const Napi::CallbackInfo& info);
  Napi::Value stateCopy(const Napi::CallbackInfo& info);
  Napi::Value assignState(const Napi::CallbackInfo& info);
  Napi::Value setOptimizerState(const Napi::CallbackInfo& info);
  Napi::Value joinGroup(const Napi::CallbackInfo& info);
  void ensureIdle() const;

  std::shared_ptr<ModelCore> core_;
  Napi::ObjectReference configObject_;
};

}  // namespace morec
