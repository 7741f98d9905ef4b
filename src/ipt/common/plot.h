#pragma once
// Line plots rendered by gnuplot (Debian's gnuplot-nox) into PNG: loss curves, perplexity against
// context length, RULER score against length, throughput and memory against length.
#include <cmath>
#include <string>
#include <vector>

namespace ipt {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;
};

struct PlotSpec {
  std::string title, xlabel, ylabel;
  bool log_x = false, log_y = false;
  std::vector<PlotSeries> series;
  int width = 900, height = 560;
  double y_min = NAN, y_max = NAN;  // a fixed y range (e.g. 0-100 for scores); NaN = automatic
};

// Writes `png_path` (through a temporary file). Throws ipt::Error when gnuplot is missing or
// fails, or when the spec is empty or malformed (x and y of different lengths, no points).
void plot_png(const PlotSpec& spec, const std::string& png_path);

// Several panels side by side in one PNG (e.g. throughput and memory against length).
void plot_png(const std::vector<PlotSpec>& panels, const std::string& png_path);

// The gnuplot script for a spec, data inline (exposed for tests and for users who want the script).
std::string gnuplot_script(const PlotSpec& spec, const std::string& png_path);
std::string gnuplot_script(const std::vector<PlotSpec>& panels, const std::string& png_path);

}  // namespace ipt
