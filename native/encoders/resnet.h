// ResNet image encoder (torchvision layout). Placeholder declaration; the implementation lands in resnet.cc.
#pragma once

#include "image_encoder.h"

namespace morec {

std::shared_ptr<ImageEncoder> makeResNet(const ImageTowerConfig& config);

}  // namespace morec
