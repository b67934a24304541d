// JS class `Sequences`: users' item sequences in CSR form (offsets Int32Array of users + 1 entries, items
// Int32Array in 1..numItems), validated and copied once into native memory.
#pragma once

#include <memory>

#include "common.h"
#include "sequence_data.h"

namespace morec {

class SequencesWrap : public Napi::ObjectWrap<SequencesWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit SequencesWrap(const Napi::CallbackInfo& info);
  static std::shared_ptr<const SequenceData> unwrap(const Napi::Value& v, const char* name);

 private:
  Napi::Value users(const Napi::CallbackInfo& info);
  Napi::Value numItems(const Napi::CallbackInfo& info);
  Napi::Value interactions(const Napi::CallbackInfo& info);
  Napi::Value repeatedTargetUsers(const Napi::CallbackInfo& info);
  std::shared_ptr<const SequenceData> data_;
};

}  // namespace morec
