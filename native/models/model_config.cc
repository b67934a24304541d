#include "model_config.h"

#include <thread>

#include "../common.h"

namespace morec {

static std::string readChoice(const Napi::Object& o, const char* name, const std::string& def,
                              std::initializer_list<const char*> choices) {
  std::string v = readString(o, name, def);
  std::string list;
  for (const char* c : choices) {
    if (v == c) return v;
    list += (list.empty() ? "" : " | ") + std::string("'") + c + "'";
  }
  throw invalidArg("Expected one of " + list + " for " + name + " but received '" + v + "'");
}

TextTowerConfig TextTowerConfig::fromJs(const Napi::Object& o) {
  TextTowerConfig c;
  c.kind = readChoice(o, "kind", c.kind, {"bert", "roberta"});
  if (o.Get("vocabSize").IsUndefined())
    throw invalidArg("Expected a positive integer for text.vocabSize but received undefined");
  c.vocabSize = readInt(o, "vocabSize", 0, 1, INT32_MAX);
  c.hidden = readInt(o, "hidden", c.hidden, 1, 1 << 16);
  c.layers = readInt(o, "layers", c.layers, 0, 128);
  c.heads = readInt(o, "heads", c.heads, 1, 1024);
  if (c.hidden % c.heads != 0)
    throw invalidArg("Expected text.heads to divide text.hidden but received heads " + std::to_string(c.heads) +
                     " and hidden " + std::to_string(c.hidden));
  c.intermediate = readInt(o, "intermediate", c.intermediate, 1, 1 << 20);
  c.maxPositions = readInt(o, "maxPositions", c.maxPositions, 1, 1 << 20);
  c.typeVocabSize = readInt(o, "typeVocabSize", c.typeVocabSize, 1, 1 << 16);
  c.padTokenId = readInt(o, "padTokenId", c.kind == "roberta" ? 1 : 0, 0, c.vocabSize - 1);
  c.layerNormEps = readNumber(o, "layerNormEps", c.kind == "roberta" ? 1e-5 : c.layerNormEps, 0.0, 1.0);
  c.hiddenDropout = readNumber(o, "hiddenDropout", c.hiddenDropout, 0.0, 0.95);
  c.attentionDropout = readNumber(o, "attentionDropout", c.attentionDropout, 0.0, 0.95);
  c.pooling = readChoice(o, "pooling", c.pooling, {"cls", "mean"});
  c.finetuneTopLayers = readInt(o, "finetuneTopLayers", c.finetuneTopLayers, -1, c.layers);
  c.cacheFrozen = readBool(o, "cacheFrozen", c.cacheFrozen);
  c.gradientCheckpointing = readBool(o, "gradientCheckpointing", c.gradientCheckpointing);
  c.encodeBatch = readInt(o, "encodeBatch", c.encodeBatch, 1, 1 << 20);
  return c;
}

Napi::Object TextTowerConfig::toJs(Napi::Env env) const {
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", kind);
  o.Set("vocabSize", double(vocabSize));
  o.Set("hidden", double(hidden));
  o.Set("layers", double(layers));
  o.Set("heads", double(heads));
  o.Set("intermediate", double(intermediate));
  o.Set("maxPositions", double(maxPositions));
  o.Set("typeVocabSize", double(typeVocabSize));
  o.Set("padTokenId", double(padTokenId));
  o.Set("layerNormEps", layerNormEps);
  o.Set("hiddenDropout", hiddenDropout);
  o.Set("attentionDropout", attentionDropout);
  o.Set("pooling", pooling);
  o.Set("finetuneTopLayers", double(finetuneTopLayers));
  o.Set("cacheFrozen", cacheFrozen);
  o.Set("gradientCheckpointing", gradientCheckpointing);
  o.Set("encodeBatch", double(encodeBatch));
  return o;
}

ModelConfig ModelConfig::fromJs(const Napi::Object& o) {
  ModelConfig c;
  c.backbone = readChoice(o, "backbone", c.backbone, {"sasrec", "dssm"});
  c.itemTower = readChoice(o, "itemTower", c.itemTower, {"id", "text"});
  if (c.itemTower == "text") {
    Napi::Value t = o.Get("text");
    if (!t.IsObject() || t.IsArray())
      throw invalidArg("Expected a text encoder config object for text (required by itemTower 'text') but received " +
                       describeValue(t));
    c.text = TextTowerConfig::fromJs(t.As<Napi::Object>());
  }
  Napi::Value n = o.Get("numItems");
  if (n.IsUndefined()) throw invalidArg("Expected a positive integer for numItems but received undefined");
  c.numItems = readInt(o, "numItems", 0, 1, INT32_MAX - 1);
  c.numUsers = readInt(o, "numUsers", 0, 0, INT32_MAX);
  if (c.backbone == "dssm" && c.numUsers < 1)
    throw invalidArg("Expected a positive integer for numUsers (required by the dssm backbone) but received " +
                     describeValue(o.Get("numUsers")));
  c.d = readInt(o, "d", c.d, 1, 1 << 16);
  c.blocks = readInt(o, "blocks", c.blocks, 0, 64);
  c.heads = readInt(o, "heads", c.heads, 1, 1024);
  if (c.backbone == "sasrec" && c.d % c.heads != 0)
    throw invalidArg("Expected heads to divide d but received heads " + std::to_string(c.heads) + " and d " +
                     std::to_string(c.d));
  c.maxLen = readInt(o, "maxLen", c.maxLen, 1, 1 << 16);
  c.dropout = readNumber(o, "dropout", c.dropout, 0.0, 0.95);
  c.activation = readChoice(o, "activation", c.activation, {"relu", "gelu"});
  c.dssmDepth = readInt(o, "dssmDepth", c.dssmDepth, 0, 64);
  c.seed = readInt(o, "seed", c.seed, 0, INT32_MAX);
  c.threads = readInt(o, "threads", 0, 0, 1024);
  if (c.threads == 0) c.threads = std::max<int64_t>(1, std::thread::hardware_concurrency());
  c.device = readString(o, "device", c.device);
  if (c.device != "cpu" && c.device.rfind("cuda", 0) != 0)
    throw invalidArg("Expected 'cpu' or 'cuda[:N]' for device but received '" + c.device + "'");
  c.sequenceLayout = readChoice(o, "sequenceLayout", c.sequenceLayout, {"auto", "packed", "padded"});
  if (c.sequenceLayout == "packed" && c.device != "cpu")
    throw invalidArg("Expected sequenceLayout 'padded' or 'auto' on device '" + c.device + "' (the packed kernel is CPU-only)");
  return c;
}

Napi::Object ModelConfig::toJs(Napi::Env env) const {
  Napi::Object o = Napi::Object::New(env);
  o.Set("backbone", backbone);
  o.Set("itemTower", itemTower);
  if (itemTower == "text") o.Set("text", text.toJs(env));
  o.Set("numItems", double(numItems));
  o.Set("numUsers", double(numUsers));
  o.Set("d", double(d));
  o.Set("blocks", double(blocks));
  o.Set("heads", double(heads));
  o.Set("maxLen", double(maxLen));
  o.Set("dropout", dropout);
  o.Set("activation", activation);
  o.Set("dssmDepth", double(dssmDepth));
  o.Set("seed", double(seed));
  o.Set("threads", double(threads));
  o.Set("device", device);
  o.Set("sequenceLayout", sequenceLayout);
  return o;
}

}  // namespace morec
