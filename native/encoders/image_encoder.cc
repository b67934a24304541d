#include "image_encoder.h"

#include "../common.h"
#include "resnet.h"
#include "swin.h"

namespace morec {

std::shared_ptr<ImageEncoder> makeImageEncoder(const ImageTowerConfig& config) {
  if (config.arch == "resnet") return makeResNet(config);
  if (config.arch == "swin") return makeSwin(config);
  throw invalidArg("Expected 'resnet' or 'swin' for image.arch but received '" + config.arch + "'");
}

}  // namespace morec
