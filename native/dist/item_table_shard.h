// A data-parallel evaluation's item table, encoded once across ranks: while an ItemTableShard lives on a thread,
// ItemTower::tableInBatches on that thread encodes only this rank's batches of items (batch k on rank k mod
// world, the same batches as one process, so each row is computed exactly as one process computes it) and sums
// the table across the group (every other rank holds zeros in that row). Every rank must build the table.
#pragma once

#include "process_group.h"

namespace morec {

class ItemTableShard {
 public:
  explicit ItemTableShard(ProcessGroup* group) : previous_(slot()) { slot() = group && group->size() > 1 ? group : nullptr; }
  ~ItemTableShard() { slot() = previous_; }
  ItemTableShard(const ItemTableShard&) = delete;
  ItemTableShard& operator=(const ItemTableShard&) = delete;
  // The group of the innermost shard alive on this thread, or null.
  static ProcessGroup* current() { return slot(); }

 private:
  static ProcessGroup*& slot() {
    thread_local ProcessGroup* group = nullptr;
    return group;
  }
  ProcessGroup* previous_;
};

}  // namespace morec
