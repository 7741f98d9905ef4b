// ipt data prepare's library side: streamed tokenization equals tokenizing whole documents, the
// shards read back exactly, the validation split is deterministic and near its fraction,
// appending continues, and bad inputs are named.
#include <gtest/gtest.h>

#include <filesystem>
#include <algorithm>
#include <fstream>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/data/prepare.h"
#include "ipt/data/shards.h"
#include "ipt/tokenizer/tokenizer.h"
#include "support/temp_dir.h"

using namespace ipt;
namespace fs = std::filesystem;

namespace {

const std::string kSource = IPT_SOURCE_DIR;

struct Scratch {
  fs::path path = fs::temp_directory_path() / ("ipt-prepare-" + ipt::test::process_tag() + "-" + std::to_string(next()));
  Scratch() { fs::create_directories(path); }
  ~Scratch() { fs::remove_all(path); }
  static int next() {
    static int n = 0;
    return n++;
  }
};

const tok::Tokenizer& tokenizer() {
  static const tok::Tokenizer t = tok::Tokenizer::load(kSource + "/corpus/tokenizer");
  return t;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<int64_t> expected_ids(const std::string& text) {
  std::vector<int32_t> ids = tokenizer().encode(text);
  std::vector<int64_t> out(ids.begin(), ids.end());
  out.push_back(*tokenizer().eos_id());
  return out;
}

}  // namespace

TEST(DataPrepare, StreamedBlocksGiveTheIdsOfWholeDocuments) {
  Scratch dir;
  // Tiny blocks force many cuts inside each speech; one file without any safe cut point.
  data::PrepareOptions o;
  // (the speeches are single lines; the tokenizer training text has thousands of cut points)
  o.inputs = {kSource + "/corpus/sample", kSource + "/tests/fixtures/tokenizers/train_corpus.txt",
              (dir.path / "no_newlines.txt").string()};
  std::ofstream(dir.path / "no_newlines.txt") << std::string(5000, 'x') << " naïve  café\tend";
  o.out = (dir.path / "ds").string();
  o.block_bytes = 1024;
  const data::PrepareReport report = data::prepare(tokenizer(), o);
  const std::vector<std::string> files = data::list_input_files(o.inputs);
  ASSERT_EQ(report.files, static_cast<int64_t>(files.size()));
  data::Dataset ds(o.out);
  ASSERT_EQ(ds.documents(), static_cast<int64_t>(files.size()));
  for (size_t i = 0; i < files.size(); ++i) EXPECT_EQ(ds.document(static_cast<int64_t>(i)), expected_ids(read(files[i]))) << files[i];
  EXPECT_EQ(ds.meta().token_bytes, 2);  // 4096-token vocabulary
}

TEST(DataPrepare, JsonLinesValidationSplitAndAppend) {
  Scratch dir;
  {
    std::ofstream out(dir.path / "docs.jsonl");
    for (int i = 0; i < 400; ++i) out << "{\"text\": \"document number " << i << " says hello\\n\"}\n";
    out << "\n";  // blank lines are skipped
  }
  data::PrepareOptions o;
  o.inputs = {(dir.path / "docs.jsonl").string()};
  o.out = (dir.path / "a").string();
  o.val_fraction = 0.25;
  o.seed = 7;
  const data::PrepareReport r = data::prepare(tokenizer(), o);
  EXPECT_EQ(r.train_documents + r.val_documents, 400);
  EXPECT_GT(r.val_documents, 60);  // binomial(400, 0.25): mean 100, sd 8.7
  EXPECT_LT(r.val_documents, 140);
  data::Dataset train(o.out), val((dir.path / "a" / "val").string());
  EXPECT_EQ(train.documents(), r.train_documents);
  EXPECT_EQ(val.documents(), r.val_documents);

  // Every document lands in exactly one split, in input order.
  std::vector<std::vector<int64_t>> all;
  for (int64_t d = 0; d < train.documents(); ++d) all.push_back(train.document(d));
  for (int64_t d = 0; d < val.documents(); ++d) all.push_back(val.document(d));
  std::vector<std::vector<int64_t>> want;
  for (int i = 0; i < 400; ++i) want.push_back(expected_ids("document number " + std::to_string(i) + " says hello\n"));
  std::sort(all.begin(), all.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(all, want);

  // Deterministic: the same seed writes the same bytes; another seed another split.
  o.out = (dir.path / "b").string();
  data::prepare(tokenizer(), o);
  EXPECT_EQ(read(dir.path / "a" / "meta.json"), read(dir.path / "b" / "meta.json"));
  EXPECT_EQ(read(dir.path / "a" / "val" / "shard-00000.bin"), read(dir.path / "b" / "val" / "shard-00000.bin"));
  o.out = (dir.path / "c").string();
  o.seed = 8;
  data::prepare(tokenizer(), o);
  EXPECT_NE(read(dir.path / "a" / "val" / "shard-00000.bin"), read(dir.path / "c" / "val" / "shard-00000.bin"));

  // Refuses to overwrite; --append adds.
  o.out = (dir.path / "a").string();
  EXPECT_THROW(data::prepare(tokenizer(), o), Error);
  o.append = true;
  const data::PrepareReport more = data::prepare(tokenizer(), o);
  EXPECT_EQ(data::Dataset(o.out).documents(), r.train_documents + more.train_documents);
}

TEST(DataPrepare, BadInputsAreNamed) {
  Scratch dir;
  data::PrepareOptions o;
  o.out = (dir.path / "out").string();
  o.inputs = {(dir.path / "missing.txt").string()};
  EXPECT_THROW(data::prepare(tokenizer(), o), Error);
  std::ofstream(dir.path / "bad.jsonl") << "{\"text\": \"fine\"}\n{\"txt\": 3}\n";
  o.inputs = {(dir.path / "bad.jsonl").string()};
  try {
    data::prepare(tokenizer(), o);
    ADD_FAILURE() << "a line without text must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  std::ofstream(dir.path / "ok.txt") << "text";
  o.inputs = {(dir.path / "ok.txt").string()};
  o.out = (dir.path / "out2").string();
  o.val_fraction = 1.0;
  EXPECT_THROW(data::prepare(tokenizer(), o), Error);
}
