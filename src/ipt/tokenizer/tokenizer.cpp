// Tokenizer's construction, decoding and accessors; the rest is in the files tokenizer_impl.h names.
#include "ipt/tokenizer/tokenizer.h"

#include <sstream>

#include "ipt/common/error.h"
#include "ipt/tokenizer/tokenizer_impl.h"
#include "ipt/tokenizer/utf8.h"

namespace ipt::tok {

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

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
