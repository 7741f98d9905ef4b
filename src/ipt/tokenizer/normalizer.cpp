#include "ipt/tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "ipt/common/error.h"
#include "ipt/tokenizer/utf8.h"

namespace ipt::tok {
namespace {

// Code points whose NFC quick-check value is Yes, with canonical combining class 0, that no
// composition can take as its second element: a string made only of these is already NFC.
// (Ranges chosen from the Unicode data files: Latin/IPA below U+0300, CJK ideographs, Hangul
// syllables, kana without the voicing marks, the emoji blocks, ZWJ and variation selectors.)
bool nfc_stable(char32_t c) {
  return c < 0x300 || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7A3) ||
         (c >= 0x3041 && c <= 0x3096) || (c >= 0x30A1 && c <= 0x30FA) || (c >= 0x3000 && c <= 0x3029) ||
         (c >= 0xFF01 && c <= 0xFF5E) || (c >= 0x1F300 && c <= 0x1FAFF) || c == 0x200D ||
         (c >= 0xFE00 && c <= 0xFE0F);
}

}  // namespace

std::optional<NormalForm> parse_normal_form(std::string_view type) {
  if (type == "NFC") return NormalForm::kNFC;
  if (type == "NFD") return NormalForm::kNFD;
  if (type == "NFKC") return NormalForm::kNFKC;
  if (type == "NFKD") return NormalForm::kNFKD;
  return std::nullopt;
}

namespace {

std::string utf8proc_normalize(std::string_view text, NormalForm form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNFC: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::kNFD: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::kNFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::kNFKD: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &result,
                                          static_cast<utf8proc_option_t>(options));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(result, &std::free);
  IPT_CHECK(n >= 0, "tokenizer normalizer: utf8proc failed: ", utf8proc_errmsg(n));
  return std::string(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
}

bool stable_at(std::string_view text, size_t i) {
  const auto b = static_cast<unsigned char>(text[i]);
  if (b < 0x80) return true;
  return nfc_stable(next_code_point(text, i));
}

}  // namespace

std::optional<std::string> normalize(std::string_view text, NormalForm form) {
  if (form != NormalForm::kNFC) {
    bool ascii = true;
    for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
    if (ascii) return std::nullopt;
    std::string out = utf8proc_normalize(text, form);
    if (out == text) return std::nullopt;
    return out;
  }
  // NFC: only the stretches around code points outside the stable set go through utf8proc: from
  // the stable starter before such a code point up to the next stable code point (a stable code
  // point neither combines with what precedes it nor is reordered across).
  std::string out;
  size_t copied = 0, i = 0, previous = std::string_view::npos;  // start of the previous code point
  bool changed = false;
  while (i < text.size()) {
    const size_t start = i;
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      previous = start;
      ++i;
      continue;
    }
    if (nfc_stable(next_code_point(text, i))) {
      previous = start;
      continue;
    }
    size_t begin = start;
    if (previous != std::string_view::npos && previous >= copied) begin = previous;
    size_t end = i;
    while (end < text.size() && !stable_at(text, end)) next_code_point(text, end);
    const std::string_view segment = text.substr(begin, end - begin);
    std::string normalized = utf8proc_normalize(segment, form);
    if (normalized != segment) {
      if (!changed) out.reserve(text.size() + 16);
      changed = true;
      out.append(text.substr(copied, begin - copied));
      out += normalized;
      copied = end;
    }
    i = end;
    previous = std::string_view::npos;
  }
  if (!changed) return std::nullopt;
  out.append(text.substr(copied));
  return out;
}

}  // namespace ipt::tok
