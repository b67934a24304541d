// What a JS Model object owns, shared with the async workers that run on it (so a model collected by
// JS while an epoch runs stays alive until the epoch ends). `busy` and `serving` are touched on the JS thread only;
// `cancel` is set by Model.cancel() (an AbortSignal) or a dying environment, cleared when a job is queued,
// and read by the job thread at every batch.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dist/process_group.h"
#include "models/recommender.h"
#include "train/trainer.h"

namespace morec {

// A model's state: its parameters and its floating-point buffers (BatchNorm running statistics), by name.
inline std::vector<std::pair<std::string, torch::Tensor>> modelState(torch::nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> all;
  for (auto& kv : model.named_parameters()) all.emplace_back(kv.key(), kv.value());
  for (auto& kv : model.named_buffers())
    if (kv.value().is_floating_point()) all.emplace_back(kv.key(), kv.value());
  return all;
}

struct ModelCore {
  std::shared_ptr<Recommender> model;
  bool busy = false;
  // Open scorers serving this model (JS thread only): while any is open the model is read-only.
  int serving = 0;
  std::atomic<bool> cancel{false};
  // A copy of every parameter (snapshotWeights), e.g. the best epoch's, kept natively: never through JS.
  std::vector<torch::Tensor> snapshot;
  // Set by joinGroup: epochs and evaluations run data-parallel over it (null: this process alone).
  std::shared_ptr<ProcessGroup> group;

  // The optimizer and its state, created on first use: a model loaded for inference or serving never
  // allocates them.
  Trainer& trainer() {
    if (!trainer_) trainer_ = std::make_unique<Trainer>(*model);
    return *trainer_;
  }

 private:
  std::unique_ptr<Trainer> trainer_;
};

}  // namespace morec
