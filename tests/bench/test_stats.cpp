// bench/stats: the one percentile, against the sorted-array definition (the element at index
// round(p · (n − 1)) of the sorted values), at n = 0, 1, 2 and on random samples, p at and between
// the ends; the input's order does not matter.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "ipt/bench/stats.h"
#include "ipt/common/error.h"
#include "support/expect_error.h"

using ipt::bench::median;
using ipt::bench::percentile;
using ipt::bench::percentile_of_sorted;

namespace {

// The definition, written out plainly.
double reference(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double position = p * static_cast<double>(values.size() - 1);
  return values[static_cast<size_t>(std::floor(position + 0.5))];
}

}  // namespace

TEST(Percentile, NoValuesIsZero) {
  EXPECT_EQ(percentile({}, 0.5), 0);
  EXPECT_EQ(percentile_of_sorted({}, 0.99), 0);
}

TEST(Percentile, OneValueIsEveryPercentile) {
  for (double p : {0.0, 0.01, 0.5, 0.9, 0.99, 1.0}) EXPECT_EQ(percentile({7.5}, p), 7.5) << p;
}

TEST(Percentile, EndsAreTheMinimumAndMaximum) {
  const std::vector<double> values{3, 1, 4, 1, 5, 9, 2, 6};
  EXPECT_EQ(percentile(values, 0), 1);
  EXPECT_EQ(percentile(values, 1), 9);
  EXPECT_EQ(percentile({2, 1}, 0), 1);
  EXPECT_EQ(percentile({2, 1}, 1), 2);
}

TEST(Percentile, MedianIsTheMiddleOrTheUpperMiddle) {
  EXPECT_EQ(median({5, 1, 3}), 3);
  EXPECT_EQ(median({4, 1, 3, 2}), 3);  // index round(1.5) = 2 of 1 2 3 4
  EXPECT_EQ(median({2, 1}), 2);
}

TEST(Percentile, MatchesTheSortedArrayDefinition) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> value(-100, 100);
  for (size_t n : {1, 2, 3, 10, 99, 100, 1000}) {
    std::vector<double> values(n);
    for (double& v : values) v = value(rng);
    std::vector<double> sorted = values;
    std::sort(sorted.begin(), sorted.end());
    for (double p : {0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0}) {
      EXPECT_EQ(percentile(values, p), reference(values, p)) << "n " << n << " p " << p;
      EXPECT_EQ(percentile_of_sorted(sorted, p), reference(values, p)) << "n " << n << " p " << p;
    }
  }
}

TEST(Percentile, OutsideZeroToOneIsRefused) {
  ipt::test::expect_error([] { percentile({1, 2}, 1.5); }, "p must be in [0, 1]");
  ipt::test::expect_error([] { percentile({1, 2}, -0.1); }, "p must be in [0, 1]");
}
