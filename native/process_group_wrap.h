// JS class `ProcessGroup`: a c10d process group (native/dist/process_group.h) made by
// connectProcessGroup(options) -> Promise<ProcessGroup>. Its blocking calls (waiting on the store, collectives
// from JS) run on the job thread and return Promises; Model.joinGroup(group) makes a model's epochs and
// evaluations data-parallel over it.
#pragma once

#include <memory>

#include "common.h"
#include "dist/process_group.h"

namespace morec {

class ProcessGroupWrap : public Napi::ObjectWrap<ProcessGroupWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit ProcessGroupWrap(const Napi::CallbackInfo& info);
  // connectProcessGroup({ masterAddr, masterPort, worldSize, rank, timeoutMs, backend }): Promise<ProcessGroup>.
  static Napi::Value connect(const Napi::CallbackInfo& info);
  // The group of a JS ProcessGroup (EINVAL naming `name` when v is not one, ECLOSED when it was closed).
  static std::shared_ptr<ProcessGroup> unwrap(const Napi::Value& v, const char* name);

 private:
  Napi::Value rank(const Napi::CallbackInfo& info);
  Napi::Value worldSize(const Napi::CallbackInfo& info);
  Napi::Value backend(const Napi::CallbackInfo& info);
  Napi::Value storeSet(const Napi::CallbackInfo& info);
  Napi::Value storeGet(const Napi::CallbackInfo& info);
  Napi::Value allreduce(const Napi::CallbackInfo& info);
  Napi::Value barrier(const Napi::CallbackInfo& info);
  Napi::Value recordFailure(const Napi::CallbackInfo& info);
  Napi::Value close(const Napi::CallbackInfo& info);
  ProcessGroup& group();

  std::shared_ptr<ProcessGroup> group_;
};

}  // namespace morec
