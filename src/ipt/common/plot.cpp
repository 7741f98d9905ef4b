#include "ipt/common/plot.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <sstream>

#include "ipt/common/durable_write.h"
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

std::string gnuplot_script(const std::vector<PlotSpec>& panels, const std::string& png_path) {
  IPT_CHECK(!panels.empty(), "a plot needs at least one panel");
  for (const PlotSpec& spec : panels) {
    IPT_CHECK(!spec.series.empty(), "a plot needs at least one series");
    for (const auto& s : spec.series) {
      IPT_CHECK(s.x.size() == s.y.size(), "plot series '", s.label, "' has ", s.x.size(), " x values but ", s.y.size(),
                " y values");
      IPT_CHECK(!s.x.empty(), "plot series '", s.label, "' has no points");
    }
  }
  std::ostringstream g;
  g << std::setprecision(10);
  // Each panel keeps its own size; the image grows sideways with the panel count.
  g << "set terminal pngcairo size " << panels[0].width * panels.size() << "," << panels[0].height
    << " enhanced font 'Sans,11'\n"
    << "set output " << quoted(png_path) << "\n";
  if (panels.size() > 1) g << "set multiplot layout 1," << panels.size() << "\n";
  for (const PlotSpec& spec : panels) {
    g << "set title " << quoted(spec.title) << " noenhanced\n"
      << "set xlabel " << quoted(spec.xlabel) << " noenhanced\n"
      << "set ylabel " << quoted(spec.ylabel) << " noenhanced\n"
      << "set grid\nset key top right noenhanced\n";
    g << (spec.log_x ? "set logscale x 2\n" : "unset logscale x\n");
    g << (spec.log_y ? "set logscale y\n" : "unset logscale y\n");
    if (std::isfinite(spec.y_min) && std::isfinite(spec.y_max))
      g << "set yrange [" << spec.y_min << ":" << spec.y_max << "]\n";
    else
      g << "set autoscale y\n";
    g << "plot ";
    // Each curve its own dash and point type, so equal curves stay visible on top of each other.
    for (size_t i = 0; i < spec.series.size(); ++i)
      g << (i ? ", " : "") << "'-' using 1:2 with linespoints lw 2 dt " << i + 1 << " pt " << 7 + 2 * i
        << " ps 0.8 title " << quoted(spec.series[i].label);
    g << "\n";
    for (const auto& s : spec.series) {
      for (size_t k = 0; k < s.x.size(); ++k) {
        // Non-finite points are gaps, not zeros.
        if (std::isfinite(s.x[k]) && std::isfinite(s.y[k])) g << s.x[k] << " " << s.y[k] << "\n";
        else g << "\n";
      }
      g << "e\n";
    }
  }
  if (panels.size() > 1) g << "unset multiplot\n";
  return g.str();
}

std::string gnuplot_script(const PlotSpec& spec, const std::string& png_path) {
  return gnuplot_script(std::vector<PlotSpec>{spec}, png_path);
}

void plot_png(const PlotSpec& spec, const std::string& png_path) { plot_png(std::vector<PlotSpec>{spec}, png_path); }

void plot_png(const std::vector<PlotSpec>& panels, const std::string& png_path) {
  // The picture is drawn beside its destination and renamed over it: never over a device or a
  // directory (-o /dev/null would replace the device node).
  IPT_CHECK(!std::filesystem::exists(png_path) || std::filesystem::is_regular_file(png_path), "plot: ", png_path,
            " exists and is not a regular file");
  const std::string tmp = temp_path_for(png_path) + ".png";
  const std::string log = tmp + ".log";
  const std::string script = gnuplot_script(panels, tmp);
  // gnuplot's messages go to a log, never to our stdout (which may be carrying JSON).
  const std::string command = "gnuplot >/dev/null 2>'" + log + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "w"), pclose);
  IPT_CHECK(pipe, "cannot start gnuplot (install gnuplot-nox: scripts/install-deps.sh)");
  fwrite(script.data(), 1, script.size(), pipe.get());
  const int status = pclose(pipe.release());
  std::ifstream log_in(log);
  std::stringstream messages;
  messages << log_in.rdbuf();
  std::filesystem::remove(log);
  if (status != 0 || !std::filesystem::exists(tmp)) {
    std::filesystem::remove(tmp);
    throw Error("gnuplot failed to draw " + png_path + " (status " + std::to_string(status) +
                "; is gnuplot-nox installed?): " + messages.str().substr(0, 400));
  }
  install_file_durably(tmp, png_path);
}

}  // namespace ipt
