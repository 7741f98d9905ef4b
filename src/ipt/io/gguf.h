#pragma once
// GGUF files (llama.cpp's format, versions 2 and 3, little-endian): "GGUF", version, tensor and
// key-value counts, the key-value metadata, the tensor infos, then the tensor data from the first
// multiple of `general.alignment` (default 32) after the infos. Parsing validates every field
// against the bytes that are there (counts and lengths cannot ask for more than the file holds,
// tensors lie inside the data and do not overlap, their byte size follows from type and shape),
// so a malformed file is an ipt::Error naming the field, never a crash or a huge allocation.
// Dequantization follows ggml's block layouts (ggml-quants.c) bit for bit.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ipt::io {

// Metadata value types, numbered as in the file.
enum class GgufValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7,
  kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};
const char* gguf_value_type_name(GgufValueType type);

// One metadata value; arrays hold scalars or strings (GGUF has no nested arrays).
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  GgufValueType element_type = GgufValueType::kUint8;  // arrays
  int64_t i = 0;       // integer types and bool; kUint64 above INT64_MAX is rejected on reading
  double f = 0;        // kFloat32, kFloat64
  std::string s;       // kString
  std::vector<GgufValue> array;

  bool is_integer() const;
  bool is_number() const;  // integer or float
};

// ggml tensor types (ggml.h numbering). Only the ones listed in gguf.cpp's table are accepted.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q2_K = 10, Q3_K = 11,
  Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30,
};

struct GgmlTypeInfo {
  uint32_t id;
  const char* name;
  int64_t block_size;  // elements per block
  int64_t type_size;   // bytes per block
  bool dequantizable;  // dequantize() supports it
};
// nullptr for an id ggml does not define.
const GgmlTypeInfo* ggml_type_info(uint32_t id);

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the contiguous (fastest) dimension
  uint32_t type = 0;
  uint64_t offset = 0;      // from the start of the file (data section start + stored offset)
  uint64_t bytes = 0;
  std::vector<int64_t> shape() const;  // torch order: ne reversed
  int64_t numel() const;
};

struct GgufFile {
  std::string origin;  // file name for error messages
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // start of the tensor data section
  std::vector<std::pair<std::string, GgufValue>> metadata;  // file order
  std::vector<GgufTensorInfo> tensors;                       // file order
  const uint8_t* data = nullptr;  // the whole file
  size_t size = 0;
  std::shared_ptr<const void> keep_alive;  // the mapping (read_gguf) or null (parse_gguf)

  const GgufValue* find(const std::string& key) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // Typed getters: throw naming the key when it is missing or has another type.
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // any number
  const std::string& get_string(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;
  std::vector<double> get_floats(const std::string& key) const;

  // The tensor as float32 in torch order (ne reversed); throws for a type dequantize() lacks.
  torch::Tensor dequantize(const GgufTensorInfo& tensor) const;
};

// Parses `size` bytes at `data`, which must outlive the result. `origin` names the source in errors.
GgufFile parse_gguf(const uint8_t* data, size_t size, const std::string& origin = "gguf");
// Memory-maps `path` and parses it; the mapping lives as long as the result.
GgufFile read_gguf(const std::string& path);

// Dequantizes `n` elements (a multiple of the type's block size) of type `type` at `src` into `dst`.
void dequantize_row(uint32_t type, const uint8_t* src, float* dst, int64_t n);

}  // namespace ipt::io
