#include "ipt/common/device.h"

#include <torch/cuda.h>

#include <cstdio>
#include <cstdlib>

#include "ipt/common/error.h"

#ifdef IPT_WITH_CUDA  // the torch2 build against a CUDA libtorch (CMakeLists.txt)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace ipt {

namespace {

bool built_with_cuda() {
#ifdef IPT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

bool cuda_usable() { return built_with_cuda() && torch::cuda::is_available(); }

torch::Device parse_device(const std::string& name) {
  if (name == "auto") return cuda_usable() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (name == "cpu") return torch::Device(torch::kCPU);
  IPT_CHECK(name.rfind("cuda", 0) == 0, "unknown device '", name, "': expected auto, cpu, cuda or cuda:N");
  int64_t index = 0;
  if (name.size() > 4) {
    IPT_CHECK(name[4] == ':' && name.size() > 5, "unknown device '", name, "': expected auto, cpu, cuda or cuda:N");
    char* end = nullptr;
    index = std::strtoll(name.c_str() + 5, &end, 10);
    IPT_CHECK(*end == '\0' && index >= 0, "device '", name, "': the GPU index must be a number >= 0");
  }
  IPT_CHECK(built_with_cuda(), "device '", name,
            "': this build of ipt has no CUDA (it links Debian's CPU libtorch); build the CUDA one with "
            "`make build-torch2` (docs/gpu.md)");
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  IPT_CHECK(count > 0, "device '", name, "': no GPU is visible (torch::cuda::device_count() is 0; check the driver "
            "and CUDA_VISIBLE_DEVICES)");
  IPT_CHECK(index < count, "device '", name, "': there are only ", count, " GPU(s) (cuda:0 .. cuda:", count - 1, ")");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

std::string describe_device(const torch::Device& device) {
  if (!device.is_cuda()) return "cpu";
#ifdef IPT_WITH_CUDA
  const cudaDeviceProp* p = at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index());
  char memory[32];
  std::snprintf(memory, sizeof memory, "%.1f GiB", static_cast<double>(p->totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return "cuda:" + std::to_string(device.index() < 0 ? 0 : device.index()) + " (" + p->name + ", " + memory + ")";
#else
  return device.str();
#endif
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

double cuda_peak_allocated_mb(const torch::Device& device) {
#ifdef IPT_WITH_CUDA
  if (!device.is_cuda()) return 0.0;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
  return static_cast<double>(stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak) /
         (1024.0 * 1024.0);
#else
  return 0.0;
#endif
}

void reset_cuda_peak(const torch::Device& device) {
#ifdef IPT_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#endif
}

}  // namespace ipt
