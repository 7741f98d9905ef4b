// Figures from saved reports: the right curves and points, clear errors for malformed reports.
#include <gtest/gtest.h>

#include <filesystem>

#include "ipt/common/error.h"
#include "ipt/eval/figures.h"
#include "support/temp_dir.h"

using namespace ipt;
using nlohmann::json;

namespace {

std::string error_of(const std::string& kind, const json& report) {
  try {
    eval::figure_panels(kind, report);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Figures, PerplexityCurvesPerRun) {
  json report = json::parse(R"({"block": 256, "runs": [
    {"ttt": true, "points": [{"context": 512, "ppl": 20.5}, {"context": 1024, "ppl": 19.0}, {"context": 2048, "ppl": null}]},
    {"ttt": false, "points": [{"context": 512, "ppl": 21.0}, {"context": 1024, "ppl": 20.0}, {"context": 2048, "ppl": null}]}]})");
  auto panels = eval::figure_panels("ppl", report);
  ASSERT_EQ(panels.size(), 1u);
  ASSERT_EQ(panels[0].series.size(), 2u);
  EXPECT_EQ(panels[0].series[0].label, "TTT");
  EXPECT_EQ(panels[0].series[1].label, "no TTT");
  EXPECT_EQ(panels[0].series[1].y[1], 20.0);
  EXPECT_TRUE(std::isnan(panels[0].series[0].y[2]));  // no document that long: a gap
  EXPECT_TRUE(panels[0].log_x);
}

TEST(Figures, PrefillHasThroughputAndMemoryPerTttAndWindow) {
  json report = json::parse(R"({"results": [
    {"length": 8192, "ttt": true, "window": 0, "tokens_per_s": 100, "peak_mb": 300},
    {"length": 8192, "ttt": false, "window": 0, "tokens_per_s": 110, "peak_mb": 290},
    {"length": 8192, "ttt": true, "window": 1024, "tokens_per_s": 200, "peak_mb": 250},
    {"length": 16384, "ttt": true, "window": 0, "tokens_per_s": 50, "peak_mb": 500}]})");
  auto panels = eval::figure_panels("prefill", report);
  ASSERT_EQ(panels.size(), 2u);
  ASSERT_EQ(panels[0].series.size(), 3u);
  EXPECT_EQ(panels[0].series[0].label, "TTT, full attention");
  EXPECT_EQ(panels[0].series[2].label, "TTT, window 1024");
  EXPECT_EQ(panels[0].series[0].x, (std::vector<double>{8192, 16384}));
  EXPECT_EQ(panels[1].series[0].y, (std::vector<double>{300, 500}));
}

TEST(Figures, RulerAverageAndAPng) {
  json report = json::parse(R"({"runs": [{"ttt": true, "average": [{"length": 4096, "score": 50}, {"length": 8192, "score": 25}]},
                                          {"ttt": false, "average": [{"length": 4096, "score": 40}, {"length": 8192, "score": 20}]}]})");
  auto panels = eval::figure_panels("ruler", report);
  EXPECT_EQ(panels[0].series[1].y, (std::vector<double>{40, 20}));
  EXPECT_NE(gnuplot_script(panels, "x.png").find("set yrange [0:100]"), std::string::npos);
  const auto path = std::filesystem::temp_directory_path() / ("ipt-fig-" + ipt::test::process_tag() + ".png");
  eval::plot_report("ruler", report, path.string());
  EXPECT_GT(std::filesystem::file_size(path), 5000u);
  std::filesystem::remove(path);
}

TEST(Figures, RulerScoreAgainstNeedleDistance) {
  json report = json::parse(R"({"runs": [{"ttt": true, "by_distance": [{"from": 0, "to": 64, "score": 90}, {"from": 64, "to": 128, "score": 70}]},
                                          {"ttt": false, "by_distance": [{"from": 0, "to": 64, "score": 80}]}]})");
  auto panels = eval::figure_panels("ruler-distance", report);
  ASSERT_EQ(panels.size(), 1u);
  EXPECT_EQ(panels[0].series[0].x, (std::vector<double>{64, 128}));
  EXPECT_EQ(panels[0].series[0].y, (std::vector<double>{90, 70}));
  EXPECT_EQ(panels[0].series[1].label, "no TTT");
  EXPECT_NE(error_of("ruler-distance", json::parse(R"({"runs": [{"ttt": true, "average": []}]})")).find("runs[0] has no \"by_distance\""),
            std::string::npos);
}

TEST(Figures, MalformedReportsNameWhatIsWrong) {
  EXPECT_NE(error_of("ppl", json::parse("[1, 2]")).find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of("ppl", json::parse(R"({"results": []})")).find("has no \"runs\""), std::string::npos);
  EXPECT_NE(error_of("ppl", json::parse(R"({"runs": []})")).find("empty"), std::string::npos);
  EXPECT_NE(error_of("ppl", json::parse(R"({"runs": [{"ttt": true, "points": [{"context": "x", "ppl": 1}]}]})"))
                .find("runs[0].points[0].context has the wrong type"),
            std::string::npos);
  EXPECT_NE(error_of("ruler", json::parse(R"({"runs": [{"ttt": true}]})")).find("runs[0] has no \"average\""),
            std::string::npos);
  EXPECT_NE(error_of("prefill", json::parse(R"({"results": [{"length": 1, "ttt": true, "tokens_per_s": 3}]})"))
                .find("has no \"peak_mb\""),
            std::string::npos);
  EXPECT_NE(error_of("bars", json::object()).find("unknown figure kind"), std::string::npos);
}
