#pragma once
// Private to src/ipt/tokenizer: the state behind Tokenizer and the types its parts share. Loading is
// in tokenizer_json.cpp, encode() and pre_tokenize() in encode.cpp, encode_parallel() in
// encode_parallel.cpp, decoding and the accessors in tokenizer.cpp.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ipt/tokenizer/added_tokens.h"
#include "ipt/tokenizer/bpe.h"
#include "ipt/tokenizer/normalizer.h"
#include "ipt/tokenizer/regex.h"
#include "ipt/tokenizer/tokenizer.h"
#include "ipt/tokenizer/word_cache.h"

namespace ipt::tok {

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel } kind = Kind::kSplit;
  std::optional<Regex> regex;  // Split's pattern, or ByteLevel's own when use_regex
  Behavior behavior = Behavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;
  std::string description;
};

struct PostItem {
  bool sequence = false;      // the encoded text ("Sequence" A)
  std::vector<int32_t> ids;  // a special token's ids
};

// What one encoding thread needs: regex match state, scratch vectors per pre-tokenizer step, cache.
struct EncodeState {
  RegexScratch scratch;
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> matches;
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> pieces;
  WordCache cache;
};

struct VocabAndMerges;  // tokenizer_json.cpp

struct Tokenizer::Impl {
  std::string origin;
  // Normalizer: a list of forms applied in order (empty = none).
  std::vector<NormalForm> normalizer;
  std::string normalizer_description = "none";
  std::vector<PreTokenizerStep> steps;
  BpeModel model;
  // Per id: its spelling in tokenizer.json and its decoded bytes, as spans of two arenas.
  std::string token_arena, bytes_arena;
  std::vector<std::pair<uint32_t, uint32_t>> token_span, bytes_span;
  std::unordered_map<std::string_view, int32_t> token_ids;  // spelling -> id (model and added)
  std::vector<bool> id_special;
  std::vector<bool> id_present;
  std::string_view spelling_of(int32_t id) const {
    return std::string_view(token_arena).substr(token_span[id].first, token_span[id].second);
  }
  std::string_view bytes_of(int32_t id) const {
    return std::string_view(bytes_arena).substr(bytes_span[id].first, bytes_span[id].second);
  }
  std::vector<AddedToken> added;
  AddedTokenMatcher raw_matcher, normalized_matcher;
  std::vector<PostItem> post_single;  // empty = no template
  bool has_template = false;
  TokenizerConfig config;
  bool parallel_safe = true;
  size_t model_vocab = 0;

  mutable std::mutex pool_mutex;
  mutable std::vector<std::unique_ptr<EncodeState>> pool;

  std::unique_ptr<EncodeState> acquire() const {
    {
      std::lock_guard<std::mutex> lock(pool_mutex);
      if (!pool.empty()) {
        auto state = std::move(pool.back());
        pool.pop_back();
        return state;
      }
    }
    auto state = std::make_unique<EncodeState>();
    state->matches.resize(steps.size() + 1);
    state->pieces.resize(steps.size() + 1);
    return state;
  }
  void release(std::unique_ptr<EncodeState> state) const {
    std::lock_guard<std::mutex> lock(pool_mutex);
    pool.push_back(std::move(state));
  }

  // ---- loading ----
  void load_normalizer(const nlohmann::json& n, const std::string& where);
  void load_pre_tokenizer(const nlohmann::json& p, const std::string& where);
  void load_model(const nlohmann::json& m, VocabAndMerges& data);
  void load_added_tokens(const nlohmann::json& a);
  void load_post_processor(const nlohmann::json& p, const std::string& where);
  void load_decoder(const nlohmann::json& d, const std::string& where);
  void load_config(const nlohmann::json& c);
  void finish();

  // ---- running ----
  template <typename Sink>
  void run_steps(size_t k, std::string_view piece, EncodeState& st, Sink& sink) const;
  template <typename OnPiece>
  void walk(std::string_view valid_text, EncodeState& st, OnPiece& on_piece) const;
  void encode_valid(std::string_view text, EncodeState& st, std::vector<int32_t>& out) const;
  std::string normalize_text(std::string_view text) const;
};

}  // namespace ipt::tok
