// Swin image encoder (torchvision layout). Placeholder declaration; the implementation lands in swin.cc.
#pragma once

#include "image_encoder.h"

namespace morec {

std::shared_ptr<ImageEncoder> makeSwin(const ImageTowerConfig& config);

}  // namespace morec
