#pragma once
// The machine's measured matrix-product rate: the ceiling the benchmarks report MFU against (not a
// nominal peak: on a shared machine it varies from run to run, so it is measured in the same run).
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "ipt/common/stopwatch.h"
#include "ipt/model/config.h"

namespace ipt::bench {

// n x n x n products into reused memory in `dtype`, best of `repeats`.
double measure_gemm_gflops(int n = 2048, int repeats = 5, c10::ScalarType dtype = c10::ScalarType::Float,
                           const c10::Device& device = c10::Device(c10::kCPU));

// At a model's prefill shapes: `rows` rows through the MLP's up and down projections, in `dtype`.
double measure_mlp_gemm_gflops(const model::ModelConfig& config, int64_t rows, c10::ScalarType dtype,
                               const c10::Device& device);

}  // namespace ipt::bench
