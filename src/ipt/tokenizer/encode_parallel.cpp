// encode_parallel(): the text cut after newlines where the pre-tokens cannot change, the pieces
// encoded on threads and joined.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ipt/common/error.h"
#include "ipt/tokenizer/tokenizer_impl.h"
#include "ipt/tokenizer/utf8.h"

namespace ipt::tok {

bool Tokenizer::parallel_safe() const { return impl_->parallel_safe; }

std::vector<int32_t> Tokenizer::encode_parallel(std::string_view text, int threads, bool add_special_tokens) const {
  if (threads <= 1 || !impl_->parallel_safe || text.size() < (1u << 16)) return encode(text, add_special_tokens);
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = to_valid_utf8(text);
    text = repaired;
  }
  // Cut points: just after a "\n" that sits between two non-space ASCII characters.
  auto cuttable = [&](size_t q) {
    auto plain = [](unsigned char c) { return c > 0x20 && c < 0x7F; };
    return q >= 2 && q < text.size() && text[q - 1] == '\n' && plain(static_cast<unsigned char>(text[q - 2])) &&
           plain(static_cast<unsigned char>(text[q]));
  };
  const size_t target = std::max<size_t>(1 << 15, text.size() / (static_cast<size_t>(threads) * 16));
  std::vector<size_t> cuts{0};
  size_t pos = target;
  while (pos < text.size()) {
    size_t q = pos;
    while (q < text.size() && !cuttable(q)) {
      const void* nl = std::memchr(text.data() + q, '\n', text.size() - q);
      if (!nl) {
        q = text.size();
        break;
      }
      q = static_cast<size_t>(static_cast<const char*>(nl) - text.data()) + 1;
    }
    if (q >= text.size()) break;
    cuts.push_back(q);
    pos = q + target;
  }
  cuts.push_back(text.size());
  const size_t pieces = cuts.size() - 1;
  std::vector<std::vector<int32_t>> results(pieces);
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::string error;
  auto work = [&] {
    try {
      while (true) {
        const size_t i = next.fetch_add(1);
        if (i >= pieces) break;
        results[i] = encode(text.substr(cuts[i], cuts[i + 1] - cuts[i]));
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(error_mutex);
      error = e.what();
      next = pieces;
    }
  };
  std::vector<std::thread> pool;
  const int n = std::min<int>(threads, static_cast<int>(pieces));
  for (int t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  IPT_CHECK(error.empty(), error);
  size_t total = 0;
  for (const auto& r : results) total += r.size();
  std::vector<int32_t> ids;
  ids.reserve(total + 4);
  for (const auto& r : results) ids.insert(ids.end(), r.begin(), r.end());
  if (add_special_tokens && impl_->has_template) {
    std::vector<int32_t> framed;
    for (const PostItem& item : impl_->post_single) {
      if (item.sequence) framed.insert(framed.end(), ids.begin(), ids.end());
      else framed.insert(framed.end(), item.ids.begin(), item.ids.end());
    }
    return framed;
  }
  return ids;
}

}  // namespace ipt::tok
