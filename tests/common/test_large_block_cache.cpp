// The large-block cache as libtorch's CPU allocator: freed large blocks come back for the next tensor
// of about their size, within the byte budget; small tensors and raw allocations still work; blocks
// are never shared between live tensors, also when threads allocate at once.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <c10/core/CPUAllocator.h>

#include <cstring>
#include <thread>
#include <vector>

#include "ipt/common/large_block_cache.h"

namespace {

constexpr int64_t kMiB = 1 << 20;

torch::Tensor bytes_tensor(int64_t mib) { return torch::empty({mib * kMiB}, torch::kUInt8); }

class LargeBlockCache : public ::testing::Test {
 protected:
  void SetUp() override {
    ipt::install_large_block_cache(size_t{256} << 20);
    ipt::release_large_block_cache();
  }
  void TearDown() override { ipt::release_large_block_cache(); }
};

}  // namespace

TEST_F(LargeBlockCache, AFreedBlockServesTheNextTensorOfAboutItsSize) {
  ASSERT_TRUE(ipt::large_block_cache_installed());
  const auto before = ipt::large_block_cache_stats();
  void* first = nullptr;
  {
    torch::Tensor t = bytes_tensor(40);
    first = t.data_ptr();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % (2 * kMiB), 0u);  // huge-page aligned
    t.fill_(7);
    EXPECT_EQ(ipt::large_block_cache_stats().live_bytes, before.live_bytes + 40 * kMiB);
  }
  EXPECT_EQ(ipt::large_block_cache_stats().cached_bytes, size_t(40 * kMiB));
  {
    torch::Tensor same = bytes_tensor(40);
    EXPECT_EQ(same.data_ptr(), first);
    torch::Tensor smaller = bytes_tensor(36);  // cache now empty: a new block
    EXPECT_NE(smaller.data_ptr(), first);
  }
  {
    torch::Tensor t = bytes_tensor(36);  // the 36 MiB block: exact fit, before the 40 MiB one
    torch::Tensor u = bytes_tensor(33);  // the 40 MiB block: within a quarter of the request
    EXPECT_EQ(u.data_ptr(), first);
    torch::Tensor big = bytes_tensor(60);  // nothing within a quarter: a new block
    EXPECT_NE(big.data_ptr(), first);
    u.fill_(1);
    t.fill_(2);
    big.fill_(3);
    EXPECT_EQ(u.min().item<int64_t>(), 1);  // min and max: no large temporaries
    EXPECT_EQ(u.max().item<int64_t>(), 1);
    EXPECT_EQ(t.min().item<int64_t>(), 2);
    EXPECT_EQ(t.max().item<int64_t>(), 2);
  }
  const auto after = ipt::large_block_cache_stats();
  EXPECT_EQ(after.hits - before.hits, 3u);
  EXPECT_EQ(after.misses - before.misses, 3u);
  EXPECT_EQ(after.live_bytes, before.live_bytes);
  EXPECT_LE(after.cached_bytes, size_t{256} << 20);
}

TEST_F(LargeBlockCache, TheBudgetBoundsWhatIsKept) {
  ipt::install_large_block_cache(size_t{100} << 20);  // a later call only changes the budget
  {
    std::vector<torch::Tensor> blocks;
    for (int i = 0; i < 4; ++i) blocks.push_back(bytes_tensor(40));
  }
  EXPECT_EQ(ipt::large_block_cache_stats().cached_bytes, size_t(80 * kMiB));  // two of four fit
  { torch::Tensor huge = bytes_tensor(200); }  // larger than the budget: unmapped on free
  EXPECT_LE(ipt::large_block_cache_stats().cached_bytes, size_t{100} << 20);
  ipt::install_large_block_cache(0);
  EXPECT_EQ(ipt::large_block_cache_stats().cached_bytes, 0u);
  { torch::Tensor t = bytes_tensor(40); }
  EXPECT_EQ(ipt::large_block_cache_stats().cached_bytes, 0u);
  ipt::install_large_block_cache(size_t{256} << 20);
}

TEST_F(LargeBlockCache, SmallTensorsAndRawAllocationsStillWork) {
  const auto before = ipt::large_block_cache_stats();
  torch::Tensor small = torch::arange(1000, torch::kFloat32);
  EXPECT_FLOAT_EQ(small.sum().item<float>(), 499500.0f);
  c10::Allocator* allocator = c10::GetCPUAllocator();
  for (size_t bytes : {size_t{4096}, size_t{48} << 20}) {
    void* raw = allocator->raw_allocate(bytes);
    std::memset(raw, 1, bytes);
    allocator->raw_deallocate(raw);
  }
  const auto after = ipt::large_block_cache_stats();
  EXPECT_EQ(after.misses - before.misses, 1u);  // only the 48 MiB block went through the cache
  EXPECT_EQ(after.live_bytes, before.live_bytes);
}

TEST_F(LargeBlockCache, ThreadsNeverShareALiveBlock) {
  // Each thread fills its tensors with its own value and checks them after the others ran.
  auto work = [](int id, bool* ok) {
    for (int round = 0; round < 20; ++round) {
      torch::Tensor t = bytes_tensor(33 + (round + id) % 8);
      t.fill_(id + 1);
      std::this_thread::yield();
      if (t.min().item<int64_t>() != id + 1 || t.max().item<int64_t>() != id + 1) *ok = false;
    }
  };
  bool ok[4] = {true, true, true, true};
  std::vector<std::thread> threads;
  for (int id = 0; id < 4; ++id) threads.emplace_back(work, id, &ok[id]);
  for (auto& t : threads) t.join();
  for (bool b : ok) EXPECT_TRUE(b);
  EXPECT_EQ(ipt::large_block_cache_stats().live_bytes, 0u);
}
