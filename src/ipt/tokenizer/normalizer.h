#pragma once
// Unicode normalization forms (utf8proc), with a fast path that leaves text alone when every code
// point is one that no normalization form can change or combine with a neighbour.
#include <optional>
#include <string>
#include <string_view>

namespace ipt::tok {

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };

// The form named by tokenizer.json's normalizer "type" ("NFC", ...), or nullopt.
std::optional<NormalForm> parse_normal_form(std::string_view type);

// `text` (valid UTF-8) in form `form`; returns nullopt when `text` is already in that form as far as
// the fast check can tell (the caller keeps its input), else the normalized string.
std::optional<std::string> normalize(std::string_view text, NormalForm form);

}  // namespace ipt::tok
