// Checkpoint reader: safetensors (mmap + a small JSON parser) and PyTorch zip checkpoints (libtorch's zip reader +
// a restricted unpickler that understands only state-dict pickles and never imports or calls anything).
#include "state_dict_reader.h"

#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "../common.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint data is little-endian and is copied as is"
#endif

namespace morec {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what, const char* code = "EFORMAT") {
  throw MorecException(code, path + ": " + what);
}

// Source element types. BOOL is read as bytes and compared with 0 (a byte other than 0/1 is not a valid kBool).
struct DType {
  const char *safetensors, *storage;  // storage: the torch.<name> class in pickles
  torch::ScalarType type;
  bool isBool;
};
const DType kDTypes[] = {{"F32", "FloatStorage", torch::kFloat, false},  {"F16", "HalfStorage", torch::kHalf, false},
                         {"BF16", "BFloat16Storage", torch::kBFloat16, false},
                         {"F64", "DoubleStorage", torch::kDouble, false}, {"I64", "LongStorage", torch::kLong, false},
                         {"I32", "IntStorage", torch::kInt, false},       {"I16", "ShortStorage", torch::kShort, false},
                         {"I8", "CharStorage", torch::kChar, false},      {"U8", "ByteStorage", torch::kByte, false},
                         {"BOOL", "BoolStorage", torch::kByte, true}};

// A fresh contiguous float32 (floating sources) or int64 (integer and bool sources) copy of src.
torch::Tensor convert(const torch::Tensor& src, bool isBool) {
  if (isBool) return src.ne(0).to(torch::kLong);
  auto type = c10::isFloatingType(src.scalar_type()) ? torch::kFloat : torch::kLong;
  return torch::empty(src.sizes(), torch::TensorOptions().dtype(type)).copy_(src);
}

// The whole file mapped read-only, unmapped on destruction. Pages are read on first touch, so any size works.
struct MappedFile {
  const uint8_t* data = nullptr;
  size_t size = 0;
  explicit MappedFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC), e = errno;
    if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(e), e == ENOENT || e == ENOTDIR ? "ENOENT" : "EIO");
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) ::close(fd), fail(path, "not a regular file", "EIO");
    size = size_t(st.st_size);
    void* p = size ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
    e = errno;
    ::close(fd);  // the mapping stays valid
    if (p == MAP_FAILED) fail(path, std::string("cannot map the file: ") + std::strerror(e), "EIO");
    data = static_cast<const uint8_t*>(p);
  }
  ~MappedFile() { if (data) ::munmap(const_cast<uint8_t*>(data), size); }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
};

// ---------------------------------------------------------------------------------------------- safetensors
struct Json {
  enum Kind { Null, Bool, Num, Str, Arr, Obj } kind = Null;
  std::string str;
  int64_t uint = -1;  // the value of a non-negative integer that fits int64, else -1 (the only numbers used)
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;
};

class JsonParser {
 public:
  JsonParser(const std::string& path, const char* p, size_t n) : path_(path), begin_(p), p_(p), end_(p + n) {}
  Json document() {
    Json v = value(0);
    if (ws(), p_ != end_) err("unexpected characters after the top-level object");
    return v;
  }

 private:
  const std::string& path_;
  const char *begin_, *p_, *end_;
  [[noreturn]] void err(const std::string& what) {
    fail(path_, "malformed safetensors header JSON at header byte " + std::to_string(p_ - begin_) + ": " + what);
  }
  void ws() { while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_; }
  bool at(char c) { return ws(), p_ < end_ && *p_ == c; }
  void expect(char c) { at(c) ? void(++p_) : err(std::string("expected '") + c + "'"); }
  bool digits() {
    const char* s = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return p_ > s;
  }
  Json value(int depth) {
    if (depth > 32) err("nested too deeply");  // bounds the recursion on hostile input
    if (ws(), p_ == end_) err("unexpected end of header");
    Json v;
    char c = *p_;
    if (c == '{' || c == '[') {
      ++p_;
      v.kind = c == '{' ? Json::Obj : Json::Arr;
      char close = c == '{' ? '}' : ']';
      if (at(close)) return ++p_, v;
      do {
        if (c == '[') {
          v.arr.push_back(value(depth + 1));
          continue;
        }
        if (!at('"')) err("expected a string key");
        std::string key = string();
        expect(':');
        v.obj.emplace_back(std::move(key), value(depth + 1));
      } while (at(',') && ++p_);
      expect(close);
      return v;
    }
    if (c == '"') return v.kind = Json::Str, v.str = string(), v;
    for (const char* lit : {"true", "false", "null"}) {
      size_t n = std::strlen(lit);
      if (size_t(end_ - p_) >= n && std::memcmp(p_, lit, n) == 0) return p_ += n, v.kind = Json::Bool, v;  // or null
    }
    // number: -?digits(.digits)?([eE][+-]?digits)?
    v.kind = Json::Num;
    bool integer = c != '-';
    p_ += c == '-';
    const char* d = p_;
    if (!digits()) err("expected a value");
    const char* dEnd = p_;
    if (p_ < end_ && *p_ == '.') {
      integer = false, ++p_;
      if (!digits()) err("malformed number");
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      integer = false, ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digits()) err("malformed number");
    }
    for (v.uint = integer ? 0 : -1; integer && d < dEnd && v.uint >= 0; ++d)
      if (__builtin_mul_overflow(v.uint, int64_t(10), &v.uint) || __builtin_add_overflow(v.uint, *d - '0', &v.uint))
        v.uint = -1;
    return v;
  }
  uint32_t hex4() {
    if (end_ - p_ < 4) err("truncated \\u escape");
    uint32_t cp = 0;
    for (int i = 0; i < 4; ++i) {
      char h = *p_++;
      int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (d < 0) err("bad \\u escape");
      cp = cp * 16 + uint32_t(d);
    }
    return cp;
  }
  std::string string() {
    std::string s;
    for (++p_;;) {
      if (p_ == end_) err("unterminated string");
      unsigned char c = *p_++;
      if (c == '"') return s;
      if (c < 0x20) err("control character in a string");
      if (c != '\\') {
        s += char(c);
        continue;
      }
      const char* simple = p_ < end_ && *p_ ? std::strchr("\"\\/bfnrt", *p_) : nullptr;
      if (simple) {
        s += "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"], ++p_;
        continue;
      }
      if (p_ == end_ || *p_++ != 'u') err("bad escape in a string");
      uint32_t cp = hex4();
      if (cp >= 0xD800 && cp < 0xDC00) {  // UTF-16 surrogate pair
        if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') err("unpaired surrogate");
        p_ += 2;
        uint32_t lo = hex4();
        if (lo < 0xDC00 || lo > 0xDFFF) err("unpaired surrogate");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      } else if (cp >= 0xDC00 && cp < 0xE000) {
        err("unpaired surrogate");
      }
      int extra = cp < 0x80 ? 0 : cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;  // UTF-8: lead byte 0xC0/0xE0/0xF0 + 6-bit tails
      s += char(extra ? (0xFF00 >> (extra + 1) & 0xFF) | cp >> (6 * extra) : cp);
      for (int k = extra - 1; k >= 0; --k) s += char(0x80 | (cp >> (6 * k) & 63));
    }
  }
};

std::map<std::string, torch::Tensor> readSafetensors(const std::string& path, const MappedFile& f) {
  uint64_t n;
  std::memcpy(&n, f.data, 8);
  if (n > f.size - 8 || n > (100u << 20))  // the safetensors format caps the header at 100 MB
    fail(path, "safetensors header length " + std::to_string(n) + " exceeds the " + std::to_string(f.size) +
                   "-byte file (or the 100 MB limit)");
  Json root = JsonParser(path, reinterpret_cast<const char*>(f.data) + 8, n).document();
  if (root.kind != Json::Obj) fail(path, "safetensors header is not a JSON object");
  const uint8_t* data = f.data + 8 + n;
  const uint64_t dataSize = f.size - 8 - n;
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, info] : root.obj) {
    if (name == "__metadata__") continue;
    const std::string what = "tensor '" + name + "'";
    const Json *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
    for (const auto& [k, v] : info.obj) {
      if (k == "dtype") dtype = &v;
      if (k == "shape") shape = &v;
      if (k == "data_offsets") offsets = &v;
    }
    if (!dtype || dtype->kind != Json::Str || !shape || shape->kind != Json::Arr || !offsets ||
        offsets->kind != Json::Arr || offsets->arr.size() != 2)
      fail(path, what + " needs \"dtype\" (a string), \"shape\" (an array) and \"data_offsets\" ([begin, end])");
    const DType* dt = nullptr;
    for (const auto& d : kDTypes) dt = dtype->str == d.safetensors ? &d : dt;
    if (!dt) fail(path, what + " has unsupported dtype '" + dtype->str + "'");
    std::vector<int64_t> sizes;
    int64_t numel = 1, b = offsets->arr[0].uint, e = offsets->arr[1].uint, item = c10::elementSize(dt->type), bytes;
    for (const auto& d : shape->arr) {
      if (d.uint < 0 || __builtin_mul_overflow(numel, d.uint, &numel))
        fail(path, what + " has an invalid shape (dimensions must be non-negative integers)");
      sizes.push_back(d.uint);
    }
    if (b < 0 || e < b || uint64_t(e) > dataSize)
      fail(path, what + " has data offsets [" + std::to_string(b) + ", " + std::to_string(e) + ") beyond the " +
                     std::to_string(dataSize) + "-byte data section");
    if (__builtin_mul_overflow(numel, item, &bytes) || bytes != e - b)
      fail(path, what + " has " + std::to_string(e - b) + " data bytes but its " + dtype->str + " shape needs " +
                     std::to_string(numel) + " x " + std::to_string(item));
    if (out.count(name)) fail(path, what + " appears twice in the header");
    // Copy out of the mapping (offsets need not be aligned for the element type), then convert if needed.
    auto t = torch::empty(sizes, torch::TensorOptions().dtype(dt->type));
    if (bytes) std::memcpy(t.data_ptr(), data + b, bytes);
    out[name] = t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kLong ? t : convert(t, dt->isBool);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------- pickle
// Python objects of a state-dict pickle. All live in one vector and refer to each other by index, so hostile
// nesting or cycles (through the memo) can neither overflow the stack on destruction nor leak.
struct Val {
  enum Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor } kind = None;
  int64_t i = 0;                        // Int/Bool; Tensor: storage offset
  std::string s;                        // Str; Global: "module.name"; Storage: record key
  std::vector<size_t> items;            // Tuple/List; Dict: key, value, key, value...; Tensor: {storage}
  std::vector<int64_t> sizes, strides;  // Tensor
  const DType* dtype = nullptr;         // Global (a storage class), Storage
};
const char* kindName(Val::Kind k) {
  static const char* names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict", "global", "storage", "tensor"};
  return names[k];
}

std::string opName(uint8_t op) {
  static const std::unordered_map<uint8_t, const char*> names = {
      {0x80, "PROTO"}, {0x95, "FRAME"}, {'}', "EMPTY_DICT"}, {')', "EMPTY_TUPLE"}, {']', "EMPTY_LIST"}, {'(', "MARK"},
      {'X', "BINUNICODE"}, {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {'J', "BININT"}, {'K', "BININT1"},
      {'M', "BININT2"}, {0x8a, "LONG1"}, {'G', "BINFLOAT"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {'N', "NONE"},
      {'t', "TUPLE"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"},
      {'h', "BINGET"}, {'j', "LONG_BINGET"}, {0x94, "MEMOIZE"}, {'s', "SETITEM"}, {'u', "SETITEMS"}, {'a', "APPEND"},
      {'e', "APPENDS"}, {'c', "GLOBAL"}, {0x93, "STACK_GLOBAL"}, {'R', "REDUCE"}, {'b', "BUILD"}, {'Q', "BINPERSID"},
      {'.', "STOP"}, {0x81, "NEWOBJ"}, {0x92, "NEWOBJ_EX"}, {'i', "INST"}, {'o', "OBJ"}, {'P', "PERSID"},
      {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"}, {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"}, {0x8e, "BINBYTES8"},
      {'V', "UNICODE"}, {'S', "STRING"}, {'I', "INT"}, {'L', "LONG"}, {'F', "FLOAT"}, {'p', "PUT"}, {'g', "GET"},
      {'d', "DICT"}, {'l', "LIST"}, {'0', "POP"}, {'1', "DUP"}, {'2', "POP_MARK"}, {0x8b, "LONG4"}, {0x82, "EXT1"},
      {0x83, "EXT2"}, {0x84, "EXT4"}, {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"},
      {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"}};
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02x", op);
  auto it = names.find(op);
  return std::string(hex) + " (" + (it == names.end() ? "unknown" : it->second) + ")";
}

class Unpickler {
 public:
  Unpickler(const std::string& path, const uint8_t* p, size_t n) : path_(path), p_(p), end_(p + n) {}
  std::vector<Val> vals;

  // Runs data.pkl to STOP and returns the index of the unpickled object. Every read, pop and memo lookup is
  // checked: malformed input ends in EFORMAT, never in a crash.
  size_t run() {
    for (;;) {
      uint8_t op = *take(1);
      switch (op) {
        case 0x80: if (*take(1) > 5) bad("unsupported pickle protocol"); break;  // PROTO
        case 0x95: take(8); break;                                               // FRAME: only a read-ahead hint
        case '}': push(make(Val::Dict)); break;
        case ')': push(make(Val::Tuple)); break;
        case ']': push(make(Val::List)); break;
        case '(': marks_.push_back(stack_.size()); break;
        case 'X': str(num<uint32_t>()); break;
        case 0x8c: str(num<uint8_t>()); break;
        case 0x8d: str(num<uint64_t>()); break;
        case 'J': integer(num<int32_t>()); break;
        case 'K': integer(num<uint8_t>()); break;
        case 'M': integer(num<uint16_t>()); break;
        case 0x8a: {  // LONG1: n-byte little-endian two's complement; wider than 64 bits: an opaque value
          uint8_t n = *take(1);
          const uint8_t* b = take(n);
          if (n > 8) {
            push(make(Val::Float));
            break;
          }
          uint64_t v = 0;
          for (int k = n - 1; k >= 0; --k) v = v << 8 | b[k];
          if (n && n < 8 && (b[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);
          integer(int64_t(v));
          break;
        }
        case 'G': take(8), push(make(Val::Float)); break;  // the value is never needed
        case 0x88: case 0x89: integer(op == 0x88), vals.back().kind = Val::Bool; break;
        case 'N': push(make(Val::None)); break;
        case 't': tuple(popMark(op)); break;
        case 0x85: case 0x86: case 0x87: {
          std::vector<size_t> items(op - 0x84);
          for (size_t k = items.size(); k-- > 0;) items[k] = pop(op);
          tuple(std::move(items));
          break;
        }
        case 'q': memo_[num<uint8_t>()] = top(op); break;
        case 'r': memo_[num<uint32_t>()] = top(op); break;
        case 0x94: memo_[uint32_t(memo_.size())] = top(op); break;
        case 'h': case 'j': {
          uint32_t k = op == 'h' ? num<uint8_t>() : num<uint32_t>();
          auto it = memo_.find(k);
          if (it == memo_.end()) bad("pickle refers to memo entry " + std::to_string(k) + " that was never stored");
          push(it->second);
          break;
        }
        case 's': { size_t v = pop(op), k = pop(op); add(Val::Dict, {k, v}, op); break; }
        case 'u': {
          auto items = popMark(op);
          if (items.size() % 2) bad("SETITEMS with an odd number of items");
          add(Val::Dict, items, op);
          break;
        }
        case 'a': { size_t v = pop(op); add(Val::List, {v}, op); break; }
        case 'e': add(Val::List, popMark(op), op); break;
        case 'c': { std::string mod = line(); global(mod, line(), op); break; }
        case 0x93: {  // STACK_GLOBAL (protocol 4+, e.g. torch.save(pickle_protocol=4)): same allowlist as GLOBAL
          size_t name = pop(op), mod = pop(op);
          if (vals[name].kind != Val::Str || vals[mod].kind != Val::Str) bad("STACK_GLOBAL without two strings");
          global(vals[mod].s, vals[name].s, op);
          break;
        }
        case 'R': { size_t args = pop(op), fn = pop(op); push(reduce(fn, args)); break; }
        case 'b': {  // BUILD: only the attribute dict of an OrderedDict (state_dict()'s _metadata), then ignored
          size_t state = pop(op);
          add(Val::Dict, {}, op);
          if (vals[state].kind != Val::Dict && vals[state].kind != Val::None) bad("BUILD with a non-dict state");
          break;
        }
        case 'Q': push(storage(pop(op))); break;
        case '.': return pop(op);
        default: bad("unsupported pickle opcode " + opName(op) + ": only state-dict content is accepted");
      }
    }
  }

 private:
  const std::string& path_;
  const uint8_t *p_, *end_;
  std::vector<size_t> stack_, marks_;
  std::unordered_map<uint32_t, size_t> memo_;

  [[noreturn]] void bad(const std::string& what) { fail(path_, what); }
  const uint8_t* take(uint64_t n) {
    if (n > uint64_t(end_ - p_)) bad("truncated pickle: data.pkl ends inside an opcode");
    return (p_ += n) - n;
  }
  template <typename T>
  T num() {
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  size_t make(Val::Kind k) {  // note: invalidates references into vals
    vals.emplace_back().kind = k;
    return vals.size() - 1;
  }
  void push(size_t v) { stack_.push_back(v); }
  void integer(int64_t x) { push(make(Val::Int)), vals.back().i = x; }
  void str(uint64_t n) {
    const char* b = reinterpret_cast<const char*>(take(n));
    push(make(Val::Str)), vals.back().s.assign(b, n);
  }
  void tuple(std::vector<size_t> items) { push(make(Val::Tuple)), vals.back().items = std::move(items); }
  // Python's unpickler starts a fresh stack at each MARK: pops never cross one.
  size_t top(uint8_t op) {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      bad("pickle stack underflow at opcode " + opName(op));
    return stack_.back();
  }
  size_t pop(uint8_t op) {
    size_t v = top(op);
    stack_.pop_back();
    return v;
  }
  std::vector<size_t> popMark(uint8_t op) {
    if (marks_.empty()) bad("pickle opcode " + opName(op) + " without a MARK");
    std::vector<size_t> items(stack_.begin() + marks_.back(), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  // Appends items to the container on top of the stack, which must be of kind k.
  void add(Val::Kind k, const std::vector<size_t>& items, uint8_t op) {
    Val& v = vals[top(op)];
    if (v.kind != k) bad("pickle opcode " + opName(op) + " applied to a " + kindName(v.kind) + ", expected a " + kindName(k));
    v.items.insert(v.items.end(), items.begin(), items.end());
  }
  std::string line() {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', end_ - p_));
    if (!nl) bad("truncated pickle: GLOBAL without a newline");
    std::string s(reinterpret_cast<const char*>(p_), nl - p_);
    p_ = nl + 1;
    return s;
  }
  // A global is only named, never looked up or imported; anything outside this list is refused.
  void global(std::string mod, std::string name, uint8_t op) {  // by value: make() may move vals
    std::string full = mod + "." + name;
    const DType* storage = nullptr;
    for (const auto& d : kDTypes) storage = mod == "torch" && name == d.storage ? &d : storage;
    if (!storage && full != "collections.OrderedDict" && full != "torch._utils._rebuild_tensor_v2" &&
        full != "torch._utils._rebuild_parameter")
      bad("unsupported pickle global '" + full.substr(0, 200) + "' (opcode " + opName(op) +
          "): only state-dict content is accepted");
    push(make(Val::Global));
    vals.back().s = full, vals.back().dtype = storage;
  }
  std::vector<int64_t> ints(size_t tuple, const char* what) {
    if (vals[tuple].kind != Val::Tuple) bad(std::string("_rebuild_tensor_v2: ") + what + " is not a tuple");
    std::vector<int64_t> out;
    for (size_t v : vals[tuple].items) {
      if (vals[v].kind != Val::Int || vals[v].i < 0)
        bad(std::string("_rebuild_tensor_v2: ") + what + " holds something other than a non-negative int");
      out.push_back(vals[v].i);
    }
    return out;
  }
  size_t reduce(size_t fn, size_t args) {
    if (vals[fn].kind != Val::Global || vals[args].kind != Val::Tuple)
      bad("pickle opcode " + opName('R') + " without a global and an argument tuple");
    const std::string name = vals[fn].s;
    const std::vector<size_t> a = vals[args].items;
    if (name == "collections.OrderedDict" && a.empty()) return make(Val::Dict);
    if (name == "torch._utils._rebuild_parameter" && a.size() == 3 && vals[a[0]].kind == Val::Tensor) return a[0];
    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (name == "torch._utils._rebuild_tensor_v2" && (a.size() == 6 || a.size() == 7)) {
      if (vals[a[0]].kind != Val::Storage || vals[a[1]].kind != Val::Int || vals[a[1]].i < 0)
        bad("_rebuild_tensor_v2: expected a storage and a non-negative storage offset");
      auto sizes = ints(a[2], "size"), strides = ints(a[3], "stride");
      if (sizes.size() != strides.size()) bad("_rebuild_tensor_v2: size and stride differ in length");
      size_t t = make(Val::Tensor);
      vals[t].items = {a[0]}, vals[t].i = vals[a[1]].i;
      vals[t].sizes = std::move(sizes), vals[t].strides = std::move(strides);
      return t;
    }
    bad("unsupported pickle opcode " + opName('R') + " calling '" + name + "' with " + std::to_string(a.size()) +
        " arguments: only state-dict content is accepted");
  }
  // BINPERSID with torch.save's ('storage', torch.<Type>Storage, key, location, numel); bytes are in data/<key>.
  size_t storage(size_t pid) {
    const auto& t = vals[pid].items;
    if (vals[pid].kind != Val::Tuple || t.size() != 5 || vals[t[0]].kind != Val::Str || vals[t[0]].s != "storage" ||
        vals[t[1]].kind != Val::Global || !vals[t[1]].dtype || vals[t[2]].kind != Val::Str)
      bad("unsupported persistent id: expected ('storage', torch.<Type>Storage, key, location, numel)");
    const DType* dtype = vals[t[1]].dtype;
    std::string key = vals[t[2]].s;
    size_t s = make(Val::Storage);
    vals[s].dtype = dtype, vals[s].s = std::move(key);
    return s;
  }
};

// Tensors under dict d, named by their key path. Nested dicts ({"model": state_dict, "epoch": 3}) are flattened
// with "model." prefixes; non-tensor leaves (ints, strings, lists, None) and non-string keys are skipped.
void collect(const Unpickler& u, size_t d, const std::string& prefix, int depth,
             std::vector<std::pair<std::string, size_t>>& out, const std::string& path) {
  if (depth > 16) fail(path, "dicts nested more than 16 levels deep (or a dict containing itself)");
  const auto& items = u.vals[d].items;
  for (size_t k = 0; k + 1 < items.size(); k += 2) {
    const Val &key = u.vals[items[k]], &v = u.vals[items[k + 1]];
    if (key.kind == Val::Str && v.kind == Val::Tensor) out.emplace_back(prefix + key.s, items[k + 1]);
    if (key.kind == Val::Str && v.kind == Val::Dict) collect(u, items[k + 1], prefix + key.s + ".", depth + 1, out, path);
  }
}

std::map<std::string, torch::Tensor> readTorchZip(const std::string& path) {
  // libtorch's zip reader (miniz) reports malformed archives and missing records as c10::Error. It does not
  // check CRCs (nor does torch.load): corrupted tensor bytes inside an intact zip go unnoticed.
  auto guard = [&](const std::string& what, auto fn) {
    try {
      return fn();
    } catch (const c10::Error& e) {
      std::string msg = e.what_without_backtrace();
      fail(path, "cannot read " + what + ": " + msg.substr(0, msg.find('\n')));
    }
  };
  using caffe2::serialize::PyTorchStreamReader;
  auto zip = guard("the zip archive", [&] { return std::make_unique<PyTorchStreamReader>(path); });
  auto has = [&](const std::string& name) { return guard("the zip directory", [&] { return zip->hasRecord(name); }); };
  auto record = [&](const std::string& name) {  // names are relative to the archive's top folder, whatever it is
    if (!has(name)) fail(path, "the zip has no record '" + name + "' (not a torch.save checkpoint?)");
    return guard("record '" + name + "'", [&] { return zip->getRecord(name); });
  };
  if (has("byteorder")) {  // written by PyTorch >= 2.1
    auto [p, n] = record("byteorder");
    if (std::string(static_cast<const char*>(p.get()), n) != "little") fail(path, "big-endian checkpoints are not supported");
  }
  auto [pkl, pklSize] = record("data.pkl");
  Unpickler u(path, static_cast<const uint8_t*>(pkl.get()), pklSize);
  size_t root = u.run();
  if (u.vals[root].kind != Val::Dict)
    fail(path, std::string("data.pkl holds a ") + kindName(u.vals[root].kind) + ", expected a dict of tensors");
  std::vector<std::pair<std::string, size_t>> tensors;
  collect(u, root, "", 0, tensors, path);
  // Nothing is read before the whole pickle has been accepted. Then each storage record is read once, all tensors
  // viewing it are copied out, and it is dropped: peak memory is the output plus one storage.
  std::map<std::string, std::vector<std::pair<std::string, size_t>>> byStorage;
  for (auto& nt : tensors) byStorage[u.vals[u.vals[nt.second].items[0]].s].push_back(nt);
  std::map<std::string, torch::Tensor> out;
  for (const auto& [key, list] : byStorage) {
    auto [ptr, bytes] = record("data/" + key);
    const auto* base = static_cast<const uint8_t*>(ptr.get());
    for (const auto& [name, ti] : list) {
      const Val& t = u.vals[ti];
      const DType* dt = u.vals[t.items[0]].dtype;
      int64_t item = c10::elementSize(dt->type), last = t.i, end = 0;  // last: highest element index read, then +1
      bool empty = false, overflow = false;
      for (size_t k = 0; k < t.sizes.size(); ++k) {
        int64_t span;
        empty |= t.sizes[k] == 0;
        overflow |= __builtin_mul_overflow(t.sizes[k] ? t.sizes[k] - 1 : 0, t.strides[k], &span) ||
                    __builtin_add_overflow(last, span, &last);
      }
      overflow |= __builtin_add_overflow(last, 1, &last) || __builtin_mul_overflow(last, item, &end);
      if (!empty && (overflow || uint64_t(end) > bytes))
        fail(path, "tensor '" + name + "' reaches beyond its " + std::to_string(bytes) + "-byte storage 'data/" + key + "'");
      // A non-owning strided view of the record (storage_offset, strides as saved), copied out by convert().
      auto view = torch::from_blob(const_cast<uint8_t*>(empty ? base : base + t.i * item), t.sizes, t.strides,
                                   torch::TensorOptions().dtype(dt->type));
      out[name] = convert(view, dt->isBool);
    }
  }
  return out;
}

}  // namespace

std::map<std::string, torch::Tensor> readStateDict(const std::string& path) {
  auto f = std::make_unique<MappedFile>(path);
  const uint8_t* d = f->data;
  if (f->size >= 4 && std::memcmp(d, "PK\x03\x04", 4) == 0) {
    f.reset();  // the zip reader opens the file itself
    return readTorchZip(path);
  }
  if (f->size >= 9 && d[8] == '{') return readSafetensors(path, *f);
  if (f->size >= 2 && d[0] == 0x80)
    fail(path, "legacy (pre-1.6, non-zip) torch.save format is not supported: re-save it with a current torch.save");
  fail(path, "neither a safetensors file nor a PyTorch zip checkpoint (" + std::to_string(f->size) + " bytes)");
}

}  // namespace morec
