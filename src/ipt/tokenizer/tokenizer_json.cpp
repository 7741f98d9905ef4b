// Loading: tokenizer.json (a SAX pass that keeps the vocab and merges out of the DOM) and
// tokenizer_config.json into a Tokenizer::Impl.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <tuple>

#include "ipt/common/error.h"
#include "ipt/tokenizer/byte_level.h"
#include "ipt/tokenizer/patterns.h"
#include "ipt/tokenizer/tokenizer_impl.h"
#include "ipt/tokenizer/utf8.h"

namespace ipt::tok {

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

namespace {

using json = nlohmann::json;

// The split patterns of patterns.h are those for which a cut after "\n" (between two non-space
// ASCII characters) is known not to change the pre-tokens: no alternative matches across "\n"
// followed by a non-space character, and none looks behind.

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

}  // namespace ipt::tok
