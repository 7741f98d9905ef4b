// Token shards (round trip, widths, append, every corruption detected) and the batch loader
// (packed stream order, labels, boundaries, exact resume, rank sharding, padded rows).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "ipt/common/error.h"
#include "ipt/data/loader.h"
#include "ipt/data/shards.h"
#include "support/temp_dir.h"

using namespace ipt;
using namespace ipt::data;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("ipt-data-test-" + ipt::test::process_tag() + "-" + std::to_string(counter()++));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

std::vector<std::vector<int64_t>> random_documents(int count, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int64_t>> docs;
  for (int i = 0; i < count; ++i) {
    std::vector<int64_t> doc(1 + rng() % 40);
    for (auto& t : doc) t = static_cast<int64_t>(rng() % vocab);
    docs.push_back(doc);
  }
  return docs;
}

void write(const fs::path& dir, const std::vector<std::vector<int64_t>>& docs, int64_t vocab, int64_t shard_tokens,
           bool append = false) {
  ShardWriter writer(dir.string(), vocab, shard_tokens, append);
  for (const auto& d : docs) writer.add(d);
  writer.finish();
}

}  // namespace

TEST(Shards, RoundTripAcrossShardsAndWidths) {
  for (int64_t vocab : {1000, 70000}) {
    TempDir dir;
    auto docs = random_documents(50, vocab, 1);
    write(dir.path, docs, vocab, 100);
    Dataset ds(dir.path.string());
    EXPECT_EQ(ds.meta().token_bytes, vocab <= 65536 ? 2 : 4);
    EXPECT_GT(ds.meta().shards.size(), 3u);
    ASSERT_EQ(ds.documents(), 50);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(ds.document(i), docs[i]) << i;
  }
}

TEST(Shards, AppendContinuesAndRefusesSilentOverwrite) {
  TempDir dir;
  auto a = random_documents(10, 500, 2), b = random_documents(7, 500, 3);
  write(dir.path, a, 500, 64);
  EXPECT_THROW(write(dir.path, b, 500, 64), Error);
  EXPECT_THROW(write(dir.path, b, 600, 64, true), Error);  // other vocabulary
  write(dir.path, b, 500, 64, true);
  Dataset ds(dir.path.string());
  ASSERT_EQ(ds.documents(), 17);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ds.document(i), a[i]);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(ds.document(10 + i), b[i]);
}

TEST(Shards, CorruptionAndTruncationAreDetected) {
  TempDir dir;
  write(dir.path, random_documents(20, 300, 4), 300, 1 << 20);
  const fs::path shard = dir.path / "shard-00000.bin";
  std::string bytes;
  {
    std::ifstream in(shard, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto expect_load_error = [&](const std::string& content, const std::string& fragment) {
    std::ofstream(shard, std::ios::binary | std::ios::trunc) << content;
    try {
      Dataset ds(dir.path.string());
      ADD_FAILURE() << "expected: " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  std::string flipped = bytes;
  flipped[60] ^= 0x5a;
  expect_load_error(flipped, "checksum");
  expect_load_error(bytes.substr(0, bytes.size() - 3), "truncated");
  expect_load_error(bytes.substr(0, 10), "truncated");
  std::string bad_magic = bytes;
  bad_magic[0] = 'X';
  expect_load_error(bad_magic, "bad magic");
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << bytes;
  EXPECT_NO_THROW(Dataset ds(dir.path.string()));
  std::ofstream(dir.path / "meta.json", std::ios::trunc) << "{\"vocab_size\": 300,";
  EXPECT_THROW(Dataset ds(dir.path.string()), Error);
  EXPECT_THROW(Dataset ds((dir.path / "missing").string()), Error);
}

TEST(Shards, TokenOutsideVocabulary) {
  TempDir dir;
  ShardWriter writer(dir.path.string(), 10, 100);
  EXPECT_THROW(writer.add({1, 2, 10}), Error);
  EXPECT_THROW(writer.add({-1}), Error);
}

namespace {

struct Fixture {
  TempDir dir;
  std::vector<std::vector<int64_t>> docs = random_documents(30, 1000, 5);
  std::unique_ptr<Dataset> ds;
  Fixture() {
    write(dir.path, docs, 1000, 128);
    ds = std::make_unique<Dataset>(dir.path.string());
  }
};

}  // namespace

TEST(Loader, PackedRowsFollowTheDocumentStreamWithCorrectLabels) {
  Fixture f;
  LoaderOptions o;
  o.batch_size = 2;
  o.seq_len = 16;
  o.shuffle = false;
  Loader loader(*f.ds, o);
  // Expected stream: documents in order, each token's label the next token of its document.
  std::vector<int64_t> stream_ids, stream_labels;
  for (int epoch = 0; epoch < 3; ++epoch)
    for (const auto& d : f.docs)
      for (size_t i = 0; i < d.size(); ++i) {
        stream_ids.push_back(d[i]);
        stream_labels.push_back(i + 1 < d.size() ? d[i + 1] : kIgnoreLabel);
      }
  size_t at = 0;
  for (int step = 0; step < 40; ++step) {
    Batch b = loader.next();
    for (int64_t r = 0; r < 2; ++r) {
      for (int64_t t = 0; t < 16; ++t, ++at) {
        ASSERT_EQ(b.input_ids[r][t].item<int64_t>(), stream_ids[at]);
        ASSERT_EQ(b.labels[r][t].item<int64_t>(), stream_labels[at]);
      }
      const auto& cu = b.cu_seqlens[r];
      EXPECT_EQ(cu.front(), 0);
      EXPECT_EQ(cu.back(), 16);
      for (size_t k = 1; k + 1 < cu.size(); ++k)  // inner boundaries sit right after a document's last token
        EXPECT_EQ(b.labels[r][cu[k] - 1].item<int64_t>(), kIgnoreLabel);
    }
  }
  EXPECT_GT(loader.position().epoch, 0);  // wrapped around
}

TEST(Loader, ResumeFromAPositionIsExact) {
  Fixture f;
  LoaderOptions o;
  o.batch_size = 3;
  o.seq_len = 11;
  o.seed = 9;
  Loader a(*f.ds, o);
  for (int i = 0; i < 7; ++i) a.next();
  Loader b(*f.ds, o, a.position());
  for (int i = 0; i < 20; ++i) {
    Batch x = a.next(), y = b.next();
    ASSERT_TRUE(torch::equal(x.input_ids, y.input_ids)) << i;
    ASSERT_TRUE(torch::equal(x.labels, y.labels));
    ASSERT_EQ(x.cu_seqlens, y.cu_seqlens);
  }
  EXPECT_EQ(a.position(), b.position());
}

TEST(Loader, RanksReadDisjointRowsOfTheGlobalBatch) {
  Fixture f;
  LoaderOptions single;
  single.batch_size = 4;
  single.seq_len = 9;
  single.seed = 3;
  Loader whole(*f.ds, single);
  LoaderOptions per_rank = single;
  per_rank.batch_size = 2;
  per_rank.world_size = 2;
  per_rank.rank = 0;
  Loader r0(*f.ds, per_rank);
  per_rank.rank = 1;
  Loader r1(*f.ds, per_rank);
  for (int i = 0; i < 10; ++i) {
    Batch w = whole.next(), a = r0.next(), b = r1.next();
    ASSERT_TRUE(torch::equal(torch::cat({a.input_ids, b.input_ids}), w.input_ids)) << i;
    ASSERT_TRUE(torch::equal(torch::cat({a.labels, b.labels}), w.labels));
  }
  EXPECT_EQ(r0.position(), whole.position());
}

TEST(Loader, PaddedRowsHoldOneDocumentEach) {
  Fixture f;
  LoaderOptions o;
  o.batch_size = 5;
  o.seq_len = 20;
  o.layout = BatchLayout::kPadded;
  o.shuffle = false;
  o.pad_id = 0;
  Loader loader(*f.ds, o);
  Batch b = loader.next();
  for (int64_t r = 0; r < 5; ++r) {
    const auto& d = f.docs[r];
    const int64_t n = std::min<int64_t>(20, d.size());
    for (int64_t t = 0; t < 20; ++t) {
      if (t < n) {
        EXPECT_EQ(b.input_ids[r][t].item<int64_t>(), d[t]);
        EXPECT_EQ(b.labels[r][t].item<int64_t>(), t + 1 < int64_t(d.size()) ? d[t + 1] : kIgnoreLabel);
      } else {
        EXPECT_EQ(b.labels[r][t].item<int64_t>(), kIgnoreLabel);
      }
    }
    EXPECT_EQ(b.cu_seqlens[r][1], n);
  }
}

TEST(Loader, BadOptions) {
  Fixture f;
  LoaderOptions o;
  o.batch_size = 0;
  EXPECT_THROW(Loader(*f.ds, o), Error);
  o = LoaderOptions{};
  o.rank = 2;
  o.world_size = 2;
  EXPECT_THROW(Loader(*f.ds, o), Error);
  EXPECT_THROW(Loader(*f.ds, LoaderOptions{}, LoaderPosition{0, 30, 0}), Error);
  EXPECT_THROW(Loader(*f.ds, LoaderOptions{}, LoaderPosition{0, 0, 1000}), Error);
}
