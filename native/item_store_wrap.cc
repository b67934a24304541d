#include "item_store_wrap.h"

#include "addon_data.h"

namespace morec {

Napi::Function ItemStoreWrap::define(Napi::Env env) {
  return DefineClass(env, "ItemStore",
                     {InstanceAccessor<&ItemStoreWrap::numItems>("numItems"),
                      InstanceAccessor<&ItemStoreWrap::maxTokens>("maxTokens")});
}

// new ItemStore({ numItems, maxTokens, tokens: Int32Array (numItems + 1) x maxTokens, lengths: Int32Array })
ItemStoreWrap::ItemStoreWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ItemStoreWrap>(info) {
  guarded(info.Env(), [&] {
    Napi::Object o = readObjectArg(info, 0, "options");
    auto data = std::make_shared<ItemStoreData>();
    data->numItems = readInt(o, "numItems", 0, 1, INT32_MAX - 1);
    data->maxTokens = readInt(o, "maxTokens", 0, 1, 1 << 16);
    auto tokens = readInt32Array(o.Get("tokens"), "tokens");
    auto lengths = readInt32Array(o.Get("lengths"), "lengths");
    const int64_t rows = data->numItems + 1, T = data->maxTokens;
    if (int64_t(tokens.ElementLength()) != rows * T)
      throw invalidArg("Expected tokens of (numItems + 1) x maxTokens = " + std::to_string(rows * T) +
                       " values but received " + std::to_string(tokens.ElementLength()));
    if (int64_t(lengths.ElementLength()) != rows)
      throw invalidArg("Expected lengths of numItems + 1 = " + std::to_string(rows) + " values but received " +
                       std::to_string(lengths.ElementLength()));
    int32_t maxId = 0;
    for (int64_t i = 0; i < rows * T; ++i) {
      if (tokens[size_t(i)] < 0)
        throw invalidArg("Expected token ids >= 0 but item " + std::to_string(i / T) + " has " +
                         std::to_string(tokens[size_t(i)]) + " at position " + std::to_string(i % T));
      maxId = std::max(maxId, tokens[size_t(i)]);
    }
    for (int64_t r = 1; r < rows; ++r)
      if (lengths[size_t(r)] < 1 || lengths[size_t(r)] > T)
        throw invalidArg("Expected lengths in 1.." + std::to_string(T) + " but item " + std::to_string(r) + " has " +
                         std::to_string(lengths[size_t(r)]) + " tokens");
    data->tokens = torch::from_blob(tokens.Data(), {rows, T}, torch::kInt).to(torch::kLong);
    data->lengths = torch::from_blob(lengths.Data(), {rows}, torch::kInt).to(torch::kLong);
    data->lengths[0] = 0;
    data->vocabLimit = int64_t(maxId) + 1;
    data_ = std::move(data);
  });
}

std::shared_ptr<const ItemStoreData> ItemStoreWrap::unwrap(const Napi::Value& v, const char* name) {
  auto* addon = v.Env().GetInstanceData<AddonData>();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon->itemStore.Value()))
    throw invalidArg(std::string("Expected an ItemStore object for ") + name + " but received " + describeValue(v));
  return Napi::ObjectWrap<ItemStoreWrap>::Unwrap(v.As<Napi::Object>())->data_;
}

Napi::Value ItemStoreWrap::numItems(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(data_ ? data_->numItems : 0));
}
Napi::Value ItemStoreWrap::maxTokens(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(data_ ? data_->maxTokens : 0));
}

}  // namespace morec
