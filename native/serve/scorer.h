// Serving a trained model: its item table (every item's vector, built once) and the scoring of a batch of
// requests -- each a user history (or a DSSM user) with its own k, exclusions, filter and history masking -- as
// one user-encoder pass and one GEMM against the table, then the top K per request (Ranker::topK). The user
// vectors come from Recommender::userVectors through BatchBuilder::inference, the evaluation's own path, so a
// recommendation ranks exactly as `evaluate` does.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "../models/recommender.h"

namespace morec {

struct RecommendRequest {
  std::vector<int32_t> history;  // item indices, oldest first
  int64_t user = -1;             // DSSM: the user's row
  int64_t k = 10;
  std::vector<int32_t> exclude;
  std::vector<int32_t> allowed;
  bool filtered = false;  // only `allowed` items may be returned
  bool maskHistory = true;
  uint64_t id = 0;  // the JS side's handle of the request
};

struct RecommendResult {
  uint64_t id = 0;
  std::vector<int32_t> items;
  std::vector<float> scores;
  std::string errorCode, errorMessage;  // set when the request failed
};

class Scorer {
 public:
  // itemTable: [numItems + 1, d] float (row 0 padding), copied to the model's device.
  Scorer(std::shared_ptr<Recommender> model, const torch::Tensor& itemTable, int64_t threads);

  // Throws EINVAL unless the request fits the model (item indices in 1..numItems, a DSSM user row, a
  // non-empty SASRec history); called when the request is made, so a bad one never reaches a batch.
  void check(const RecommendRequest& r) const;
  // Scores requests together; one result per request, in order.
  std::vector<RecommendResult> score(const std::vector<const RecommendRequest*>& batch);

  int64_t numItems() const { return numItems_; }
  // Intra-op threads of the latest pass (the budget's share it got).
  int64_t lastThreads() const { return lastThreads_.load(); }

 private:
  std::shared_ptr<Recommender> model_;
  torch::Tensor table_;
  int64_t numItems_;
  int64_t threads_;
  std::atomic<int64_t> lastThreads_{0};
};

}  // namespace morec
