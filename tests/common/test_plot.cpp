#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ipt/common/error.h"
#include "ipt/common/plot.h"
#include "support/temp_dir.h"

using namespace ipt;

TEST(Plot, WritesAPngWithEveryPoint) {
  PlotSpec spec{"Perplexity vs context", "context (tokens)", "perplexity", true, false,
                {{"TTT", {512, 1024, 2048}, {20.0, 18.5, 17.9}}, {"no TTT", {512, 1024, 2048}, {20.1, 19.6, 19.5}}}};
  const std::string script = gnuplot_script(spec, "/tmp/x.png");
  EXPECT_NE(script.find("title \"TTT\""), std::string::npos);
  EXPECT_NE(script.find("2048 17.9\n"), std::string::npos);
  EXPECT_NE(script.find("set logscale x 2"), std::string::npos);
  const auto path = std::filesystem::temp_directory_path() / ("ipt-plot-" + ipt::test::process_tag() + ".png");
  plot_png(spec, path.string());
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  EXPECT_GT(std::filesystem::file_size(path), 5000u);
  std::filesystem::remove(path);
}

TEST(Plot, BadSpecs) {
  EXPECT_THROW(gnuplot_script(PlotSpec{}, "x.png"), Error);
  PlotSpec uneven{"t", "x", "y", false, false, {{"a", {1, 2}, {1}}}};
  EXPECT_THROW(gnuplot_script(uneven, "x.png"), Error);
  PlotSpec empty{"t", "x", "y", false, false, {{"a", {}, {}}}};
  EXPECT_THROW(gnuplot_script(empty, "x.png"), Error);
}

TEST(Plot, RefusesToReplaceWhatIsNotARegularFile) {
  PlotSpec spec{"t", "x", "y", false, false, {{"a", {1, 2}, {1, 2}}}};
  EXPECT_THROW(plot_png(spec, "/dev/null"), Error);
  EXPECT_THROW(plot_png(spec, std::filesystem::temp_directory_path().string()), Error);
  EXPECT_TRUE(std::filesystem::is_character_file("/dev/null"));
}
