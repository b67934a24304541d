#include "block_checkpoint.h"

namespace morec {

namespace {

class BlockCheckpointFn : public torch::autograd::Function<BlockCheckpointFn> {
 public:
  // anchor: one of the block's trainable parameters, so the output requires grad even when x does not (the
  // first block above frozen ones); the recomputation accumulates every parameter's gradient.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& anchor,
                               RecomputableBlock* block, Dropout* drop) {
    // Pointers travel as integers: the context stores IValues only.
    ctx->saved_data["block"] = int64_t(reinterpret_cast<intptr_t>(block));
    ctx->saved_data["drop"] = int64_t(reinterpret_cast<intptr_t>(drop));
    ctx->saved_data["counter"] = int64_t(drop->counter());
    ctx->save_for_backward({x});
    return block->run(x, *drop);  // autograd is off inside a custom forward: nothing is kept
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto* block = reinterpret_cast<RecomputableBlock*>(intptr_t(ctx->saved_data["block"].toInt()));
    auto* drop = reinterpret_cast<Dropout*>(intptr_t(ctx->saved_data["drop"].toInt()));
    const uint64_t resume = drop->counter();
    drop->setCounter(uint64_t(ctx->saved_data["counter"].toInt()));
    // The forward pass already updated the buffers (BatchNorm statistics): keep its values, not the replay's.
    std::vector<std::pair<torch::Tensor, torch::Tensor>> buffers;
    {
      torch::NoGradGuard noGrad;
      for (auto& b : block->blockModule().buffers()) buffers.emplace_back(b, b.clone());
    }
    torch::Tensor input = saved[0].detach().requires_grad_(saved[0].requires_grad());
    torch::Tensor output;
    {
      torch::AutoGradMode enable(true);
      output = block->run(input, *drop);
    }
    drop->setCounter(resume);
    // Re-entrant backward: accumulates into the block's parameters' .grad and into input.grad. The buffers
    // are restored after it (the recorded graph holds them: changing them first would fail its version check).
    torch::autograd::backward({output}, {grads[0]});
    {
      torch::NoGradGuard noGrad;
      for (auto& [b, kept] : buffers) b.copy_(kept);
    }
    return {saved[0].requires_grad() ? input.grad() : torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointBlock(RecomputableBlock& block, const torch::Tensor& x, Dropout& drop) {
  if (!torch::GradMode::is_enabled()) return block.run(x, drop);
  torch::Tensor anchor;
  for (auto& p : block.blockModule().parameters())
    if (p.requires_grad()) {
      anchor = p;
      break;
    }
  if (!anchor.defined()) return block.run(x, drop);  // a frozen block: nothing to recompute for
  return BlockCheckpointFn::apply(x, anchor, &block, &drop);
}

}  // namespace morec
