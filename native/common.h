// Shared helpers of the native core: errors that reach JS as morec errors, argument readers that validate
// instead of crashing, and the libtorch includes every file needs.
#pragma once

#include <napi.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <set>
#include <string>

namespace morec {

// An error with a stable code; converted to a JS Error with `.code` at the boundary.
struct MorecException : std::runtime_error {
  std::string code;
  MorecException(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

inline MorecException invalidArg(const std::string& what) { return MorecException("EINVAL", what); }

Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& message);

// Runs fn and converts any C++ exception (c10::Error included) into a thrown JS morec error.
template <typename F>
auto guarded(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const MorecException& e) {
    throw makeError(env, e.code, e.what());
  } catch (const c10::Error& e) {
    throw makeError(env, "ETORCH", e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    throw makeError(env, "ENOMEM", "out of memory");
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw makeError(env, "ENATIVE", e.what());
  }
}

// Describes a caught exception as (code, message) for async workers that reject promises.
void describeCurrentException(std::string& code, std::string& message);

std::string describeValue(const Napi::Value& v);

// Option readers: `name` is used in the "Expected X for NAME but received Y" message.
int64_t readInt(const Napi::Object& o, const char* name, int64_t def, int64_t min, int64_t max);
double readNumber(const Napi::Object& o, const char* name, double def, double min, double max);
bool readBool(const Napi::Object& o, const char* name, bool def);
std::string readString(const Napi::Object& o, const char* name, const std::string& def);
Napi::Object readObjectArg(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::TypedArrayOf<int32_t> readInt32Array(const Napi::Value& v, const char* name);
Napi::TypedArrayOf<float> readFloat32Array(const Napi::Value& v, const char* name);
// Named float arrays from JS ({ name: Float32Array | { data } }): refuses names not in `known`, and returns the
// array of `name` after checking it holds `numel` values. `what` names the kind in messages ("parameter").
void checkKnownNames(const Napi::Object& src, const std::set<std::string>& known, const char* what);
Napi::TypedArrayOf<float> namedFloat32Array(const Napi::Object& src, const std::string& name, int64_t numel, const char* what);

// A Float32Array/Int32Array over the memory of a contiguous CPU tensor, without copying: the array keeps
// the tensor alive until it is garbage collected.
Napi::Value tensorToTypedArray(Napi::Env env, torch::Tensor t);
// { name: { shape, data } } over contiguous CPU float tensors' memory (tensorToTypedArray: no copy).
Napi::Object namedTensorViews(Napi::Env env, const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

// Cores this process may use: its CPU affinity, never more than std::thread::hardware_concurrency().
int availableCores();
// The process-wide thread budget that every model's jobs share (setThreads in JS); default: all cores.
// Clamped to [1, availableCores()]; returns the budget now in force.
int setThreadBudget(int64_t threads);
int threadBudget();

// Sets libtorch's intra-op threads for the calling thread (OpenMP keeps this per thread): `threads` (a
// model's config; 0 = no limit of its own), never more than the process budget.
void useThreads(int64_t threads);
// The serving thread's share: what the long job running now (if any) leaves of the budget, at least one
// thread, at most `threads` (0 = no limit of its own). A job keeps its count for its whole run (its results do
// not depend on serving load); serving passes take the rest.
void useServingThreads(int64_t threads);
// The job thread marks itself once; a finished job gives its threads back.
void markJobThread();
void jobFinished();

// Stops a job at a batch boundary once its model's cancel flag is set (an AbortSignal fired in JS):
// "aborted at batch 12 of 40".
inline void stopIfCancelled(const std::atomic<bool>& cancel, const char* unit, int64_t done, int64_t total) {
  if (cancel.load(std::memory_order_relaxed))
    throw MorecException("EABORT", std::string("aborted at ") + unit + " " + std::to_string(done) + " of " +
                                       std::to_string(total));
}

// Hands memory the allocator holds but no longer uses back to the system (glibc keeps freed blocks of its
// per-thread arenas: without this, RSS grew by about 1 GiB per text-tower epoch until it plateaued).
void releaseFreeMemory();

}  // namespace morec
