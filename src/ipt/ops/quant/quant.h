#pragma once
// Weight-quantized matrix-vector products for single-token decode, without libtorch.
//
// A weight matrix is stored as rows of ggml blocks (byte-compatible with GGUF tensors, so a file's
// data can be copied as is); the input vector is prepared once per token (Activation) in every
// form the kernels read, and each kernel streams rows of weights against it. Row ranges let
// callers split the rows over threads; the kernels themselves are single-threaded.
//
// Types: f32 and bf16 rows (block size 1), and ggml's q8_0, q4_0, q4_1 (32 values per block):
//   q8_0 = {fp16 d; int8 q[32]}            34 bytes, value q*d
//   q4_0 = {fp16 d; uint8 qs[16]}          18 bytes, value (q-8)*d
//   q4_1 = {fp16 d; fp16 m; uint8 qs[16]}  20 bytes, value q*d + m
// where qs[j] holds element j in its low nibble and element j+16 in its high nibble.
//
// Numerics of matvec (every kernel; they differ only in summation order):
//   f32 rows:  f32 products of W and x, summed in f32.
//   bf16 rows: x rounded to bf16 (nearest even); bf16 x bf16 products (exact in f32) summed in f32.
//   q rows:    x quantized per 32-block to int8 like ggml's q8 reference (d = amax/127,
//              q = roundf(x/d)); integer dot per block; d_w*d_x*isum summed in f32 (q4_0 subtracts
//              8*sum(q_x) in the integer domain; q4_1 adds m_w*d_x*sum(q_x)).
// This header and its .cpp use no libtorch.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ipt::ops::quant {

enum class Type : uint8_t { kF32, kBF16, kQ8_0, kQ4_0, kQ4_1 };

const char* type_name(Type t);                // "f32", "bf16", "q8_0", "q4_0", "q4_1"
Type parse_type(const std::string& name);     // throws ipt::Error naming the value and the choices
int64_t block_size(Type t);                   // values per block: 1 (f32, bf16) or 32
int64_t block_bytes(Type t);                  // bytes per block: 4, 2, 34, 18, 20
int64_t row_bytes(Type t, int64_t cols);      // throws unless cols >= 0 is a multiple of block_size
uint32_t ggml_type_id(Type t);                // ggml.h numbering: F32 0, Q4_0 2, Q4_1 3, Q8_0 8, BF16 30
Type type_from_ggml(uint32_t id);             // throws for the ids this file has no kernels for

// n values (a multiple of block_size) to and from t's blocks. Quantization is bit-exact with ggml's
// reference quantizers (quantize_row_q8_0_ref, _q4_0_ref, _q4_1_ref); bf16 rounds to nearest even
// like torch (NaN -> 0x7FC0); f32 copies. Dequantization is ggml's (q*d, then + m: not fused).
void quantize_row(Type t, const float* src, void* dst, int64_t n);
void dequantize_row(Type t, const void* src, float* dst, int64_t n);

// Scalar conversions (exposed for tests and callers that build blocks themselves).
uint16_t float_to_half(float f);   // IEEE fp16, round to nearest even (as F16C and ggml)
float half_to_float(uint16_t h);
uint16_t float_to_bf16(float f);   // round to nearest even, NaN -> 0x7FC0 (as torch)
float bf16_to_float(uint16_t b);

// Which build of the loops runs. kAvx512 needs AVX-512 F/BW/VL and VNNI; bf16 rows use the
// AVX-512 BF16 dot product where the CPU has it, else widen to f32. kBest: the widest supported.
enum class Kernel { kBest, kScalar, kAvx2, kAvx512 };
bool kernel_supported(Kernel k);   // run-time CPU check
Kernel best_kernel();              // what kBest runs on this CPU (never kBest)
const char* kernel_name(Kernel k); // "best", "scalar", "avx2", "avx512"

namespace detail {
struct AlignedFree {
  void operator()(uint8_t* p) const noexcept;
};
// Owned bytes at a 64-byte boundary. resize() reallocates only to grow (contents are then lost).
class AlignedBytes {
 public:
  void resize(size_t bytes);
  uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  std::unique_ptr<uint8_t, AlignedFree> data_;
  size_t size_ = 0, capacity_ = 0;
};
// Tests only (not thread-safe; both default to true): turn a fast path off so that its fallback
// runs, and is tested, on a CPU that has the fast one.
void set_avx512_bf16_dot(bool enabled);  // false: kAvx512 widens bf16 rows to f32 (no AVX-512 BF16)
void set_simd_activation(bool enabled);  // false: Activation::set uses its scalar loops (no AVX2)
}  // namespace detail

// A row-major weight matrix [rows, cols] as rows of blocks, contiguous (row r at r * row_stride()),
// in 64-byte aligned storage it owns. Move-only.
class Matrix {
 public:
  Matrix() = default;
  // Quantizes W (row-major [rows, cols] floats) row by row.
  static Matrix quantize(const float* W, int64_t rows, int64_t cols, Type t);
  // Copies rows * row_bytes(t, cols) bytes of blocks as they are (a GGUF tensor's data).
  static Matrix from_blocks(Type t, int64_t rows, int64_t cols, const void* data);

  Type type() const { return type_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t row_stride() const { return row_bytes_; }  // bytes per row
  int64_t bytes() const { return rows_ * row_bytes_; }
  const uint8_t* data() const { return storage_.data(); }
  const uint8_t* row(int64_t r) const { return storage_.data() + r * row_bytes_; }
  // Row r back to floats (cols values).
  void dequantize_row_to(int64_t r, float* dst) const;

 private:
  Matrix(Type t, int64_t rows, int64_t cols);
  Type type_ = Type::kF32;
  int64_t rows_ = 0, cols_ = 0, row_bytes_ = 0;
  detail::AlignedBytes storage_;
};

// One input vector prepared once for every matrix that reads it: an f32 copy, the bf16-rounded
// values (as bf16 bits and as f32), and the q8 form per 32-block (int8 q[32], float d, int32 sum of
// q) read against q8_0 / q4_0 / q4_1 weights. The q8 form covers the size() / 32 whole blocks.
class Activation {
 public:
  // Computes every form; reuses its buffers (allocates only when n exceeds every earlier n).
  void set(const float* x, int64_t n);
  int64_t size() const { return n_; }

  const float* f32() const { return reinterpret_cast<const float*>(f32_.data()); }
  const uint16_t* bf16() const { return reinterpret_cast<const uint16_t*>(bf16_.data()); }
  const float* bf16_as_f32() const { return reinterpret_cast<const float*>(bf16f_.data()); }
  const int8_t* q8() const { return reinterpret_cast<const int8_t*>(q_.data()); }   // [blocks * 32]
  const float* q8_scale() const { return reinterpret_cast<const float*>(d_.data()); }  // [blocks]
  const int32_t* q8_sum() const { return reinterpret_cast<const int32_t*>(s_.data()); }  // [blocks]

  // Kernel inputs derived from the q8 form, so the per-row loops only load them:
  // {d, d * sum} per block; and per block 8 int32 {-8 * sum, 0, ...} / {-128 * sum, 0, ...},
  // the starting value of a block's integer dot for q4_0 weights / for q8_0 weights offset by 128.
  const float* q8_scale_and_scaled_sum() const { return reinterpret_cast<const float*>(dds_.data()); }
  const int32_t* q4_0_offset() const { return reinterpret_cast<const int32_t*>(off8_.data()); }
  const int32_t* q8_0_offset() const { return reinterpret_cast<const int32_t*>(off128_.data()); }

 private:
  int64_t n_ = 0;
  detail::AlignedBytes f32_, bf16_, bf16f_, q_, d_, s_, dds_, off8_, off128_;
};

// y[r] = dot(W.row(r), x) for r in [row_begin, row_end), single-threaded (callers split rows over
// threads); y is indexed by the absolute row r. Throws when x.size() != W.cols(), the range is not
// inside [0, W.rows()], or the CPU cannot run k.
void matvec(const Matrix& W, const Activation& x, float* y, int64_t row_begin, int64_t row_end,
            Kernel k = Kernel::kBest);

// matvec for `batch` inputs against one W: ys[b][r] = dot(W.row(r), *xs[b]). Each row of q8_0 /
// q4_0 / q4_1 blocks is read, unpacked and its scales converted once for up to 8 inputs (AVX-512;
// other types and kernels run matvec once per input). Every output is bit-identical to matvec's
// on the same input, so batched decoding equals decoding alone. Throws as matvec does, naming b.
void matvec_batch(const Matrix& W, const Activation* const* xs, float* const* ys, int64_t batch, int64_t row_begin,
                  int64_t row_end, Kernel k = Kernel::kBest);

}  // namespace ipt::ops::quant
