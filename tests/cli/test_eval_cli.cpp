// ipt eval / plot / bench prefill --window / bench all end to end on a `test` preset model:
// eval ppl equals ipt score on the same tokens, figures are drawn without touching stdout, and
// malformed inputs fail with exit code 1 and a message that names the problem.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "ipt/data/shards.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Result {
  int status;
  std::string out, err;
};

// Runs build/ipt; stdout and stderr apart, so tests can check that JSON on stdout stays clean.
Result run_ipt(const std::string& args) {
  const fs::path err = fs::temp_directory_path() / ("ipt-eval-cli-err-" + ipt::test::process_tag());
  const std::string command = std::string(IPT_BINARY_DIR) + "/ipt -t 1 " + args + " 2>" + err.string();
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe.get())) output.append(buffer.data(), n);
  int status = pclose(pipe.release());
  std::ifstream in(err);
  std::string message((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(err);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output, message};
}

struct Workspace {
  fs::path dir = fs::temp_directory_path() / ("ipt-eval-cli-" + ipt::test::process_tag());
  Workspace() { fs::create_directories(dir); }
  ~Workspace() { fs::remove_all(dir); }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

std::vector<int64_t> document(int64_t n, int64_t seed) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back((i * 37 + seed * 11 + (i * i) % 13) % 256);
  return ids;
}

bool is_png(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return std::string(magic + 1, 3) == "PNG" && fs::file_size(path) > 5000;
}

}  // namespace

TEST(EvalCli, PerplexityEqualsScoreOnTheSameTokens) {
  Workspace w;
  ASSERT_EQ(run_ipt("init --preset test -o " + (w / "base")).status, 0);
  ASSERT_EQ(run_ipt("convert --in " + (w / "base") + " --out " + (w / "ttt") + " --ttt-layers 1 --ttt-chunk 8").status, 0);
  const std::vector<int64_t> doc0 = document(60, 1), doc1 = document(30, 2);
  {
    ipt::data::ShardWriter writer(w / "shards", 256);
    writer.add(doc0);
    writer.add(doc1);
  }
  Result r = run_ipt("eval ppl -m " + (w / "ttt") + " --data " + (w / "shards") +
                 " --contexts 16,40 --block 8 --compare-no-ttt --json --plot " + (w / "ppl.png"));
  ASSERT_EQ(r.status, 0) << r.err;
  const json report = json::parse(r.out);  // stdout is the JSON alone
  ASSERT_EQ(report["runs"].size(), 2u);
  EXPECT_TRUE(report["runs"][0]["ttt"].get<bool>());
  const json& at40 = report["runs"][0]["points"][1];
  EXPECT_EQ(at40["docs_used"], 1);
  EXPECT_EQ(at40["docs_skipped"], 1);
  EXPECT_TRUE(is_png(w / "ppl.png"));

  // ipt score over document 0's last 48 tokens: the mean of its last 8 per-token NLLs.
  {
    std::ofstream ids(w / "ids.txt");
    for (size_t i = doc0.size() - 48; i < doc0.size(); ++i) ids << doc0[i] << " ";
  }
  Result s = run_ipt("score -m " + (w / "ttt") + " --ids " + (w / "ids.txt") + " --json --per-token");
  ASSERT_EQ(s.status, 0) << s.err;
  const std::vector<double> nll = json::parse(s.out)["per_token"];
  double sum = 0;
  for (size_t i = nll.size() - 8; i < nll.size(); ++i) sum += nll[i];
  EXPECT_NEAR(at40["mean_nll"].get<double>(), sum / 8, 1e-6);

  // The figure again from the saved report.
  std::ofstream(w / "ppl.json") << r.out;
  Result p = run_ipt("plot --kind ppl " + (w / "ppl.json") + " -o " + (w / "again.png"));
  ASSERT_EQ(p.status, 0) << p.err;
  EXPECT_TRUE(is_png(w / "again.png"));
}

TEST(EvalCli, MalformedInputsGetClearErrors) {
  Workspace w;
  ASSERT_EQ(run_ipt("init --preset test -o " + (w / "m")).status, 0);
  {
    ipt::data::ShardWriter writer(w / "shards", 256);
    writer.add(document(40, 3));
  }
  Result r = run_ipt("eval ppl -m " + (w / "m") + " --data " + (w / "shards") + " --contexts 32,16");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("strictly increasing"), std::string::npos) << r.err;
  r = run_ipt("eval ppl -m " + (w / "m") + " --data " + (w / "missing"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  r = run_ipt("eval ppl -m " + (w / "m") + " --data " + (w / "shards") + " --compare-no-ttt");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("has no TTT layers"), std::string::npos) << r.err;

  r = run_ipt("bench prefill -m " + (w / "m") + " --up-to 4096");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("starts at 8192"), std::string::npos) << r.err;
  r = run_ipt("bench prefill -m " + (w / "m") + " --lengths 64 --window -3");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--window must be >= 0"), std::string::npos) << r.err;

  std::ofstream(w / "bad.json") << "{\"runs\": [";
  r = run_ipt("plot --kind ppl " + (w / "bad.json") + " -o " + (w / "x.png"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;
  std::ofstream(w / "prefill.json") << R"({"results": [{"length": 8, "ttt": true, "tokens_per_s": 1, "peak_mb": 2}]})";
  r = run_ipt("plot --kind ppl " + (w / "prefill.json") + " -o " + (w / "x.png"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("has no \"runs\""), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(w / "x.png"));
}

TEST(EvalCli, PrefillWithSlidingWindowAndBenchAll) {
  Workspace w;
  ASSERT_EQ(run_ipt("init --preset test -o " + (w / "base")).status, 0);
  ASSERT_EQ(run_ipt("convert --in " + (w / "base") + " --out " + (w / "ttt") + " --ttt-layers 1 --ttt-chunk 16").status, 0);
  Result r = run_ipt("bench prefill -m " + (w / "ttt") + " --lengths 64,128 --window 32 --json --plot " + (w / "p.png"));
  ASSERT_EQ(r.status, 0) << r.err;
  const json report = json::parse(r.out);
  ASSERT_EQ(report["results"].size(), 8u);  // 2 lengths x (full, window) x (TTT, no TTT)
  EXPECT_EQ(report["results"][2]["window"], 32);
  EXPECT_TRUE(is_png(w / "p.png"));

  const std::string source = IPT_SOURCE_DIR;
  r = run_ipt("bench all -m " + (w / "ttt") + " --pp 64 --tg 8 --op-length 64 --tokenizer " + source + "/corpus/tokenizer --text " +
          source + "/corpus/sample/1790_george_washington_n.txt --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const json all = json::parse(r.out);
  ASSERT_GE(all["rows"].size(), 5u);
  EXPECT_EQ(all["rows"][0]["test"], "pp64");
  EXPECT_GT(all["rows"][0]["ratio"].get<double>(), 0);
  bool tokenizer_row = false, decode_row = false;
  for (const auto& row : all["rows"]) {
    tokenizer_row |= row["test"] == "tokenizer 1 thread" && row["no_ttt"].is_number();
    decode_row |= row["test"] == "tg8 @ pp64" && row["ratio"].is_number();
  }
  EXPECT_TRUE(tokenizer_row) << all.dump();
  EXPECT_TRUE(decode_row) << all.dump();
}

TEST(EvalCli, RulerThroughSessionsWithAndWithoutTtt) {
  Workspace w;
  const std::string source = IPT_SOURCE_DIR;
  ASSERT_EQ(run_ipt("init --preset test --vocab-size 4096 -o " + (w / "base")).status, 0);
  ASSERT_EQ(run_ipt("convert --in " + (w / "base") + " --out " + (w / "ttt") + " --ttt-layers 1 --ttt-chunk 64").status, 0);
  const std::string common = "eval ruler -m " + (w / "ttt") + " --tokenizer " + source + "/corpus/tokenizer --haystack " +
                             source + "/corpus/sample --lengths 400 --samples 1";
  Result r = run_ipt(common + " --tasks niah_single_1,vt --compare-no-ttt --json --plot " + (w / "r.png") +
                     " --predictions " + (w / "p.jsonl"));
  ASSERT_EQ(r.status, 0) << r.err;
  const json report = json::parse(r.out);
  ASSERT_EQ(report["runs"].size(), 2u);
  EXPECT_EQ(report["runs"][0]["results"].size(), 2u);
  const double average = report["runs"][1]["average"][0]["score"];
  EXPECT_GE(average, 0.0);
  EXPECT_LE(average, 100.0);
  EXPECT_TRUE(is_png(w / "r.png"));
  std::ifstream predictions(w / "p.jsonl");
  int lines = 0;
  for (std::string line; std::getline(predictions, line); ++lines) {
    const json p = json::parse(line);
    EXPECT_LE(p["prompt_tokens"].get<int64_t>(), 400 - 30);
  }
  EXPECT_EQ(lines, 4);  // 2 tasks x 1 sample x 2 runs

  r = run_ipt(common + " --tasks niah_single_1,needle");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("unknown task 'needle'"), std::string::npos) << r.err;
  r = run_ipt("eval ruler -m " + (w / "ttt") + " --lengths 400");  // ipt init writes no tokenizer
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--tokenizer"), std::string::npos) << r.err;
}
