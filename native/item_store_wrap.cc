#include "item_store_wrap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon_data.h"

namespace morec {

Napi::Function ItemStoreWrap::define(Napi::Env env) {
  return DefineClass(env, "ItemStore",
                     {InstanceAccessor<&ItemStoreWrap::numItems>("numItems"),
                      InstanceAccessor<&ItemStoreWrap::maxTokens>("maxTokens"),
                      InstanceAccessor<&ItemStoreWrap::kind>("kind"),
                      InstanceAccessor<&ItemStoreWrap::dim>("dim")});
}

namespace {

// A read-only shared mapping of a whole file, unmapped when the last store using it goes.
struct FileMapping {
  void* address = MAP_FAILED;
  size_t bytes = 0;
  ~FileMapping() {
    if (address != MAP_FAILED) munmap(address, bytes);
  }
};

// A read-only mapping of `file`, which must hold exactly offset + bytes bytes (`what` describes them in
// errors); the mapping is kept alive by data.mapping. Returns the address of byte `offset`.
void* mapFile(const std::string& file, int64_t offset, int64_t bytes, const std::string& what, ItemStoreData& data) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw MorecException(errno == ENOENT ? "ENOENT" : "EIO", file + ": cannot be opened (" + std::strerror(errno) + ")");
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw MorecException("EFORMAT", file + ": not a regular file");
  }
  if (int64_t(st.st_size) != offset + bytes) {
    ::close(fd);
    throw MorecException("EFORMAT", file + ": holds " + std::to_string(st.st_size) + " bytes but " + what + " (+ offset " +
                                        std::to_string(offset) + ") need " + std::to_string(offset + bytes) +
                                        " (truncated or from another data set)");
  }
  auto map = std::make_shared<FileMapping>();
  map->bytes = size_t(st.st_size);
  map->address = mmap(nullptr, map->bytes, PROT_READ, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);
  if (map->address == MAP_FAILED) throw MorecException("EIO", file + ": cannot be memory-mapped (" + std::strerror(err) + ")");
  data.mapping = map;
  data.file = file;
  return static_cast<uint8_t*>(map->address) + offset;
}

// new ItemStore({ numItems, height, width, pixels: Uint8Array }) or ({ numItems, height, width, file, offset })
void readImages(const Napi::Object& o, ItemStoreData& data) {
  data.height = readInt(o, "height", 0, 1, 1 << 14);
  data.width = readInt(o, "width", 0, 1, 1 << 14);
  const int64_t rows = data.numItems + 1, rowBytes = 3 * data.height * data.width;
  const int64_t bytes = rows * rowBytes;
  if (o.Has("pixels")) {
    Napi::Value v = o.Get("pixels");
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw invalidArg("Expected a Uint8Array for pixels but received " + describeValue(v));
    auto a = v.As<Napi::Uint8Array>();
    if (int64_t(a.ElementLength()) != bytes)
      throw invalidArg("Expected pixels of (numItems + 1) x 3 x height x width = " + std::to_string(bytes) +
                       " bytes but received " + std::to_string(a.ElementLength()));
    data.pixels = torch::from_blob(a.Data(), {rows, 3, data.height, data.width}, torch::kUInt8).clone();
    return;
  }
  Napi::Value fv = o.Get("file");
  if (!fv.IsString()) throw invalidArg("Expected pixels (a Uint8Array) or file (an image store path) but received neither");
  const std::string file = fv.As<Napi::String>().Utf8Value();
  const int64_t offset = readInt(o, "offset", 0, 0, INT64_C(1) << 50);
  const std::string what = std::to_string(data.numItems) + " items of 3 x " + std::to_string(data.height) + " x " +
                           std::to_string(data.width) + " pixels";
  data.pixels = torch::from_blob(mapFile(file, offset, bytes, what, data), {rows, 3, data.height, data.width}, torch::kUInt8);
}

// new ItemStore({ numItems, dim, features: Float32Array }) or ({ numItems, dim, file, dtype: 'float32' |
// 'float16', offset }): (numItems + 1) x dim values, row 0 = padding.
void readFeatures(const Napi::Object& o, ItemStoreData& data) {
  data.featureDim = readInt(o, "dim", 0, 1, 1 << 20);
  const int64_t rows = data.numItems + 1, D = data.featureDim;
  if (o.Has("features")) {
    auto a = readFloat32Array(o.Get("features"), "features");
    if (int64_t(a.ElementLength()) != rows * D)
      throw invalidArg("Expected features of (numItems + 1) x dim = " + std::to_string(rows * D) + " values but received " +
                       std::to_string(a.ElementLength()));
    data.features = torch::from_blob(a.Data(), {rows, D}, torch::kFloat).clone();
    return;
  }
  Napi::Value fv = o.Get("file");
  if (!fv.IsString()) throw invalidArg("Expected features (a Float32Array) or file (a feature cache path) but received neither");
  const std::string file = fv.As<Napi::String>().Utf8Value();
  const std::string dtype = readString(o, "dtype", "float32");
  if (dtype != "float32" && dtype != "float16")
    throw invalidArg("Expected 'float32' or 'float16' for dtype but received '" + dtype + "'");
  const auto type = dtype == "float16" ? torch::kHalf : torch::kFloat;
  const int64_t offset = readInt(o, "offset", 0, 0, INT64_C(1) << 50);
  const int64_t bytes = rows * D * (dtype == "float16" ? 2 : 4);
  const std::string what = std::to_string(data.numItems) + " items of " + std::to_string(D) + " " + dtype + " features";
  data.features = torch::from_blob(mapFile(file, offset, bytes, what, data), {rows, D}, type);
}

}  // namespace

// new ItemStore({ numItems, maxTokens, tokens: Int32Array (numItems + 1) x maxTokens, lengths: Int32Array })
ItemStoreWrap::ItemStoreWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ItemStoreWrap>(info) {
  guarded(info.Env(), [&] {
    Napi::Object o = readObjectArg(info, 0, "options");
    auto data = std::make_shared<ItemStoreData>();
    data->numItems = readInt(o, "numItems", 0, 1, INT32_MAX - 1);
    if (o.Has("dim")) {
      readFeatures(o, *data);
      data_ = std::move(data);
      return;
    }
    if (!o.Has("tokens")) {
      readImages(o, *data);
      data_ = std::move(data);
      return;
    }
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
Napi::Value ItemStoreWrap::kind(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), data_ ? data_->kind() : "tokens");
}
Napi::Value ItemStoreWrap::dim(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(data_ ? data_->featureDim : 0));
}
Napi::Value ItemStoreWrap::maxTokens(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(data_ ? data_->maxTokens : 0));
}

}  // namespace morec
