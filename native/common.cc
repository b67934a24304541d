#include "common.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sched.h>
#endif

#include <algorithm>
#include <cmath>
#include <sstream>
#include <thread>

namespace morec {

Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Value().Set("code", Napi::String::New(env, code));
  err.Value().Set("morec", Napi::Boolean::New(env, true));
  return err;
}

void describeCurrentException(std::string& code, std::string& message) {
  try {
    throw;
  } catch (const MorecException& e) {
    code = e.code;
    message = e.what();
  } catch (const c10::Error& e) {
    code = "ETORCH";
    message = e.what_without_backtrace();
  } catch (const std::bad_alloc&) {
    code = "ENOMEM";
    message = "out of memory";
  } catch (const std::exception& e) {
    code = "ENATIVE";
    message = e.what();
  } catch (...) {
    code = "ENATIVE";
    message = "unknown native error";
  }
}

std::string describeValue(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsNumber()) {
    std::ostringstream s;
    s << v.As<Napi::Number>().DoubleValue();
    return s.str();
  }
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsTypedArray()) return "a typed array";
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  return "an object";
}

static MorecException expected(const std::string& what, const char* name, const Napi::Value& v) {
  return invalidArg("Expected " + what + " for " + name + " but received " + describeValue(v));
}

int64_t readInt(const Napi::Object& o, const char* name, int64_t def, int64_t min, int64_t max) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return def;
  std::string range = "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (min == 1 && max == INT32_MAX) range = "a positive integer";
  if (min == 0 && max == INT32_MAX) range = "a non-negative integer";
  if (!v.IsNumber()) throw expected(range, name, v);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < double(min) || d > double(max)) throw expected(range, name, v);
  return int64_t(d);
}

double readNumber(const Napi::Object& o, const char* name, double def, double min, double max) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return def;
  std::ostringstream range;
  range << "a number in [" << min << ", " << max << "]";
  if (!v.IsNumber()) throw expected(range.str(), name, v);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < min || d > max) throw expected(range.str(), name, v);
  return d;
}

bool readBool(const Napi::Object& o, const char* name, bool def) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return def;
  if (!v.IsBoolean()) throw expected("a boolean", name, v);
  return v.As<Napi::Boolean>().Value();
}

std::string readString(const Napi::Object& o, const char* name, const std::string& def) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return def;
  if (!v.IsString()) throw expected("a string", name, v);
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object readObjectArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || info[i].IsUndefined()) return Napi::Object::New(info.Env());
  if (!info[i].IsObject() || info[i].IsArray() || info[i].IsFunction()) throw expected("an object", name, info[i]);
  return info[i].As<Napi::Object>();
}

Napi::TypedArrayOf<int32_t> readInt32Array(const Napi::Value& v, const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw expected("an Int32Array", name, v);
  return v.As<Napi::TypedArrayOf<int32_t>>();
}

Napi::TypedArrayOf<float> readFloat32Array(const Napi::Value& v, const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw expected("a Float32Array", name, v);
  return v.As<Napi::TypedArrayOf<float>>();
}

Napi::Value tensorToTypedArray(Napi::Env env, torch::Tensor t) {
  t = t.detach().to(torch::kCPU).contiguous();
  auto* holder = new torch::Tensor(t);
  size_t n = size_t(t.numel());
  if (n == 0) {
    delete holder;
    if (t.scalar_type() == torch::kInt) return Napi::Int32Array::New(env, 0);
    return Napi::Float32Array::New(env, 0);
  }
  if (t.scalar_type() == torch::kFloat) {
    auto buf = Napi::ArrayBuffer::New(env, t.data_ptr<float>(), n * sizeof(float),
                                      [](Napi::Env, void*, torch::Tensor* h) { delete h; }, holder);
    return Napi::Float32Array::New(env, n, buf, 0);
  }
  if (t.scalar_type() == torch::kInt) {
    auto buf = Napi::ArrayBuffer::New(env, t.data_ptr<int32_t>(), n * sizeof(int32_t),
                                      [](Napi::Env, void*, torch::Tensor* h) { delete h; }, holder);
    return Napi::Int32Array::New(env, n, buf, 0);
  }
  delete holder;
  throw MorecException("ENATIVE", "tensorToTypedArray: unsupported dtype");
}

void checkKnownNames(const Napi::Object& src, const std::set<std::string>& known, const char* what) {
  Napi::Array keys = src.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    if (!known.count(k)) throw invalidArg(std::string("unknown ") + what + " '" + k + "' (not in this model)");
  }
}

Napi::TypedArrayOf<float> namedFloat32Array(const Napi::Object& src, const std::string& name, int64_t numel, const char* what) {
  Napi::Value v = src.Get(name);
  if (v.IsUndefined()) throw invalidArg(std::string("missing ") + what + " '" + name + "'");
  if (v.IsObject() && !v.IsTypedArray()) v = v.As<Napi::Object>().Get("data");
  auto arr = readFloat32Array(v, name.c_str());
  if (int64_t(arr.ElementLength()) != numel)
    throw invalidArg(std::string("Expected ") + std::to_string(numel) + " values for " + what + " '" + name +
                     "' but received " + std::to_string(arr.ElementLength()));
  return arr;
}

Napi::Object namedTensorViews(Napi::Env env, const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [name, t] : tensors) {
    Napi::Object entry = Napi::Object::New(env);
    Napi::Array shape = Napi::Array::New(env, size_t(t.dim()));
    for (int64_t i = 0; i < t.dim(); ++i) shape.Set(uint32_t(i), double(t.size(i)));
    entry.Set("shape", shape);
    entry.Set("data", tensorToTypedArray(env, t));
    out.Set(name, entry);
  }
  return out;
}

void releaseFreeMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

int availableCores() {
  static const int cores = [] {
    int n = int(std::max(1u, std::thread::hardware_concurrency()));
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) n = std::min(n, CPU_COUNT(&set));
#endif
    return n;
  }();
  return cores;
}

static std::atomic<int> budget{0};  // 0: not set, all cores

int setThreadBudget(int64_t threads) {
  const int n = int(std::clamp<int64_t>(threads, 1, availableCores()));
  budget = n;
  return n;
}

int threadBudget() {
  const int b = budget.load();
  return b > 0 ? b : availableCores();
}

static std::atomic<int> jobThreads{0};  // intra-op threads of the long job running now (0: none)
static thread_local bool onJobThread = false;

void markJobThread() { onJobThread = true; }
void jobFinished() { jobThreads = 0; }

void useThreads(int64_t threads) {
  const int n = int(threads > 0 ? std::min<int64_t>(threads, threadBudget()) : threadBudget());
  if (onJobThread) jobThreads = n;
  if (at::get_num_threads() != n) at::set_num_threads(n);
}

void useServingThreads(int64_t threads) {
  const int budget = threadBudget();
  const int wanted = int(threads > 0 ? std::min<int64_t>(threads, budget) : budget);
  const int n = std::max(1, std::min(wanted, budget - jobThreads.load()));
  if (at::get_num_threads() != n) at::set_num_threads(n);
}

}  // namespace morec
