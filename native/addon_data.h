// Per-environment constructors (the addon may be loaded in several worker threads).
#pragma once

#include <napi.h>

namespace morec {

struct AddonData {
  Napi::FunctionReference sequences;
  Napi::FunctionReference model;
  Napi::FunctionReference itemStore;
  Napi::FunctionReference processGroup;
};

}  // namespace morec
