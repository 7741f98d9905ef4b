// The CPU attention kernels: blocked online softmax forward and flash-attention-2 style backward.
//
// Work is split into tasks (forward: one query block of one head; backward: one key block of one
// key/value head and all query heads of its group) that workers pull from a shared counter,
// largest first, so that the triangular cost of causal masks still balances across threads.
// Every block product is one BLAS call on raw pointers (no tensor objects per block); the softmax
// of a block runs in per-row loops over a thread-local buffer. bfloat16 inputs stay bfloat16: their
// block products are bf16 x bf16 -> float32 (ops/gemm/bf16_gemm.h); scores, statistics and
// accumulators are float32, and the probabilities (and score gradients) are rounded to bfloat16 for
// the products that take them, as flash attention does on GPUs.
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ipt/ops/attention/kernels.h"
#include "ipt/ops/gemm/bf16_gemm.h"
#include "ipt/ops/vec8.h"

namespace ipt::ops::attention_detail {

// ---------------------------------------------------------------------------------------------
// Element-wise pieces of the softmax, compiled for AVX2+FMA and for the baseline ISA (the loader
// picks one at start-up). float uses a polynomial exp that the compiler vectorises (relative
// error ~1e-7, the Cephes expf polynomial); double uses std::exp (accuracy first: tests).

namespace {

using namespace vec8;

IPT_ALWAYS_INLINE float exp_nonpositive(float x) { return exp_poly<float, int32_t>(x); }
IPT_ALWAYS_INLINE double exp_nonpositive(double x) { return std::exp(x); }

// Forward update of one score row (float): see softmax_block_impl.
IPT_ALWAYS_INLINE float softmax_row_f32(float* s, int64_t nk, int64_t lo, int64_t hi, float scale, float* m, float* l) {
  int64_t c = lo;
  F8 mx8 = splat8(-std::numeric_limits<float>::infinity());
  for (; c + 8 <= hi; c += 8) {
    const F8 x = load8(s + c);
    mx8 = x > mx8 ? x : mx8;
  }
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < 8; ++i) mx = std::max(mx, mx8[i]);
  for (; c < hi; ++c) mx = std::max(mx, s[c]);
  const float m_new = std::max(*m, mx * scale);
  const float alpha = *m == -std::numeric_limits<float>::infinity() ? 0.0f : exp_nonpositive(*m - m_new);

  for (c = 0; c < lo; ++c) s[c] = 0;
  F8 sum8 = splat8(0.0f);
  for (c = lo; c + 8 <= hi; c += 8) {
    const F8 p = exp_poly<F8, I8>(load8(s + c) * scale - m_new);
    store8(s + c, p);
    sum8 += p;
  }
  float sum = 0;
  for (; c < hi; ++c) {
    const float p = exp_nonpositive(s[c] * scale - m_new);
    s[c] = p;
    sum += p;
  }
  for (int i = 0; i < 8; ++i) sum += sum8[i];
  for (c = hi; c < nk; ++c) s[c] = 0;
  *l = *l * alpha + sum;
  *m = m_new;
  return alpha;
}

IPT_ALWAYS_INLINE void softmax_grad_row_f32(float* s, float* dp, int64_t nk, int64_t lo, int64_t hi, float scale,
                                            float lse, float delta) {
  int64_t c;
  for (c = 0; c < lo; ++c) s[c] = dp[c] = 0;
  for (; c + 8 <= hi; c += 8) {
    const F8 p = exp_poly<F8, I8>(load8(s + c) * scale - lse);
    store8(s + c, p);
    store8(dp + c, p * (load8(dp + c) - delta));
  }
  for (; c < hi; ++c) {
    const float p = exp_nonpositive(s[c] * scale - lse);
    s[c] = p;
    dp[c] = p * (dp[c] - delta);
  }
  for (c = std::max(hi, lo); c < nk; ++c) s[c] = dp[c] = 0;
}

// Visible keys of the query at key position p: [visible_begin, p + 1) (segment-relative).
IPT_ALWAYS_INLINE int64_t visible_begin(int64_t p, int64_t window) {
  return window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
}

// One forward block: S [n, nk] (row stride ld) holds raw scores of queries against keys
// j0 .. j0+nk-1; row r is the query at key position p0 + r % rows_per_head (the rows of the
// query heads of one group, stacked). Each row becomes p = exp(scale * s - m_new) (0 where
// masked), the running max m and sum l are updated, and the output row O (stride D) is rescaled
// by exp(m_old - m_new).
template <typename T>
IPT_ALWAYS_INLINE void softmax_block_impl(T* S, int64_t ld, int64_t n, int64_t rows_per_head, int64_t nk, int64_t p0,
                                          int64_t j0, int64_t window, T scale, T* m, T* l, T* O, int64_t D) {
  for (int64_t r = 0; r < n; ++r) {
    const int64_t p = p0 + r % rows_per_head;
    const int64_t lo = std::max<int64_t>(0, visible_begin(p, window) - j0);
    const int64_t hi = std::min<int64_t>(nk, p + 1 - j0);
    T* s_row = S + r * ld;
    if (lo >= hi) {
      std::fill(s_row, s_row + nk, T(0));
      continue;
    }
    T alpha;
    if constexpr (std::is_same_v<T, float>) {
      alpha = softmax_row_f32(s_row, nk, lo, hi, scale, m + r, l + r);
    } else {
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t c = lo; c < hi; ++c) mx = std::max(mx, s_row[c]);
      const T m_new = std::max(m[r], mx * scale);
      alpha = m[r] == -std::numeric_limits<T>::infinity() ? T(0) : std::exp(m[r] - m_new);
      T sum = 0;
      for (int64_t c = 0; c < nk; ++c) {
        const T e = c >= lo && c < hi ? std::exp(s_row[c] * scale - m_new) : T(0);
        s_row[c] = e;
        sum += e;
      }
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
    }
    if (alpha != T(1)) {
      T* o_row = O + r * D;
      for (int64_t d = 0; d < D; ++d) o_row[d] *= alpha;
    }
  }
}

// One backward block: S = scores and dP = dO . v [n, nk] (stride ld) of queries (row r at key
// position p0 + r % rows_per_head) against keys j0 ..; leaves S = P = exp(scale * S - lse) and dP = dS = P * (dP -
// delta), 0 where masked.
template <typename T>
IPT_ALWAYS_INLINE void softmax_grad_block_impl(T* S, T* dP, int64_t ld, int64_t n, int64_t rows_per_head, int64_t nk,
                                               int64_t p0, int64_t j0, int64_t window, T scale, const T* lse,
                                               const T* delta) {
  for (int64_t r = 0; r < n; ++r) {
    const int64_t p = p0 + r % rows_per_head;
    const int64_t lo = std::min(nk, std::max<int64_t>(0, visible_begin(p, window) - j0));
    const int64_t hi = std::max<int64_t>(0, std::min<int64_t>(nk, p + 1 - j0));
    T* s = S + r * ld;
    T* dp = dP + r * ld;
    if constexpr (std::is_same_v<T, float>) {
      softmax_grad_row_f32(s, dp, nk, lo, hi, scale, lse[r], delta[r]);
    } else {
      for (int64_t c = 0; c < nk; ++c) {
        const T e = c >= lo && c < hi ? std::exp(s[c] * scale - lse[r]) : T(0);
        s[c] = e;
        dp[c] = e * (dp[c] - delta[r]);
      }
    }
  }
}

}  // namespace

// Each block function twice, for AVX2+FMA and for the baseline ISA (vec8.h).

namespace {

template <typename T>
IPT_TARGET_AVX2 void softmax_block_avx2(T* S, int64_t ld, int64_t n, int64_t rows_per_head, int64_t nk, int64_t p0,
                                        int64_t j0, int64_t window, T scale, T* m, T* l, T* O, int64_t D) {
  softmax_block_impl(S, ld, n, rows_per_head, nk, p0, j0, window, scale, m, l, O, D);
}
template <typename T>
void softmax_block_base(T* S, int64_t ld, int64_t n, int64_t rows_per_head, int64_t nk, int64_t p0, int64_t j0,
                        int64_t window, T scale, T* m, T* l, T* O, int64_t D) {
  softmax_block_impl(S, ld, n, rows_per_head, nk, p0, j0, window, scale, m, l, O, D);
}
template <typename T>
void softmax_block(T* S, int64_t ld, int64_t n, int64_t rows_per_head, int64_t nk, int64_t p0, int64_t j0,
                   int64_t window, T scale, T* m, T* l, T* O, int64_t D) {
  if (use_avx2())
    softmax_block_avx2(S, ld, n, rows_per_head, nk, p0, j0, window, scale, m, l, O, D);
  else
    softmax_block_base(S, ld, n, rows_per_head, nk, p0, j0, window, scale, m, l, O, D);
}

template <typename T>
IPT_TARGET_AVX2 void softmax_grad_block_avx2(T* S, T* dP, int64_t ld, int64_t n, int64_t rows_per_head, int64_t nk,
                                             int64_t p0, int64_t j0, int64_t window, T scale, const T* lse,
                                             const T* delta) {
  softmax_grad_block_impl(S, dP, ld, n, rows_per_head, nk, p0, j0, window, scale, lse, delta);
}
template <typename T>
void softmax_grad_block_base(T* S, T* dP, int64_t ld, int64_t n, int64_t rows_per_head, int64_t nk, int64_t p0,
                             int64_t j0, int64_t window, T scale, const T* lse, const T* delta) {
  softmax_grad_block_impl(S, dP, ld, n, rows_per_head, nk, p0, j0, window, scale, lse, delta);
}
template <typename T>
void softmax_grad_block(T* S, T* dP, int64_t ld, int64_t n, int64_t rows_per_head, int64_t nk, int64_t p0, int64_t j0,
                        int64_t window, T scale, const T* lse, const T* delta) {
  if (use_avx2())
    softmax_grad_block_avx2(S, dP, ld, n, rows_per_head, nk, p0, j0, window, scale, lse, delta);
  else
    softmax_grad_block_base(S, dP, ld, n, rows_per_head, nk, p0, j0, window, scale, lse, delta);
}

// float -> bfloat16, rounded to nearest even (NaN stays NaN), `cols` values of each of `rows` rows
// `ld` apart: the probabilities and score gradients as operands of bf16 products.
void to_bf16(const float* x, int64_t rows, int64_t cols, int64_t ld, at::BFloat16* out) {
  for (int64_t r = 0; r < rows; ++r) vec8::to_bf16(x + r * ld, cols, out + r * ld);
}

}  // namespace

namespace {

// ---------------------------------------------------------------------------------------------
// BLAS on row-major blocks: C[M, N] = alpha * op(A) op(B) + beta * C. Fortran BLAS is
// column-major, so this computes C^T = op(B)^T op(A)^T. libtorch links the system BLAS but does
// not export its own wrapper, so ?gemm_ is looked up in the process at run time; without one,
// the product falls back to at::mm on tensors over the same memory.
template <typename T>
using FortranGemm = void (*)(const char*, const char*, const int*, const int*, const int*, const T*, const T*,
                             const int*, const T*, const int*, const T*, T*, const int*);

template <typename T>
FortranGemm<T> fortran_gemm() {
  static const FortranGemm<T> fn =
      reinterpret_cast<FortranGemm<T>>(dlsym(RTLD_DEFAULT, std::is_same_v<T, float> ? "sgemm_" : "dgemm_"));
  return fn;
}

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (const FortranGemm<T> fn = fortran_gemm<T>()) {
    const char ta = trans_b ? 'T' : 'N', tb = trans_a ? 'T' : 'N';
    const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
    const int la = static_cast<int>(ldb), lb = static_cast<int>(lda), lc = static_cast<int>(ldc);
    fn(&ta, &tb, &m, &n, &k, &alpha, B, &la, A, &lb, &beta, C, &lc);
    return;
  }
  const auto options = torch::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto view = [&](const T* p, int64_t rows, int64_t cols, int64_t ld, bool trans) {
    torch::Tensor t = torch::from_blob(const_cast<T*>(p), {trans ? cols : rows, trans ? rows : cols}, {ld, 1}, options);
    return trans ? t.t() : t;
  };
  torch::Tensor c = torch::from_blob(C, {M, N}, {ldc, 1}, options);
  torch::Tensor product = torch::mm(view(A, M, K, lda, trans_a), view(B, K, N, ldb, trans_b));
  if (beta == T(0))
    c.copy_(product.mul_(alpha));
  else
    c.mul_(beta).add_(product, alpha);
}

// bf16 blocks, float32 products and accumulators (ops/gemm/bf16_gemm.h).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const at::BFloat16* A, int64_t lda,
          const at::BFloat16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// OpenBLAS (pthreads build) serialises concurrent multi-threaded calls behind one lock: block
// products from several workers at once crawl unless each call runs single-threaded in its
// caller. Found at run time, since which BLAS backs libblas.so.3 is a Debian alternative.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() {
    using Get = int (*)();
    static const Get get = reinterpret_cast<Get>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    if (get && set()) {
      saved_ = get();
      if (saved_ > 1) set()(1);
    }
  }
  ~SingleThreadedBlas() {
    if (saved_ > 1) set()(saved_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  using Set = void (*)(int);
  static Set set() {
    static const Set fn = reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    return fn;
  }
  int saved_ = 0;
};

// Runs task(worker, index) for every index in `order`, pulled dynamically by
// at::get_num_threads() workers. `worker` is in [0, workers) and is never used by two threads at
// once.
template <typename Task>
void run_tasks(int64_t workers, const std::vector<int64_t>& order, const Task& task) {
  std::atomic<int64_t> next{0};
  const int64_t n = static_cast<int64_t>(order.size());
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w)
      for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) task(w, order[i]);
  });
}

// Indices 0..cost.size()-1, most expensive first.
std::vector<int64_t> largest_first(const std::vector<int64_t>& cost) {
  std::vector<int64_t> order(cost.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });
  return order;
}

// Grows and returns this thread's scratch buffer (kept between calls: no page faults on the
// hot path once warm).
template <typename T>
T* scratch(std::vector<T>& buffer, size_t size) {
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}

// Scores, statistics and accumulators are float32 for bf16 inputs, the input type otherwise.
template <typename T>
using Acc = std::conditional_t<std::is_same_v<T, at::BFloat16>, float, T>;

// The block `x` ([rows, cols], rows `ld` apart) as an operand of a product with T blocks: itself,
// or its bf16 rounding in `copy`.
template <typename T>
const T* operand(const Acc<T>* x, int64_t rows, int64_t cols, int64_t ld, std::vector<T>& copy) {
  if constexpr (std::is_same_v<T, Acc<T>>) {
    return x;
  } else {
    if (copy.size() < static_cast<size_t>(rows * ld)) copy.resize(static_cast<size_t>(rows * ld));
    to_bf16(x, rows, cols, ld, copy.data());
    return copy.data();
  }
}

template <typename T>
struct Scratch {
  std::vector<Acc<T>> s, dp, o, acc_k, acc_v, m, l;
  std::vector<T> q, dout, p_operand, ds_operand;
};
template <typename T>
Scratch<T>& thread_scratch() {
  thread_local Scratch<T> instance;
  return instance;
}

// Copies the rows [i0, i0 + n) of the G query heads h0 .. h0+G-1 (tensor [.., H, L, D] at `base`,
// heads `head_stride` apart) into one [G * n, D] block, head after head.
template <typename T>
void gather_heads(const T* base, int64_t head_stride, int64_t G, int64_t n, int64_t D, T* block) {
  for (int64_t g = 0; g < G; ++g) std::memcpy(block + g * n * D, base + g * head_stride, sizeof(T) * n * D);
}

struct ForwardTask {
  int64_t segment, kv_head, q0;  // q0: first query row of the block, relative to the segment
};

// Task: one query block of all G query heads of one key/value head, stacked into [G * n, D] so
// that every key block is one product with G * n rows.
template <typename T>
void forward_impl(const Problem& pb, const torch::Tensor& q_t, const torch::Tensor& k_t, const torch::Tensor& v_t,
                  torch::Tensor& out_t, torch::Tensor& lse_t) {
  const int64_t Hq = q_t.size(1), Lq = q_t.size(2), D = q_t.size(3);
  const int64_t Hkv = k_t.size(1), Lk = k_t.size(2), G = Hq / Hkv;
  const int64_t bq = pb.block_q, bk = pb.block_k, window = pb.window;
  using A = Acc<T>;
  const A scale = static_cast<A>(pb.scale);
  const T* q = q_t.data_ptr<T>();
  const T* k = k_t.data_ptr<T>();
  const T* v = v_t.data_ptr<T>();
  T* out = out_t.data_ptr<T>();
  A* lse = lse_t.data_ptr<A>();

  std::vector<ForwardTask> tasks;
  std::vector<int64_t> cost;
  for (size_t si = 0; si < pb.segments.size(); ++si) {
    const Segment& seg = pb.segments[si];
    for (int64_t q0 = 0; q0 < seg.q_length(); q0 += bq) {
      const int64_t n = std::min(bq, seg.q_length() - q0);
      const int64_t p0 = seg.offset() + q0;
      const int64_t keys = p0 + n - visible_begin(p0, window);
      for (int64_t h = 0; h < Hkv; ++h) {
        tasks.push_back({static_cast<int64_t>(si), h, q0});
        cost.push_back(keys);
      }
    }
  }

  SingleThreadedBlas blas_guard;
  run_tasks(at::get_num_threads(), largest_first(cost), [&](int64_t, int64_t ti) {
    const ForwardTask& task = tasks[ti];
    const Segment& seg = pb.segments[task.segment];
    const int64_t n = std::min(bq, seg.q_length() - task.q0), rows = G * n;
    const int64_t p0 = seg.offset() + task.q0;  // key position of the block's first query
    // Row of the first query of the first head of the group; heads are Lq rows apart.
    const int64_t row_q = (seg.row * Hq + task.kv_head * G) * Lq + seg.q_begin + task.q0;
    const int64_t row_k = (seg.row * Hkv + task.kv_head) * Lk + seg.k_begin;
    const T* K = k + row_k * D;
    const T* V = v + row_k * D;

    Scratch<T>& ws = thread_scratch<T>();
    A* S = scratch(ws.s, static_cast<size_t>(G * bq * bk));
    T* Q = scratch(ws.q, static_cast<size_t>(G * bq * D));
    A* O = scratch(ws.o, static_cast<size_t>(G * bq * D));
    A* m = scratch(ws.m, static_cast<size_t>(G * bq));
    A* l = scratch(ws.l, static_cast<size_t>(G * bq));
    gather_heads(q + row_q * D, Lq * D, G, n, D, Q);
    std::fill(m, m + rows, -std::numeric_limits<A>::infinity());
    std::fill(l, l + rows, A(0));
    std::fill(O, O + rows * D, A(0));

    const int64_t k_first = visible_begin(p0, window), k_last = p0 + n;  // keys [k_first, k_last)
    for (int64_t j0 = k_first; j0 < k_last; j0 += bk) {
      const int64_t nk = std::min(bk, k_last - j0);
      gemm(false, true, rows, nk, D, A(1), Q, D, K + j0 * D, D, A(0), S, bk);
      softmax_block<A>(S, bk, rows, n, nk, p0, j0, window, scale, m, l, O, D);
      const T* P = operand<T>(S, rows, nk, bk, ws.p_operand);
      gemm(false, false, rows, D, nk, A(1), P, bk, V + j0 * D, D, A(1), O, D);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t g = r / n, i = r % n;
      const A inv = A(1) / l[r];
      const A* o_row = O + r * D;
      T* out_row = out + (row_q + g * Lq + i) * D;
      for (int64_t d = 0; d < D; ++d) out_row[d] = static_cast<T>(o_row[d] * inv);
      lse[row_q + g * Lq + i] = m[r] + std::log(l[r]);
    }
  });
}

struct BackwardTask {
  int64_t segment, kv_head, k0;  // k0: first key row of the block, relative to the segment
};

// Task: one key block of one key/value head; it walks the query blocks that see it, the G query
// heads of the group stacked as in the forward, and owns the block's dk and dv rows.
template <typename T>
Gradients backward_impl(const Problem& pb, const torch::Tensor& q_t, const torch::Tensor& k_t, const torch::Tensor& v_t,
                        const torch::Tensor& out_t, const torch::Tensor& lse_t, const torch::Tensor& dout_t) {
  const int64_t B = q_t.size(0), Hq = q_t.size(1), Lq = q_t.size(2), D = q_t.size(3);
  const int64_t Hkv = k_t.size(1), Lk = k_t.size(2), G = Hq / Hkv;
  const int64_t bq = pb.block_q, bk = pb.block_k, window = pb.window;
  using A = Acc<T>;
  const auto acc_options = q_t.options().dtype(c10::CppTypeToScalarType<A>::value);
  const A scale = static_cast<A>(pb.scale);
  const T* q = q_t.data_ptr<T>();
  const T* k = k_t.data_ptr<T>();
  const T* v = v_t.data_ptr<T>();
  const T* out = out_t.data_ptr<T>();
  const A* lse = lse_t.data_ptr<A>();
  const T* dout = dout_t.data_ptr<T>();

  Gradients g;
  // Every key row of a segment belongs to exactly one task, which writes its dk and dv rows; keys
  // of documents that no query reaches (packed documents before the queries) stay zero.
  g.dk = torch::zeros_like(k_t);
  g.dv = torch::zeros_like(v_t);
  T* dk = g.dk.data_ptr<T>();
  T* dv = g.dv.data_ptr<T>();

  // delta_i = rowsum(dO_i * O_i).
  const int64_t rows_total = B * Hq * Lq;
  torch::Tensor delta_t = torch::empty({B, Hq, Lq}, acc_options);
  A* delta = delta_t.data_ptr<A>();
  at::parallel_for(0, rows_total, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      A acc = 0;
      for (int64_t d = 0; d < D; ++d) acc += static_cast<A>(dout[r * D + d]) * static_cast<A>(out[r * D + d]);
      delta[r] = acc;
    }
  });

  // dq: several key blocks add into one query row, so each worker keeps its own accumulator
  // (made on its first task) and they are summed at the end: memory O(workers * |q|).
  const int64_t workers = std::max<int64_t>(1, at::get_num_threads());
  std::vector<torch::Tensor> dq_parts(static_cast<size_t>(workers));
  std::vector<A*> dq_ptr(static_cast<size_t>(workers), nullptr);

  std::vector<BackwardTask> tasks;
  std::vector<int64_t> cost;
  for (size_t si = 0; si < pb.segments.size(); ++si) {
    const Segment& seg = pb.segments[si];
    for (int64_t k0 = 0; k0 < seg.k_length(); k0 += bk) {
      const int64_t nk = std::min(bk, seg.k_length() - k0);
      // Queries that see keys [k0, k0 + nk): positions p in [k0, k0 + nk - 1 + window - 1].
      const int64_t i_begin = std::max<int64_t>(0, k0 - seg.offset());
      const int64_t i_end = window > 0 ? std::min(seg.q_length(), k0 + nk - 1 + window - seg.offset()) : seg.q_length();
      for (int64_t h = 0; h < Hkv; ++h) {
        tasks.push_back({static_cast<int64_t>(si), h, k0});
        cost.push_back(std::max<int64_t>(0, i_end - i_begin));
      }
    }
  }

  SingleThreadedBlas blas_guard;
  run_tasks(workers, largest_first(cost), [&](int64_t worker, int64_t ti) {
    if (!dq_ptr[worker]) {
      dq_parts[worker] = torch::zeros(q_t.sizes(), acc_options);
      dq_ptr[worker] = dq_parts[worker].template data_ptr<A>();
    }
    A* dq = dq_ptr[worker];
    const BackwardTask& task = tasks[ti];
    const Segment& seg = pb.segments[task.segment];
    const int64_t k0 = task.k0;
    const int64_t nk = std::min(bk, seg.k_length() - k0);
    const int64_t row_k = (seg.row * Hkv + task.kv_head) * Lk + seg.k_begin + k0;
    const T* K = k + row_k * D;
    const T* V = v + row_k * D;
    const int64_t i_begin = std::max<int64_t>(0, k0 - seg.offset());
    const int64_t i_end = window > 0 ? std::min(seg.q_length(), k0 + nk - 1 + window - seg.offset()) : seg.q_length();

    Scratch<T>& ws = thread_scratch<T>();
    A* S = scratch(ws.s, static_cast<size_t>(G * bq * bk));
    A* dP = scratch(ws.dp, static_cast<size_t>(G * bq * bk));
    T* Q = scratch(ws.q, static_cast<size_t>(G * bq * D));
    T* dO = scratch(ws.dout, static_cast<size_t>(G * bq * D));
    A* lse_rows = scratch(ws.m, static_cast<size_t>(G * bq));
    A* delta_rows = scratch(ws.l, static_cast<size_t>(G * bq));
    A* dK = scratch(ws.acc_k, static_cast<size_t>(bk * D));
    A* dV = scratch(ws.acc_v, static_cast<size_t>(bk * D));
    std::fill(dK, dK + nk * D, A(0));
    std::fill(dV, dV + nk * D, A(0));

    for (int64_t i0 = i_begin; i0 < i_end; i0 += bq) {
      const int64_t n = std::min(bq, i_end - i0), rows = G * n;
      const int64_t row_q = (seg.row * Hq + task.kv_head * G) * Lq + seg.q_begin + i0;
      gather_heads(q + row_q * D, Lq * D, G, n, D, Q);
      gather_heads(dout + row_q * D, Lq * D, G, n, D, dO);
      gather_heads(lse + row_q, Lq, G, n, 1, lse_rows);
      gather_heads(delta + row_q, Lq, G, n, 1, delta_rows);
      gemm(false, true, rows, nk, D, A(1), Q, D, K, D, A(0), S, bk);
      gemm(false, true, rows, nk, D, A(1), dO, D, V, D, A(0), dP, bk);
      softmax_grad_block<A>(S, dP, bk, rows, n, nk, seg.offset() + i0, k0, window, scale, lse_rows, delta_rows);
      // dV += P^T dO, dK += dS^T Q (scaled at the end), dQ += scale * dS K (head by head).
      const T* P = operand<T>(S, rows, nk, bk, ws.p_operand);
      const T* dS = operand<T>(dP, rows, nk, bk, ws.ds_operand);
      gemm(true, false, nk, D, rows, A(1), P, bk, dO, D, A(1), dV, D);
      gemm(true, false, nk, D, rows, A(1), dS, bk, Q, D, A(1), dK, D);
      for (int64_t h = 0; h < G; ++h)
        gemm(false, false, n, D, nk, scale, dS + h * n * bk, bk, K, D, A(1), dq + (row_q + h * Lq) * D, D);
    }
    T* dk_rows = dk + row_k * D;
    T* dv_rows = dv + row_k * D;
    for (int64_t e = 0; e < nk * D; ++e) {
      dk_rows[e] = static_cast<T>(dK[e] * scale);
      dv_rows[e] = static_cast<T>(dV[e]);
    }
  });

  torch::Tensor dq;
  for (auto& part : dq_parts) {
    if (!part.defined()) continue;
    if (!dq.defined())
      dq = part;
    else
      dq.add_(part);
  }
  g.dq = dq.defined() ? dq.to(q_t.scalar_type()) : torch::zeros_like(q_t);
  return g;
}

}  // namespace

bool bf16_kernel_available() { return bf16_gemm_available(); }

void forward_cpu(const Problem& problem, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                 torch::Tensor& out, torch::Tensor& lse) {
  switch (q.scalar_type()) {
    case torch::kFloat64: return forward_impl<double>(problem, q, k, v, out, lse);
    case torch::kFloat32: return forward_impl<float>(problem, q, k, v, out, lse);
    case torch::kBFloat16:
      TORCH_CHECK(bf16_kernel_available(), "attention: no bf16 GEMM in this process; widen to float32 first");
      return forward_impl<at::BFloat16>(problem, q, k, v, out, lse);
    default: TORCH_CHECK(false, "attention: the CPU kernel takes float64, float32 or bfloat16, got ", q.scalar_type());
  }
}

Gradients backward_cpu(const Problem& problem, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& dout) {
  switch (q.scalar_type()) {
    case torch::kFloat64: return backward_impl<double>(problem, q, k, v, out, lse, dout);
    case torch::kFloat32: return backward_impl<float>(problem, q, k, v, out, lse, dout);
    case torch::kBFloat16:
      TORCH_CHECK(bf16_kernel_available(), "attention: no bf16 GEMM in this process; widen to float32 first");
      return backward_impl<at::BFloat16>(problem, q, k, v, out, lse, dout);
    default: TORCH_CHECK(false, "attention: the CPU kernel takes float64, float32 or bfloat16, got ", q.scalar_type());
  }
}

}  // namespace ipt::ops::attention_detail
