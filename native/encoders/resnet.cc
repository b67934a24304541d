#include "resnet.h"

#include "../common.h"

namespace morec {

std::shared_ptr<ImageEncoder> makeResNet(const ImageTowerConfig& config) {
  throw MorecException("EINVAL", "image.arch 'resnet' is not built into this core yet");
}

}  // namespace morec
