#include "state_broadcast.h"

#include "../common.h"

namespace morec {

void broadcastModelState(ModelCore& core, ProcessGroup& group) {
  torch::NoGradGuard noGrad;
  auto& model = *core.model;
  auto& optimizer = core.trainer().optimizer();
  // What rank 0 holds beyond the weights: [optimizer steps, snapshot tensors, parameter count]. The count
  // guards against ranks built with different configs (the run's plan makes that unlikely, not impossible).
  const auto state = modelState(model);
  auto header = torch::tensor({double(optimizer.steps()), double(core.snapshot.size()), double(state.size())}, torch::kDouble);
  std::vector<torch::Tensor> h{header};
  group.broadcast(h, 0, "sharing rank 0's model state");
  const auto* v = header.data_ptr<double>();
  if (int64_t(v[2]) != int64_t(state.size()))
    throw MorecException("EDIST", group.where() + ": this rank's model has " + std::to_string(state.size()) +
                                      " weight tensors but rank 0's has " + std::to_string(int64_t(v[2])) +
                                      " (the ranks must build the same model)");
  std::vector<torch::Tensor> tensors;
  for (auto& kv : state) tensors.push_back(kv.second);
  for (auto& kv : optimizer.state()) tensors.push_back(kv.second);
  const int64_t snapshots = int64_t(v[1]);
  if (group.rank() != 0) {
    core.snapshot.clear();
    if (snapshots > 0) {
      if (snapshots != int64_t(state.size()))
        throw MorecException("EDIST", group.where() + ": rank 0's best-weights snapshot does not fit this rank's model");
      for (auto& kv : state) core.snapshot.push_back(torch::empty_like(kv.second).detach());
    }
  }
  for (auto& t : core.snapshot) tensors.push_back(t);
  // Each tensor's shape must agree before data moves (a mismatch would corrupt, not fail).
  auto sizes = torch::empty({int64_t(tensors.size())}, torch::kDouble);
  for (size_t i = 0; i < tensors.size(); ++i) sizes[int64_t(i)] = double(tensors[i].numel());
  auto rootSizes = sizes.clone();
  std::vector<torch::Tensor> s{rootSizes};
  group.broadcast(s, 0, "sharing rank 0's model state");
  if (!torch::equal(sizes, rootSizes))
    throw MorecException("EDIST", group.where() + ": this rank's model differs in shape from rank 0's (the ranks must build the same model)");
  group.broadcastAll(tensors, 0, "sharing rank 0's model state");
  if (group.rank() != 0) {
    optimizer.setSteps(int64_t(v[0]));
    model.itemTower().weightsChanged();
  }
}

}  // namespace morec
