#include "process_group.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(MOREC_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <sstream>
#include <thread>

#include "../common.h"

namespace morec {

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#if defined(MOREC_NCCL)
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  // The backend's collectives (ProcessGroupGloo and ProcessGroupNCCL share them, but not a base class
  // across libtorch 1.x and 2.x).
  template <typename F>
  c10::intrusive_ptr<c10d::Work> run(F&& f) {
#if defined(MOREC_NCCL)
    if (nccl) return f(*nccl);
#endif
    return f(*gloo);
  }
};

struct ProcessGroup::Pending {
  c10::intrusive_ptr<c10d::Work> work;
  const char* what;
};

static std::string errorText() {
  try {
    throw;
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

static std::string seconds(std::chrono::milliseconds ms) {
  std::ostringstream s;
  s << double(ms.count()) / 1000.0 << " s";
  return s.str();
}

static bool isLoopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

bool ProcessGroup::hasBackend(const std::string& backend) {
#if defined(MOREC_NCCL)
  if (backend == "nccl") return true;
#endif
  return backend == "gloo";
}

std::string ProcessGroup::where() const {
  return "rank " + std::to_string(options_.rank) + " of " + std::to_string(options_.worldSize) + " (master " +
         options_.masterAddr + ":" + std::to_string(options_.masterPort) + ")";
}

ProcessGroup::ProcessGroup(const ProcessGroupOptions& options) : options_(options), impl_(std::make_unique<Impl>()) {
  if (!hasBackend(options.backend))
    throw invalidArg("the '" + options.backend + "' backend is not in this build of morec (it has: gloo" +
                     (hasBackend("nccl") ? std::string(", nccl") : std::string()) + ")");
  if (options.worldSize < 1 || options.rank < 0 || options.rank >= options.worldSize)
    throw invalidArg("Expected rank in 0.." + std::to_string(options.worldSize - 1) + " but received " + std::to_string(options.rank));
  if (options.masterPort < 1 || options.masterPort > 65535)
    throw invalidArg("Expected masterPort in 1..65535 but received " + std::to_string(options.masterPort));
  c10d::TCPStoreOptions storeOptions;
  storeOptions.port = uint16_t(options.masterPort);
  storeOptions.isServer = options.rank == 0;
  storeOptions.waitWorkers = false;  // checkPeers says who is missing; the store's own wait would not
  storeOptions.timeout = options.timeout;
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(options.masterAddr, storeOptions);
  } catch (...) {
    const std::string why = errorText();
    if (options.rank == 0)
      throw MorecException("EDIST", "rank 0 cannot serve the rendezvous at " + options.masterAddr + ":" +
                                        std::to_string(options.masterPort) + ": " + why +
                                        " (is the port in use? choose another MASTER_PORT / --master-port)");
    throw MorecException("EDIST", where() + ": cannot reach the master within " + seconds(options.timeout) + ": " + why +
                                      " (is rank 0 running, and are MASTER_ADDR and MASTER_PORT the same on every rank?)");
  }
  checkPeers();
  auto groupStore = c10::make_intrusive<c10d::PrefixStore>("morec/group", impl_->store);
  try {
#if defined(MOREC_NCCL)
    if (options.backend == "nccl") {
      auto ncclOptions = c10d::ProcessGroupNCCL::Options::create();
      ncclOptions->timeout = options.timeout;
      impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(groupStore, int(options.rank), int(options.worldSize), ncclOptions);
      return;
    }
#endif
    auto glooOptions = c10d::ProcessGroupGloo::Options::create(options.timeout);
    // Loopback when the job lives on one machine; else GLOO_SOCKET_IFNAME's interface, or the address this
    // machine's hostname resolves to (as torch.distributed does).
    if (isLoopback(options.masterAddr))
      glooOptions->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
      glooOptions->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else
      glooOptions->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    glooOptions->threads = 2;
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(groupStore, int(options.rank), int(options.worldSize), glooOptions);
  } catch (...) {
    rethrow("connecting the process group");
  }
}

ProcessGroup::~ProcessGroup() = default;

// Every rank says which WORLD_SIZE it was given; rank 0 takes them rank by rank as they arrive, compares, and
// publishes a verdict that the others wait for and acknowledge (a failing rank 0 waits a moment for the
// acknowledgements, so the others read the verdict before the store goes away with it). A missing rank, a
// different WORLD_SIZE or a RANK given twice ends here with its name, instead of in Gloo's rendezvous, which
// would only time out.
void ProcessGroup::checkPeers() {
  const std::string me = std::to_string(options_.rank);
  const std::string world = std::to_string(options_.worldSize);
  auto& store = *impl_->store;
  int64_t joined = 0;
  try {
    joined = store.add("morec/joined/" + me, 1);
    store.set("morec/world/" + me, std::vector<uint8_t>(world.begin(), world.end()));
  } catch (...) {
    throw MorecException("EDIST", where() + ": the rendezvous store failed: " + errorText());
  }
  if (joined > 1) {
    const std::string msg = "RANK=" + me + " was given to more than one process (each process needs its own RANK)";
    recordFailure(msg);
    throw MorecException("EDIST", where() + ": " + msg);
  }
  if (options_.rank != 0) {
    std::string verdict;
    try {
      auto v = store.get("morec/verdict");
      verdict.assign(v.begin(), v.end());
      // A rank beyond rank 0's WORLD_SIZE is not among those rank 0 checked: it compares for itself.
      auto w = store.get("morec/world/0");
      const std::string rank0(w.begin(), w.end());
      store.add("morec/verdict-read", 1);  // last: a failing rank 0 stops serving the store after this
      if (verdict == "ok" && rank0 != world) verdict = "WORLD_SIZE differs between ranks: rank 0 has " + rank0 + ", rank " + me + " has " + world;
    } catch (...) {
      throw MorecException("EDIST", where() + ": waiting for rank 0's check of the ranks failed: " + errorText());
    }
    if (verdict != "ok") throw MorecException("EDIST", where() + ": " + verdict);
    return;
  }
  std::string verdict = "ok";
  int64_t arrived = 0;
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  for (int64_t r = 1; r < options_.worldSize && verdict == "ok"; ++r) {
    const std::string key = "morec/world/" + std::to_string(r);
    try {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      store.wait({key}, std::max(left, std::chrono::milliseconds(1)));
    } catch (...) {
      std::string missing;
      for (int64_t q = r; q < options_.worldSize; ++q)
        if (!store.check({"morec/world/" + std::to_string(q)})) missing += (missing.empty() ? "" : ", ") + std::to_string(q);
      verdict = "the rendezvous timed out after " + seconds(options_.timeout) + ": rank(s) " + missing + " of " + world +
                " did not join (are they running, with the same MASTER_ADDR and MASTER_PORT?)";
      break;
    }
    ++arrived;
    auto v = store.get(key);
    const std::string theirs(v.begin(), v.end());
    if (theirs != world) verdict = "WORLD_SIZE differs between ranks: rank 0 has " + world + ", rank " + std::to_string(r) + " has " + theirs;
  }
  store.set("morec/verdict", std::vector<uint8_t>(verdict.begin(), verdict.end()));
  if (verdict == "ok") return;
  // Let the ranks that joined read the verdict before this rank (the store's server) stops.
  const auto ackDeadline = std::chrono::steady_clock::now() + std::min<std::chrono::milliseconds>(options_.timeout, std::chrono::milliseconds(5000));
  while (store.add("morec/verdict-read", 0) < arrived && std::chrono::steady_clock::now() < ackDeadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  throw MorecException("EDIST", where() + ": " + verdict);
}

void ProcessGroup::recordFailure(const std::string& message) noexcept {
  try {
    const std::string v = "rank " + std::to_string(options_.rank) + ": " + message;
    impl_->store->set("morec/failed", std::vector<uint8_t>(v.begin(), v.end()));
  } catch (...) {
  }
}

void ProcessGroup::rethrow(const char* what) {
  std::string code, message;
  try {
    throw;
  } catch (const MorecException& e) {
    code = e.code;
    message = e.what();
  } catch (...) {
    code = "EDIST";
    message = errorText();
  }
  if (code != "EDIST") throw MorecException(code, message);
  std::string cause;
  try {
    if (impl_->store && impl_->store->check({"morec/failed"})) {
      auto v = impl_->store->get("morec/failed");
      cause.assign(v.begin(), v.end());
    }
  } catch (...) {
  }
  const std::string hint = cause.empty() ? " (another rank has stopped or is unreachable; see its log)" : " because " + cause;
  throw MorecException("EDIST", where() + ": " + what + " failed" + hint + ": " + message);
}

void ProcessGroup::allreduceSum(std::vector<torch::Tensor>& tensors, const char* what) {
  try {
    impl_->run([&](auto& g) { return g.allreduce(tensors, c10d::AllreduceOptions()); })->wait();
  } catch (...) {
    rethrow(what);
  }
}

void ProcessGroup::allreduceMax(std::vector<torch::Tensor>& tensors, const char* what) {
  try {
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::MAX;
    impl_->run([&](auto& g) { return g.allreduce(tensors, opts); })->wait();
  } catch (...) {
    rethrow(what);
  }
}

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int64_t root, const char* what) {
  try {
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    impl_->run([&](auto& g) { return g.broadcast(tensors, opts); })->wait();
  } catch (...) {
    rethrow(what);
  }
}

void ProcessGroup::broadcastAll(std::vector<torch::Tensor>& tensors, int64_t root, const char* what) {
  constexpr int64_t kChunkBytes = int64_t(64) << 20;
  torch::NoGradGuard noGrad;
  size_t i = 0;
  while (i < tensors.size()) {
    size_t j = i;
    int64_t bytes = 0;
    while (j < tensors.size() && tensors[j].scalar_type() == tensors[i].scalar_type() &&
           (j == i || bytes + tensors[j].numel() * int64_t(tensors[j].element_size()) <= kChunkBytes)) {
      bytes += tensors[j].numel() * int64_t(tensors[j].element_size());
      ++j;
    }
    std::vector<torch::Tensor> parts;
    for (size_t k = i; k < j; ++k) parts.push_back(tensors[k].reshape({-1}));
    std::vector<torch::Tensor> flat{torch::cat(parts)};
    broadcast(flat, root, what);
    if (rank() != root) {
      int64_t offset = 0;
      for (size_t k = i; k < j; ++k) {
        const int64_t n = tensors[k].numel();
        tensors[k].copy_(flat[0].narrow(0, offset, n).view(tensors[k].sizes()));
        offset += n;
      }
    }
    i = j;
  }
}

void ProcessGroup::barrier(const char* what) {
  try {
    impl_->run([&](auto& g) { return g.barrier(c10d::BarrierOptions()); })->wait();
  } catch (...) {
    rethrow(what);
  }
}

std::shared_ptr<ProcessGroup::Pending> ProcessGroup::startAllreduceSum(torch::Tensor& tensor, const char* what) {
  try {
    std::vector<torch::Tensor> one{tensor};
    return std::make_shared<Pending>(Pending{impl_->run([&](auto& g) { return g.allreduce(one, c10d::AllreduceOptions()); }), what});
  } catch (...) {
    rethrow(what);
  }
}

void ProcessGroup::wait(const std::shared_ptr<Pending>& pending) {
  try {
    pending->work->wait();
  } catch (...) {
    rethrow(pending->what);
  }
}

void ProcessGroup::storeSet(const std::string& key, const std::string& value) {
  try {
    impl_->store->set("morec/user/" + key, std::vector<uint8_t>(value.begin(), value.end()));
  } catch (...) {
    rethrow("setting a store key");
  }
}

std::string ProcessGroup::storeGet(const std::string& key, std::chrono::milliseconds timeout) {
  try {
    if (timeout.count() > 0) impl_->store->wait({"morec/user/" + key}, timeout);
    auto v = impl_->store->get("morec/user/" + key);
    return std::string(v.begin(), v.end());
  } catch (...) {
    rethrow(("waiting for store key '" + key + "'").c_str());
  }
}

bool ProcessGroup::storeHas(const std::string& key) {
  try {
    return impl_->store->check({"morec/user/" + key});
  } catch (...) {
    rethrow("reading the store");
  }
}

int64_t ProcessGroup::storeAdd(const std::string& key, int64_t delta) {
  try {
    return impl_->store->add("morec/user/" + key, delta);
  } catch (...) {
    rethrow("adding to a store key");
  }
}

}  // namespace morec
