// JS class `ItemStore`: the per-item inputs of modality towers (token ids + lengths, or pixels: owned or memory-mapped), validated and copied
// once into native memory; a model built with it reads items from there, never through JS per step.
#pragma once

#include <memory>

#include "common.h"
#include "item_store.h"

namespace morec {

class ItemStoreWrap : public Napi::ObjectWrap<ItemStoreWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit ItemStoreWrap(const Napi::CallbackInfo& info);
  static std::shared_ptr<const ItemStoreData> unwrap(const Napi::Value& v, const char* name);

 private:
  Napi::Value numItems(const Napi::CallbackInfo& info);
  Napi::Value maxTokens(const Napi::CallbackInfo& info);
  Napi::Value kind(const Napi::CallbackInfo& info);
  Napi::Value dim(const Napi::CallbackInfo& info);
  std::shared_ptr<const ItemStoreData> data_;
};

}  // namespace morec
