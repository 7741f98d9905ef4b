#pragma once
// A Hugging Face tokenizer.json of the byte-level BPE kind (GPT-2, Qwen2/Qwen3, LLaMA-3), loaded and
// run natively: the same ids as the `tokenizers` library for the same file and text.
//
// Pipeline of encode(text):
//   1. invalid UTF-8 in `text` is replaced by U+FFFD, one per maximal invalid subpart (what
//      Python's bytes.decode("utf-8", "replace") and Rust's String::from_utf8_lossy do, so the ids
//      are those that Hugging Face gives for the lossily decoded string);
//   2. added tokens with "normalized": false are cut out of the raw text (leftmost-longest match,
//      honouring single_word / lstrip / rstrip), the rest is normalized (NFC/NFD/NFKC/NFKD or none)
//      and added tokens with "normalized": true are cut out of the normalized text;
//   3. each remaining piece goes through the pre-tokenizer (Sequence / Split / ByteLevel / Digits);
//   4. each pre-token runs through the BPE merges (cached per pre-token);
//   5. with add_special_tokens, the post_processor template (TemplateProcessing) adds its tokens.
// decode(ids) maps ids back to bytes (ByteLevel decoder) and repairs invalid UTF-8 the same way, so
// decode(encode(x)) == x for every valid UTF-8 x.
//
// Anything in a file that this does not implement throws ipt::Error naming the component.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ipt::tok {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// From tokenizer_config.json (all optional).
struct TokenizerConfig {
  std::optional<std::string> bos_token, eos_token, pad_token, unk_token;
  bool add_bos_token = false, add_eos_token = false;
  bool has_chat_template = false;
  std::string tokenizer_class;
};

class Tokenizer {
 public:
  // `path`: a directory holding tokenizer.json (and optionally tokenizer_config.json), or the
  // tokenizer.json file itself.
  static Tokenizer load(const std::string& path);
  // From the texts of tokenizer.json and tokenizer_config.json ("" = none); `origin` names the
  // source in error messages.
  static Tokenizer from_json(const std::string& tokenizer_json, const std::string& config_json = "",
                             const std::string& origin = "tokenizer.json");

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  // The same ids as encode(), computed by `threads` threads on pieces of `text` cut after a newline
  // where cutting provably changes nothing (see parallel_safe()); falls back to encode() otherwise.
  std::vector<int32_t> encode_parallel(std::string_view text, int threads, bool add_special_tokens = false) const;
  // Whether encode_parallel() may cut: the pre-tokenizer regexes are ones known to never match
  // across "\n" followed by a non-space character, no added token contains "\n" and nothing adds
  // a prefix space per piece.
  bool parallel_safe() const;

  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // The raw bytes, without the U+FFFD repair (a prefix of ids may end inside a character).
  std::string decode_bytes(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  // Steps 1-3 of encode(): calls `on_piece(bytes, -1)` for each pre-token (raw bytes) and
  // `on_piece(content, id)` for each added token found in `text`.
  void pre_tokenize(std::string_view text, const std::function<void(std::string_view, int32_t)>& on_piece) const;

  size_t vocab_size() const;  // largest id + 1
  // The id of a token as spelled in tokenizer.json (byte-level form for model tokens).
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // throws for an unknown id
  const std::vector<AddedToken>& added_tokens() const;
  const TokenizerConfig& config() const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  std::string summary() const;  // one line: model, vocab, normalizer, pre-tokenizer

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ipt::tok
