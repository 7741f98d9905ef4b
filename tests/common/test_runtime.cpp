// SerialTorchScope: libtorch's parallel regions from this thread run on it alone while the scope
// lives, and the thread count comes back after it (also when scopes nest); other threads keep theirs.
#include <gtest/gtest.h>
#include <omp.h>
#include <torch/torch.h>

#include <thread>

#include "ipt/common/runtime.h"

TEST(SerialTorchScope, OneThreadInsideAndTheCountRestoredAfter) {
  at::get_num_threads();  // libtorch sets its count on first use: let that happen before ours
  omp_set_num_threads(3);
  ASSERT_EQ(at::get_num_threads(), 3);
  int other_before = 0;
  std::thread([&] { other_before = omp_get_max_threads(); }).join();
  {
    ipt::SerialTorchScope serial;
    EXPECT_EQ(at::get_num_threads(), 1);
    int seen = 0;
    at::parallel_for(0, 1 << 20, 1, [&](int64_t, int64_t) {
#pragma omp atomic
      ++seen;
    });
    EXPECT_EQ(seen, 1);  // one chunk: the region ran on this thread alone
    {
      ipt::SerialTorchScope nested;
      EXPECT_EQ(at::get_num_threads(), 1);
    }
    EXPECT_EQ(at::get_num_threads(), 1);
    int other = 0;
    std::thread([&] { other = omp_get_max_threads(); }).join();
    EXPECT_EQ(other, other_before);  // another thread's count is not this scope's business
  }
  EXPECT_EQ(at::get_num_threads(), 3);
}
