#include "model_config.h"

#include <algorithm>
#include <cmath>

#include "../common.h"

namespace morec {

namespace {

// Reads fields from a JS object, keeping the current value when a key is absent. `prefix` names nested
// fields in messages (text.hidden).
struct Reader {
  const Napi::Object& o;
  std::string prefix;

  std::string name(const char* key) const { return prefix + key; }
  MorecException expected(const std::string& what, const char* key, const Napi::Value& v) const {
    return invalidArg("Expected " + what + " for " + name(key) + " but received " + describeValue(v));
  }
  void integer(const char* key, int64_t& f, int64_t min, int64_t max, bool required = false) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) {
      if (required) throw expected(min == 1 ? "a positive integer" : "an integer", key, v);
      return;
    }
    Napi::Object holder = Napi::Object::New(o.Env());
    holder.Set(name(key), v);
    f = readInt(holder, name(key).c_str(), f, min, max);
  }
  void number(const char* key, double& f, double min, double max) {
    if (o.Get(key).IsUndefined()) return;
    Napi::Object holder = Napi::Object::New(o.Env());
    holder.Set(name(key), o.Get(key));
    f = readNumber(holder, name(key).c_str(), f, min, max);
  }
  void boolean(const char* key, bool& f) {
    if (o.Get(key).IsUndefined()) return;
    if (!o.Get(key).IsBoolean()) throw expected("a boolean", key, o.Get(key));
    f = o.Get(key).As<Napi::Boolean>().Value();
  }
  void string(const char* key, std::string& f) {
    if (o.Get(key).IsUndefined()) return;
    if (!o.Get(key).IsString()) throw expected("a string", key, o.Get(key));
    f = o.Get(key).As<Napi::String>().Utf8Value();
  }
  void choice(const char* key, std::string& f, std::initializer_list<const char*> choices) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return;
    std::string list;
    for (const char* c : choices) {
      if (v.IsString() && v.As<Napi::String>().Utf8Value() == c) {
        f = c;
        return;
      }
      list += (list.empty() ? "" : " | ") + std::string("'") + c + "'";
    }
    throw expected("one of " + list, key, v);
  }
  template <class T>
  void list(const char* key, std::vector<T>& f, double min, double max, size_t minLen, size_t maxLen, bool integral) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return;
    std::string what = std::string("an array of ") + (minLen == maxLen ? std::to_string(minLen) : std::to_string(minLen) + " to " + std::to_string(maxLen)) +
                       (integral ? " integers" : " numbers") + " in [" + c10::str(min) + ", " + c10::str(max) + "]";
    if (!v.IsArray()) throw expected(what, key, v);
    auto a = v.As<Napi::Array>();
    if (a.Length() < minLen || a.Length() > maxLen) throw expected(what, key, v);
    std::vector<T> out;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value e = a.Get(i);
      if (!e.IsNumber()) throw expected(what, key, v);
      double x = e.As<Napi::Number>().DoubleValue();
      if (!std::isfinite(x) || x < min || x > max || (integral && x != std::floor(x))) throw expected(what, key, v);
      out.push_back(T(x));
    }
    f = std::move(out);
  }
  void integers(const char* key, std::vector<int64_t>& f, int64_t min, int64_t max, size_t minLen, size_t maxLen) {
    list(key, f, double(min), double(max), minLen, maxLen, true);
  }
  void numbers(const char* key, std::vector<double>& f, double min, double max, size_t minLen, size_t maxLen) {
    list(key, f, min, max, minLen, maxLen, false);
  }
  template <class C>
  void nested(const char* key, C& f, bool used) {
    if (!used) return;
    Napi::Value v = o.Get(key);
    if (!v.IsObject() || v.IsArray() || v.IsFunction())
      throw expected("a config object (required by this item tower)", key, v);
    Reader inner{v.As<Napi::Object>(), name(key) + "."};
    f.visit(inner);
  }
};

struct Writer {
  Napi::Object o;
  void integer(const char* key, int64_t& f, int64_t, int64_t, bool = false) { o.Set(key, double(f)); }
  void number(const char* key, double& f, double, double) { o.Set(key, f); }
  void boolean(const char* key, bool& f) { o.Set(key, f); }
  void string(const char* key, std::string& f) { o.Set(key, f); }
  void choice(const char* key, std::string& f, std::initializer_list<const char*>) { o.Set(key, f); }
  template <class T>
  void list(const char* key, const std::vector<T>& f) {
    Napi::Array a = Napi::Array::New(o.Env(), f.size());
    for (size_t i = 0; i < f.size(); ++i) a.Set(uint32_t(i), double(f[i]));
    o.Set(key, a);
  }
  void integers(const char* key, std::vector<int64_t>& f, int64_t, int64_t, size_t, size_t) { list(key, f); }
  void numbers(const char* key, std::vector<double>& f, double, double, size_t, size_t) { list(key, f); }
  template <class C>
  void nested(const char* key, C& f, bool used) {
    if (!used) return;
    Writer inner{Napi::Object::New(o.Env())};
    f.visit(inner);
    o.Set(key, inner.o);
  }
};

struct SchemaWriter {
  Napi::Object o;
  Napi::Object entry(const char* key, const char* type) {
    Napi::Object e = Napi::Object::New(o.Env());
    e.Set("type", type);
    o.Set(key, e);
    return e;
  }
  void integer(const char* key, int64_t&, int64_t min, int64_t max, bool required = false) {
    auto e = entry(key, "integer");
    e.Set("min", double(min));
    e.Set("max", double(max));
    if (required) e.Set("required", true);
  }
  void number(const char* key, double&, double min, double max) {
    auto e = entry(key, "number");
    e.Set("min", min);
    e.Set("max", max);
  }
  void boolean(const char* key, bool&) { entry(key, "boolean"); }
  void string(const char* key, std::string&) { entry(key, "string"); }
  void choice(const char* key, std::string&, std::initializer_list<const char*> choices) {
    auto e = entry(key, "choice");
    Napi::Array a = Napi::Array::New(o.Env());
    for (const char* c : choices) a.Set(a.Length(), c);
    e.Set("choices", a);
  }
  void listEntry(const char* key, const char* type, double min, double max, size_t minLen, size_t maxLen) {
    auto e = entry(key, type);
    e.Set("min", min);
    e.Set("max", max);
    e.Set("minLength", double(minLen));
    e.Set("maxLength", double(maxLen));
  }
  void integers(const char* key, std::vector<int64_t>&, int64_t min, int64_t max, size_t minLen, size_t maxLen) {
    listEntry(key, "integers", double(min), double(max), minLen, maxLen);
  }
  void numbers(const char* key, std::vector<double>&, double min, double max, size_t minLen, size_t maxLen) {
    listEntry(key, "numbers", min, max, minLen, maxLen);
  }
  template <class C>
  void nested(const char* key, C& f, bool) {
    auto e = entry(key, "object");
    SchemaWriter inner{Napi::Object::New(o.Env())};
    f.visit(inner);
    e.Set("fields", inner.o);
  }
};

}  // namespace

void TextTowerConfig::resolve() {
  if (hidden % heads != 0)
    throw invalidArg("Expected text.heads to divide text.hidden but received heads " + std::to_string(heads) +
                     " and hidden " + std::to_string(hidden));
  if (padTokenId < 0) padTokenId = kind == "roberta" ? 1 : 0;
  if (padTokenId >= vocabSize)
    throw invalidArg("Expected text.padTokenId below text.vocabSize (" + std::to_string(vocabSize) + ") but received " +
                     std::to_string(padTokenId));
  if (layerNormEps < 0) layerNormEps = kind == "roberta" ? 1e-5 : 1e-12;
  if (finetuneTopLayers > layers)
    throw invalidArg("Expected text.finetuneTopLayers in [-1, " + std::to_string(layers) + "] (the encoder's layers) but received " +
                     std::to_string(finetuneTopLayers));
}

void ImageTowerConfig::resolve() {
  if (arch == "swin") {
    if (heads.size() != depths.size())
      throw invalidArg("Expected image.heads to have one entry per stage (" + std::to_string(depths.size()) +
                       ", as image.depths) but it has " + std::to_string(heads.size()));
    for (size_t i = 0; i < heads.size(); ++i)
      if ((width << i) % heads[i] != 0)
        throw invalidArg("Expected image.heads[" + std::to_string(i) + "] to divide the stage's width " +
                         std::to_string(width << i) + " but received " + std::to_string(heads[i]));
  }
  if (finetuneTopStages > int64_t(depths.size()))
    throw invalidArg("Expected image.finetuneTopStages in [-1, " + std::to_string(depths.size()) +
                     "] (the encoder's stages) but received " + std::to_string(finetuneTopStages));
}

void ModelConfig::resolve() {
  if (backbone == "dssm" && numUsers < 1)
    throw invalidArg("Expected a positive integer for numUsers (required by the dssm backbone) but received " +
                     std::to_string(numUsers));
  if (backbone == "sasrec" && d % heads != 0)
    throw invalidArg("Expected heads to divide d but received heads " + std::to_string(heads) + " and d " +
                     std::to_string(d));
  // 0 = all cores; more threads than cores only oversubscribe them (a 999-thread epoch took 350x longer).
  if (threads == 0 || threads > availableCores()) threads = availableCores();
  if (device != "cpu" && device.rfind("cuda", 0) != 0)
    throw invalidArg("Expected 'cpu' or 'cuda[:N]' for device but received '" + device + "'");
  if (sequenceLayout == "packed" && device != "cpu")
    throw invalidArg("Expected sequenceLayout 'padded' or 'auto' on device '" + device + "' (the packed kernel is CPU-only)");
  if (itemTower == "text") text.resolve();
  if (itemTower == "image") image.resolve();
  if (fusion != "none" && itemTower == "id")
    throw invalidArg("Expected itemTower 'text', 'image' or 'features' with fusion '" + fusion +
                     "' (fusion joins an ID embedding with a modality vector) but itemTower is 'id'");
  if (fusion == "none" && fusionDepth > 0)
    throw invalidArg("Expected fusion 'add' or 'cat' with fusionDepth " + std::to_string(fusionDepth) + " but fusion is 'none'");
}

ModelConfig ModelConfig::fromJs(const Napi::Object& o) {
  ModelConfig c;
  Reader r{o, ""};
  c.visit(r);
  c.resolve();
  return c;
}

Napi::Object ModelConfig::toJs(Napi::Env env) {
  Writer w{Napi::Object::New(env)};
  visit(w);
  return w.o;
}

Napi::Object ModelConfig::schema(Napi::Env env) {
  ModelConfig c;
  SchemaWriter s{Napi::Object::New(env)};
  c.visit(s);  // nested() lists every tower's fields whatever itemTower is
  return s.o;
}

}  // namespace morec
