#include "ipt/tokenizer/trainer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <queue>
#include <tuple>

#include "ipt/common/error.h"
#include "ipt/tokenizer/byte_level.h"
#include "ipt/tokenizer/patterns.h"
#include "ipt/tokenizer/tokenizer.h"
#include "ipt/tokenizer/utf8.h"

namespace ipt::tok {
namespace {

using ojson = nlohmann::ordered_json;


// The 256 byte tokens in the order of their shown code points (as GPT-2 and Qwen number them).
std::vector<unsigned char> byte_order() {
  std::vector<unsigned char> bytes(256);
  for (int b = 0; b < 256; ++b) bytes[b] = static_cast<unsigned char>(b);
  std::sort(bytes.begin(), bytes.end(), [](unsigned char a, unsigned char b) { return byte_to_char(a) < byte_to_char(b); });
  return bytes;
}

ojson byte_level_component() {
  return ojson{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
}

ojson tokenizer_document(const TrainOptions& o, const std::vector<std::string>& vocab,
                         const std::vector<std::pair<int32_t, int32_t>>& merges) {
  ojson doc;
  doc["version"] = "1.0";
  doc["truncation"] = nullptr;
  doc["padding"] = nullptr;
  ojson added = ojson::array();
  for (size_t i = 0; i < o.special_tokens.size(); ++i)
    added.push_back({{"id", vocab.size() + i}, {"content", o.special_tokens[i]}, {"single_word", false},
                     {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
  doc["added_tokens"] = added;
  doc["normalizer"] = {{"type", "NFC"}};
  doc["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       ojson::array({ojson{{"type", "Split"}, {"pattern", {{"Regex", kQwen2Pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
                     byte_level_component()})}};
  doc["post_processor"] = byte_level_component();
  doc["decoder"] = byte_level_component();
  ojson model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = nullptr;
  model["continuing_subword_prefix"] = "";
  model["end_of_word_suffix"] = "";
  model["fuse_unk"] = false;
  model["byte_fallback"] = false;
  model["ignore_merges"] = false;
  ojson v = ojson::object();
  for (size_t id = 0; id < vocab.size(); ++id) v[byte_level_encode(vocab[id])] = id;
  model["vocab"] = v;
  ojson m = ojson::array();
  for (const auto& [a, b] : merges) m.push_back({byte_level_encode(vocab[a]), byte_level_encode(vocab[b])});
  model["merges"] = m;
  doc["model"] = model;
  return doc;
}

std::string config_document(const TrainOptions& o, size_t first_special_id) {
  ojson c;
  c["add_bos_token"] = false;
  c["add_prefix_space"] = false;
  ojson decoder = ojson::object();
  for (size_t i = 0; i < o.special_tokens.size(); ++i)
    decoder[std::to_string(first_special_id + i)] = {{"content", o.special_tokens[i]}, {"lstrip", false},
                                                     {"normalized", false}, {"rstrip", false},
                                                     {"single_word", false}, {"special", true}};
  c["added_tokens_decoder"] = decoder;
  c["bos_token"] = nullptr;
  auto has = [&](const std::string& t) {
    return std::find(o.special_tokens.begin(), o.special_tokens.end(), t) != o.special_tokens.end();
  };
  if (has("<|im_start|>") && has("<|im_end|>"))
    c["chat_template"] =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
        "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  c["clean_up_tokenization_spaces"] = false;
  const std::string eos = has("<|endoftext|>") ? "<|endoftext|>" : (o.special_tokens.empty() ? "" : o.special_tokens[0]);
  if (eos.empty()) {
    c["eos_token"] = nullptr;
    c["pad_token"] = nullptr;
  } else {
    c["eos_token"] = eos;
    c["pad_token"] = eos;
  }
  c["errors"] = "replace";
  c["model_max_length"] = 131072;
  c["split_special_tokens"] = false;
  c["tokenizer_class"] = "Qwen2Tokenizer";
  c["unk_token"] = nullptr;
  return c.dump(2) + "\n";
}

}  // namespace

std::string base_tokenizer_json(const TrainOptions& options) {
  std::vector<std::string> vocab;
  for (unsigned char b : byte_order()) vocab.emplace_back(1, static_cast<char>(b));
  return tokenizer_document(options, vocab, {}).dump();
}

struct BpeTrainer::Impl {
  TrainOptions options;
  Tokenizer base;
  std::unordered_map<std::string, uint64_t> counts;
  uint64_t input_bytes = 0;
  explicit Impl(TrainOptions o) : options(std::move(o)), base(Tokenizer::from_json(base_tokenizer_json(options), "", "trainer")) {}
};

BpeTrainer::BpeTrainer(TrainOptions options) {
  IPT_CHECK(options.vocab_size >= 256 + options.special_tokens.size(), "tokenizer train: --vocab-size must be at least ",
            256 + options.special_tokens.size(), " (256 byte tokens + ", options.special_tokens.size(),
            " special tokens), got ", options.vocab_size);
  IPT_CHECK(options.vocab_size <= (1u << 24), "tokenizer train: --vocab-size ", options.vocab_size, " is too large");
  for (size_t i = 0; i < options.special_tokens.size(); ++i) {
    const std::string& t = options.special_tokens[i];
    IPT_CHECK(!t.empty() && is_valid_utf8(t), "tokenizer train: special tokens must be non-empty UTF-8");
    for (size_t j = 0; j < i; ++j)
      IPT_CHECK(options.special_tokens[j] != t, "tokenizer train: special token '", t, "' is given twice");
  }
  impl_ = new Impl(std::move(options));
}

BpeTrainer::~BpeTrainer() { delete impl_; }

void BpeTrainer::feed(std::string_view text) {
  impl_->input_bytes += text.size();
  impl_->base.pre_tokenize(text, [&](std::string_view piece, int32_t added) {
    if (added >= 0) return;
    auto it = impl_->counts.find(std::string(piece));
    if (it != impl_->counts.end()) ++it->second;
    else impl_->counts.emplace(std::string(piece), 1);
  });
}

TrainResult BpeTrainer::train() const {
  const TrainOptions& o = impl_->options;
  const size_t target = o.vocab_size - o.special_tokens.size();

  // Symbols: 0..255 the bytes in byte_order(), then one per merge result.
  std::vector<std::string> vocab;
  std::unordered_map<std::string, int32_t> ids;
  std::vector<int32_t> byte_id(256);
  for (unsigned char b : byte_order()) {
    byte_id[b] = static_cast<int32_t>(vocab.size());
    ids.emplace(std::string(1, static_cast<char>(b)), static_cast<int32_t>(vocab.size()));
    vocab.emplace_back(1, static_cast<char>(b));
  }

  // Words in a deterministic order (sorted by bytes), as id sequences with counts.
  std::vector<std::pair<std::string, uint64_t>> sorted(impl_->counts.begin(), impl_->counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::vector<int32_t>> words(sorted.size());
  std::vector<uint64_t> freq(sorted.size());
  for (size_t w = 0; w < sorted.size(); ++w) {
    freq[w] = sorted[w].second;
    for (char c : sorted[w].first) words[w].push_back(byte_id[static_cast<unsigned char>(c)]);
  }

  auto key = [](int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); };
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w];
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const uint64_t k = key(s[i], s[i + 1]);
      pair_count[k] += static_cast<int64_t>(freq[w]);
      auto& list = where[k];
      if (list.empty() || list.back() != w) list.push_back(static_cast<uint32_t>(w));
    }
  }
  // Max-heap on count; ties to the smaller key (left id, then right id).
  using Entry = std::pair<int64_t, uint64_t>;
  auto less = [](const Entry& a, const Entry& b) { return a.first != b.first ? a.first < b.first : a.second > b.second; };
  std::priority_queue<Entry, std::vector<Entry>, decltype(less)> heap(less);
  for (const auto& [k, c] : pair_count)
    if (c > 0) heap.emplace(c, k);

  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<int32_t> merged;
  while (vocab.size() < target && !heap.empty()) {
    const auto [count, k] = heap.top();
    heap.pop();
    auto current = pair_count.find(k);
    const int64_t now = current == pair_count.end() ? 0 : current->second;
    if (now != count) {
      if (now > 0) heap.emplace(now, k);
      continue;
    }
    if (count < static_cast<int64_t>(o.min_frequency) || count <= 0) break;
    const auto a = static_cast<int32_t>(k >> 32), b = static_cast<int32_t>(k & 0xFFFFFFFFu);
    std::string bytes = vocab[a] + vocab[b];
    int32_t id;
    auto found = ids.find(bytes);
    if (found != ids.end()) {
      id = found->second;
    } else {
      id = static_cast<int32_t>(vocab.size());
      ids.emplace(bytes, id);
      vocab.push_back(std::move(bytes));
    }
    merges.emplace_back(a, b);

    std::vector<uint32_t> affected = std::move(where[k]);
    where.erase(k);
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    std::vector<uint64_t> grown;
    for (uint32_t w : affected) {
      auto& s = words[w];
      bool has = false;
      for (size_t i = 0; i + 1 < s.size() && !has; ++i) has = s[i] == a && s[i + 1] == b;
      if (!has) continue;
      const auto f = static_cast<int64_t>(freq[w]);
      for (size_t i = 0; i + 1 < s.size(); ++i) pair_count[key(s[i], s[i + 1])] -= f;
      merged.clear();
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(id);
          i += 2;
        } else {
          merged.push_back(s[i]);
          ++i;
        }
      }
      s = merged;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t p = key(s[i], s[i + 1]);
        pair_count[p] += f;
        if (s[i] == id || s[i + 1] == id) {
          auto& list = where[p];
          if (list.empty() || list.back() != w) list.push_back(w);
          grown.push_back(p);
        }
      }
    }
    pair_count.erase(k);
    std::sort(grown.begin(), grown.end());
    grown.erase(std::unique(grown.begin(), grown.end()), grown.end());
    for (uint64_t p : grown) heap.emplace(pair_count[p], p);
  }

  TrainResult result;
  result.tokenizer_json = tokenizer_document(o, vocab, merges).dump() + "\n";
  result.config_json = config_document(o, vocab.size());
  result.merges = merges.size();
  result.unique_words = words.size();
  result.input_bytes = impl_->input_bytes;
  return result;
}

}  // namespace ipt::tok
