// Users' chronological item sequences in CSR form (offsets + items), copied once into native memory and
// validated there (items in 1..numItems), so every later pass reads it without checks or JS round trips.
#pragma once

#include <cstdint>
#include <vector>

namespace morec {

struct SequenceData {
  std::vector<int64_t> offsets;  // users + 1 entries
  std::vector<int32_t> items;    // item indices in 1..numItems, time order per user
  int64_t numItems = 0;

  int64_t users() const { return int64_t(offsets.size()) - 1; }
  int64_t length(int64_t u) const { return offsets[u + 1] - offsets[u]; }
  const int32_t* begin(int64_t u) const { return items.data() + offsets[u]; }
  // Whether user u's held-out item (`holdOut` from the end: 1 = test, 2 = validation) already occurs in the
  // input before it (a repeated consumption); false when the input would be empty.
  bool heldOutRepeated(int64_t u, int64_t holdOut) const {
    const int64_t inputLen = length(u) - holdOut;
    if (inputLen < 1) return false;
    const int32_t* s = begin(u);
    for (int64_t i = 0; i < inputLen; ++i)
      if (s[i] == s[inputLen]) return true;
    return false;
  }
};

}  // namespace morec
