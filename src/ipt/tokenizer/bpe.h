#pragma once
// The BPE model: symbols start as the byte tokens of a pre-token and the lowest-ranked merge among
// adjacent pairs is applied until none applies (leftmost first among equal ranks), exactly the
// order of Hugging Face's `tokenizers`. Pair lookups go through an open-addressing table keyed by
// the two ids; short words merge by scanning, long ones through a heap so that a 100 kB run of
// punctuation stays O(n log n).
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ipt::tok {

class PairTable {
 public:
  struct Entry {
    uint64_t key;
    uint32_t rank;
    int32_t id;
  };
  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void reserve(size_t n);
  // A later insert of the same pair replaces the earlier one (as a map built from the list would).
  void insert(int32_t left, int32_t right, uint32_t rank, int32_t id);
  const Entry* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    const uint64_t k = key(left, right);
    for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == k) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~0ULL;
  static uint64_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }
  void grow();
  std::vector<Entry> slots_;
  size_t mask_ = 0, size_ = 0;
};

class BpeModel {
 public:
  BpeModel() = default;
  // `byte_tokens[b]`: id of the single-byte token for byte b (-1: none; the byte is dropped). `merges` in rank order (left, right,
  // result). `whole_words`: raw-byte token -> id, consulted first when `ignore_merges` is set.
  BpeModel(std::vector<int32_t> byte_tokens, const std::vector<std::tuple<int32_t, int32_t, int32_t>>& merges,
           std::unordered_map<std::string, int32_t> whole_words, bool ignore_merges);

  // Appends the ids of one pre-token (raw bytes) to `out`.
  void encode_word(std::string_view bytes, std::vector<int32_t>& out) const;

  // The merge algorithms, exposed for tests: in-place on `symbols`.
  void merge_by_scan(std::vector<int32_t>& symbols) const;
  void merge_by_heap(std::vector<int32_t>& symbols) const;

  size_t merge_count() const { return pairs_.size(); }

 private:
  std::vector<int32_t> byte_tokens_;
  PairTable pairs_;
  std::unordered_map<std::string, int32_t> whole_words_;
  bool ignore_merges_ = false;
};

}  // namespace ipt::tok
