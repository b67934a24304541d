// Uniform negatives from 1..numItems, redrawn while the item is in the excluded set (the user's history):
// never padding, never a seen item. Deterministic for a given RNG state.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace morec {

class NegativeSampler {
 public:
  explicit NegativeSampler(int64_t numItems) : numItems_(numItems) {}
  // `excluded` must be sorted and unique (see setOf). Throws when every item is excluded.
  int32_t draw(std::mt19937_64& rng, const std::vector<int32_t>& excluded) const;
  // `count` distinct items, none excluded, appended to out (used by the sampled evaluation protocol).
  void drawDistinct(std::mt19937_64& rng, std::vector<int32_t> excluded, int64_t count, int32_t* out) const;
  // Sorted unique copy of items[0..n).
  static void setOf(const int32_t* items, int64_t n, std::vector<int32_t>& out);

 private:
  int64_t numItems_;
};

}  // namespace morec
