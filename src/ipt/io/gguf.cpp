#include "ipt/io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <c10/util/Half.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

#include "ipt/common/error.h"

namespace ipt::io {

namespace {

constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

// Every type ggml defines, with its block geometry (ggml.c type_traits), so that the byte size of
// any tensor can be checked even when we cannot dequantize it.
const std::vector<GgmlTypeInfo>& type_table() {
  static const std::vector<GgmlTypeInfo> table{
      {0, "F32", 1, 4, true},        {1, "F16", 1, 2, true},         {2, "Q4_0", 32, 18, true},
      {3, "Q4_1", 32, 20, true},     {6, "Q5_0", 32, 22, true},      {7, "Q5_1", 32, 24, true},
      {8, "Q8_0", 32, 34, true},     {9, "Q8_1", 32, 36, false},     {10, "Q2_K", 256, 84, false},
      {11, "Q3_K", 256, 110, false}, {12, "Q4_K", 256, 144, true},   {13, "Q5_K", 256, 176, true},
      {14, "Q6_K", 256, 210, true},  {15, "Q8_K", 256, 292, false},  {16, "IQ2_XXS", 256, 66, false},
      {17, "IQ2_XS", 256, 74, false}, {18, "IQ3_XXS", 256, 98, false}, {19, "IQ1_S", 256, 50, false},
      {20, "IQ4_NL", 32, 18, false}, {21, "IQ3_S", 256, 110, false}, {22, "IQ2_S", 256, 82, false},
      {23, "IQ4_XS", 256, 136, false}, {24, "I8", 1, 1, false},      {25, "I16", 1, 2, false},
      {26, "I32", 1, 4, false},      {27, "I64", 1, 8, false},       {28, "F64", 1, 8, false},
      {29, "IQ1_M", 256, 56, false}, {30, "BF16", 1, 2, true},       {34, "TQ1_0", 256, 54, false},
      {35, "TQ2_0", 256, 66, false}, {39, "MXFP4", 32, 17, false},
  };
  return table;
}

// Smallest encoding of one value of `type` (strings: the 8-byte length), to bound counts.
uint64_t min_value_bytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: case GgufValueType::kInt8: case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16: case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32: case GgufValueType::kInt32: case GgufValueType::kFloat32: return 4;
    case GgufValueType::kString: case GgufValueType::kUint64: case GgufValueType::kInt64:
    case GgufValueType::kFloat64: return 8;
    case GgufValueType::kArray: return 12;  // element type + count
  }
  return 1;
}

// A cursor over the buffer; every read checks that the bytes are there.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& origin) : data_(data), size_(size), origin_(origin) {}

  size_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  template <typename T>
  T read(const std::string& field) {
    need(sizeof(T), field);
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));  // little-endian hosts only (x86, arm64)
    pos_ += sizeof(T);
    return value;
  }

  std::string read_string(const std::string& field) {
    const uint64_t length = read<uint64_t>(field + " (string length)");
    IPT_CHECK(length <= remaining(), origin_, ": ", field, ": string length ", length, " exceeds the ", remaining(),
              " bytes left in the file");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(length));
    pos_ += length;
    return s;
  }

  // A count of items each at least `min_bytes` long must fit in what is left.
  void check_count(uint64_t count, uint64_t min_bytes, const std::string& field) {
    IPT_CHECK(count <= remaining() / min_bytes, origin_, ": ", field, " ", count, " is impossible: ", remaining(),
              " bytes left in the file hold at most ", remaining() / min_bytes);
  }

 private:
  void need(uint64_t bytes, const std::string& field) {
    IPT_CHECK(bytes <= remaining(), origin_, ": ", field, ": file ends at byte ", size_, " (truncated)");
  }
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& origin_;
};

GgufValue read_scalar(Reader& r, GgufValueType type, const std::string& field, const std::string& origin) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::kUint8: v.i = r.read<uint8_t>(field); break;
    case GgufValueType::kInt8: v.i = r.read<int8_t>(field); break;
    case GgufValueType::kUint16: v.i = r.read<uint16_t>(field); break;
    case GgufValueType::kInt16: v.i = r.read<int16_t>(field); break;
    case GgufValueType::kUint32: v.i = r.read<uint32_t>(field); break;
    case GgufValueType::kInt32: v.i = r.read<int32_t>(field); break;
    case GgufValueType::kInt64: v.i = r.read<int64_t>(field); break;
    case GgufValueType::kUint64: {
      const uint64_t u = r.read<uint64_t>(field);
      IPT_CHECK(u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), origin, ": ", field, ": uint64 value ",
                u, " is out of range");
      v.i = static_cast<int64_t>(u);
      break;
    }
    case GgufValueType::kFloat32: v.f = r.read<float>(field); break;
    case GgufValueType::kFloat64: v.f = r.read<double>(field); break;
    case GgufValueType::kBool: {
      const uint8_t b = r.read<uint8_t>(field);
      IPT_CHECK(b <= 1, origin, ": ", field, ": bool value ", int(b), " is neither 0 nor 1");
      v.i = b;
      break;
    }
    case GgufValueType::kString: v.s = r.read_string(field); break;
    case GgufValueType::kArray: throw Error(origin + ": " + field + ": arrays of arrays are not allowed");
  }
  return v;
}

GgufValueType read_value_type(Reader& r, const std::string& field, const std::string& origin) {
  const uint32_t t = r.read<uint32_t>(field + " (type)");
  IPT_CHECK(t <= static_cast<uint32_t>(GgufValueType::kFloat64), origin, ": ", field, ": unknown value type ", t);
  return static_cast<GgufValueType>(t);
}

GgufValue read_value(Reader& r, const std::string& key, const std::string& origin) {
  const std::string field = "metadata '" + key + "'";
  const GgufValueType type = read_value_type(r, field, origin);
  if (type != GgufValueType::kArray) return read_scalar(r, type, field, origin);
  GgufValue v;
  v.type = type;
  v.element_type = read_value_type(r, field + " array element", origin);
  IPT_CHECK(v.element_type != GgufValueType::kArray, origin, ": ", field, ": arrays of arrays are not allowed");
  const uint64_t n = r.read<uint64_t>(field + " (array length)");
  r.check_count(n, min_value_bytes(v.element_type), field + " array length");
  v.array.reserve(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) v.array.push_back(read_scalar(r, v.element_type, field, origin));
  return v;
}

uint64_t checked_mul(uint64_t a, uint64_t b, uint64_t bound, const std::string& what, const std::string& origin) {
  IPT_CHECK(b == 0 || a <= bound / b, origin, ": ", what, " is larger than the file (", bound, " bytes)");
  return a * b;
}

[[noreturn]] void wrong_type(const std::string& origin, const std::string& key, const char* expected, const GgufValue& v) {
  std::string got = gguf_value_type_name(v.type);
  if (v.type == GgufValueType::kArray) got += std::string(" of ") + gguf_value_type_name(v.element_type);
  throw Error(origin + ": metadata '" + key + "' must be " + expected + ", got " + got);
}

float half_to_float(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return static_cast<float>(c10::Half(bits, c10::Half::from_bits()));
}

// The 6-bit scale and min of sub-block j of a Q4_K / Q5_K super-block (ggml's get_scale_min_k4).
void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Block layouts (ggml-common.h); the arithmetic below is ggml's, operation for operation, so the
// floats are identical.
void dequantize_blocks(GgmlType type, const uint8_t* x, float* y, int64_t blocks) {
  switch (type) {
    case GgmlType::Q4_0:  // d: f16, qs[16]: low nibbles = elements 0..15, high = 16..31
      for (int64_t b = 0; b < blocks; ++b, x += 18, y += 32) {
        const float d = half_to_float(x);
        for (int j = 0; j < 16; ++j) {
          y[j] = ((x[2 + j] & 0x0F) - 8) * d;
          y[j + 16] = ((x[2 + j] >> 4) - 8) * d;
        }
      }
      return;
    case GgmlType::Q4_1:  // d, m: f16, qs[16]
      for (int64_t b = 0; b < blocks; ++b, x += 20, y += 32) {
        const float d = half_to_float(x), m = half_to_float(x + 2);
        for (int j = 0; j < 16; ++j) {
          y[j] = (x[4 + j] & 0x0F) * d + m;
          y[j + 16] = (x[4 + j] >> 4) * d + m;
        }
      }
      return;
    case GgmlType::Q5_0:  // d: f16, qh: 32 fifth bits, qs[16]
      for (int64_t b = 0; b < blocks; ++b, x += 22, y += 32) {
        const float d = half_to_float(x);
        uint32_t qh;
        std::memcpy(&qh, x + 2, 4);
        for (int j = 0; j < 16; ++j) {
          const uint8_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
          y[j] = (((x[6 + j] & 0x0F) | h0) - 16) * d;
          y[j + 16] = (((x[6 + j] >> 4) | h1) - 16) * d;
        }
      }
      return;
    case GgmlType::Q5_1:  // d, m: f16, qh, qs[16]
      for (int64_t b = 0; b < blocks; ++b, x += 24, y += 32) {
        const float d = half_to_float(x), m = half_to_float(x + 2);
        uint32_t qh;
        std::memcpy(&qh, x + 4, 4);
        for (int j = 0; j < 16; ++j) {
          const uint8_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
          y[j] = ((x[8 + j] & 0x0F) | h0) * d + m;
          y[j + 16] = ((x[8 + j] >> 4) | h1) * d + m;
        }
      }
      return;
    case GgmlType::Q8_0:  // d: f16, qs[32]: int8
      for (int64_t b = 0; b < blocks; ++b, x += 34, y += 32) {
        const float d = half_to_float(x);
        for (int j = 0; j < 32; ++j) y[j] = static_cast<int8_t>(x[2 + j]) * d;
      }
      return;
    case GgmlType::Q4_K:  // d, dmin: f16, scales[12]: 8 × (6-bit scale, 6-bit min), qs[128]
    case GgmlType::Q5_K:  // as Q4_K, then qh[32] (fifth bits), then qs[128]
      for (int64_t b = 0; b < blocks; ++b, x += (type == GgmlType::Q4_K ? 144 : 176)) {
        const float d = half_to_float(x), min = half_to_float(x + 2);
        const uint8_t* scales = x + 4;
        const bool five = type == GgmlType::Q5_K;
        const uint8_t* qh = x + 16;
        const uint8_t* q = five ? x + 48 : x + 16;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32, u1 <<= 2, u2 <<= 2) {
          uint8_t sc, m;
          scale_min_k4(is, scales, &sc, &m);
          const float d1 = d * sc, m1 = min * m;
          scale_min_k4(is + 1, scales, &sc, &m);
          const float d2 = d * sc, m2 = min * m;
          for (int l = 0; l < 32; ++l) *y++ = d1 * ((q[l] & 0xF) + (five && (qh[l] & u1) ? 16 : 0)) - m1;
          for (int l = 0; l < 32; ++l) *y++ = d2 * ((q[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)) - m2;
        }
      }
      return;
    case GgmlType::Q6_K:  // ql[128]: low 4 bits, qh[64]: high 2 bits, scales[16]: int8, d: f16
      for (int64_t b = 0; b < blocks; ++b, x += 210) {
        const float d = half_to_float(x + 208);
        const uint8_t* ql = x;
        const uint8_t* qh = x + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
        for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int8_t q1 = static_cast<int8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int8_t q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int8_t q3 = static_cast<int8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int8_t q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
          }
        }
      }
      return;
    case GgmlType::F32:
      std::memcpy(y, x, static_cast<size_t>(blocks) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < blocks; ++i) y[i] = half_to_float(x + 2 * i);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < blocks; ++i) {
        const uint32_t bits = (static_cast<uint32_t>(x[2 * i + 1]) << 24) | (static_cast<uint32_t>(x[2 * i]) << 16);
        std::memcpy(y + i, &bits, 4);
      }
      return;
    default:
      break;
  }
  const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
  std::string supported;
  for (const auto& t : type_table())
    if (t.dequantizable) supported += (supported.empty() ? "" : ", ") + std::string(t.name);
  throw Error(std::string("tensor type ") + (info ? info->name : std::to_string(static_cast<uint32_t>(type))) +
              " cannot be dequantized (supported: " + supported + ")");
}

struct Mapping {
  void* data = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (data && data != MAP_FAILED) munmap(data, size);
  }
};

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  static const char* names[] = {"uint8", "int8",   "uint16", "int16", "uint32", "int32", "float32",
                                "bool",  "string", "array",  "uint64", "int64", "float64"};
  const auto i = static_cast<uint32_t>(type);
  return i < 13 ? names[i] : "unknown";
}

bool GgufValue::is_integer() const {
  return type != GgufValueType::kArray && type != GgufValueType::kString && type != GgufValueType::kFloat32 &&
         type != GgufValueType::kFloat64 && type != GgufValueType::kBool;
}
bool GgufValue::is_number() const {
  return is_integer() || type == GgufValueType::kFloat32 || type == GgufValueType::kFloat64;
}

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  for (const auto& t : type_table())
    if (t.id == id) return &t;
  return nullptr;
}

std::vector<int64_t> GgufTensorInfo::shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }
int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // bounded by the file size when parsed
  return n;
}

GgufFile parse_gguf(const uint8_t* data, size_t size, const std::string& origin) {
  GgufFile file;
  file.origin = origin;
  file.data = data;
  file.size = size;
  Reader r(data, size, file.origin);
  IPT_CHECK(size >= 4 && std::memcmp(data, "GGUF", 4) == 0, origin, ": bad magic (not a GGUF file)");
  r.read<uint32_t>("magic");
  file.version = r.read<uint32_t>("version");
  IPT_CHECK(file.version == 2 || file.version == 3, origin, ": version ", file.version,
            " is not supported (2 and 3 are; 1 is obsolete, a huge number means a big-endian file)");
  const uint64_t n_tensors = r.read<uint64_t>("n_tensors");
  const uint64_t n_kv = r.read<uint64_t>("n_kv");
  r.check_count(n_kv, 8 + 4 + 1, "n_kv");                 // key length, type, smallest value
  r.check_count(n_tensors, 8 + 4 + 4 + 8, "n_tensors");  // name length, n_dims, type, offset

  std::set<std::string> keys;
  file.metadata.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = r.read_string("metadata key " + std::to_string(k));
    IPT_CHECK(keys.insert(key).second, origin, ": metadata key '", key, "' appears twice");
    GgufValue value = read_value(r, key, origin);
    file.metadata.emplace_back(std::move(key), std::move(value));
  }
  if (const GgufValue* a = file.find("general.alignment")) {
    IPT_CHECK(a->type == GgufValueType::kUint32, origin, ": metadata 'general.alignment' must be uint32, got ",
              gguf_value_type_name(a->type));
    IPT_CHECK(a->i > 0 && (a->i & (a->i - 1)) == 0, origin, ": metadata 'general.alignment' = ", a->i,
              " is not a power of two");
    file.alignment = static_cast<uint64_t>(a->i);
  }

  std::set<std::string> names;
  file.tensors.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensorInfo info;
    info.name = r.read_string("tensor " + std::to_string(t) + " name");
    const std::string field = "tensor '" + info.name + "'";
    IPT_CHECK(names.insert(info.name).second, origin, ": ", field, " appears twice");
    const uint32_t n_dims = r.read<uint32_t>(field + " n_dims");
    IPT_CHECK(n_dims >= 1 && n_dims <= kMaxDims, origin, ": ", field, ": n_dims ", n_dims, " is outside [1, ", kMaxDims, "]");
    for (uint32_t d = 0; d < n_dims; ++d) {
      const int64_t n = r.read<int64_t>(field + " ne[" + std::to_string(d) + "]");
      IPT_CHECK(n >= 0, origin, ": ", field, ": ne[", d, "] = ", n, " is negative");
      info.ne.push_back(n);
    }
    info.type = r.read<uint32_t>(field + " type");
    const GgmlTypeInfo* type = ggml_type_info(info.type);
    IPT_CHECK(type, origin, ": ", field, ": unknown tensor type ", info.type);
    IPT_CHECK(info.ne[0] % type->block_size == 0, origin, ": ", field, ": ne[0] = ", info.ne[0],
              " is not a multiple of the ", type->name, " block size ", type->block_size);
    // Byte size, refusing anything larger than the file before it can overflow.
    uint64_t bytes = checked_mul(static_cast<uint64_t>(info.ne[0] / type->block_size), type->type_size, size,
                                 field + " size", origin);
    for (size_t d = 1; d < info.ne.size(); ++d)
      bytes = checked_mul(bytes, static_cast<uint64_t>(info.ne[d]), size, field + " size", origin);
    info.bytes = bytes;
    // The other dimensions of an empty tensor must be sane too: torch refuses shapes whose
    // product overflows even when one dimension is 0 (found by fuzzing). No supported type stores
    // more than 2 elements per byte, so 4 x the file size bounds every dimension's product.
    uint64_t elements = 1;
    for (int64_t n : info.ne)
      elements = checked_mul(elements, static_cast<uint64_t>(std::max<int64_t>(n, 1)), 4 * static_cast<uint64_t>(size),
                             field + " shape", origin);
    info.offset = r.read<uint64_t>(field + " offset");
    IPT_CHECK(info.offset % file.alignment == 0, origin, ": ", field, ": offset ", info.offset,
              " is not a multiple of the alignment ", file.alignment);
    file.tensors.push_back(std::move(info));
  }

  file.data_offset = (r.pos() + file.alignment - 1) / file.alignment * file.alignment;
  IPT_CHECK(file.data_offset <= size || file.tensors.empty(), origin, ": the data section (byte ", file.data_offset,
            ") starts past the end of the file (", size, " bytes)");
  const uint64_t data_bytes = file.data_offset <= size ? size - file.data_offset : 0;
  for (GgufTensorInfo& info : file.tensors) {
    IPT_CHECK(info.offset <= data_bytes && info.bytes <= data_bytes - info.offset, origin, ": tensor '", info.name,
              "': offset ", info.offset, " + ", info.bytes, " bytes runs past the end of the data section (",
              data_bytes, " bytes)");
    info.offset += file.data_offset;
  }
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& info : file.tensors) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& a = *by_offset[i - 1];
    const GgufTensorInfo& b = *by_offset[i];
    IPT_CHECK(a.offset + a.bytes <= b.offset || a.bytes == 0 || b.bytes == 0, origin, ": tensors '", a.name, "' and '",
              b.name, "' overlap");
  }
  return file;
}

GgufFile read_gguf(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  IPT_CHECK(fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    throw Error(path + ": empty or unreadable file");
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->size = static_cast<size_t>(st.st_size);
  mapping->data = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  IPT_CHECK(mapping->data != MAP_FAILED, "cannot map ", path, ": ", std::strerror(errno));
  GgufFile file = parse_gguf(static_cast<const uint8_t*>(mapping->data), mapping->size, path);
  file.keep_alive = mapping;
  return file;
}

void dequantize_row(uint32_t type, const uint8_t* src, float* dst, int64_t n) {
  const GgmlTypeInfo* info = ggml_type_info(type);
  IPT_CHECK(info, "unknown tensor type ", type);
  IPT_CHECK(n % info->block_size == 0, n, " elements are not a multiple of the ", info->name, " block size ",
            info->block_size);
  if (n == 0) return;  // an empty tensor has no storage to write (found by fuzzing: memcpy to null)
  dequantize_blocks(static_cast<GgmlType>(type), src, dst, n / info->block_size);
}

torch::Tensor GgufFile::dequantize(const GgufTensorInfo& tensor) const {
  torch::Tensor out = torch::empty(tensor.shape(), torch::kFloat32);
  try {
    dequantize_row(tensor.type, data + tensor.offset, out.data_ptr<float>(), tensor.numel());
  } catch (const Error& e) {
    throw Error(origin + ": tensor '" + tensor.name + "': " + e.what());
  }
  return out;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  for (const auto& [k, v] : metadata)
    if (k == key) return &v;
  return nullptr;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {
const GgufValue& require(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  IPT_CHECK(v, f.origin, ": metadata '", key, "' is missing");
  return *v;
}
}  // namespace

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (!v.is_integer()) wrong_type(origin, key, "an integer", v);
  return v.i;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (!v.is_number()) wrong_type(origin, key, "a number", v);
  return v.is_integer() ? static_cast<double>(v.i) : v.f;
}

const std::string& GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufValueType::kString) wrong_type(origin, key, "a string", v);
  return v.s;
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufValueType::kBool) wrong_type(origin, key, "a bool", v);
  return v.i != 0;
}

std::vector<std::string> GgufFile::get_strings(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufValueType::kArray || v.element_type != GgufValueType::kString)
    wrong_type(origin, key, "an array of strings", v);
  std::vector<std::string> out;
  out.reserve(v.array.size());
  for (const auto& e : v.array) out.push_back(e.s);
  return out;
}

std::vector<int64_t> GgufFile::get_ints(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  GgufValue probe;
  probe.type = v.element_type;
  if (v.type != GgufValueType::kArray || !probe.is_integer()) wrong_type(origin, key, "an array of integers", v);
  std::vector<int64_t> out;
  out.reserve(v.array.size());
  for (const auto& e : v.array) out.push_back(e.i);
  return out;
}

std::vector<double> GgufFile::get_floats(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  GgufValue probe;
  probe.type = v.element_type;
  if (v.type != GgufValueType::kArray || !probe.is_number()) wrong_type(origin, key, "an array of numbers", v);
  std::vector<double> out;
  out.reserve(v.array.size());
  for (const auto& e : v.array) out.push_back(probe.is_integer() ? static_cast<double>(e.i) : e.f);
  return out;
}

}  // namespace ipt::io
