#pragma once
// Added tokens (special tokens and the like) cut out of text before pre-tokenization: a
// leftmost-longest byte trie over their contents, then the single_word / lstrip / rstrip rules.
#include <utf8proc.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "ipt/tokenizer/tokenizer.h"
#include "ipt/tokenizer/utf8.h"

namespace ipt::tok {

// Added tokens found in a text: [begin, end) and which token.
struct AddedMatch {
  size_t begin, end;
  int32_t token;  // index into added tokens
};

inline bool is_word_char(char32_t c) {
  if (c == '_' || c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

// Start of the last code point of s (valid UTF-8, non-empty).
inline size_t last_char_start(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

// Leftmost-longest matcher over a set of strings (a byte trie; the sets are small).
class AddedTokenMatcher {
 public:
  void add(std::string_view pattern, int32_t token) {
    if (pattern.empty()) return;
    if (nodes_.empty()) nodes_.emplace_back();
    size_t node = 0;
    for (char c : pattern) {
      const auto b = static_cast<unsigned char>(c);
      auto& children = nodes_[node].children;
      auto it = std::find_if(children.begin(), children.end(), [&](const auto& e) { return e.first == b; });
      if (it == children.end()) {
        nodes_.emplace_back();
        nodes_[node].children.emplace_back(b, static_cast<int32_t>(nodes_.size() - 1));
        node = nodes_.size() - 1;
      } else {
        node = static_cast<size_t>(it->second);
      }
    }
    nodes_[node].token = token;
    first_[static_cast<unsigned char>(pattern[0])] = true;
  }
  bool empty() const { return nodes_.empty(); }

  // Raw leftmost-longest non-overlapping matches.
  void find(std::string_view text, std::vector<AddedMatch>& out) const {
    out.clear();
    if (nodes_.empty()) return;
    size_t i = 0;
    while (i < text.size()) {
      if (!first_[static_cast<unsigned char>(text[i])]) {
        ++i;
        continue;
      }
      size_t node = 0, best_end = 0;
      int32_t best = -1;
      for (size_t j = i; j < text.size(); ++j) {
        const auto b = static_cast<unsigned char>(text[j]);
        const auto& children = nodes_[node].children;
        auto it = std::find_if(children.begin(), children.end(), [&](const auto& e) { return e.first == b; });
        if (it == children.end()) break;
        node = static_cast<size_t>(it->second);
        if (nodes_[node].token >= 0) {
          best = nodes_[node].token;
          best_end = j + 1;
        }
      }
      if (best >= 0) {
        out.push_back({i, best_end, best});
        i = best_end;
      } else {
        ++i;
      }
    }
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token = -1;
  };
  std::vector<Node> nodes_;
  bool first_[256] = {};
};

// Cuts `text` at the added tokens of `matcher`, applying single_word / lstrip / rstrip the way
// `tokenizers` does; calls sink(piece, -1) for text and sink(content, token index) for tokens.
template <typename Sink>
void split_added(std::string_view text, const AddedTokenMatcher& matcher, const std::vector<AddedToken>& added,
                 std::vector<AddedMatch>& found, Sink& sink) {
  if (matcher.empty()) {
    sink(text, -1);
    return;
  }
  matcher.find(text, found);
  size_t start_offset = 0;
  for (const AddedMatch& m : found) {
    const AddedToken& token = added[static_cast<size_t>(m.token)];
    size_t start = m.begin, stop = m.end;
    if (start < start_offset) continue;  // swallowed by a previous token's rstrip
    if (token.single_word) {
      bool start_ok = true, stop_ok = true;
      if (start > 0) {
        size_t i = last_char_start(text.substr(0, start));
        start_ok = !is_word_char(next_code_point(text, i));
      }
      if (stop < text.size()) {
        size_t i = stop;
        stop_ok = !is_word_char(next_code_point(text, i));
      }
      if (!start_ok || !stop_ok) continue;
    }
    if (token.lstrip) {
      size_t s = start;
      while (s > start_offset) {
        size_t i = last_char_start(text.substr(0, s)), j = i;
        if (!is_unicode_whitespace(next_code_point(text, j))) break;
        s = i;
      }
      start = s;
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        size_t j = stop;
        if (!is_unicode_whitespace(next_code_point(text, j))) break;
        stop = j;
      }
    }
    if (start > start_offset) sink(text.substr(start_offset, start - start_offset), -1);
    sink(std::string_view(token.content), m.token);
    start_offset = stop;
  }
  if (start_offset < text.size()) sink(text.substr(start_offset), -1);
}

}  // namespace ipt::tok
