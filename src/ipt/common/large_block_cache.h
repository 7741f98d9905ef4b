#pragma once
// A libtorch CPU allocator that keeps freed large blocks for the next tensor of about their size.
//
// glibc serves blocks above its mmap threshold (at most 32 MiB) with a fresh mmap and unmaps them on
// free, so a tensor of that size pays a page fault and a page clear per 4 KiB on first touch, every
// time: the logits, the embedding's gradient and the optimizer's temporaries of a training step, the
// attention scores of a long prefill. Measured on SmolLM2-135M training, a third of the step was
// spent in the kernel. This allocator maps such blocks itself (with transparent huge pages where the
// kernel offers them on request) and, on free, keeps them, up to a byte budget, for reuse.
// Smaller blocks go to libtorch's default allocator unchanged (glibc's heap already reuses them).
#include <cstddef>
#include <cstdint>

namespace ipt {

struct LargeBlockCacheStats {
  size_t cached_bytes = 0;  // freed blocks held for reuse
  size_t live_bytes = 0;    // blocks handed out and not yet freed
  uint64_t hits = 0;        // allocations served from the cache
  uint64_t misses = 0;      // allocations that mapped a new block
};

// Blocks of at least this many bytes go through the cache (glibc's largest mmap threshold).
constexpr size_t kLargeBlockBytes = size_t{32} << 20;

// Makes the cache libtorch's CPU allocator, holding at most `budget_bytes` of freed blocks. The first
// call installs it; later calls only change the budget (0 keeps nothing, freeing on release).
void install_large_block_cache(size_t budget_bytes);
// Whether install_large_block_cache has run in this process.
bool large_block_cache_installed();
// Unmaps every cached block (live blocks are untouched).
void release_large_block_cache();
LargeBlockCacheStats large_block_cache_stats();

}  // namespace ipt
