#pragma once
// Which device a command runs on (--device): the CPU, or a GPU when libtorch was built with CUDA
// (the torch2 build) and the machine has one.
#include <torch/torch.h>

#include <string>

namespace ipt {

// "cpu", "cuda", "cuda:N", or "auto" (cuda:0 when a GPU can be used, else the CPU). A GPU that
// cannot be used is an error that says why: this libtorch has no CUDA (Debian's, the default
// build), no GPU is visible, or the index is past the number of GPUs.
torch::Device parse_device(const std::string& name);

// This libtorch has CUDA and sees at least one GPU.
bool cuda_usable();

// "cpu" or "cuda:0 (NVIDIA H200, 139.8 GiB)": what a command says it runs on.
std::string describe_device(const torch::Device& device);

// Waits for the device's queued work (a no-op on the CPU): timings and peak-memory readings.
void synchronize(const torch::Device& device);

// Peak memory the caching allocator has handed out on a GPU since the last reset, in MiB (0 on the
// CPU, where peak_rss_mb() measures); and its reset.
double cuda_peak_allocated_mb(const torch::Device& device);
void reset_cuda_peak(const torch::Device& device);

}  // namespace ipt
