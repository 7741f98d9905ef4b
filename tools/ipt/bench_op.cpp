// ipt bench op: the TTT operator's algorithms, forward and forward+backward, each in a child
// process of its own so that its peak memory (ru_maxrss) is its own.
#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "command.h"
#include "model_flags.h"
#include "worker.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/bench/flops.h"
#include "ipt/bench/gemm.h"
#include "ipt/model/checkpoint.h"
#include "ipt/ops/ttt/ttt.h"

namespace ipt::cli {
namespace {

struct OpBenchOptions {
  int64_t L = 32768, d = 1024, h = 4096, chunk = 256, scan_group = 8;
  double lr = 0.3, clip = 0.0;
  int repeat = 1;
  std::vector<std::string> algorithms{"reference", "recurrent", "scan"};
  bool json = false;
  std::string dtype = "float32";  // the inputs' type: bfloat16 runs the mixed operator (bf16 products, float32 masters)
  std::string worker;  // internal: run one algorithm and print one JSON line
  DeviceFlag device;
};

// One algorithm, in this process: fwd (no grad) and fwd+bwd, best of `repeat`; then peak RSS.
nlohmann::json measure_algorithm(const OpBenchOptions& o) {
  ttt::Options opt;
  opt.chunk_size = o.chunk;
  opt.lr = o.lr;
  opt.clip = o.clip;
  opt.algorithm = ttt::parse_algorithm(o.worker);
  opt.scan_group = o.scan_group;
  torch::manual_seed(0);
  // Scaled like real activations so that updates stay finite over many chunks.
  const torch::Dtype dtype = model::parse_dtype(o.dtype);
  const torch::Device device = o.device.resolve("bench op", false);
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
  const double flops = bench::ttt_operator_flops(o.L, o.d, o.h);
  // On a GPU the peak is the caching allocator's (inputs included), on the CPU the process's RSS.
  return {{"algorithm", o.worker},         {"dtype", o.dtype}, {"device", describe_device(device)},
          {"fwd_ms", fwd_ms},
          {"fwdbwd_ms", fwdbwd_ms},        {"peak_mb", device.is_cuda() ? cuda_peak_allocated_mb(device) : peak_rss_mb()},
          {"inputs_mb", inputs_mb},        {"fwd_gflops", flops / (fwd_ms * 1e-3) / 1e9}};
}

nlohmann::json spawn_worker(const OpBenchOptions& o, const std::string& algorithm) {
  std::ostringstream args;
  args << "bench op --worker " << algorithm << " --L " << o.L << " --d " << o.d << " --h " << o.h << " --chunk "
       << o.chunk << " --lr " << o.lr << " --clip " << o.clip << " --scan-group " << o.scan_group << " --repeat "
       << o.repeat << " --dtype " << o.dtype;
  return run_worker(args.str());
}

int run(const OpBenchOptions& o) {
  if (!o.worker.empty()) {
    std::cout << measure_algorithm(o).dump() << std::endl;
    return 0;
  }
  for (const auto& a : o.algorithms) ttt::parse_algorithm(a);  // fail before any work
  nlohmann::json report;
  const torch::Device device = o.device.resolve("bench op", !o.json);  // the workers inherit it
  report["dtype"] = o.dtype;  // % of GEMM is against the GEMM rate in this dtype, on this device
  report["device"] = describe_device(device);
  report["gemm_gflops"] = measure_gemm_gflops(device.is_cuda() ? 8192 : 2048, 5, model::parse_dtype(o.dtype), device);
  report["config"] = {{"L", o.L}, {"d", o.d}, {"h", o.h}, {"chunk", o.chunk}, {"scan_group", o.scan_group},
                      {"clip", o.clip}, {"threads", at::get_num_threads()}};
  report["results"] = nlohmann::json::array();
  for (const auto& a : o.algorithms) report["results"].push_back(spawn_worker(o, a));

  if (o.json) {
    std::cout << report.dump(2) << std::endl;
    return 0;
  }
  std::cout << "TTT operator  L=" << o.L << " d=" << o.d << " h=" << o.h << " chunk=" << o.chunk
            << " scan_group=" << o.scan_group << " threads=" << at::get_num_threads() << " dtype=" << o.dtype
            << " device=" << report["device"].get<std::string>()
            << "  GEMM " << std::fixed << std::setprecision(1) << report["gemm_gflops"].get<double>()
            << " GFLOP/s\n\n";
  std::cout << "| algorithm | fwd ms | fwd GFLOP/s | % of GEMM | fwd+bwd ms | peak MB |\n"
            << "|-----------|-------:|------------:|----------:|-----------:|--------:|\n";
  for (const auto& r : report["results"]) {
    std::cout << "| " << std::left << std::setw(9) << r["algorithm"].get<std::string>() << std::right << " | "
              << std::setw(6) << std::setprecision(0) << r["fwd_ms"].get<double>() << " | " << std::setw(11)
              << std::setprecision(1) << r["fwd_gflops"].get<double>() << " | " << std::setw(8)
              << 100.0 * r["fwd_gflops"].get<double>() / report["gemm_gflops"].get<double>() << "% | "
              << std::setw(10) << std::setprecision(0) << r["fwdbwd_ms"].get<double>() << " | " << std::setw(7)
              << r["peak_mb"].get<double>() << " |\n";
  }
  return 0;
}

Register bench_op("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<OpBenchOptions>();
  CLI::App* cmd = parent.add_subcommand("op", "TTT operator: reference vs recurrent vs scan, time and peak memory");
  cmd->add_option("--L", o->L, "sequence length")->check(CLI::PositiveNumber);
  cmd->add_option("--d", o->d, "hidden size")->check(CLI::PositiveNumber);
  cmd->add_option("--h", o->h, "MLP intermediate size")->check(CLI::PositiveNumber);
  cmd->add_option("--chunk", o->chunk, "TTT chunk size")->check(CLI::PositiveNumber);
  cmd->add_option("--scan-group", o->scan_group, "chunks in flight for the scan (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--lr", o->lr, "TTT learning rate");
  cmd->add_option("--clip", o->clip, "update clip (0 = off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--repeat", o->repeat, "best of N runs")->check(CLI::PositiveNumber);
  cmd->add_option("--algorithms", o->algorithms, "which algorithms to run")->delimiter(',');
  cmd->add_option("--dtype", o->dtype, "inputs' type: float32, or bfloat16 (bf16 products, float32 fast-weight masters)")
      ->check(CLI::IsMember({"float32", "bfloat16"}));
  o->device.add_to(cmd);
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_option("--worker", o->worker)->group("");  // internal
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
