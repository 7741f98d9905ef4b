#pragma once
// The one percentile the benchmarks report (latency p50 / p90 / p99 of `ipt bench serve`): the
// nearest rank, the element at index round(p · (n − 1)) of the sorted values, so p = 0 is the
// minimum, p = 1 the maximum and p = 0.5 the median (the upper middle one for an even count).
// No interpolation: every percentile reported is a value that was measured.
#include <utility>
#include <vector>

namespace ipt::bench {

// `sorted` ascending; p in [0, 1]. 0 for no values.
double percentile_of_sorted(const std::vector<double>& sorted, double p);
// The same over values in any order (sorts a copy).
double percentile(std::vector<double> values, double p);
inline double median(std::vector<double> values) { return percentile(std::move(values), 0.5); }

}  // namespace ipt::bench
