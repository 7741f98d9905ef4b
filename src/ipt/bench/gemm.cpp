#include "ipt/bench/gemm.h"

#include <torch/torch.h>

#include "ipt/common/device.h"

namespace ipt::bench {

double measure_gemm_gflops(int n, int repeats, c10::ScalarType dtype, const c10::Device& device) {
  torch::NoGradGuard no_grad;
  torch::Tensor a = torch::randn({n, n}).to(device, dtype), b = torch::randn({n, n}).to(device, dtype);
  torch::Tensor c = torch::empty({n, n}, a.options());
  at::mm_out(c, a, b);  // warm-up: first touch of c, BLAS thread start (cuBLAS handle on a GPU)
  synchronize(device);
  double best_ms = 1e300;
  for (int i = 0; i < repeats; ++i) {
    Stopwatch watch;
    at::mm_out(c, a, b);
    synchronize(device);
    best_ms = std::min(best_ms, watch.ms());
  }
  return 2.0 * n * n * n / (best_ms * 1e-3) / 1e9;
}

double measure_mlp_gemm_gflops(const model::ModelConfig& c, int64_t rows, c10::ScalarType dtype,
                               const c10::Device& device) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({rows, c.hidden_size}).to(device, dtype);
  const torch::Tensor up = torch::randn({c.intermediate_size, c.hidden_size}).to(device, dtype);
  const torch::Tensor mid = torch::randn({rows, c.intermediate_size}).to(device, dtype);
  const torch::Tensor down = torch::randn({c.hidden_size, c.intermediate_size}).to(device, dtype);
  auto once = [&] {
    torch::nn::functional::linear(x, up);
    torch::nn::functional::linear(mid, down);
  };
  once();
  double best = 0;
  for (int trial = 0; trial < 5; ++trial) {
    synchronize(device);
    Stopwatch watch;
    for (int i = 0; i < 4; ++i) once();
    synchronize(device);
    best = std::max(best, 4 * 4.0 * rows * c.hidden_size * c.intermediate_size / (watch.ms() / 1000) / 1e9);
  }
  return best;
}

}  // namespace ipt::bench
