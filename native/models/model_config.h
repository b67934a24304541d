// The configuration of one recommender: backbone, item tower and sizes. Each field is declared once below
// (type, default) and listed once in its `visit` (name, range or choices): reading from JS with validation,
// writing back to JS for checkpoints, and the schema the TypeScript validator checks against all come from
// that one list.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace morec {

// A transformer text encoder (BERT or RoBERTa, the Hugging Face architectures) and the tower around it:
// [CLS] (or masked mean) of the last layer -> Linear(hidden -> d) -> GELU.
struct TextTowerConfig {
  std::string kind = "bert";  // "bert" | "roberta" (position ids offset by padTokenId + 1)
  int64_t vocabSize = 0;      // required
  int64_t hidden = 128;
  int64_t layers = 2;
  int64_t heads = 2;
  int64_t intermediate = 512;
  int64_t maxPositions = 512;
  int64_t typeVocabSize = 2;
  int64_t padTokenId = -1;     // -1: the kind's (BERT 0, RoBERTa 1)
  double layerNormEps = -1.0;  // < 0: the kind's (BERT 1e-12, RoBERTa 1e-5)
  double hiddenDropout = 0.1;
  double attentionDropout = 0.1;
  std::string pooling = "cls";  // "cls" | "mean"
  // -1: everything trains. n >= 0: the embeddings and all but the top n layers are frozen.
  int64_t finetuneTopLayers = -1;
  // With frozen bottom layers: compute their output once per item and reuse it (no dropout inside them).
  bool cacheFrozen = false;
  // Keep only each layer's input in the forward pass and recompute the layer in the backward pass.
  bool gradientCheckpointing = false;
  int64_t encodeBatch = 256;  // items per forward pass when building the whole item table

  template <class V>
  void visit(V& v) {
    v.choice("kind", kind, {"bert", "roberta"});
    v.integer("vocabSize", vocabSize, 1, INT32_MAX, /*required=*/true);
    v.integer("hidden", hidden, 1, 1 << 16);
    v.integer("layers", layers, 0, 128);
    v.integer("heads", heads, 1, 1024);
    v.integer("intermediate", intermediate, 1, 1 << 20);
    v.integer("maxPositions", maxPositions, 1, 1 << 20);
    v.integer("typeVocabSize", typeVocabSize, 1, 1 << 16);
    v.integer("padTokenId", padTokenId, -1, INT32_MAX);
    v.number("layerNormEps", layerNormEps, -1.0, 1.0);
    v.number("hiddenDropout", hiddenDropout, 0.0, 0.95);
    v.number("attentionDropout", attentionDropout, 0.0, 0.95);
    v.choice("pooling", pooling, {"cls", "mean"});
    v.integer("finetuneTopLayers", finetuneTopLayers, -1, 128);
    v.boolean("cacheFrozen", cacheFrozen);
    v.boolean("gradientCheckpointing", gradientCheckpointing);
    v.integer("encodeBatch", encodeBatch, 1, 1 << 20);
  }
  // Defaults that depend on other fields, and constraints between fields.
  void resolve();
};

// An image encoder (ResNet or Swin, torchvision's architectures) and the tower around it: the encoder's pooled
// output -> Linear(features -> d) -> GELU. Pixels come from the item store as uint8 [3, H, W] and are
// normalized on the model's device with `mean`/`std`.
struct ImageTowerConfig {
  std::string arch = "resnet";        // "resnet" | "swin"
  // ResNet: "basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101/152) blocks.
  std::string block = "bottleneck";
  // Blocks per stage (ResNet-50: 3,4,6,3; Swin-T: 2,2,6,2; Swin-B: 2,2,18,2).
  std::vector<int64_t> depths = {3, 4, 6, 3};
  // ResNet: the stem's and first stage's width (torchvision: 64; stage i has width * 2^i planes).
  // Swin: the patch embedding's width (embed_dim: Swin-T 96, Swin-B 128; stage i has width * 2^i channels).
  int64_t width = 64;
  int64_t widthPerGroup = 64;         // ResNet bottleneck inner width per group (wide ResNets: 128)
  std::vector<int64_t> heads = {3, 6, 12, 24};  // Swin: attention heads per stage
  int64_t windowSize = 7;             // Swin
  int64_t patchSize = 4;              // Swin
  double mlpRatio = 4.0;              // Swin
  double dropPath = 0.0;              // Swin stochastic depth rate (linear over blocks); torchvision swin_t: 0.2
  double attentionDropout = 0.0;      // Swin
  double layerNormEps = 1e-5;         // Swin
  int64_t imageSize = 224;            // the item store's pixels are imageSize x imageSize
  std::vector<double> mean = {0.5, 0.5, 0.5};  // per channel, on [0, 1] pixels (paper: 0.5; ImageNet: 0.485 ...)
  std::vector<double> std = {0.5, 0.5, 0.5};
  // -1: everything trains. n >= 0: the stem and all but the top n stages are frozen.
  int64_t finetuneTopStages = -1;
  // BatchNorm layers keep their running statistics (eval-mode normalization) also while training.
  bool freezeBatchNorm = false;
  // With frozen bottom stages: compute their output once per item and reuse it.
  bool cacheFrozen = false;
  // Keep only each block's input in the forward pass and recompute the block in the backward pass.
  bool gradientCheckpointing = false;
  bool channelsLast = false;          // ResNet: NHWC memory format (faster convolutions on some back ends)
  int64_t encodeBatch = 64;           // items per forward pass when building the whole item table

  template <class V>
  void visit(V& v) {
    v.choice("arch", arch, {"resnet", "swin"});
    v.choice("block", block, {"basic", "bottleneck"});
    v.integers("depths", depths, 0, 256, 1, 8);
    v.integer("width", width, 1, 1 << 14);
    v.integer("widthPerGroup", widthPerGroup, 1, 1 << 14);
    v.integers("heads", heads, 1, 1024, 1, 8);
    v.integer("windowSize", windowSize, 1, 1024);
    v.integer("patchSize", patchSize, 1, 1024);
    v.number("mlpRatio", mlpRatio, 0.01, 64.0);
    v.number("dropPath", dropPath, 0.0, 0.95);
    v.number("attentionDropout", attentionDropout, 0.0, 0.95);
    v.number("layerNormEps", layerNormEps, 0.0, 1.0);
    v.integer("imageSize", imageSize, 1, 1 << 14);
    v.numbers("mean", mean, -1e3, 1e3, 3, 3);
    v.numbers("std", std, 1e-6, 1e3, 3, 3);
    v.integer("finetuneTopStages", finetuneTopStages, -1, 8);
    v.boolean("freezeBatchNorm", freezeBatchNorm);
    v.boolean("cacheFrozen", cacheFrozen);
    v.boolean("gradientCheckpointing", gradientCheckpointing);
    v.boolean("channelsLast", channelsLast);
    v.integer("encodeBatch", encodeBatch, 1, 1 << 20);
  }
  void resolve();
};

// Two-stage MoRec: each item's features from a frozen encoder (extracted once, cached, held on the model's
// device) -> the adapter Linear(dim -> d) -> GELU, then adapterDepth x [Dropout, Linear(d -> d), GELU] (the
// study's FC_Layers / MLP_Layers).
struct FeatureTowerConfig {
  int64_t dim = 0;              // required: the features per item (the item store's)
  int64_t adapterDepth = 0;     // Table 5's "TS" layers: 0 .. 12 (more allowed)
  double adapterDropout = -1.0; // < 0: the model's dropout
  int64_t encodeBatch = 4096;   // items per pass when building the whole item table

  template <class V>
  void visit(V& v) {
    v.integer("dim", dim, 1, 1 << 20, /*required=*/true);
    v.integer("adapterDepth", adapterDepth, 0, 64);
    v.number("adapterDropout", adapterDropout, -1.0, 0.95);
    v.integer("encodeBatch", encodeBatch, 1, 1 << 24);
  }
};

struct ModelConfig {
  std::string backbone = "sasrec";  // "sasrec" | "dssm"
  std::string itemTower = "id";     // "id" | "text" | "image" | "features" (two-stage: frozen features + adapter)
  TextTowerConfig text;             // itemTower "text"
  ImageTowerConfig image;           // itemTower "image"
  FeatureTowerConfig features;      // itemTower "features"
  // ID + modality fusion (the study's id_plus_mo): "none", or the modality tower's vector joined with a learned
  // ID embedding by "add" (e + m) or "cat" (Dropout -> Linear(2d -> d) -> GELU over [e, m]), then
  // fusionDepth x [Dropout, Linear, GELU]. Needs a modality item tower (text, image or features).
  std::string fusion = "none";
  int64_t fusionDepth = 0;
  int64_t numItems = 0;             // required: items are 1..numItems, 0 is padding
  int64_t numUsers = 0;             // DSSM user-ID embedding rows
  int64_t d = 64;
  int64_t blocks = 2;
  int64_t heads = 2;
  int64_t maxLen = 50;
  double dropout = 0.1;             // SASRec's dropout; DSSM: its MLPs' (dssmMlp "dropout-linear-gelu")
  std::string activation = "relu";  // SASRec FFN activation: "relu" | "gelu"
  int64_t dssmDepth = 0;            // DSSM MLP depth (0 = identity)
  // DSSM MLP layers: "dropout-linear-gelu" (the study's code: Dropout(dropout) -> Linear -> GELU, every layer)
  // | "linear-relu" (morec's earlier DSSM: ReLU between layers, last layer linear, no dropout).
  std::string dssmMlp = "dropout-linear-gelu";
  // DSSM with the ID item tower: its ID vectors go through an MLP of the same depth and style (the study's
  // id_encoder); false: only the user tower has one. Modality towers end in their own Linear + GELU.
  bool dssmItemMlp = true;
  int64_t seed = 42;
  int64_t threads = 0;              // 0 = all cores
  std::string device = "cpu";       // "cpu" | "cuda" | "cuda:N"
  // SASRec batches: "packed" (no padding, hand-written attention; CPU), "padded" (left-padded windows,
  // tensor ops; any device), "auto" (packed on CPU, padded elsewhere).
  std::string sequenceLayout = "auto";

  template <class V>
  void visit(V& v) {
    v.choice("backbone", backbone, {"sasrec", "dssm"});
    v.choice("itemTower", itemTower, {"id", "text", "image", "features"});
    v.nested("text", text, itemTower == "text");
    v.nested("image", image, itemTower == "image");
    v.nested("features", features, itemTower == "features");
    v.integer("numItems", numItems, 1, INT32_MAX - 1, /*required=*/true);
    v.integer("numUsers", numUsers, 0, INT32_MAX);
    v.integer("d", d, 1, INT32_MAX);
    v.integer("blocks", blocks, 0, 64);
    v.integer("heads", heads, 1, 1024);
    v.integer("maxLen", maxLen, 1, 1 << 16);
    v.number("dropout", dropout, 0.0, 0.95);
    v.choice("activation", activation, {"relu", "gelu"});
    v.integer("dssmDepth", dssmDepth, 0, 64);
    v.choice("dssmMlp", dssmMlp, {"dropout-linear-gelu", "linear-relu"});
    v.boolean("dssmItemMlp", dssmItemMlp);
    v.integer("seed", seed, 0, INT32_MAX);
    v.integer("threads", threads, 0, 1024);
    v.string("device", device);
    v.choice("sequenceLayout", sequenceLayout, {"auto", "packed", "padded"});
    v.choice("fusion", fusion, {"none", "add", "cat"});
    v.integer("fusionDepth", fusionDepth, 0, 64);
  }
  void resolve();

  static ModelConfig fromJs(const Napi::Object& o);
  Napi::Object toJs(Napi::Env env);
  // {field: {type, min?, max?, choices?, required?, fields? (nested)}} for the TypeScript validator.
  static Napi::Object schema(Napi::Env env);
};

}  // namespace morec
