// ipt generate end to end: a model made by `ipt init --tokenizer`, greedy output reproduced,
// sessions continued across runs, --ids without a tokenizer, and the errors users hit.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include "support/temp_dir.h"

namespace fs = std::filesystem;

namespace {

struct Result {
  int status;
  std::string out, err;
};

// stdout and stderr apart: the generated text goes to stdout, the stats line to stderr.
Result run_ipt(const std::string& args, const fs::path& dir) {
  const std::string err_file = (dir / "stderr.txt").string();
  const std::string command = std::string(IPT_BINARY_DIR) + "/ipt -t 1 " + args + " 2>" + err_file;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe.get())) out.append(buffer.data(), n);
  const int status = pclose(pipe.release());
  std::string err;
  if (FILE* f = fopen(err_file.c_str(), "r")) {
    while (size_t n = fread(buffer.data(), 1, buffer.size(), f)) err.append(buffer.data(), n);
    fclose(f);
  }
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, err};
}

struct Workspace {
  fs::path dir = fs::temp_directory_path() / ("ipt-generate-" + ipt::test::process_tag());
  Workspace() { fs::create_directories(dir); }
  ~Workspace() { fs::remove_all(dir); }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

}  // namespace

TEST(Generate, GreedyStreamsReproducesAndContinuesSessions) {
  Workspace w;
  const std::string tokenizer = std::string(IPT_SOURCE_DIR) + "/corpus/tokenizer";
  Result init = run_ipt("init --preset test --vocab-size 4096 --tokenizer " + tokenizer + " --ttt-layers 1 --ttt-chunk 4 -o " +
                        (w / "m"), w.dir);
  ASSERT_EQ(init.status, 0) << init.out << init.err;
  ASSERT_TRUE(fs::exists(w / "m/tokenizer.json"));
  const std::string base = "generate -m " + (w / "m") + " -p 'The state of the union' -n 12 --temp 0 --ignore-eos";
  Result a = run_ipt(base, w.dir), b = run_ipt(base, w.dir);
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_FALSE(a.out.empty());
  EXPECT_EQ(a.out, b.out);  // greedy is deterministic
  EXPECT_NE(a.err.find("generated 12 tokens"), std::string::npos) << a.err;
  EXPECT_NE(a.err.find("fast-weight updates"), std::string::npos) << a.err;

  // A session continued in a second run holds what the first one read.
  Result first = run_ipt(base + " --session " + (w / "s"), w.dir);
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_EQ(first.out, a.out);
  Result second = run_ipt("generate -m " + (w / "m") + " -p ' again' -n 4 --temp 0 --ignore-eos --session " + (w / "s"), w.dir);
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_NE(second.err.find("session " + (w / "s") + ": "), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("generated 4 tokens"), std::string::npos) << second.err;

  // Sampling with a seed reproduces; the official mode and --no-ttt run.
  const std::string sampled = "generate -m " + (w / "m") + " -p 'Hello' -n 8 --temp 0.9 --top-k 20 --seed 5 --ignore-eos";
  EXPECT_EQ(run_ipt(sampled, w.dir).out, run_ipt(sampled, w.dir).out);
  EXPECT_EQ(run_ipt(base + " --ttt-decode-update off --ttt-clip 1.0", w.dir).status, 0);
  Result no_ttt = run_ipt(base + " --no-ttt", w.dir);
  EXPECT_EQ(no_ttt.status, 0);
  EXPECT_NE(no_ttt.err.find("updates 0 in prefill, 0 while decoding"), std::string::npos) << no_ttt.err;
}

TEST(Generate, IdsWithoutTokenizerAndErrors) {
  Workspace w;
  ASSERT_EQ(run_ipt("init --preset test -o " + (w / "bare"), w.dir).status, 0);
  FILE* ids = fopen((w / "ids.txt").c_str(), "w");
  fputs("1 2 3 4 5", ids);
  fclose(ids);
  Result r = run_ipt("generate -m " + (w / "bare") + " --ids " + (w / "ids.txt") + " -n 5 --temp 0", w.dir);
  ASSERT_EQ(r.status, 0) << r.err;
  int count = 0;
  for (size_t i = 0; i < r.out.size(); ++i) count += r.out[i] != ' ' && r.out[i] != '\n' && (i == 0 || r.out[i - 1] == ' ');
  EXPECT_EQ(count, 5) << r.out;

  Result no_tok = run_ipt("generate -m " + (w / "bare") + " -p hi", w.dir);
  EXPECT_EQ(no_tok.status, 1);
  EXPECT_NE(no_tok.err.find("has no tokenizer.json"), std::string::npos) << no_tok.err;
  Result both = run_ipt("generate -m " + (w / "bare") + " -p hi --ids " + (w / "ids.txt"), w.dir);
  EXPECT_EQ(both.status, 1);
  EXPECT_NE(both.err.find("exactly one of"), std::string::npos) << both.err;
  Result temp = run_ipt("generate -m " + (w / "bare") + " --ids " + (w / "ids.txt") + " --temp -1", w.dir);
  EXPECT_EQ(temp.status, 1);
  Result ctx = run_ipt("generate -m " + (w / "bare") + " --ids " + (w / "ids.txt") + " -c 3", w.dir);
  EXPECT_EQ(ctx.status, 1);
  EXPECT_NE(ctx.err.find("too many tokens"), std::string::npos) << ctx.err;
  Result vocab = run_ipt("init --preset test --tokenizer " + std::string(IPT_SOURCE_DIR) + "/corpus/tokenizer -o " + (w / "x"), w.dir);
  EXPECT_EQ(vocab.status, 1);
  EXPECT_NE(vocab.err.find("--vocab-size 4096"), std::string::npos) << vocab.err;
  // A session file of another model is refused.
  ASSERT_EQ(run_ipt("init --preset test --seed 9 -o " + (w / "other"), w.dir).status, 0);
  ASSERT_EQ(run_ipt("generate -m " + (w / "bare") + " --ids " + (w / "ids.txt") + " -n 2 --session " + (w / "s"), w.dir).status, 0);
  Result other = run_ipt("generate -m " + (w / "other") + " --ids " + (w / "ids.txt") + " -n 2 --session " + (w / "s"), w.dir);
  EXPECT_EQ(other.status, 1);
  EXPECT_NE(other.err.find("another model"), std::string::npos) << other.err;
}
