// The configuration of one recommender: backbone, item tower and sizes. Read from a JS object with
// validation, written back to JS for checkpoints' sidecars.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace morec {

// A transformer text encoder (BERT or RoBERTa, the Hugging Face architectures) and the tower around it:
// [CLS] (or masked mean) of the last layer -> Linear(hidden -> d) -> GELU.
struct TextTowerConfig {
  std::string kind = "bert";  // "bert" | "roberta" (position ids offset by padTokenId + 1)
  int64_t vocabSize = 0;
  int64_t hidden = 128;
  int64_t layers = 2;
  int64_t heads = 2;
  int64_t intermediate = 512;
  int64_t maxPositions = 512;
  int64_t typeVocabSize = 2;
  int64_t padTokenId = 0;
  double layerNormEps = 1e-12;
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

  static TextTowerConfig fromJs(const Napi::Object& o);
  Napi::Object toJs(Napi::Env env) const;
};

struct ModelConfig {
  std::string backbone = "sasrec";  // "sasrec" | "dssm"
  std::string itemTower = "id";     // "id" | "text" (image, features, fusion towers extend ItemTower)
  TextTowerConfig text;             // itemTower "text"
  int64_t numItems = 0;             // items are 1..numItems, 0 is padding
  int64_t numUsers = 0;             // DSSM user-ID embedding rows
  int64_t d = 64;
  int64_t blocks = 2;
  int64_t heads = 2;
  int64_t maxLen = 50;
  double dropout = 0.1;
  std::string activation = "relu";  // SASRec FFN activation: "relu" | "gelu"
  int64_t dssmDepth = 0;            // DSSM user MLP depth (0 = identity)
  int64_t seed = 42;
  int64_t threads = 0;              // 0 = all cores
  std::string device = "cpu";       // "cpu" | "cuda" | "cuda:N"
  // SASRec batches: "packed" (no padding, hand-written attention; CPU), "padded" (left-padded windows,
  // tensor ops; any device), "auto" (packed on CPU, padded elsewhere).
  std::string sequenceLayout = "auto";

  static ModelConfig fromJs(const Napi::Object& o);
  Napi::Object toJs(Napi::Env env) const;
};

}  // namespace morec
