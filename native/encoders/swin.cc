#include "swin.h"

#include "../common.h"

namespace morec {

std::shared_ptr<ImageEncoder> makeSwin(const ImageTowerConfig& config) {
  throw MorecException("EINVAL", "image.arch 'swin' is not built into this core yet");
}

}  // namespace morec
