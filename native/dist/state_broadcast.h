// Joining a model to a process group: every rank ends up with rank 0's weights, floating-point buffers,
// optimizer state (moments and step count) and best-weights snapshot -- fresh or resumed, rank 0 decides.
#pragma once

#include "../model_core.h"
#include "process_group.h"

namespace morec {

void broadcastModelState(ModelCore& core, ProcessGroup& group);

}  // namespace morec
