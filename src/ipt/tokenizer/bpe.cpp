#include "ipt/tokenizer/bpe.h"

#include <algorithm>
#include <limits>
#include <queue>
#include <tuple>

namespace ipt::tok {

void PairTable::reserve(size_t n) {
  size_t capacity = 16;
  while (capacity < n * 2) capacity *= 2;
  if (capacity <= slots_.size()) return;
  std::vector<Entry> old = std::move(slots_);
  slots_.assign(capacity, Entry{kEmpty, 0, 0});
  mask_ = capacity - 1;
  size_ = 0;
  for (const Entry& e : old)
    if (e.key != kEmpty) insert(static_cast<int32_t>(e.key >> 32), static_cast<int32_t>(e.key & 0xFFFFFFFFu), e.rank, e.id);
}

void PairTable::grow() { reserve(std::max<size_t>(16, size_ * 2 + 2)); }

void PairTable::insert(int32_t left, int32_t right, uint32_t rank, int32_t id) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const uint64_t k = key(left, right);
  for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
    Entry& e = slots_[i];
    if (e.key == k) {
      e.rank = rank;
      e.id = id;
      return;
    }
    if (e.key == kEmpty) {
      e = Entry{k, rank, id};
      ++size_;
      return;
    }
  }
}

BpeModel::BpeModel(std::vector<int32_t> byte_tokens, const std::vector<std::tuple<int32_t, int32_t, int32_t>>& merges,
                   std::unordered_map<std::string, int32_t> whole_words, bool ignore_merges)
    : byte_tokens_(std::move(byte_tokens)), whole_words_(std::move(whole_words)), ignore_merges_(ignore_merges) {
  pairs_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right, id] = merges[rank];
    pairs_.insert(left, right, static_cast<uint32_t>(rank), id);
  }
}

void BpeModel::merge_by_scan(std::vector<int32_t>& s) const {
  constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  // ranks[i]: rank of the pair (s[i], s[i+1]), kNone when it is no merge.
  uint32_t ranks_buffer[64];
  std::vector<uint32_t> ranks_heap;
  uint32_t* ranks = ranks_buffer;
  if (s.size() > 64) {
    ranks_heap.resize(s.size());
    ranks = ranks_heap.data();
  }
  auto rank_of = [&](size_t i) {
    const PairTable::Entry* e = pairs_.find(s[i], s[i + 1]);
    return e ? e->rank : kNone;
  };
  size_t n = s.size();
  for (size_t i = 0; i + 1 < n; ++i) ranks[i] = rank_of(i);
  while (n > 1) {
    uint32_t best = kNone;
    size_t at = 0;
    for (size_t i = 0; i + 1 < n; ++i)
      if (ranks[i] < best) {
        best = ranks[i];
        at = i;
      }
    if (best == kNone) break;
    s[at] = pairs_.find(s[at], s[at + 1])->id;
    for (size_t i = at + 1; i + 1 < n; ++i) {
      s[i] = s[i + 1];
      ranks[i] = ranks[i + 1];
    }
    --n;
    if (at + 1 < n) ranks[at] = rank_of(at);
    if (at > 0) ranks[at - 1] = rank_of(at - 1);
  }
  s.resize(n);
}

void BpeModel::merge_by_heap(std::vector<int32_t>& s) const {
  const size_t n = s.size();
  if (n < 2) return;
  std::vector<int32_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  // (rank, position of the left symbol, expected right symbol id); smallest rank, then leftmost.
  using Candidate = std::tuple<uint32_t, int32_t, int32_t, int32_t>;  // rank, pos, left id, right id
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    const PairTable::Entry* e = pairs_.find(s[pos], s[next[pos]]);
    if (e) heap.emplace(e->rank, pos, s[pos], s[next[pos]]);
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  std::vector<bool> alive(n, true);
  while (!heap.empty()) {
    const auto [rank, pos, left, right] = heap.top();
    heap.pop();
    if (!alive[pos] || next[pos] < 0 || s[pos] != left || s[next[pos]] != right) continue;
    const int32_t gone = next[pos];
    s[pos] = pairs_.find(left, right)->id;
    alive[gone] = false;
    next[pos] = next[gone];
    if (next[pos] >= 0) prev[next[pos]] = pos;
    push(prev[pos]);
    push(pos);
  }
  size_t out = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) s[out++] = s[i];
  s.resize(out);
}

void BpeModel::encode_word(std::string_view bytes, std::vector<int32_t>& out) const {
  if (bytes.empty()) return;
  if (bytes.size() == 1) {
    const int32_t id = byte_tokens_[static_cast<unsigned char>(bytes[0])];
    if (id >= 0) out.push_back(id);
    return;
  }
  if (ignore_merges_) {
    auto it = whole_words_.find(std::string(bytes));
    if (it != whole_words_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  thread_local std::vector<int32_t> symbols;
  symbols.clear();
  for (unsigned char b : bytes)
    if (byte_tokens_[b] >= 0) symbols.push_back(byte_tokens_[b]);  // bytes without a token are dropped
  if (symbols.size() > 256)
    merge_by_heap(symbols);
  else if (symbols.size() > 1)
    merge_by_scan(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
}

}  // namespace ipt::tok
