// JS class `Scorer`: a model served from its item table (serve/scorer.h). recommend() queues a request on the
// process-wide serving thread (serve/serve_queue.h), which micro-batches it with the other requests queued for
// this scorer, and resolves its Promise with the top K. While a scorer is open its model is read-only: the
// Model's jobs and weight changes are refused (EBUSY), so no training step races a serving pass.
#pragma once

#include <memory>

#include "common.h"
#include "model_core.h"

namespace morec {

class ScorerSession;

class ScorerWrap : public Napi::ObjectWrap<ScorerWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit ScorerWrap(const Napi::CallbackInfo& info);
  ~ScorerWrap() override;

 private:
  Napi::Value recommend(const Napi::CallbackInfo& info);
  Napi::Value recommendMany(const Napi::CallbackInfo& info);
  Napi::Value stats(const Napi::CallbackInfo& info);
  Napi::Value close(const Napi::CallbackInfo& info);

  std::shared_ptr<ScorerSession> session_;
};

}  // namespace morec
