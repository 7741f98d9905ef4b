#pragma once
// The BPE encoder's per-thread cache of pre-token -> ids (the same words recur all through a text).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace ipt::tok {

// Hash of a byte string, 8 bytes at a time.
inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  uint64_t w = 0;
  std::memcpy(&w, s.data() + i, s.size() - i);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 29;
  return h;
}

// Pre-token (raw bytes) -> ids, open addressing over arenas; cleared when full.
class WordCache {
 public:
  static constexpr size_t kMaxEntries = 1 << 19;
  static constexpr size_t kMaxWordBytes = 128;

  const int32_t* find(std::string_view word, uint64_t h, uint32_t& n) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.ids_len == 0) return nullptr;
      if (s.hash == h && s.key_len == word.size() && std::memcmp(keys_.data() + s.key_off, word.data(), word.size()) == 0) {
        n = s.ids_len;
        return ids_.data() + s.ids_off;
      }
    }
  }
  void insert(std::string_view word, uint64_t h, const int32_t* ids, uint32_t n) {
    if (n == 0 || word.size() > kMaxWordBytes) return;
    if (count_ + 1 > kMaxEntries) clear();
    if (slots_.empty() || (count_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 4096 : slots_.size() * 2);
    Slot s{h, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(word.size()), static_cast<uint32_t>(ids_.size()), n};
    keys_.append(word);
    ids_.insert(ids_.end(), ids, ids + n);
    place(s);
    ++count_;
  }
  void clear() {
    slots_.clear();
    keys_.clear();
    ids_.clear();
    count_ = 0;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0, key_len = 0, ids_off = 0, ids_len = 0;  // ids_len == 0: empty
  };
  void place(const Slot& s) {
    for (size_t i = s.hash & mask_;; i = (i + 1) & mask_)
      if (slots_[i].ids_len == 0) {
        slots_[i] = s;
        return;
      }
  }
  void rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const Slot& s : old)
      if (s.ids_len) place(s);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0, count_ = 0;
  std::string keys_;
  std::vector<int32_t> ids_;
};

}  // namespace ipt::tok
