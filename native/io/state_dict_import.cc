#include "state_dict_import.h"

#include <set>

#include "../common.h"

namespace morec {

ImportReport importMapped(torch::nn::Module& target, const MappedStateDict& m, const std::string& file,
                          const std::string& what) {
  std::vector<std::pair<std::string, torch::Tensor>> dst;
  for (auto& kv : target.named_parameters()) dst.emplace_back(kv.key(), kv.value());
  for (auto& kv : target.named_buffers())
    if (kv.value().is_floating_point()) dst.emplace_back(kv.key(), kv.value());
  std::set<std::string> known;
  for (auto& [name, t] : dst) known.insert(name);
  auto source = [&](const std::string& name) {
    auto it = m.sourceOf.find(name);
    return it == m.sourceOf.end() ? name : it->second;
  };
  std::vector<std::string> missing, misShaped, unexpected = m.unexpected;
  for (auto& [name, t] : m.tensors)
    if (!known.count(name)) unexpected.push_back(source(name));
  for (auto& [name, t] : dst) {
    auto it = m.tensors.find(name);
    if (it == m.tensors.end()) {
      missing.push_back(name);
    } else if (it->second.sizes() != t.sizes()) {
      misShaped.push_back(source(name) + " is " + c10::str(it->second.sizes()) + ", expected " + c10::str(t.sizes()));
    }
  }
  if (!missing.empty() || !unexpected.empty() || !misShaped.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size() && i < 12; ++i) s += (i ? ", " : "") + v[i];
      if (v.size() > 12) s += ", ... (" + std::to_string(v.size()) + " in all)";
      return s;
    };
    std::string msg = file + ": does not fit " + what;
    if (!misShaped.empty()) msg += "; wrong shapes: " + list(misShaped);
    if (!missing.empty()) msg += "; missing tensors: " + list(missing);
    if (!unexpected.empty()) msg += "; unexpected tensors: " + list(unexpected);
    throw MorecException("EMISMATCH", msg);
  }
  // Every tensor is checked before any is copied: a refused checkpoint leaves the encoder as it was.
  torch::NoGradGuard noGrad;
  for (auto& [name, t] : dst) {
    const auto& src = m.tensors.at(name);
    if (!src.is_floating_point())
      throw MorecException("EMISMATCH", file + ": tensor '" + source(name) + "' is not floating point");
    const int64_t bad = src.numel() - torch::isfinite(src).sum().item<int64_t>();
    if (bad > 0)
      throw MorecException("ENONFINITE", file + ": tensor '" + source(name) + "' holds " + std::to_string(bad) +
                                             " non-finite value" + (bad > 1 ? "s" : "") + " (NaN or Inf); refusing to load");
  }
  ImportReport report;
  for (auto& [name, t] : dst) {
    t.copy_(m.tensors.at(name).to(t.dtype()));
    ++report.loaded;
  }
  report.ignored = m.ignored;
  return report;
}

}  // namespace morec
