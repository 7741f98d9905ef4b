#pragma once
// Token shards: the on-disk form of a tokenized corpus (docs/data.md).
//
// A dataset is a directory with `meta.json` and shard files `shard-00000.bin`, … Each shard holds
// whole documents: a header, the tokens (uint16 when the vocabulary fits, else uint32), then the
// document boundaries. A checksum over both sections catches corruption and truncation on load.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ipt::data {

struct ShardInfo {
  std::string file;    // relative to the dataset directory
  int64_t tokens = 0;
  int64_t documents = 0;
  uint64_t checksum = 0;
};

struct DatasetMeta {
  int64_t vocab_size = 0;
  int token_bytes = 2;  // 2 or 4
  std::vector<ShardInfo> shards;
  int64_t total_tokens() const;
  int64_t total_documents() const;
};

DatasetMeta read_meta(const std::string& dir);

// Writes documents into shards of at most `shard_tokens` tokens (a longer document gets a shard of
// its own). Every file is written to a temporary name, flushed and renamed; meta.json last, so an
// interrupted run leaves the previous dataset readable. `append` continues an existing dataset.
class ShardWriter {
 public:
  ShardWriter(std::string dir, int64_t vocab_size, int64_t shard_tokens = 64 << 20, bool append = false);
  ~ShardWriter();
  void add(const std::vector<int64_t>& document);
  void finish();  // flushes the last shard and writes meta.json; called by the destructor if needed

 private:
  void flush_shard();
  std::string dir_;
  DatasetMeta meta_;
  int64_t shard_tokens_;
  std::vector<int64_t> tokens_;
  std::vector<uint64_t> offsets_{0};
  bool finished_ = false;
};

// One shard, memory-mapped and validated.
class Shard {
 public:
  Shard(const std::string& path, const ShardInfo& expected, int token_bytes);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  int64_t documents() const { return documents_; }
  int64_t tokens() const { return tokens_; }
  int64_t document_length(int64_t doc) const;
  // Copies tokens [begin, begin + count) of document `doc` into out (as int64).
  void read(int64_t doc, int64_t begin, int64_t count, int64_t* out) const;

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
  int token_bytes_;
  int64_t tokens_ = 0, documents_ = 0;
  const uint8_t* token_data_ = nullptr;
  const uint64_t* offsets_ = nullptr;
};

// The whole dataset, every shard opened (and checked) up front.
class Dataset {
 public:
  explicit Dataset(const std::string& dir);
  const DatasetMeta& meta() const { return meta_; }
  int64_t documents() const { return static_cast<int64_t>(doc_index_.size()); }
  int64_t document_length(int64_t doc) const;
  void read(int64_t doc, int64_t begin, int64_t count, int64_t* out) const;
  std::vector<int64_t> document(int64_t doc) const;

 private:
  DatasetMeta meta_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::pair<int32_t, int64_t>> doc_index_;  // global document -> (shard, local document)
};

uint64_t fnv1a64(const void* data, size_t bytes, uint64_t hash = 0xcbf29ce484222325ULL);

}  // namespace ipt::data
