// encode() and pre_tokenize(): added tokens cut out, normalization, the pre-tokenizer steps, then
// BPE per pre-token through the thread's word cache.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "ipt/common/error.h"
#include "ipt/tokenizer/tokenizer_impl.h"
#include "ipt/tokenizer/utf8.h"

namespace ipt::tok {

// ------------------------------------------------------------------------------------------------
// Running

template <typename Sink>
void Tokenizer::Impl::run_steps(size_t k, std::string_view piece, EncodeState& st, Sink& sink) const {
  if (piece.empty()) return;
  if (k == steps.size()) {
    sink(piece);
    return;
  }
  const PreTokenizerStep& step = steps[k];
  if (step.kind == PreTokenizerStep::Kind::kByteLevel && step.add_prefix_space && piece[0] != ' ') {
    std::string prefixed;
    prefixed.reserve(piece.size() + 1);
    prefixed += ' ';
    prefixed.append(piece);
    const std::string_view view = prefixed;
    if (!step.regex) {
      run_steps(k + 1, view, st, sink);
      return;
    }
    auto& matches = st.matches[k];
    step.regex->find_all(view, st.scratch, matches);
    // ByteLevel's regex splits Isolated.
    uint32_t last = 0;
    for (auto [b, e] : matches) {
      if (b > last) run_steps(k + 1, view.substr(last, b - last), st, sink);
      run_steps(k + 1, view.substr(b, e - b), st, sink);
      last = e;
    }
    if (last < view.size()) run_steps(k + 1, view.substr(last), st, sink);
    return;
  }
  if (!step.regex) {
    run_steps(k + 1, piece, st, sink);
    return;
  }
  auto& matches = st.matches[k];
  step.regex->find_all(piece, st.scratch, matches);
  auto& pieces = st.pieces[k];
  pieces.clear();
  if (step.behavior == Behavior::kIsolated) {
    // Matches and the gaps between them, all kept (invert changes nothing here).
    uint32_t last = 0;
    for (auto [b, e] : matches) {
      if (b > last) pieces.emplace_back(last, b);
      if (e > b) pieces.emplace_back(b, e);
      last = e;
    }
    if (last < piece.size()) pieces.emplace_back(last, static_cast<uint32_t>(piece.size()));
  } else {
    // (range, is_match) covering the piece, then the behavior's rule.
    struct Part {
      uint32_t b, e;
      bool match;
    };
    std::vector<Part> parts;
    uint32_t last = 0;
    for (auto [b, e] : matches) {
      if (b > last) parts.push_back({last, b, false});
      parts.push_back({b, e, true});
      last = e;
    }
    if (last < piece.size()) parts.push_back({last, static_cast<uint32_t>(piece.size()), false});
    if (step.invert)
      for (Part& p : parts) p.match = !p.match;
    std::vector<Part> kept;
    switch (step.behavior) {
      case Behavior::kRemoved:
        for (const Part& p : parts)
          if (!p.match) kept.push_back(p);
        break;
      case Behavior::kMergedWithPrevious: {
        bool previous_match = false;
        for (const Part& p : parts) {
          if (p.match && !previous_match && !kept.empty()) kept.back().e = p.e;
          else kept.push_back(p);
          previous_match = p.match;
        }
        break;
      }
      case Behavior::kMergedWithNext: {
        bool previous_match = false;
        for (size_t i = parts.size(); i-- > 0;) {
          const Part& p = parts[i];
          if (p.match && !previous_match && !kept.empty()) kept.back().b = p.b;
          else kept.push_back(p);
          previous_match = p.match;
        }
        std::reverse(kept.begin(), kept.end());
        break;
      }
      case Behavior::kContiguous: {
        bool previous_match = false;
        for (const Part& p : parts) {
          if (p.match == previous_match && !kept.empty()) kept.back().e = p.e;
          else kept.push_back(p);
          previous_match = p.match;
        }
        break;
      }
      case Behavior::kIsolated:
        break;
    }
    for (const Part& p : kept)
      if (p.e > p.b) pieces.emplace_back(p.b, p.e);
  }
  // Deeper steps use their own scratch vectors, so iterating ours while they run is safe.
  for (size_t i = 0; i < pieces.size(); ++i) {
    const auto [b, e] = pieces[i];
    run_steps(k + 1, piece.substr(b, e - b), st, sink);
  }
}


template <typename OnPiece>
void Tokenizer::Impl::walk(std::string_view text, EncodeState& st, OnPiece& on_piece) const {
  std::vector<AddedMatch> raw_found, normalized_found;
  auto pre_tokenize_piece = [&](std::string_view piece) {
    auto sink = [&](std::string_view word) { on_piece(word, -1); };
    run_steps(0, piece, st, sink);
  };
  auto on_normalized = [&](std::string_view piece, int32_t token) {
    if (token >= 0) on_piece(piece, token);
    else pre_tokenize_piece(piece);
  };
  auto on_raw = [&](std::string_view piece, int32_t token) {
    if (token >= 0) {
      on_piece(piece, token);
      return;
    }
    if (normalizer.empty()) {
      split_added(piece, normalized_matcher, added, normalized_found, on_normalized);
      return;
    }
    std::string normalized;
    std::string_view view = piece;
    for (NormalForm form : normalizer) {
      auto changed = normalize(view, form);
      if (changed) {
        normalized = std::move(*changed);
        view = normalized;
      }
    }
    split_added(view, normalized_matcher, added, normalized_found, on_normalized);
  };
  split_added(text, raw_matcher, added, raw_found, on_raw);
}

void Tokenizer::Impl::encode_valid(std::string_view text, EncodeState& st, std::vector<int32_t>& out) const {
  auto on_piece = [&](std::string_view piece, int32_t token) {
    if (token >= 0) {
      out.push_back(added[static_cast<size_t>(token)].id);
      return;
    }
    const uint64_t h = hash_bytes(piece);
    uint32_t n = 0;
    if (const int32_t* ids = st.cache.find(piece, h, n)) {
      out.insert(out.end(), ids, ids + n);
      return;
    }
    const size_t before = out.size();
    model.encode_word(piece, out);
    st.cache.insert(piece, h, out.data() + before, static_cast<uint32_t>(out.size() - before));
  };
  walk(text, st, on_piece);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  IPT_CHECK(text.size() < std::numeric_limits<uint32_t>::max(), "tokenizer encode: text of ", text.size(),
            " bytes is too long (at most 4 GiB per call)");
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = to_valid_utf8(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  auto state = impl_->acquire();
  try {
    impl_->encode_valid(text, *state, ids);
  } catch (...) {
    impl_->release(std::move(state));
    throw;
  }
  impl_->release(std::move(state));
  if (add_special_tokens && impl_->has_template) {
    std::vector<int32_t> framed;
    framed.reserve(ids.size() + 4);
    for (const PostItem& item : impl_->post_single) {
      if (item.sequence) framed.insert(framed.end(), ids.begin(), ids.end());
      else framed.insert(framed.end(), item.ids.begin(), item.ids.end());
    }
    return framed;
  }
  return ids;
}

void Tokenizer::pre_tokenize(std::string_view text, const std::function<void(std::string_view, int32_t)>& on_piece) const {
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = to_valid_utf8(text);
    text = repaired;
  }
  auto state = impl_->acquire();
  auto forward = [&](std::string_view piece, int32_t token) {
    on_piece(piece, token >= 0 ? impl_->added[static_cast<size_t>(token)].id : -1);
  };
  try {
    impl_->walk(text, *state, forward);
  } catch (...) {
    impl_->release(std::move(state));
    throw;
  }
  impl_->release(std::move(state));
}

}  // namespace ipt::tok
