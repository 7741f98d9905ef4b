// `ipt tokenizer encode | decode | train` end to end through the built binary.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "ipt/tokenizer/tokenizer.h"

namespace {

const std::string kIpt = std::string(IPT_BINARY_DIR) + "/ipt";
const std::string kFixtures = std::string(IPT_SOURCE_DIR) + "/tests/fixtures/tokenizers";

struct CliRun {
  int status;
  std::string output;  // stdout and stderr
};

CliRun run(const std::string& args) {
  const std::string command = "'" + kIpt + "' " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(TokenizerCli, EncodeDecodeTrainAndErrors) {
  const std::string dir = kFixtures + "/trained";
  const auto tokenizer = ipt::tok::Tokenizer::load(dir);

  // encode: one line of space-separated ids, the library's ids.
  const std::string text = "Hello <|im_start|>wörld\n\tx = 42;";
  const std::string text_file = testing::TempDir() + "/ipt_cli_text.txt";
  std::ofstream(text_file, std::ios::binary) << text;
  const CliRun encoded = run("tokenizer encode --tokenizer '" + dir + "' -f '" + text_file + "'");
  ASSERT_EQ(encoded.status, 0) << encoded.output;
  std::string expected;
  for (int32_t id : tokenizer.encode(text)) expected += (expected.empty() ? "" : " ") + std::to_string(id);
  EXPECT_EQ(encoded.output, expected + "\n");

  // decode: the exact text back, no newline added.
  const CliRun decoded = run("tokenizer decode --tokenizer '" + dir + "' --ids '" + expected + "'");
  ASSERT_EQ(decoded.status, 0) << decoded.output;
  EXPECT_EQ(decoded.output, text);

  // train: the committed trained tokenizer is what the binary writes.
  const std::string out = testing::TempDir() + "/ipt_cli_trained";
  const CliRun trained = run("tokenizer train --vocab-size 1000 --input '" + kFixtures + "/train_corpus.txt' -o '" + out + "'");
  ASSERT_EQ(trained.status, 0) << trained.output;
  EXPECT_EQ(read(out + "/tokenizer.json"), read(dir + "/tokenizer.json"));

  // Bad input: exit status 1 and a message naming the problem, never a crash.
  const CliRun bad_ids = run("tokenizer decode --tokenizer '" + dir + "' --ids '1 two 3'");
  EXPECT_EQ(bad_ids.status, 1);
  EXPECT_NE(bad_ids.output.find("'two' is not a token id"), std::string::npos) << bad_ids.output;
  const CliRun missing = run("tokenizer encode --tokenizer /nonexistent --text hi");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("/nonexistent"), std::string::npos) << missing.output;
}

}  // namespace
