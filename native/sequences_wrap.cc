#include "sequences_wrap.h"

#include "addon_data.h"

namespace morec {

Napi::Function SequencesWrap::define(Napi::Env env) {
  return DefineClass(env, "Sequences",
                     {InstanceAccessor<&SequencesWrap::users>("users"),
                      InstanceAccessor<&SequencesWrap::numItems>("numItems"),
                      InstanceAccessor<&SequencesWrap::interactions>("interactions"),
                      InstanceMethod<&SequencesWrap::repeatedTargetUsers>("repeatedTargetUsers")});
}

SequencesWrap::SequencesWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SequencesWrap>(info) {
  guarded(info.Env(), [&] {
    if (info.Length() < 3) throw invalidArg("Expected (offsets: Int32Array, items: Int32Array, numItems: number)");
    auto offsets = readInt32Array(info[0], "offsets");
    auto items = readInt32Array(info[1], "items");
    Napi::Object holder = Napi::Object::New(info.Env());
    holder.Set("numItems", info[2]);
    const int64_t numItems = readInt(holder, "numItems", 0, 1, INT32_MAX - 1);
    if (offsets.ElementLength() < 1) throw invalidArg("Expected offsets with at least 1 entry (users + 1) but received 0");
    auto data = std::make_shared<SequenceData>();
    data->numItems = numItems;
    const size_t U = offsets.ElementLength() - 1;
    if (offsets[0] != 0) throw invalidArg("Expected offsets[0] = 0 but received " + std::to_string(offsets[0]));
    data->offsets.resize(U + 1);
    for (size_t u = 0; u <= U; ++u) {
      if (u > 0 && offsets[u] < offsets[u - 1])
        throw invalidArg("Expected non-decreasing offsets but offsets[" + std::to_string(u) + "] = " +
                         std::to_string(offsets[u]) + " < offsets[" + std::to_string(u - 1) + "] = " +
                         std::to_string(offsets[u - 1]));
      data->offsets[u] = offsets[u];
    }
    if (size_t(offsets[U]) != items.ElementLength())
      throw invalidArg("Expected the last offset to equal items.length (" + std::to_string(items.ElementLength()) +
                       ") but received " + std::to_string(offsets[U]));
    data->items.assign(items.Data(), items.Data() + items.ElementLength());
    size_t user = 0;
    for (size_t i = 0; i < data->items.size(); ++i) {
      const int32_t it = data->items[i];
      if (it < 1 || it > numItems) {
        while (user + 1 < U && size_t(data->offsets[user + 1]) <= i) ++user;
        throw invalidArg("Expected item indices in 1.." + std::to_string(numItems) + " but user " +
                         std::to_string(user) + " has item " + std::to_string(it) + " at position " +
                         std::to_string(i - size_t(data->offsets[user])));
      }
    }
    data_ = std::move(data);
  });
}

std::shared_ptr<const SequenceData> SequencesWrap::unwrap(const Napi::Value& v, const char* name) {
  auto* addon = v.Env().GetInstanceData<AddonData>();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon->sequences.Value()))
    throw invalidArg(std::string("Expected a Sequences object for ") + name + " but received " + describeValue(v));
  return Napi::ObjectWrap<SequencesWrap>::Unwrap(v.As<Napi::Object>())->data_;
}

Napi::Value SequencesWrap::users(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(data_ ? data_->users() : 0));
}
Napi::Value SequencesWrap::numItems(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(data_ ? data_->numItems : 0));
}
Napi::Value SequencesWrap::interactions(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(data_ ? data_->items.size() : 0));
}

// The users whose held-out item of `split` ('valid' | 'test') already occurs in their input: those an
// evaluation with maskRepeatedTarget ranks as a miss. Int32Array of user indices, ascending.
Napi::Value SequencesWrap::repeatedTargetUsers(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Object holder = Napi::Object::New(info.Env());
    holder.Set("split", info.Length() ? info[0] : info.Env().Undefined());
    const std::string split = readString(holder, "split", "");
    if (split != "valid" && split != "test")
      throw invalidArg("Expected 'valid' or 'test' for split but received " + describeValue(holder.Get("split")));
    const int64_t holdOut = split == "valid" ? 2 : 1;
    if (!data_) throw invalidArg("this Sequences object was not constructed");
    std::vector<int32_t> users;
    for (int64_t u = 0; u < data_->users(); ++u)
      if (data_->heldOutRepeated(u, holdOut)) users.push_back(int32_t(u));
    auto out = torch::empty({int64_t(users.size())}, torch::kInt);
    std::copy(users.begin(), users.end(), out.data_ptr<int32_t>());
    return tensorToTypedArray(info.Env(), out);
  });
}

}  // namespace morec
