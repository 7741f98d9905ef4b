#pragma once
// A deterministic byte-level BPE trainer with the Qwen2/Qwen3 pipeline (NFC, the Qwen split
// regex, ByteLevel): words are counted once, then the most frequent adjacent pair is merged again
// and again, with pair counts updated incrementally over the words that contain the pair (a
// max-heap with lazy re-validation picks the next pair; ties go to the smaller pair of ids).
// The result is a Hugging Face tokenizer.json (+ tokenizer_config.json) that `tokenizers`,
// `transformers` and transformers.js load.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ipt::tok {

struct TrainOptions {
  size_t vocab_size = 0;  // total, special tokens included
  std::vector<std::string> special_tokens{"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  uint64_t min_frequency = 2;  // stop when the best pair is rarer than this
};

struct TrainResult {
  std::string tokenizer_json;
  std::string config_json;
  size_t merges = 0;
  size_t unique_words = 0;
  uint64_t input_bytes = 0;
};

class BpeTrainer {
 public:
  explicit BpeTrainer(TrainOptions options);
  ~BpeTrainer();
  // Counts the pre-tokens of `text` (special tokens in the text are not learnt from).
  void feed(std::string_view text);
  TrainResult train() const;

 private:
  struct Impl;
  Impl* impl_;
};

// The tokenizer.json of the pipeline with no merges (256 byte tokens and the special tokens).
std::string base_tokenizer_json(const TrainOptions& options);

}  // namespace ipt::tok
