// The configuration of one recommender: backbone, item tower and sizes. Read from a JS object with
// validation, written back to JS for checkpoints' sidecars.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace morec {

struct ModelConfig {
  std::string backbone = "sasrec";  // "sasrec" | "dssm"
  std::string itemTower = "id";     // "id" (text, image, features, fusion towers extend ItemTower)
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
