#include "ipt/tokenizer/tokenizer.h"

#include <utf8proc.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "ipt/common/error.h"
#include "ipt/tokenizer/bpe.h"
#include "ipt/tokenizer/byte_level.h"
#include "ipt/tokenizer/normalizer.h"
#include "ipt/tokenizer/patterns.h"
#include "ipt/tokenizer/regex.h"
#include "ipt/tokenizer/utf8.h"

namespace ipt::tok {
namespace {

using json = nlohmann::json;

// The split patterns of patterns.h are those for which a cut after "\n" (between two non-space
// ASCII characters) is known not to change the pre-tokens: no alternative matches across "\n"
// followed by a non-space character, and none looks behind.

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

// What one encoding thread needs: regex match state, scratch vectors per pre-tokenizer step, cache.
struct EncodeState {
  RegexScratch scratch;
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> matches;
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> pieces;
  WordCache cache;
};

// Added tokens found in a text: [begin, end) and which token.
struct AddedMatch {
  size_t begin, end;
  int32_t token;  // index into added tokens
};

bool is_word_char(char32_t c) {
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
size_t last_char_start(std::string_view s) {
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

// model.vocab and model.merges, read by the SAX handler below instead of into the DOM (151k
// entries each: the DOM's map and per-entry nodes would cost most of the load time).
struct VocabAndMerges {
  bool has_vocab = false, has_merges = false;
  std::vector<std::pair<std::string, int64_t>> vocab;
  // A merge: "a b" (second empty, as_string) or ["a", "b"].
  struct Merge {
    std::string first, second;
    bool as_string = false;
  };
  std::vector<Merge> merges;
};

// Builds the DOM of tokenizer.json (nlohmann's own DOM builder) except for root.model.vocab and
// root.model.merges, which go into a VocabAndMerges and leave null in the DOM.
class TokenizerJsonSax : public nlohmann::json_sax<json> {
 public:
  TokenizerJsonSax(json& root, VocabAndMerges& out, const std::string& origin) : dom_(root, true), out_(out), origin_(origin) {}

  bool null() override { return capturing() ? fail("null") : dom_.null(); }
  bool boolean(bool v) override { return capturing() ? fail("a boolean") : dom_.boolean(v); }
  bool number_integer(number_integer_t v) override { return capturing() ? vocab_id(v) : dom_.number_integer(v); }
  bool number_unsigned(number_unsigned_t v) override {
    return capturing() ? vocab_id(static_cast<int64_t>(std::min<number_unsigned_t>(v, INT64_MAX))) : dom_.number_unsigned(v);
  }
  bool number_float(number_float_t v, const string_t& s) override { return capturing() ? fail("a float") : dom_.number_float(v, s); }
  bool binary(binary_t& v) override { return capturing() ? fail("binary") : dom_.binary(v); }
  bool string(string_t& v) override {
    if (capture_ == Capture::kMerges) {
      if (merge_depth_ == 0) {
        out_.merges.push_back({std::move(v), std::string(), true});
      } else {
        IPT_CHECK(merge_parts_ < 2, origin_, ": model.merges[", out_.merges.size() - 1, "] must be \"a b\" or [\"a\", \"b\"]");
        (merge_parts_ == 0 ? out_.merges.back().first : out_.merges.back().second) = std::move(v);
        ++merge_parts_;
      }
      return true;
    }
    return capturing() ? fail("a string") : dom_.string(v);
  }
  bool start_object(std::size_t n) override {
    if (capturing()) return fail("an object");
    if (frames_.size() == 2 && frames_[0].key == "model" && frames_[1].key == "vocab" && frames_[1].object) {
      capture_ = Capture::kVocab;
      out_.has_vocab = true;
      return true;
    }
    frames_.push_back({true, {}});
    return dom_.start_object(n);
  }
  bool key(string_t& k) override {
    if (capture_ == Capture::kVocab) {
      pending_key_ = std::move(k);
      return true;
    }
    if (capturing()) return fail("a key");
    frames_.back().key = k;
    return dom_.key(k);
  }
  bool end_object() override {
    if (capture_ == Capture::kVocab) {
      capture_ = Capture::kNone;
      return dom_.null();
    }
    if (capturing()) return fail("an object end");
    frames_.pop_back();
    return dom_.end_object();
  }
  bool start_array(std::size_t n) override {
    if (capture_ == Capture::kMerges) {
      IPT_CHECK(merge_depth_ == 0, origin_, ": model.merges[", out_.merges.size() - 1, "] must be \"a b\" or [\"a\", \"b\"]");
      merge_depth_ = 1;
      merge_parts_ = 0;
      out_.merges.emplace_back();
      return true;
    }
    if (capturing()) return fail("an array");
    if (frames_.size() == 2 && frames_[0].key == "model" && frames_[1].key == "merges" && frames_[1].object) {
      capture_ = Capture::kMerges;
      out_.has_merges = true;
      return true;
    }
    frames_.push_back({false, {}});
    return dom_.start_array(n);
  }
  bool end_array() override {
    if (capture_ == Capture::kMerges) {
      if (merge_depth_ == 1) {
        IPT_CHECK(merge_parts_ == 2, origin_, ": model.merges[", out_.merges.size() - 1, "] must be \"a b\" or [\"a\", \"b\"]");
        merge_depth_ = 0;
        return true;
      }
      capture_ = Capture::kNone;
      return dom_.null();
    }
    if (capturing()) return fail("an array end");
    frames_.pop_back();
    return dom_.end_array();
  }
  bool parse_error(std::size_t position, const std::string& last_token, const nlohmann::detail::exception& e) override {
    return dom_.parse_error(position, last_token, e);
  }

 private:
  enum class Capture { kNone, kVocab, kMerges };
  bool capturing() const { return capture_ != Capture::kNone; }
  struct Frame {
    bool object;
    std::string key;
  };
  bool vocab_id(int64_t v) {
    if (capture_ != Capture::kVocab) return fail("a number");
    out_.vocab.emplace_back(std::move(pending_key_), v);
    return true;
  }
  bool fail(const char* what) {
    throw Error(origin_ + (capture_ == Capture::kVocab ? ": model.vocab must map tokens to integer ids, found "
                                                        : ": model.merges must hold \"a b\" strings or [\"a\", \"b\"] pairs, found ") +
                what);
  }
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  VocabAndMerges& out_;
  const std::string& origin_;
  std::vector<Frame> frames_;
  Capture capture_ = Capture::kNone;
  std::string pending_key_;
  int merge_depth_ = 0, merge_parts_ = 0;
};

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  IPT_CHECK(in, what, ": cannot open '", path, "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool file_exists(const std::string& path) {
  std::ifstream in(path);
  return static_cast<bool>(in);
}

bool is_directory(const std::string& path) {
  std::ifstream probe(path + "/tokenizer.json");
  return static_cast<bool>(probe);
}

// A token in tokenizer_config.json: "text", {"content": "text", ...} or null.
std::optional<std::string> config_token(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  throw Error(std::string("tokenizer_config.json: '") + key + "' must be a string, an object with \"content\" or null");
}

}  // namespace

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
  void load_normalizer(const json& n, const std::string& where);
  void load_pre_tokenizer(const json& p, const std::string& where);
  void load_model(const json& m, VocabAndMerges& data);
  void load_added_tokens(const json& a);
  void load_post_processor(const json& p, const std::string& where);
  void load_decoder(const json& d, const std::string& where);
  void load_config(const json& c);
  void finish();

  // ---- running ----
  template <typename Sink>
  void run_steps(size_t k, std::string_view piece, EncodeState& st, Sink& sink) const;
  template <typename Sink>
  void split_added(std::string_view text, const AddedTokenMatcher& matcher, std::vector<AddedMatch>& buffer,
                   Sink& sink) const;
  template <typename OnPiece>
  void walk(std::string_view valid_text, EncodeState& st, OnPiece& on_piece) const;
  void encode_valid(std::string_view text, EncodeState& st, std::vector<int32_t>& out) const;
  std::string normalize_text(std::string_view text) const;
};

// ------------------------------------------------------------------------------------------------
// Loading

void Tokenizer::Impl::load_normalizer(const json& n, const std::string& where) {
  if (n.is_null()) return;
  IPT_CHECK(n.is_object() && n.contains("type"), origin, ": ", where, " must be null or an object with \"type\"");
  const std::string type = n["type"].get<std::string>();
  if (type == "Sequence") {
    for (const json& inner : n.at("normalizers")) load_normalizer(inner, where + ".normalizers[]");
    return;
  }
  auto form = parse_normal_form(type);
  IPT_CHECK(form, origin, ": normalizer type '", type, "' is not supported (supported: NFC, NFD, NFKC, NFKD, Sequence, null)");
  normalizer.push_back(*form);
  normalizer_description = normalizer_description == "none" ? type : normalizer_description + "+" + type;
}

void Tokenizer::Impl::load_pre_tokenizer(const json& p, const std::string& where) {
  IPT_CHECK(p.is_object() && p.contains("type"), origin, ": ", where, " must be an object with \"type\"");
  const std::string type = p["type"].get<std::string>();
  if (type == "Sequence") {
    for (const json& inner : p.at("pretokenizers")) load_pre_tokenizer(inner, where + ".pretokenizers[]");
    return;
  }
  PreTokenizerStep step;
  if (type == "Split") {
    const json& pattern = p.at("pattern");
    if (pattern.contains("Regex")) {
      step.regex = Regex::from_oniguruma(pattern["Regex"].get<std::string>(), origin + ": pre_tokenizer Split");
    } else if (pattern.contains("String")) {
      step.regex = Regex::literal(pattern["String"].get<std::string>(), origin + ": pre_tokenizer Split");
    } else {
      throw Error(origin + ": pre_tokenizer Split pattern must have \"Regex\" or \"String\"");
    }
    const std::string behavior = p.value("behavior", "Isolated");
    if (behavior == "Removed") step.behavior = Behavior::kRemoved;
    else if (behavior == "Isolated") step.behavior = Behavior::kIsolated;
    else if (behavior == "MergedWithPrevious") step.behavior = Behavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext") step.behavior = Behavior::kMergedWithNext;
    else if (behavior == "Contiguous") step.behavior = Behavior::kContiguous;
    else throw Error(origin + ": pre_tokenizer Split behavior '" + behavior + "' is not supported");
    step.invert = p.value("invert", false);
    step.description = "Split(" + behavior + (step.invert ? ",invert" : "") + ")";
    const std::string& source = step.regex->source();
    const bool known = pattern.contains("Regex") && (source == kQwen2Pattern || source == kLlama3Pattern || source == kGpt2Pattern);
    if (!known || step.behavior != Behavior::kIsolated || step.invert) parallel_safe = false;
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = p.value("add_prefix_space", true);
    const bool use_regex = p.value("use_regex", true);
    if (use_regex) step.regex = Regex::from_oniguruma(kGpt2Pattern, origin + ": pre_tokenizer ByteLevel");
    if (step.add_prefix_space) parallel_safe = false;
    step.description = std::string("ByteLevel(") + (use_regex ? "regex" : "no regex") +
                       (step.add_prefix_space ? ",prefix space" : "") + ")";
  } else if (type == "Digits") {
    const bool individual = p.value("individual_digits", false);
    step.regex = Regex::from_oniguruma(individual ? "\\p{N}" : "\\p{N}+", origin + ": pre_tokenizer Digits");
    step.description = individual ? "Digits(individual)" : "Digits";
  } else {
    throw Error(origin + ": pre_tokenizer type '" + type +
                "' is not supported (supported: Sequence, Split, ByteLevel, Digits)");
  }
  steps.push_back(std::move(step));
}

void Tokenizer::Impl::load_added_tokens(const json& a) {
  if (a.is_null()) return;
  IPT_CHECK(a.is_array(), origin, ": \"added_tokens\" must be an array");
  for (const json& t : a) {
    AddedToken token;
    IPT_CHECK(t.is_object() && t.contains("id") && t.at("id").is_number_integer(), origin,
              ": an added token needs an integer \"id\"");
    const int64_t id = t.at("id").get<int64_t>();  // checked before narrowing: 2^32 + 5 is not 5
    IPT_CHECK(id >= 0 && id < (1 << 30), origin, ": added token id ", id, " is out of range");
    token.id = static_cast<int32_t>(id);
    token.content = t.at("content").get<std::string>();
    IPT_CHECK(!token.content.empty() && is_valid_utf8(token.content), origin, ": added token ", token.id,
              " must have non-empty UTF-8 content");
    token.special = t.value("special", false);
    token.lstrip = t.value("lstrip", false);
    token.rstrip = t.value("rstrip", false);
    token.single_word = t.value("single_word", false);
    token.normalized = t.value("normalized", !token.special);
    if (token.content.find('\n') != std::string::npos) parallel_safe = false;
    added.push_back(token);
  }
}

// Needs `added` loaded. All spellings and decoded bytes go to two arenas that never move after
// this, so the maps can hold views into them (151k tokens load without 151k small allocations).
void Tokenizer::Impl::load_model(const json& m, VocabAndMerges& data) {
  IPT_CHECK(m.is_object(), origin, ": \"model\" must be an object");
  const std::string type = m.value("type", "BPE");
  IPT_CHECK(type == "BPE", origin, ": model type '", type, "' is not supported (only byte-level BPE)");
  IPT_CHECK(!m.contains("dropout") || m["dropout"].is_null() || m["dropout"].get<double>() == 0.0, origin,
            ": model BPE dropout is not supported (it makes encoding random); expected null");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    IPT_CHECK(!m.contains(key) || m[key].is_null() || m[key].get<std::string>().empty(), origin, ": model BPE ",
              key, " is not supported by byte-level BPE; expected \"\" or null");
  const bool ignore_merges = m.value("ignore_merges", false);

  IPT_CHECK(data.has_vocab, origin, ": model.vocab must be an object of token -> id");
  struct Entry {
    std::string_view spelling;
    int32_t id;
  };
  std::vector<Entry> entries;
  entries.reserve(data.vocab.size() + added.size());
  size_t spelled_bytes = 0;
  int64_t max_id = -1;
  for (const auto& [spelling, id] : data.vocab) {
    IPT_CHECK(id >= 0 && id < (int64_t(1) << 30), origin, ": model.vocab id ", id, " of token '", spelling,
              "' is out of range");
    entries.push_back({spelling, static_cast<int32_t>(id)});
    spelled_bytes += spelling.size();
    max_id = std::max(max_id, id);
  }
  model_vocab = entries.size();
  for (const AddedToken& token : added) {
    entries.push_back({token.content, token.id});
    spelled_bytes += token.content.size();
    max_id = std::max<int64_t>(max_id, token.id);
  }
  const size_t n = static_cast<size_t>(max_id + 1);
  token_arena.reserve(spelled_bytes);
  bytes_arena.reserve(spelled_bytes);
  token_span.assign(n, {0, 0});
  bytes_span.assign(n, {0, 0});
  id_present.assign(n, false);
  id_special.assign(n, false);
  std::vector<bool> whole_word(n, false);  // model tokens spelled in byte-level characters
  for (size_t e = 0; e < entries.size(); ++e) {
    const auto [spelling, id] = entries[e];
    const bool is_added = e >= model_vocab;
    IPT_CHECK(is_added || !id_present[id], origin, ": model.vocab gives id ", id, " to two tokens");
    id_present[id] = true;
    token_span[id] = {static_cast<uint32_t>(token_arena.size()), static_cast<uint32_t>(spelling.size())};
    token_arena.append(spelling);
    // The ByteLevel decoder maps a token's characters back to bytes when all of them are byte-level
    // characters, and keeps the token's UTF-8 otherwise (as `tokenizers` does).
    const size_t at = bytes_arena.size();
    bool byte_level = is_valid_utf8(spelling);
    for (size_t i = 0; byte_level && i < spelling.size();) {
      auto b = char_to_byte(next_code_point(spelling, i));
      if (b) bytes_arena.push_back(static_cast<char>(*b));
      else byte_level = false;
    }
    if (!byte_level) {
      bytes_arena.resize(at);
      bytes_arena.append(spelling);
    }
    bytes_span[id] = {static_cast<uint32_t>(at), static_cast<uint32_t>(bytes_arena.size() - at)};
    whole_word[id] = !is_added && byte_level;
  }
  for (const AddedToken& token : added) id_special[static_cast<size_t>(token.id)] = token.special;
  token_ids.reserve(entries.size());
  for (size_t id = 0; id < n; ++id)
    if (id_present[id]) token_ids[spelling_of(static_cast<int32_t>(id))] = static_cast<int32_t>(id);
  for (const AddedToken& token : added) token_ids[spelling_of(token.id)] = token.id;  // added tokens win

  // Some vocabularies (SmolLM2's) lack the tokens of a few bytes (control characters, bytes
  // that never occur in UTF-8); those bytes are dropped, as `tokenizers` does without an
  // unk_token. Without the space token ('Ġ') the vocabulary is not byte-level at all.
  std::vector<int32_t> byte_tokens(256, -1);
  for (int b = 0; b < 256; ++b) {
    std::string spelled;
    append_utf8(spelled, byte_to_char(static_cast<unsigned char>(b)));
    auto it = token_ids.find(spelled);
    IPT_CHECK(it != token_ids.end() || b != ' ', origin, ": model.vocab lacks the byte-level token for byte ", b,
              " ('", spelled, "'); only byte-level BPE vocabularies are supported");
    if (it != token_ids.end()) byte_tokens[b] = it->second;
  }
  std::unordered_map<std::string, int32_t> whole_words;
  if (ignore_merges) {
    whole_words.reserve(model_vocab);
    for (size_t id = 0; id < n; ++id)
      if (whole_word[id]) whole_words.emplace(std::string(bytes_of(static_cast<int32_t>(id))), static_cast<int32_t>(id));
  }

  IPT_CHECK(data.has_merges, origin, ": model.merges must be an array");
  std::vector<std::tuple<int32_t, int32_t, int32_t>> pairs;
  pairs.reserve(data.merges.size());
  std::string merged;
  for (size_t i = 0; i < data.merges.size(); ++i) {
    const VocabAndMerges::Merge& entry = data.merges[i];
    std::string_view left = entry.first, right = entry.second;
    if (entry.as_string) {
      const size_t space = left.find(' ');
      IPT_CHECK(space != std::string::npos && left.find(' ', space + 1) == std::string::npos, origin, ": model.merges[",
                i, "] = '", entry.first, "' must be two tokens separated by one space");
      right = left.substr(space + 1);
      left = left.substr(0, space);
    }
    auto l = token_ids.find(left), r = token_ids.find(right);
    IPT_CHECK(l != token_ids.end() && r != token_ids.end(), origin, ": model.merges[", i,
              "] uses a token not in the vocab: '", l == token_ids.end() ? left : right, "'");
    merged.assign(left);
    merged.append(right);
    auto result = token_ids.find(merged);
    IPT_CHECK(result != token_ids.end(), origin, ": model.merges[", i, "] makes '", merged, "', which is not in the vocab");
    pairs.emplace_back(l->second, r->second, result->second);
  }
  model = BpeModel(std::move(byte_tokens), pairs, std::move(whole_words), ignore_merges);
}

void Tokenizer::Impl::load_post_processor(const json& p, const std::string& where) {
  if (p.is_null()) return;
  const std::string type = p.at("type").get<std::string>();
  if (type == "ByteLevel") return;  // offsets only; ids unchanged
  if (type == "Sequence") {
    for (const json& inner : p.at("processors")) load_post_processor(inner, where + ".processors[]");
    return;
  }
  IPT_CHECK(type == "TemplateProcessing", origin, ": post_processor type '", type,
            "' is not supported (supported: ByteLevel, TemplateProcessing, Sequence, null)");
  IPT_CHECK(!has_template, origin, ": more than one TemplateProcessing post_processor is not supported");
  has_template = true;
  const json& specials = p.at("special_tokens");
  for (const json& item : p.at("single")) {
    PostItem post;
    if (item.contains("Sequence")) {
      const std::string id = item["Sequence"].at("id").get<std::string>();
      IPT_CHECK(id == "A", origin, ": post_processor single template refers to sequence '", id, "'; expected 'A'");
      post.sequence = true;
    } else if (item.contains("SpecialToken")) {
      const std::string name = item["SpecialToken"].at("id").get<std::string>();
      IPT_CHECK(specials.contains(name), origin, ": post_processor special token '", name, "' is not in special_tokens");
      for (const json& id : specials[name].at("ids")) {
        IPT_CHECK(id.is_number_integer(), origin, ": post_processor special token '", name, "' has a non-integer id");
        post.ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
      }
    } else {
      throw Error(origin + ": post_processor template item must be Sequence or SpecialToken");
    }
    post_single.push_back(std::move(post));
  }
}

void Tokenizer::Impl::load_decoder(const json& d, const std::string& where) {
  IPT_CHECK(!d.is_null(), origin, ": decoder null is not supported (byte-level BPE needs the ByteLevel decoder)");
  const std::string type = d.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const json& inner : d.at("decoders")) load_decoder(inner, where + ".decoders[]");
    return;
  }
  IPT_CHECK(type == "ByteLevel", origin, ": decoder type '", type, "' is not supported (supported: ByteLevel)");
}

void Tokenizer::Impl::load_config(const json& c) {
  IPT_CHECK(c.is_object(), "tokenizer_config.json: must be a JSON object");
  config.bos_token = config_token(c, "bos_token");
  config.eos_token = config_token(c, "eos_token");
  config.pad_token = config_token(c, "pad_token");
  config.unk_token = config_token(c, "unk_token");
  auto flag = [&](const char* key) { return c.contains(key) && c[key].is_boolean() && c[key].get<bool>(); };
  config.add_bos_token = flag("add_bos_token");
  config.add_eos_token = flag("add_eos_token");
  config.has_chat_template = c.contains("chat_template") && !c["chat_template"].is_null();
  if (c.contains("tokenizer_class") && c["tokenizer_class"].is_string())
    config.tokenizer_class = c["tokenizer_class"].get<std::string>();
  for (const auto& token : {config.bos_token, config.eos_token, config.pad_token, config.unk_token})
    IPT_CHECK(!token || token_ids.count(std::string_view(*token)), "tokenizer_config.json: special token '", *token,
              "' is not in the vocabulary of ", origin);
}

void Tokenizer::Impl::finish() {
  bool byte_level_last = !steps.empty() && steps.back().kind == PreTokenizerStep::Kind::kByteLevel;
  for (size_t i = 0; i + 1 < steps.size(); ++i)
    IPT_CHECK(steps[i].kind != PreTokenizerStep::Kind::kByteLevel, origin,
              ": pre_tokenizer ByteLevel must be the last step (a step after it would see byte-level text)");
  IPT_CHECK(byte_level_last, origin, ": pre_tokenizer must end with ByteLevel (only byte-level BPE is supported)");
  for (size_t i = 0; i < added.size(); ++i) {
    const AddedToken& token = added[i];
    if (!token.normalized) raw_matcher.add(token.content, static_cast<int32_t>(i));
    else normalized_matcher.add(normalize_text(token.content), static_cast<int32_t>(i));
  }
}

std::string Tokenizer::Impl::normalize_text(std::string_view text) const {
  std::string current(text);
  for (NormalForm form : normalizer) {
    auto changed = normalize(current, form);
    if (changed) current = std::move(*changed);
  }
  return current;
}

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

// Cuts `text` at the added tokens of `matcher`, applying single_word / lstrip / rstrip the way
// `tokenizers` does; calls sink(piece, -1) for text and sink(content, token index) for tokens.
template <typename Sink>
void Tokenizer::Impl::split_added(std::string_view text, const AddedTokenMatcher& matcher,
                                  std::vector<AddedMatch>& found, Sink& sink) const {
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
      split_added(piece, normalized_matcher, normalized_found, on_normalized);
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
    split_added(view, normalized_matcher, normalized_found, on_normalized);
  };
  split_added(text, raw_matcher, raw_found, on_raw);
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

// ------------------------------------------------------------------------------------------------
// Public API

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& path) {
  std::string file = path, config_file;
  if (is_directory(path)) {
    file = path + "/tokenizer.json";
    config_file = path + "/tokenizer_config.json";
  } else {
    IPT_CHECK(file_exists(path), "tokenizer: '", path, "' is neither a directory with tokenizer.json nor a tokenizer.json file");
    const size_t slash = path.find_last_of('/');
    config_file = (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/tokenizer_config.json";
  }
  std::string config_text = file_exists(config_file) ? read_file(config_file, "tokenizer_config.json") : "";
  return from_json(read_file(file, "tokenizer.json"), config_text, file);
}

Tokenizer Tokenizer::from_json(const std::string& tokenizer_json, const std::string& config_json, const std::string& origin) {
  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  try {
    json j;
    VocabAndMerges data;
    TokenizerJsonSax sax(j, data, origin);
    json::sax_parse(tokenizer_json, &sax);
    IPT_CHECK(j.is_object(), origin, ": must be a JSON object");
    IPT_CHECK(j.contains("model"), origin, ": has no \"model\"");
    if (j.contains("truncation") && !j["truncation"].is_null())
      throw Error(origin + ": truncation is not supported; expected null");
    if (j.contains("padding") && !j["padding"].is_null())
      throw Error(origin + ": padding is not supported; expected null");
    impl->load_normalizer(j.value("normalizer", json()), "normalizer");
    IPT_CHECK(j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null(), origin,
              ": pre_tokenizer null is not supported (byte-level BPE needs ByteLevel)");
    impl->load_pre_tokenizer(j["pre_tokenizer"], "pre_tokenizer");
    impl->load_added_tokens(j.value("added_tokens", json::array()));
    impl->load_model(j["model"], data);
    impl->load_post_processor(j.value("post_processor", json()), "post_processor");
    impl->load_decoder(j.value("decoder", json()), "decoder");
    impl->finish();
    if (!config_json.empty()) {
      json c = json::parse(config_json);
      impl->load_config(c);
    }
  } catch (const json::exception& e) {
    throw Error(origin + ": malformed tokenizer file: " + e.what());
  }
  return Tokenizer(std::move(impl));
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

std::string Tokenizer::decode_bytes(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string out;
  const size_t n = impl_->id_present.size();
  for (int32_t id : ids) {
    IPT_CHECK(id >= 0 && static_cast<size_t>(id) < n && impl_->id_present[static_cast<size_t>(id)],
              "tokenizer decode: token id ", id, " is not in the vocabulary (size ", n, ")");
    if (skip_special_tokens && impl_->id_special[static_cast<size_t>(id)]) continue;
    out += impl_->bytes_of(id);
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes = decode_bytes(ids, skip_special_tokens);
  if (is_valid_utf8(bytes)) return bytes;
  return to_valid_utf8(bytes);
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

size_t Tokenizer::vocab_size() const { return impl_->id_present.size(); }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->token_ids.find(token);
  if (it == impl_->token_ids.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  IPT_CHECK(id >= 0 && static_cast<size_t>(id) < impl_->id_present.size() && impl_->id_present[static_cast<size_t>(id)],
            "tokenizer: token id ", id, " is not in the vocabulary");
  return std::string(impl_->spelling_of(id));
}

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
const TokenizerConfig& Tokenizer::config() const { return impl_->config; }

std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->config.bos_token ? token_to_id(*impl_->config.bos_token) : std::nullopt;
}
std::optional<int32_t> Tokenizer::eos_id() const {
  return impl_->config.eos_token ? token_to_id(*impl_->config.eos_token) : std::nullopt;
}
std::optional<int32_t> Tokenizer::pad_id() const {
  return impl_->config.pad_token ? token_to_id(*impl_->config.pad_token) : std::nullopt;
}

std::string Tokenizer::summary() const {
  std::ostringstream out;
  out << "byte-level BPE: " << impl_->model_vocab << " model tokens, " << impl_->model.merge_count() << " merges, "
      << impl_->added.size() << " added tokens (vocab size " << vocab_size() << "); normalizer "
      << impl_->normalizer_description << "; pre-tokenizer";
  for (const auto& step : impl_->steps) out << " " << step.description;
  return out.str();
}

}  // namespace ipt::tok
