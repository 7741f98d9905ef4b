// ttt::apply: checks its arguments, picks an algorithm, and wires recurrent/scan into autograd.
#include <cmath>

#include "ipt/common/error.h"
#include "ipt/ops/gemm/bf16_gemm.h"
#include "ipt/ops/ttt/kernels.h"

namespace ipt::ttt {

Algorithm parse_algorithm(const std::string& name) {
  if (name == "auto") return Algorithm::kAuto;
  if (name == "reference") return Algorithm::kReference;
  if (name == "recurrent") return Algorithm::kRecurrent;
  if (name == "scan") return Algorithm::kScan;
  throw Error("unknown TTT algorithm '" + name + "' (expected auto, reference, recurrent or scan)");
}

std::string to_string(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::kAuto: return "auto";
    case Algorithm::kReference: return "reference";
    case Algorithm::kRecurrent: return "recurrent";
    case Algorithm::kScan: return "scan";
  }
  return "?";
}

namespace {

using detail::Problem;
using detail::Segment;

std::string shape_of(const torch::Tensor& t) {
  std::string out = "[";
  for (int64_t i = 0; i < t.dim(); ++i) out += (i ? ", " : "") + std::to_string(t.size(i));
  return out + "]";
}

void check_options(const Options& o) {
  IPT_CHECK(o.chunk_size > 0, "ttt chunk_size must be > 0, got ", o.chunk_size);
  IPT_CHECK(std::isfinite(o.lr), "ttt lr must be finite, got ", o.lr);
  IPT_CHECK(std::isfinite(o.clip) && o.clip >= 0.0, "ttt clip must be finite and >= 0 (0 = off), got ", o.clip);
  check_decay(o.decay, "ttt decay");
  IPT_CHECK(o.scan_group >= 0, "ttt scan_group must be >= 0 (0 = all chunks), got ", o.scan_group);
}

// Documents as (row, begin, end); checks cu_seqlens against the batch.
std::vector<Segment> make_segments(int64_t batch, int64_t length, const std::vector<int64_t>& cu_seqlens) {
  std::vector<Segment> segments;
  if (cu_seqlens.empty()) {
    IPT_CHECK(length > 0, "sequence length must be > 0");
    for (int64_t b = 0; b < batch; ++b) segments.push_back({b, 0, length});
    return segments;
  }
  IPT_CHECK(batch == 1, "cu_seqlens needs a batch of one packed row, got batch size ", batch);
  IPT_CHECK(cu_seqlens.size() >= 2, "cu_seqlens must hold at least [0, L], got ", cu_seqlens.size(), " value(s)");
  IPT_CHECK(cu_seqlens.front() == 0, "cu_seqlens must start at 0, got ", cu_seqlens.front());
  IPT_CHECK(cu_seqlens.back() == length, "cu_seqlens must end at the sequence length ", length, ", got ",
            cu_seqlens.back());
  for (size_t i = 1; i < cu_seqlens.size(); ++i) {
    IPT_CHECK(cu_seqlens[i] > cu_seqlens[i - 1], "cu_seqlens must be strictly increasing, but cu_seqlens[", i,
              "] = ", cu_seqlens[i], " <= cu_seqlens[", i - 1, "] = ", cu_seqlens[i - 1]);
    segments.push_back({0, cu_seqlens[i - 1], cu_seqlens[i]});
  }
  return segments;
}

void check_tensors(const torch::Tensor& Z, const torch::Tensor& V, const torch::Tensor& W0) {
  IPT_CHECK(Z.defined() && V.defined() && W0.defined(), "ttt::apply needs Z, V and W0 (one is undefined)");
  IPT_CHECK(Z.dim() == 3, "Z must be [B, L, h], got ", shape_of(Z));
  IPT_CHECK(V.dim() == 3, "V must be [B, L, d], got ", shape_of(V));
  IPT_CHECK(W0.dim() == 2, "W0 must be [d, h], got ", shape_of(W0));
  IPT_CHECK(V.size(0) == Z.size(0) && V.size(1) == Z.size(1), "V must match Z in [B, L]: Z is ", shape_of(Z),
            ", V is ", shape_of(V));
  IPT_CHECK(W0.size(1) == Z.size(2), "W0 must be [d, h] with h = Z.size(2) = ", Z.size(2), ", got ", shape_of(W0));
  IPT_CHECK(W0.size(0) == V.size(2), "W0 must be [d, h] with d = V.size(2) = ", V.size(2), ", got ", shape_of(W0));
  IPT_CHECK(Z.is_floating_point(), "Z must be a floating-point tensor, got ", Z.scalar_type());
  IPT_CHECK(V.scalar_type() == Z.scalar_type() && W0.scalar_type() == Z.scalar_type(),
            "Z, V and W0 must share one dtype, got ", Z.scalar_type(), ", ", V.scalar_type(), ", ",
            W0.scalar_type());
  IPT_CHECK(V.device() == Z.device() && W0.device() == Z.device(), "Z, V and W0 must be on one device, got ",
            Z.device(), ", ", V.device(), ", ", W0.device());
}

Algorithm resolve(Algorithm requested, const torch::Tensor& Z, bool drift) {
  if (drift) {
    IPT_CHECK(requested != Algorithm::kReference, "the fast-weight drift trace needs the recurrent or scan algorithm");
    return Algorithm::kRecurrent;
  }
  if (requested != Algorithm::kAuto) return requested;
  // On a CPU the recurrent form runs full-size products already and needs the least memory;
  // a GPU wants the batched products of the scan.
  return Z.is_cuda() ? Algorithm::kScan : Algorithm::kRecurrent;
}

std::vector<int64_t> flatten(const std::vector<Segment>& segments) {
  std::vector<int64_t> flat;
  for (const Segment& s : segments) flat.insert(flat.end(), {s.row, s.begin, s.end});
  return flat;
}

std::vector<Segment> unflatten(const std::vector<int64_t>& flat) {
  std::vector<Segment> segments;
  for (size_t i = 0; i + 2 < flat.size(); i += 3) segments.push_back({flat[i], flat[i + 1], flat[i + 2]});
  return segments;
}

// recurrent / scan as one autograd node. The node saves only the inputs and one clip factor per
// chunk; the backward rebuilds fast weights by a reverse scan.
struct FastWeightFunction : public torch::autograd::Function<FastWeightFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor Z, torch::Tensor V,
                               torch::Tensor W0, const Problem* problem, bool use_scan, bool mixed,
                               std::vector<torch::Tensor>* weights_out) {
    torch::Tensor O = torch::empty({Z.size(0), Z.size(1), W0.size(0)}, Z.options());
    const bool keep = weights_out != nullptr;
    detail::ForwardResult fwd = mixed      ? detail::recurrent_forward_mixed(*problem, Z, V, W0, O, keep)
                                : use_scan ? detail::scan_forward(*problem, Z, V, W0, O, keep)
                                           : detail::recurrent_forward(*problem, Z, V, W0, O, keep);
    if (weights_out) *weights_out = std::move(fwd.weights);
    ctx->save_for_backward({Z, V, W0, fwd.scales});
    ctx->saved_data["segments"] = flatten(problem->segments);
    ctx->saved_data["chunk_size"] = problem->chunk_size;
    ctx->saved_data["lr"] = problem->lr;
    ctx->saved_data["clip"] = problem->clip;
    ctx->saved_data["decay"] = problem->decay;
    ctx->saved_data["scan_group"] = problem->scan_group;
    ctx->saved_data["use_scan"] = use_scan;
    ctx->saved_data["mixed"] = mixed;
    return O;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    Problem problem;
    problem.segments = unflatten(ctx->saved_data["segments"].toIntVector());
    problem.chunk_size = ctx->saved_data["chunk_size"].toInt();
    problem.lr = ctx->saved_data["lr"].toDouble();
    problem.clip = ctx->saved_data["clip"].toDouble();
    problem.decay = ctx->saved_data["decay"].toDouble();
    problem.scan_group = ctx->saved_data["scan_group"].toInt();
    torch::Tensor dO = grad_outputs[0].contiguous();
    detail::Gradients g = problem.decays() ? detail::decayed_backward(problem, saved[0], saved[1], saved[2], saved[3], dO)
                          : ctx->saved_data["mixed"].toBool()
                              ? detail::recurrent_backward_mixed(problem, saved[0], saved[1], saved[2], saved[3], dO)
                          : ctx->saved_data["use_scan"].toBool()
                              ? detail::scan_backward(problem, saved[0], saved[1], saved[2], saved[3], dO)
                              : detail::recurrent_backward(problem, saved[0], saved[1], saved[2], saved[3], dO);
    return {g.dZ, g.dV, g.dW0, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

Output apply(const torch::Tensor& Z_in, const torch::Tensor& V_in, const torch::Tensor& W0_in, const Options& options) {
  check_tensors(Z_in, V_in, W0_in);
  check_options(options);
  const auto out_type = Z_in.scalar_type();
  const bool reduced = out_type == torch::kHalf || out_type == torch::kBFloat16;
  // Half / bfloat16: products in that type, the fast weight (and the backward's gradient sum) in
  // float32 masters, recurrent algorithm. The materialising reference runs in float32.
  const bool mixed = reduced && options.algorithm != Algorithm::kReference;
  const bool upcast = reduced && !mixed;
  torch::Tensor Z = (upcast ? Z_in.to(torch::kFloat32) : Z_in).contiguous();
  torch::Tensor V = (upcast ? V_in.to(torch::kFloat32) : V_in).contiguous();
  torch::Tensor W0 = (upcast ? W0_in.to(torch::kFloat32) : W0_in).contiguous();

  Problem problem;
  problem.segments = make_segments(Z.size(0), Z.size(1), options.cu_seqlens);
  problem.chunk_size = options.chunk_size;
  problem.lr = options.lr;
  problem.clip = options.clip;
  problem.decay = options.decay;
  problem.scan_group = options.scan_group;
  problem.drift = options.drift;

  Output result;
  const Algorithm algorithm = resolve(options.algorithm, Z, options.drift != nullptr);
  if (algorithm == Algorithm::kReference) {
    result = detail::reference_forward(problem, Z, V, W0, options.return_state);
  } else {
    std::vector<torch::Tensor> weights;
    result.out = FastWeightFunction::apply(Z, V, W0, &problem, algorithm == Algorithm::kScan, mixed,
                                           options.return_state ? &weights : nullptr);
    if (options.return_state) {
      for (size_t k = 0; k < problem.segments.size(); ++k) {
        const Segment& s = problem.segments[k];
        const int64_t full = s.length() / problem.chunk_size, done = full * problem.chunk_size;
        DocumentState state;
        state.weight = weights[k];
        state.pending_z = Z[s.row].narrow(0, s.begin + done, s.length() - done).detach().clone();
        state.pending_v = V[s.row].narrow(0, s.begin + done, s.length() - done).detach().clone();
        state.updates = full;
        result.states.push_back(std::move(state));
      }
    }
  }
  // States stay in the compute type: a fast weight kept in half precision would lose its updates.
  if (upcast) result.out = result.out.to(out_type);
  return result;
}

void check_decay(double decay, const std::string& what) {
  IPT_CHECK(std::isfinite(decay) && decay > 0.0 && decay <= 1.0, what, " must be in (0, 1] (1 = no decay), got ",
            decay);
}

torch::Tensor chunk_delta(const torch::Tensor& Z_chunk, const torch::Tensor& V_chunk, double lr, double clip) {
  IPT_CHECK(Z_chunk.dim() == 2 && V_chunk.dim() == 2 && Z_chunk.size(0) == V_chunk.size(0),
            "chunk_delta needs Z [n, h] and V [n, d] with the same n, got ", shape_of(Z_chunk), " and ",
            shape_of(V_chunk));
  torch::NoGradGuard no_grad;
  const bool bf16 = Z_chunk.scalar_type() == torch::kBFloat16 && V_chunk.scalar_type() == torch::kBFloat16 &&
                    Z_chunk.device().is_cpu() && ops::bf16_gemm_available();
  torch::Tensor update = bf16 ? ops::mm_bf16(V_chunk.t(), Z_chunk).mul_(lr) : lr * torch::mm(V_chunk.t(), Z_chunk);
  return update.mul_(detail::clip_scale(update, clip));
}

}  // namespace ipt::ttt
