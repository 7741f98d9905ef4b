#include "ipt/eval/timing.h"

#include <torch/torch.h>

#include "ipt/common/device.h"

namespace ipt {

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

}  // namespace ipt
