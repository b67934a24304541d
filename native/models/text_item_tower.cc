#include "text_item_tower.h"

#include <algorithm>
#include <set>

#include "../common.h"

namespace morec {

TextItemTower::TextItemTower(const ModelConfig& config, std::shared_ptr<const ItemStoreData> store,
                             const torch::Device& device, bool packed)
    : c_(config.text), store_(std::move(store)), packed_(packed && device.is_cpu()) {
  if (!store_) throw invalidArg("itemTower 'text' needs an ItemStore with the items' tokens (new Model(config, store))");
  if (!store_->tokens.defined()) throw invalidArg("itemTower 'text' needs an ItemStore of the items' tokens but received an image store");
  if (store_->numItems != config.numItems)
    throw invalidArg("the item store holds " + std::to_string(store_->numItems) + " items but the model has numItems " +
                     std::to_string(config.numItems));
  if (store_->vocabLimit > c_.vocabSize)
    throw invalidArg("the item store has token id " + std::to_string(store_->vocabLimit - 1) +
                     " but the text encoder's vocabulary has " + std::to_string(c_.vocabSize) + " entries");
  const int64_t offset = c_.kind == "roberta" ? c_.padTokenId + 1 : 0;
  if (store_->maxTokens + offset > c_.maxPositions)
    throw invalidArg("the item store has up to " + std::to_string(store_->maxTokens) + " tokens per item but the " +
                     c_.kind + " encoder has " + std::to_string(c_.maxPositions - offset) + " positions");
  encoder_ = register_module("encoder", std::make_shared<BertEncoder>(c_));
  projection_ = register_module("projection", torch::nn::Linear(c_.hidden, config.d));
  if (c_.finetuneTopLayers >= 0) encoder_->freezeBottom(frozenLayers());
  tokens_ = store_->tokens.to(device);
  lengths_ = store_->lengths.to(device);
}

int64_t TextItemTower::frozenLayers() const {
  return c_.finetuneTopLayers < 0 ? 0 : std::max<int64_t>(0, c_.layers - c_.finetuneTopLayers);
}

void TextItemTower::buildFrozenCache() {
  torch::NoGradGuard noGrad;
  const bool wasTraining = encoder_->is_training();
  encoder_->eval();  // the cached bottom runs without dropout
  const int64_t rows = store_->numItems + 1, T = store_->maxTokens, F = frozenLayers();
  auto cache = torch::zeros({rows, T, c_.hidden}, torch::TensorOptions().device(tokens_.device()));
  for (int64_t b = 1; b < rows; b += c_.encodeBatch) {
    const int64_t n = std::min(c_.encodeBatch, rows - b);
    auto len = lengths_.narrow(0, b, n);
    const int64_t t = len.max().item<int64_t>();
    auto h = encoder_->layers(encoder_->embed(tokens_.narrow(0, b, n).narrow(1, 0, t), len, *dropout_), len, 0, F,
                              *dropout_);
    cache.narrow(0, b, n).narrow(1, 0, t).copy_(h);
  }
  if (wasTraining) encoder_->train();
  frozenCache_ = cache;
}

torch::Tensor TextItemTower::lastHidden(const torch::Tensor& items, const torch::Tensor& len, int64_t T, bool useCache,
                                        Packing* packing, int64_t upTo) {
  const int64_t F = useCache ? frozenLayers() : 0;
  if (useCache && !frozenCache_.defined()) buildFrozenCache();
  if (!packing) {
    if (useCache) return encoder_->layers(frozenCache_.index_select(0, items).narrow(1, 0, T), len, F, upTo, *dropout_);
    return encoder_->layers(encoder_->embed(tokens_.index_select(0, items).narrow(1, 0, T), len, *dropout_), len, 0, upTo,
                            *dropout_);
  }
  // Packed: only real tokens go through the encoder (titles vary in length; padding would be wasted work).
  const int64_t n = items.size(0);
  const int64_t* l = len.data_ptr<int64_t>();
  std::vector<int64_t> index, positions, sequence, offsets{0};
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t t = 0; t < l[r]; ++t) {
      index.push_back(r * T + t);
      positions.push_back(t);
      sequence.push_back(r);
    }
    offsets.push_back(int64_t(index.size()));
  }
  auto opts = torch::TensorOptions().dtype(torch::kLong);
  packing->index = torch::tensor(index, opts);
  packing->offsets = torch::tensor(offsets, opts);
  packing->sequence = torch::tensor(sequence, opts);
  if (useCache)
    return encoder_->layersPacked(
        frozenCache_.index_select(0, items).narrow(1, 0, T).reshape({n * T, c_.hidden}).index_select(0, packing->index),
        packing->offsets, F, upTo, *dropout_);
  auto ids = tokens_.index_select(0, items).narrow(1, 0, T).reshape({n * T}).index_select(0, packing->index);
  return encoder_->layersPacked(encoder_->embedPacked(ids, torch::tensor(positions, opts), *dropout_), packing->offsets, 0,
                                upTo, *dropout_);
}

bool TextItemTower::usePacked(const torch::Tensor& len, int64_t T) const {
  // The packed kernel skips padding but its attention is scalar code; batched GEMM attention wins when little
  // is padding (measured on amazon-scientific, titles mostly cut at 30 tokens: item table 2.25 s padded vs
  // 3.00 s packed; the synthetic world's short titles train 1.5x faster packed).
  return packed_ && double(len.sum().item<int64_t>()) < 0.8 * double(len.size(0) * T);
}

torch::Tensor TextItemTower::encode(const torch::Tensor& items) {
  auto len = lengths_.index_select(0, items);
  const int64_t T = len.max().item<int64_t>();  // trim the batch to its longest title
  const bool packed = usePacked(len, T);
  Packing packing;
  const bool useCache = c_.cacheFrozen && c_.finetuneTopLayers >= 0;
  // [CLS] pooling reads one token of the last layer: that layer runs its queries, attention output and FFN
  // for the first token only (keys and values still cover every token) -- same result, a fraction of the work.
  const bool firstTokenOnly = c_.pooling == "cls" && c_.layers > 0 && !(useCache && frozenLayers() >= c_.layers);
  auto h = lastHidden(items, len, T, useCache, packed ? &packing : nullptr, c_.layers - (firstTokenOnly ? 1 : 0));
  torch::Tensor pooled;
  if (firstTokenOnly) {
    const int64_t n = items.size(0);
    if (packed) h = torch::zeros({n * T, c_.hidden}, h.options()).index_copy(0, packing.index, h).view({n, T, c_.hidden});
    pooled = encoder_->lastLayerFirstToken(h, len, *dropout_);
  } else if (packed) {
    if (c_.pooling == "cls") {
      pooled = h.index_select(0, packing.offsets.narrow(0, 0, items.size(0)));
    } else {
      pooled = torch::zeros({items.size(0), c_.hidden}, h.options()).index_add_(0, packing.sequence, h) /
               len.to(h.scalar_type()).unsqueeze(1);
    }
  } else if (c_.pooling == "cls") {
    pooled = h.select(1, 0);
  } else {
    auto mask = torch::arange(T, len.options()).unsqueeze(0).lt(len.unsqueeze(1)).to(h.scalar_type());
    pooled = (h * mask.unsqueeze(-1)).sum(1) / len.to(h.scalar_type()).unsqueeze(1);
  }
  return torch::gelu(projection_->forward(pooled));
}

torch::Tensor TextItemTower::features(const torch::Tensor& items) {
  auto h = hiddenStates(items);
  if (c_.pooling == "cls") return h.select(1, 0).contiguous();
  auto len = lengths_.index_select(0, items);
  auto mask = torch::arange(h.size(1), len.options()).unsqueeze(0).lt(len.unsqueeze(1)).to(h.scalar_type());
  return (h * mask.unsqueeze(-1)).sum(1) / len.to(h.scalar_type()).unsqueeze(1);
}

torch::Tensor TextItemTower::hiddenStates(const torch::Tensor& items) {
  torch::NoGradGuard noGrad;
  const bool wasTraining = encoder_->is_training();
  encoder_->eval();
  auto len = lengths_.index_select(0, items);
  const int64_t n = items.size(0), T = len.max().item<int64_t>();
  Packing packing;
  const bool packed = usePacked(len, T);
  auto h = lastHidden(items, len, T, /*useCache=*/false, packed ? &packing : nullptr, c_.layers);
  if (packed) h = torch::zeros({n * T, c_.hidden}, h.options()).index_copy_(0, packing.index, h).view({n, T, c_.hidden});
  if (wasTraining) encoder_->train();
  return h;
}

torch::Tensor TextItemTower::embed(const torch::Tensor& ids) {
  return embedEachOnce(ids, [this](const torch::Tensor& items) { return encode(items); }, projection_->weight);
}

torch::Tensor TextItemTower::embedAll(const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t N = store_->numItems;
  // Items in order of length, so each batch is trimmed to titles of similar length.
  auto order = std::get<1>(lengths_.narrow(0, 1, N).sort(/*stable=*/true, /*dim=*/0, /*descending=*/false)) + 1;
  return tableInBatches(N, c_.encodeBatch, projection_->weight, [this](const torch::Tensor& items) { return encode(items); }, progress, order);
}

// Hugging Face layouts seen in public checkpoints: BertModel/RobertaModel keys as they are, the same under a
// `bert.` / `roberta.` prefix (…ForMaskedLM, …ForSequenceClassification), and LayerNorm `gamma`/`beta` in the
// original Google-converted BERT checkpoints. Heads and buffers that the tower never uses are ignored.
ImportReport TextItemTower::importEncoder(const std::map<std::string, torch::Tensor>& stateDict, const std::string& file) {
  auto params = encoder_->named_parameters();
  MappedStateDict m;
  auto endsWith = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const auto& [key, tensor] : stateDict) {
    std::string name = key;
    for (const char* prefix : {"bert.", "roberta.", "model."})
      if (name.rfind(prefix, 0) == 0) name = name.substr(std::string(prefix).size());
    if (endsWith(name, ".gamma")) name = name.substr(0, name.size() - 6) + ".weight";
    if (endsWith(name, ".beta")) name = name.substr(0, name.size() - 5) + ".bias";
    if (params.contains(name)) {
      m.tensors[name] = tensor;
      m.sourceOf[name] = key;
    } else if (name.rfind("pooler.", 0) == 0 || name.rfind("cls.", 0) == 0 || name.rfind("lm_head.", 0) == 0 ||
               name == "embeddings.position_ids" || name == "embeddings.token_type_ids" || name.rfind("qa_outputs.", 0) == 0 ||
               name.rfind("classifier.", 0) == 0) {
      m.ignored.push_back(key);
    } else {
      m.unexpected.push_back(key);
    }
  }
  auto report = importMapped(*encoder_, m, file,
                             "the " + c_.kind + " encoder (hidden " + std::to_string(c_.hidden) + ", " + std::to_string(c_.layers) + " layers)");
  weightsChanged();
  return report;
}

}  // namespace morec
