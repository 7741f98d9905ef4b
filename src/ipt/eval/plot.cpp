#include "ipt/eval/plot.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <memory>
#include <sstream>

#include "ipt/common/error.h"

namespace ipt {

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string gnuplot_script(const PlotSpec& spec, const std::string& png_path) {
  IPT_CHECK(!spec.series.empty(), "a plot needs at least one series");
  for (const auto& s : spec.series) {
    IPT_CHECK(s.x.size() == s.y.size(), "plot series '", s.label, "' has ", s.x.size(), " x values but ", s.y.size(),
              " y values");
    IPT_CHECK(!s.x.empty(), "plot series '", s.label, "' has no points");
  }
  std::ostringstream g;
  g << std::setprecision(10);
  g << "set terminal pngcairo size " << spec.width << "," << spec.height << " enhanced font 'Sans,11'\n"
    << "set output " << quoted(png_path) << "\n"
    << "set title " << quoted(spec.title) << " noenhanced\n"
    << "set xlabel " << quoted(spec.xlabel) << " noenhanced\n"
    << "set ylabel " << quoted(spec.ylabel) << " noenhanced\n"
    << "set grid\nset key top right noenhanced\n";
  if (spec.log_x) g << "set logscale x 2\n";
  if (spec.log_y) g << "set logscale y\n";
  g << "plot ";
  for (size_t i = 0; i < spec.series.size(); ++i)
    g << (i ? ", " : "") << "'-' using 1:2 with linespoints lw 2 pt 7 ps 0.6 title " << quoted(spec.series[i].label);
  g << "\n";
  for (const auto& s : spec.series) {
    for (size_t k = 0; k < s.x.size(); ++k) {
      // Non-finite points are gaps, not zeros.
      if (std::isfinite(s.x[k]) && std::isfinite(s.y[k])) g << s.x[k] << " " << s.y[k] << "\n";
      else g << "\n";
    }
    g << "e\n";
  }
  return g.str();
}

void plot_png(const PlotSpec& spec, const std::string& png_path) {
  const std::string tmp = png_path + ".tmp." + std::to_string(getpid()) + ".png";
  const std::string script = gnuplot_script(spec, tmp);
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen("gnuplot 2>&1 >/dev/null", "w"), pclose);
  IPT_CHECK(pipe, "cannot start gnuplot (install gnuplot-nox: scripts/install-deps.sh)");
  fwrite(script.data(), 1, script.size(), pipe.get());
  const int status = pclose(pipe.release());
  if (status != 0 || !std::filesystem::exists(tmp)) {
    std::filesystem::remove(tmp);
    throw Error("gnuplot failed to draw " + png_path + " (status " + std::to_string(status) +
                "); is gnuplot-nox installed?");
  }
  std::filesystem::rename(tmp, png_path);
}

}  // namespace ipt
