// What a JS Model object owns, shared with the async workers that run on it (so a model collected by
// JS while an epoch runs stays alive until the epoch ends). `busy` is touched on the JS thread only.
#pragma once

#include <memory>

#include "models/recommender.h"
#include "train/trainer.h"

namespace morec {

struct ModelCore {
  std::shared_ptr<Recommender> model;
  std::unique_ptr<Trainer> trainer;
  bool busy = false;
};

}  // namespace morec
