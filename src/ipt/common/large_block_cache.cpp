#include "ipt/common/large_block_cache.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>

#include <map>
#include <mutex>
#include <unordered_map>

#include "ipt/common/torch_compat.h"

namespace ipt {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// A 2 MiB-aligned anonymous mapping of `bytes` (a multiple of 2 MiB), so that the kernel can back it
// with huge pages; nullptr when the system refuses.
void* map_block(size_t bytes) {
  void* raw = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = round_up(start, kHugePage);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + bytes + kHugePage;
  if (end > aligned + bytes) munmap(reinterpret_cast<void*>(aligned + bytes), end - (aligned + bytes));
  madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // advice: fine if refused
  return reinterpret_cast<void*>(aligned);
}

class LargeBlockCache final : public c10::Allocator {
 public:
#if IPT_TORCH2
  c10::DataPtr allocate(size_t n) override { return allocate_impl(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
#else
  c10::DataPtr allocate(size_t n) const override { return const_cast<LargeBlockCache*>(this)->allocate_impl(n); }
#endif
  c10::DeleterFnPtr raw_deleter() const override { return &free_any; }

  void set_budget(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    budget_ = bytes;
    evict_to(budget_);
  }
  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    evict_to(0);
  }
  LargeBlockCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  static LargeBlockCache& instance() {
    static auto* cache = new LargeBlockCache;  // never destroyed: tensors may be freed during exit
    return *cache;
  }

 private:
  c10::DataPtr allocate_impl(size_t n) {
    if (n < kLargeBlockBytes) return c10::GetDefaultCPUAllocator()->allocate(n);
    void* block = take(round_up(n, kHugePage));
    return {block, block, &free_any, c10::Device(c10::DeviceType::CPU)};
  }

  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // The smallest cached block that fits and wastes at most a quarter of the request.
      auto it = free_.lower_bound(bytes);
      if (it != free_.end() && it->first <= bytes + bytes / 4) {
        void* block = it->second;
        stats_.cached_bytes -= it->first;
        stats_.live_bytes += it->first;
        live_[block] = it->first;
        free_.erase(it);
        ++stats_.hits;
        return block;
      }
      // A miss: make room so that what is cached and this block together stay within the budget.
      evict_to(budget_ > bytes ? budget_ - bytes : 0);
    }
    void* block = map_block(bytes);
    if (block == nullptr) {
      release();
      block = map_block(bytes);
    }
    TORCH_CHECK(block != nullptr, "CPU allocator: out of memory allocating ", bytes, " bytes");
    std::lock_guard<std::mutex> lock(mutex_);
    live_[block] = bytes;
    stats_.live_bytes += bytes;
    ++stats_.misses;
    return block;
  }

  // Deleter of every DataPtr this allocator hands out, and its raw deleter: small blocks came from
  // the default allocator and go back to it.
  static void free_any(void* block) {
    LargeBlockCache& cache = instance();
    {
      std::lock_guard<std::mutex> lock(cache.mutex_);
      auto it = cache.live_.find(block);
      if (it != cache.live_.end()) {
        const size_t bytes = it->second;
        cache.live_.erase(it);
        cache.stats_.live_bytes -= bytes;
        if (bytes <= cache.budget_) {
          cache.evict_to(cache.budget_ - bytes);
          cache.free_.emplace(bytes, block);
          cache.stats_.cached_bytes += bytes;
          return;
        }
        munmap(block, bytes);
        return;
      }
    }
    c10::GetDefaultCPUAllocator()->raw_deleter()(block);
  }

  // Unmaps cached blocks, largest first, until at most `bytes` remain. Caller holds the mutex.
  void evict_to(size_t bytes) {
    while (stats_.cached_bytes > bytes && !free_.empty()) {
      auto last = std::prev(free_.end());
      munmap(last->second, last->first);
      stats_.cached_bytes -= last->first;
      free_.erase(last);
    }
  }

  std::mutex mutex_;
  size_t budget_ = 0;
  std::multimap<size_t, void*> free_;         // cached blocks by size
  std::unordered_map<void*, size_t> live_;    // blocks handed out, with their mapped size
  LargeBlockCacheStats stats_;
};

bool installed = false;

}  // namespace

void install_large_block_cache(size_t budget_bytes) {
  LargeBlockCache& cache = LargeBlockCache::instance();
  cache.set_budget(budget_bytes);
  if (!installed) {
    c10::SetCPUAllocator(&cache, /*priority=*/1);
    installed = true;
  }
}

bool large_block_cache_installed() { return installed; }

void release_large_block_cache() { LargeBlockCache::instance().release(); }

LargeBlockCacheStats large_block_cache_stats() { return LargeBlockCache::instance().stats(); }

}  // namespace ipt
