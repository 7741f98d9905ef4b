#include "ipt/common/runtime.h"

#include <atomic>

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>
#include <omp.h>
#include <sys/resource.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "ipt/common/error.h"
#include "ipt/common/large_block_cache.h"

namespace ipt {

namespace {

// OpenBLAS keeps its own thread pool, separate from libtorch's OpenMP one; find it at run time
// because which BLAS backs libblas.so.3 is a Debian alternative, not a build-time fact.
void set_blas_threads(int threads) {
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(threads);
}

void tune_allocator() {
  // By default glibc mmaps blocks from 128 KiB up and unmaps them on free, so every new tensor
  // pays a page fault per 4 KiB on first touch. Serve blocks up to 32 MiB (glibc's maximum
  // threshold) from the heap and keep up to 1 GiB of freed heap for reuse. Larger tensors get their
  // own mappings from the large-block cache, which keeps up to 1 GiB of them for the next tensor of
  // about their size (putting them on the heap instead, M_MMAP_MAX = 0, fragmented it badly in
  // measurements: docs/runtime.md).
  mallopt(M_MMAP_THRESHOLD, kLargeBlockBytes);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  install_large_block_cache(size_t{1} << 30);
}

std::atomic<int> runtime_threads{0};  // set by init_runtime

}  // namespace

int compute_threads() {
  const int threads = runtime_threads.load();
  return threads > 0 ? threads : at::get_num_threads();
}

SerialTorchScope::SerialTorchScope() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
SerialTorchScope::~SerialTorchScope() { omp_set_num_threads(saved_); }

void init_runtime(const RuntimeOptions& options) {
  static bool allocator_done = false;
  if (options.tune_allocator && !allocator_done) {
    tune_allocator();
    allocator_done = true;
  }
  IPT_CHECK(options.threads >= 0, "threads must be >= 0 (0 = all cores), got ", options.threads);
  int threads = options.threads;
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  set_blas_threads(threads);
  runtime_threads.store(threads);
}

std::string cpu_bf16_features() {
  static const std::string features = [] {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    std::set<std::string> found;
    while (std::getline(cpuinfo, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line.substr(line.find(':') + 1));
      for (std::string w; words >> w;)
        if (w == "amx_bf16" || w == "avx512_bf16") found.insert(w);
      break;  // every core lists the same flags
    }
    std::string out;
    for (const auto& f : found) out += (out.empty() ? "" : " ") + f;
    return out;
  }();
  return features;
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is KiB on Linux
}

}  // namespace ipt
