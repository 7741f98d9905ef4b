// The In-Place TTT operator and its target builder as torch.library ops (namespace inplace_ttt).
// The kernels are the engine's own (src/ipt/ops/ttt, compiled into this extension); this file
// only checks arguments, picks the kernel and hands Python a forward and a backward op, so that
// autograd (torch.library.register_autograd) and torch.compile (register_fake) see opaque ops.
//
// One kernel serves every device: the engine's kernels are ATen calls, so CUDA tensors run on the
// GPU without a CUDA compiler here.
#include <torch/library.h>
#include <torch/torch.h>

#include <c10/core/DeviceGuard.h>

#include <cmath>
#include <string>
#include <vector>

#include "ipt/ops/ttt/kernels.h"
#include "ipt/ops/ttt/ttt.h"

namespace {

using ipt::ttt::detail::Problem;
using ipt::ttt::detail::Segment;

// Python checks arguments first (with ValueError / TypeError); these are the backstop for direct
// torch.ops calls. TORCH_CHECK becomes a Python RuntimeError, never a crash.
void check_tensors(const at::Tensor& Z, const at::Tensor& V, const at::Tensor& W0) {
  TORCH_CHECK(Z.dim() == 3, "Z must be [B, L, h], got ", Z.sizes());
  TORCH_CHECK(V.dim() == 3, "V must be [B, L, d], got ", V.sizes());
  TORCH_CHECK(W0.dim() == 2, "W0 must be [d, h], got ", W0.sizes());
  TORCH_CHECK(V.size(0) == Z.size(0) && V.size(1) == Z.size(1), "V must match Z in [B, L]: Z is ", Z.sizes(),
              ", V is ", V.sizes());
  TORCH_CHECK(W0.size(0) == V.size(2) && W0.size(1) == Z.size(2), "W0 must be [d, h] = [", V.size(2), ", ",
              Z.size(2), "], got ", W0.sizes());
  TORCH_CHECK(Z.is_floating_point() && V.scalar_type() == Z.scalar_type() && W0.scalar_type() == Z.scalar_type(),
              "Z, V and W0 must share one floating dtype, got ", Z.scalar_type(), ", ", V.scalar_type(), ", ",
              W0.scalar_type());
  TORCH_CHECK(V.device() == Z.device() && W0.device() == Z.device(), "Z, V and W0 must be on one device, got ",
              Z.device(), ", ", V.device(), ", ", W0.device());
}

Problem make_problem(const at::Tensor& Z, int64_t chunk_size, double lr, double clip, double decay,
                     const std::vector<int64_t>& cu_seqlens, int64_t scan_group) {
  TORCH_CHECK(chunk_size > 0, "chunk_size must be > 0, got ", chunk_size);
  TORCH_CHECK(std::isfinite(lr), "lr must be finite, got ", lr);
  TORCH_CHECK(std::isfinite(clip) && clip >= 0.0, "clip must be finite and >= 0, got ", clip);
  TORCH_CHECK(std::isfinite(decay) && decay > 0.0 && decay <= 1.0, "decay must be in (0, 1] (1 = no decay), got ",
              decay);
  TORCH_CHECK(scan_group >= 0, "scan_group must be >= 0, got ", scan_group);
  const int64_t B = Z.size(0), L = Z.size(1);
  TORCH_CHECK(L > 0, "Z must hold at least one token (L > 0)");
  Problem p;
  p.chunk_size = chunk_size;
  p.lr = lr;
  p.clip = clip;
  p.decay = decay;
  p.scan_group = scan_group;
  if (cu_seqlens.empty()) {
    for (int64_t b = 0; b < B; ++b) p.segments.push_back({b, 0, L});
    return p;
  }
  TORCH_CHECK(B == 1, "cu_seqlens needs a batch of one packed row, got batch size ", B);
  TORCH_CHECK(cu_seqlens.size() >= 2 && cu_seqlens.front() == 0 && cu_seqlens.back() == L,
              "cu_seqlens must run from 0 to the sequence length ", L);
  for (size_t i = 1; i < cu_seqlens.size(); ++i) {
    TORCH_CHECK(cu_seqlens[i] > cu_seqlens[i - 1], "cu_seqlens must be strictly increasing");
    p.segments.push_back({0, cu_seqlens[i - 1], cu_seqlens[i]});
  }
  return p;
}

bool is_reduced(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

// "auto": recurrent on a CPU (full-size products already, least memory), scan on a GPU.
bool use_scan(const std::string& algorithm, const at::Tensor& Z) {
  TORCH_CHECK(algorithm == "auto" || algorithm == "recurrent" || algorithm == "scan",
              "algorithm must be auto, recurrent, scan or reference, got '", algorithm, "'");
  return algorithm == "scan" || (algorithm == "auto" && Z.is_cuda());
}

// -> (out [B, L, d], scales float64 [full chunks]): the clip factor of every full chunk, which is
// all the backward needs besides the inputs.
std::tuple<at::Tensor, at::Tensor> ttt_forward(const at::Tensor& Z_in, const at::Tensor& V_in, const at::Tensor& W0_in,
                                               int64_t chunk_size, double lr, double clip, double decay,
                                               std::vector<int64_t> cu_seqlens, std::string algorithm,
                                               int64_t scan_group) {
  check_tensors(Z_in, V_in, W0_in);
  c10::DeviceGuard guard(Z_in.device());
  at::NoGradGuard no_grad;
  const Problem p = make_problem(Z_in, chunk_size, lr, clip, decay, cu_seqlens, scan_group);
  const bool scan = use_scan(algorithm, Z_in);
  at::Tensor Z = Z_in.contiguous(), V = V_in.contiguous(), W0 = W0_in.contiguous();
  at::Tensor O = at::empty({Z.size(0), Z.size(1), W0.size(0)}, Z.options());
  // Half / bfloat16: products in that type, the fast weight in a float32 master (recurrent).
  namespace d = ipt::ttt::detail;
  d::ForwardResult r = is_reduced(Z) ? d::recurrent_forward_mixed(p, Z, V, W0, O, false)
                       : scan        ? d::scan_forward(p, Z, V, W0, O, false)
                                     : d::recurrent_forward(p, Z, V, W0, O, false);
  return {O, r.scales};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ttt_backward(const at::Tensor& grad_out, const at::Tensor& Z_in,
                                                            const at::Tensor& V_in, const at::Tensor& W0_in,
                                                            const at::Tensor& scales, int64_t chunk_size, double lr,
                                                            double clip, double decay, std::vector<int64_t> cu_seqlens,
                                                            std::string algorithm, int64_t scan_group) {
  check_tensors(Z_in, V_in, W0_in);
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef({Z_in.size(0), Z_in.size(1), W0_in.size(0)}),
              "grad_out must be [B, L, d], got ", grad_out.sizes());
  c10::DeviceGuard guard(Z_in.device());
  at::NoGradGuard no_grad;
  const Problem p = make_problem(Z_in, chunk_size, lr, clip, decay, cu_seqlens, scan_group);
  const bool scan = use_scan(algorithm, Z_in);
  at::Tensor Z = Z_in.contiguous(), V = V_in.contiguous(), W0 = W0_in.contiguous();
  at::Tensor dO = grad_out.to(Z.scalar_type()).contiguous();
  at::Tensor s = scales.to(at::kCPU, at::kDouble).contiguous();
  namespace d = ipt::ttt::detail;
  // A decaying update cannot step weights back (it would divide by the decay): its own backward.
  d::Gradients g = p.decays()     ? d::decayed_backward(p, Z, V, W0, s, dO)
                   : is_reduced(Z) ? d::recurrent_backward_mixed(p, Z, V, W0, s, dO)
                   : scan        ? d::scan_backward(p, Z, V, W0, s, dO)
                                 : d::recurrent_backward(p, Z, V, W0, s, dO);
  return {g.dZ, g.dV, g.dW0};
}

// The materialising reference (per-chunk weights, autograd through plain torch ops): for tests.
at::Tensor ttt_reference(const at::Tensor& Z, const at::Tensor& V, const at::Tensor& W0, int64_t chunk_size, double lr,
                         double clip, double decay, std::vector<int64_t> cu_seqlens) {
  ipt::ttt::Options o;
  o.chunk_size = chunk_size;
  o.lr = lr;
  o.clip = clip;
  o.decay = decay;
  o.cu_seqlens = std::move(cu_seqlens);
  o.algorithm = ipt::ttt::Algorithm::kReference;
  return ipt::ttt::apply(Z, V, W0, o).out;
}

ipt::ttt::TargetOptions target_options(int64_t chunk_size, const std::string& kind, const std::string& padding,
                                       std::vector<int64_t> cu_seqlens) {
  TORCH_CHECK(chunk_size > 0, "chunk_size must be > 0, got ", chunk_size);
  ipt::ttt::TargetOptions o;
  o.chunk_size = chunk_size;
  o.kind = ipt::ttt::parse_target_kind(kind);
  o.padding = ipt::ttt::parse_conv_padding(padding);
  o.cu_seqlens = std::move(cu_seqlens);
  return o;
}

at::Tensor build_target(const at::Tensor& X, const std::optional<at::Tensor>& conv_weight,
                        const std::optional<at::Tensor>& proj, int64_t chunk_size, std::string kind,
                        std::string padding, std::vector<int64_t> cu_seqlens) {
  c10::DeviceGuard guard(X.device());
  at::NoGradGuard no_grad;
  return ipt::ttt::build_target(X, conv_weight.value_or(at::Tensor()), proj.value_or(at::Tensor()),
                                target_options(chunk_size, kind, padding, std::move(cu_seqlens)));
}

// The target is a handful of elementwise products and one matrix product: its backward reruns it
// under autograd (no state kept between forward and backward) and asks for the gradients.
std::tuple<at::Tensor, at::Tensor, at::Tensor> build_target_backward(
    const at::Tensor& grad_out, const at::Tensor& X, const std::optional<at::Tensor>& conv_weight,
    const std::optional<at::Tensor>& proj, int64_t chunk_size, std::string kind, std::string padding,
    std::vector<int64_t> cu_seqlens) {
  c10::DeviceGuard guard(X.device());
  at::AutoGradMode grad_on(true);
  std::vector<at::Tensor> inputs{X.detach().requires_grad_(true)};
  at::Tensor w = conv_weight ? conv_weight->detach().requires_grad_(true) : at::Tensor();
  at::Tensor P = proj ? proj->detach().requires_grad_(true) : at::Tensor();
  if (w.defined()) inputs.push_back(w);
  if (P.defined()) inputs.push_back(P);
  at::Tensor out = ipt::ttt::build_target(inputs[0], w, P, target_options(chunk_size, kind, padding, cu_seqlens));
  // The reconstruction target never reads the convolution weight: its gradient is zero.
  auto grads = torch::autograd::grad({out}, inputs, {grad_out}, false, false, /*allow_unused=*/true);
  at::Tensor dX = grads[0], dw, dP;
  size_t next = 1;
  if (w.defined()) dw = grads[next++];
  if (P.defined()) dP = grads[next++];
  // Absent inputs (no conv weight, no projection) get empty placeholders; Python maps them to None.
  if (!dw.defined()) dw = w.defined() ? at::zeros_like(w) : at::empty({0}, X.options());
  if (!dP.defined()) dP = at::empty({0}, X.options());
  return {dX, dw, dP};
}

}  // namespace

TORCH_LIBRARY(inplace_ttt, m) {
  m.def(
      "ttt_forward(Tensor Z, Tensor V, Tensor W0, int chunk_size, float lr, float clip, float decay, int[] cu_seqlens, "
      "str algorithm, int scan_group) -> (Tensor, Tensor)");
  m.def(
      "ttt_backward(Tensor grad_out, Tensor Z, Tensor V, Tensor W0, Tensor scales, int chunk_size, float lr, "
      "float clip, float decay, int[] cu_seqlens, str algorithm, int scan_group) -> (Tensor, Tensor, Tensor)");
  m.def("ttt_reference(Tensor Z, Tensor V, Tensor W0, int chunk_size, float lr, float clip, float decay, int[] cu_seqlens) "
        "-> Tensor",
        torch::dispatch(c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(ttt_reference)));
  m.def(
      "build_target(Tensor X, Tensor? conv_weight, Tensor? proj, int chunk_size, str kind, str padding, "
      "int[] cu_seqlens) -> Tensor");
  m.def(
      "build_target_backward(Tensor grad_out, Tensor X, Tensor? conv_weight, Tensor? proj, int chunk_size, "
      "str kind, str padding, int[] cu_seqlens) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(inplace_ttt, CPU, m) {
  m.impl("ttt_forward", TORCH_FN(ttt_forward));
  m.impl("ttt_backward", TORCH_FN(ttt_backward));
  m.impl("build_target", TORCH_FN(build_target));
  m.impl("build_target_backward", TORCH_FN(build_target_backward));
}

TORCH_LIBRARY_IMPL(inplace_ttt, CUDA, m) {
  m.impl("ttt_forward", TORCH_FN(ttt_forward));
  m.impl("ttt_backward", TORCH_FN(ttt_backward));
  m.impl("build_target", TORCH_FN(build_target));
  m.impl("build_target_backward", TORCH_FN(build_target_backward));
}
