#include "bert_layer_checkpoint.h"

#include "bert.h"

namespace morec {

static torch::Tensor runLayer(BertLayer* layer, const torch::Tensor& x, const torch::Tensor& aux, Dropout& drop, bool packed) {
  return packed ? layer->forwardPacked(x, aux, drop) : layer->forward(x, aux, drop);
}

torch::Tensor BertLayerCheckpoint::forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                                           const torch::Tensor& aux, const torch::Tensor& anchor, BertLayer* layer,
                                           Dropout* drop, bool packed) {
  // Pointers travel as integers: the context stores IValues only.
  ctx->saved_data["layer"] = int64_t(reinterpret_cast<intptr_t>(layer));
  ctx->saved_data["drop"] = int64_t(reinterpret_cast<intptr_t>(drop));
  ctx->saved_data["counter"] = int64_t(drop->counter());
  ctx->saved_data["packed"] = packed;
  ctx->save_for_backward({x, aux});
  return runLayer(layer, x, aux, *drop, packed);  // autograd is off inside a custom forward: nothing is kept
}

torch::autograd::tensor_list BertLayerCheckpoint::backward(torch::autograd::AutogradContext* ctx,
                                                           torch::autograd::tensor_list grads) {
  auto saved = ctx->get_saved_variables();
  auto* layer = reinterpret_cast<BertLayer*>(intptr_t(ctx->saved_data["layer"].toInt()));
  auto* drop = reinterpret_cast<Dropout*>(intptr_t(ctx->saved_data["drop"].toInt()));
  const bool packed = ctx->saved_data["packed"].toBool();
  const uint64_t resume = drop->counter();
  drop->setCounter(uint64_t(ctx->saved_data["counter"].toInt()));
  torch::Tensor input = saved[0].detach().requires_grad_(true);
  torch::Tensor output;
  {
    torch::AutoGradMode enable(true);
    output = runLayer(layer, input, saved[1], *drop, packed);
  }
  drop->setCounter(resume);
  // Re-entrant backward: accumulates into the layer's parameters' .grad and into input.grad.
  torch::autograd::backward({output}, {grads[0]});
  return {saved[0].requires_grad() ? input.grad() : torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
          torch::Tensor(), torch::Tensor()};
}

}  // namespace morec
