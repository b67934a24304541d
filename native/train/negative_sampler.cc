#include "negative_sampler.h"

#include <algorithm>

#include "../common.h"

namespace morec {

void NegativeSampler::setOf(const int32_t* items, int64_t n, std::vector<int32_t>& out) {
  out.assign(items, items + n);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

int32_t NegativeSampler::draw(std::mt19937_64& rng, const std::vector<int32_t>& excluded) const {
  if (int64_t(excluded.size()) >= numItems_)
    throw MorecException("ESAMPLE", "cannot draw a negative: the user has interacted with every one of the " +
                                        std::to_string(numItems_) + " items");
  std::uniform_int_distribution<int32_t> uniform(1, int32_t(numItems_));
  for (;;) {
    int32_t item = uniform(rng);
    if (!std::binary_search(excluded.begin(), excluded.end(), item)) return item;
  }
}

void NegativeSampler::drawDistinct(std::mt19937_64& rng, std::vector<int32_t> excluded, int64_t count,
                                   int32_t* out) const {
  if (numItems_ - int64_t(excluded.size()) < count)
    throw MorecException("ESAMPLE", "cannot draw " + std::to_string(count) + " distinct negatives: only " +
                                        std::to_string(numItems_ - int64_t(excluded.size())) +
                                        " items are not in the user's history");
  for (int64_t i = 0; i < count; ++i) {
    int32_t item = draw(rng, excluded);
    out[i] = item;
    excluded.insert(std::upper_bound(excluded.begin(), excluded.end(), item), item);
  }
}

}  // namespace morec
