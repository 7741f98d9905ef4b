#include "ipt/bench/op.h"

#include <torch/torch.h>

#include <cmath>
#include <iomanip>
#include <sstream>

#include "ipt/bench/flops.h"
#include "ipt/bench/gemm.h"
#include "ipt/common/device.h"
#include "ipt/common/runtime.h"
#include "ipt/common/stopwatch.h"
#include "ipt/model/checkpoint.h"
#include "ipt/ops/ttt/ttt.h"

namespace ipt::bench {

nlohmann::json measure_op_algorithm(const OpOptions& o, const std::string& algorithm, const c10::Device& device) {
  ttt::Options opt;
  opt.chunk_size = o.chunk;
  opt.lr = o.lr;
  opt.clip = o.clip;
  opt.algorithm = ttt::parse_algorithm(algorithm);
  opt.scan_group = o.scan_group;
  torch::manual_seed(0);
  // Scaled like real activations so that updates stay finite over many chunks.
  const torch::Dtype dtype = model::parse_dtype(o.dtype);
  torch::Tensor Z = (torch::randn({1, o.L, o.h}) / std::sqrt(double(o.h))).to(device, dtype);
  torch::Tensor V = (torch::randn({1, o.L, o.d}) / std::sqrt(double(o.L))).to(device, dtype);
  torch::Tensor W0 = (torch::randn({o.d, o.h}) / std::sqrt(double(o.h))).to(device, dtype);
  torch::Tensor upstream = torch::randn({1, o.L, o.d}).to(device, dtype);
  const double inputs_mb = device.is_cuda() ? cuda_peak_allocated_mb(device) : peak_rss_mb();
  if (device.is_cuda()) {  // the kernels' first launch (cuBLAS handles, workspaces) outside the timing
    torch::NoGradGuard no_grad;
    ttt::apply(Z.narrow(1, 0, 2 * o.chunk), V.narrow(1, 0, 2 * o.chunk), W0, opt);
    synchronize(device);
    reset_cuda_peak(device);
  }

  double fwd_ms = 1e300, fwdbwd_ms = 1e300;
  for (int r = 0; r < o.repeat; ++r) {
    torch::NoGradGuard no_grad;
    Stopwatch watch;
    torch::Tensor out = ttt::apply(Z, V, W0, opt).out;
    synchronize(device);
    fwd_ms = std::min(fwd_ms, watch.ms());
  }
  Z.requires_grad_(true);
  V.requires_grad_(true);
  W0.requires_grad_(true);
  for (int r = 0; r < o.repeat; ++r) {
    Z.mutable_grad() = torch::Tensor();
    V.mutable_grad() = torch::Tensor();
    W0.mutable_grad() = torch::Tensor();
    Stopwatch watch;
    torch::Tensor out = ttt::apply(Z, V, W0, opt).out;
    out.backward(upstream);
    synchronize(device);
    fwdbwd_ms = std::min(fwdbwd_ms, watch.ms());
  }
  const double flops = ttt_operator_flops(o.L, o.d, o.h);
  // On a GPU the peak is the caching allocator's (inputs included), on the CPU the process's RSS.
  return {{"algorithm", algorithm},        {"dtype", o.dtype}, {"device", describe_device(device)},
          {"fwd_ms", fwd_ms},
          {"fwdbwd_ms", fwdbwd_ms},        {"peak_mb", device.is_cuda() ? cuda_peak_allocated_mb(device) : peak_rss_mb()},
          {"inputs_mb", inputs_mb},        {"fwd_gflops", flops / (fwd_ms * 1e-3) / 1e9}};
}

std::string op_worker_args(const OpOptions& o, const std::string& algorithm) {
  std::ostringstream args;
  args << "bench op --worker " << algorithm << " --L " << o.L << " --d " << o.d << " --h " << o.h << " --chunk "
       << o.chunk << " --lr " << o.lr << " --clip " << o.clip << " --scan-group " << o.scan_group << " --repeat "
       << o.repeat << " --dtype " << o.dtype;
  return args.str();
}

void check_op_options(const OpOptions& o) {
  for (const auto& a : o.algorithms) ttt::parse_algorithm(a);
}

nlohmann::json run_op(const OpOptions& o, const c10::Device& device, const WorkerLauncher& workers) {
  check_op_options(o);  // fail before any work
  nlohmann::json report;
  report["dtype"] = o.dtype;  // % of GEMM is against the GEMM rate in this dtype, on this device
  report["device"] = describe_device(device);
  report["gemm_gflops"] = measure_gemm_gflops(device.is_cuda() ? 8192 : 2048, 5, model::parse_dtype(o.dtype), device);
  report["config"] = {{"L", o.L}, {"d", o.d}, {"h", o.h}, {"chunk", o.chunk}, {"scan_group", o.scan_group},
                      {"clip", o.clip}, {"threads", at::get_num_threads()}};
  report["results"] = nlohmann::json::array();
  for (const auto& a : o.algorithms) report["results"].push_back(workers.run(op_worker_args(o, a)));
  return report;
}

void print_op_table(const OpOptions& o, const nlohmann::json& report, std::ostream& out) {
  out << "TTT operator  L=" << o.L << " d=" << o.d << " h=" << o.h << " chunk=" << o.chunk
      << " scan_group=" << o.scan_group << " threads=" << at::get_num_threads() << " dtype=" << o.dtype
      << " device=" << report["device"].get<std::string>() << "  GEMM " << std::fixed << std::setprecision(1)
      << report["gemm_gflops"].get<double>() << " GFLOP/s\n\n";
  out << "| algorithm | fwd ms | fwd GFLOP/s | % of GEMM | fwd+bwd ms | peak MB |\n"
      << "|-----------|-------:|------------:|----------:|-----------:|--------:|\n";
  for (const auto& r : report["results"]) {
    out << "| " << std::left << std::setw(9) << r["algorithm"].get<std::string>() << std::right << " | "
        << std::setw(6) << std::setprecision(0) << r["fwd_ms"].get<double>() << " | " << std::setw(11)
        << std::setprecision(1) << r["fwd_gflops"].get<double>() << " | " << std::setw(8)
        << 100.0 * r["fwd_gflops"].get<double>() / report["gemm_gflops"].get<double>() << "% | " << std::setw(10)
        << std::setprecision(0) << r["fwdbwd_ms"].get<double>() << " | " << std::setw(7) << r["peak_mb"].get<double>()
        << " |\n";
  }
}

}  // namespace ipt::bench
