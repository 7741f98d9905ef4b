#pragma once
// Small measuring helpers shared by the benchmarks.
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <chrono>

namespace ipt {

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double ms() const {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Matrix-product rate of this machine in `dtype`, measured now (n x n x n products into reused memory).
double measure_gemm_gflops(int n = 2048, int repeats = 5, c10::ScalarType dtype = c10::ScalarType::Float,
                           const c10::Device& device = c10::Device(c10::kCPU));

}  // namespace ipt
