#include "ipt/bench/stats.h"

#include <algorithm>

#include "ipt/common/error.h"

namespace ipt::bench {

double percentile_of_sorted(const std::vector<double>& sorted, double p) {
  IPT_CHECK(p >= 0 && p <= 1, "percentile: p must be in [0, 1], got ", p);
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5));
  return sorted[i];
}

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return percentile_of_sorted(values, p);
}

}  // namespace ipt::bench
