#pragma once
// Context parallelism: one long sequence split into contiguous slices, one per rank (docs/
// context_parallel.md). Everything here is exact: every rank's outputs and gradients equal the
// matching rows of a single-process run.
//
// In-Place TTT across ranks (the paper's Algorithm 1 across machines). Slices are cut on chunk
// boundaries of the document that is open there, so no chunk straddles two ranks. Each rank
// sums the (clipped) updates of its complete chunks of the document open at its end into one
// [d, h] matrix; an exclusive scan over ranks (restarting where a document starts) gives every
// rank the fast-weight offset its first document begins with; each rank then runs the ordinary
// operator on its own rows. No rank ever sees another's activations; the backward is the
// mirrored reverse scan of the gradients of those offsets.
//
// Attention across ranks: keys and values of earlier ranks are gathered (for sliding-window
// layers only the tails within the window); the backward sums their gradients back to the ranks
// that own them.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "ipt/parallel/communicator.h"
#include "ipt/ops/attention/attention.h"
#include "ipt/ops/ttt/ttt.h"

namespace ipt::parallel {

// Where each rank's slice starts and ends: bounds[r] .. bounds[r + 1], bounds[0] = 0,
// bounds[size] = L.
struct SlicePlan {
  std::vector<int64_t> bounds;
  int size() const { return static_cast<int>(bounds.size()) - 1; }
  int64_t begin(int rank) const { return bounds[rank]; }
  int64_t end(int rank) const { return bounds[rank + 1]; }
  int64_t length(int rank) const { return end(rank) - begin(rank); }
};

// Near-equal slices of a sequence of `length` rows (cu_seqlens: packed documents, empty = one
// document per batch row). chunk > 0 moves every cut to the nearest chunk boundary of the
// document it falls in (a document start counts), so TTT chunks never straddle ranks; every
// slice must end up non-empty, or this throws naming the lengths.
SlicePlan plan_slices(int64_t length, const std::vector<int64_t>& cu_seqlens, int64_t chunk, int ranks);

// One rank's view of the sequence.
struct LocalView {
  int64_t begin = 0, end = 0;
  std::vector<int64_t> cu_seqlens;  // the documents within the slice, relative to begin (empty if none given)
  bool continues = false;           // the first row belongs to a document begun on an earlier rank
  int64_t first_document_end = 0;   // relative end of the slice's first document (piece)
  bool fresh = false;               // a document starts inside this slice (the scan restarts here)
};
LocalView local_view(const SlicePlan& plan, const std::vector<int64_t>& cu_seqlens, int rank);

// The rank's rows of ttt::apply over the whole sequence. Z [B, Lr, h], V [B, Lr, d] are this
// rank's rows; options.cu_seqlens are the *global* document offsets. Differentiable in Z, V, W0
// (collectives in the backward: every rank must run its backward).
torch::Tensor ttt_apply(const torch::Tensor& Z, const torch::Tensor& V, const torch::Tensor& W0,
                        const ttt::Options& options, const SlicePlan& plan, Communicator& comm);

// The rank's query rows of causal attention over the whole sequence. q [B, Hq, Lr, D], k and v
// [B, Hkv, Lr, D] are this rank's rows; options.cu_seqlens global. Differentiable in q, k, v.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const ops::AttentionOptions& options, const SlicePlan& plan, Communicator& comm);

// While a scope lives on this thread, the model (model/decoder.h) computes this rank's slice of a
// longer sequence: CausalLM::hidden_states takes the rank's rows, positions and documents come
// from the global sequence, attention and TTT layers run the functions above.
struct ContextParallelState {
  Communicator* comm = nullptr;
  SlicePlan plan;
  std::vector<int64_t> cu_seqlens;  // global packed documents (empty: one document per batch row)
  LocalView view;                   // this rank's
};

class ContextParallelScope {
 public:
  ContextParallelScope(Communicator& comm, SlicePlan plan, std::vector<int64_t> cu_seqlens = {});
  ~ContextParallelScope();
  ContextParallelScope(const ContextParallelScope&) = delete;
  ContextParallelScope& operator=(const ContextParallelScope&) = delete;

 private:
  ContextParallelState state_;
  const ContextParallelState* previous_;
};

const ContextParallelState* active_context_parallel();  // nullptr outside a scope

}  // namespace ipt::parallel
