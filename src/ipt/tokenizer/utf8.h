#pragma once
// UTF-8 helpers for the tokenizer: validation, lossy repair (U+FFFD per maximal invalid subpart,
// the rule of Unicode ch. 3 "U+FFFD substitution of maximal subparts" that Rust's
// String::from_utf8_lossy, Python's errors="replace" and the WHATWG TextDecoder all follow),
// decoding one code point, encoding one code point.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ipt::tok {

// Length of the valid UTF-8 prefix of `s` (== s.size() when all of it is valid).
size_t valid_utf8_prefix(std::string_view s);
inline bool is_valid_utf8(std::string_view s) { return valid_utf8_prefix(s) == s.size(); }

// `s` with every maximal invalid subpart replaced by U+FFFD (EF BF BD).
std::string to_valid_utf8(std::string_view s);

// Decodes the code point at s[i] (which must be valid UTF-8) and advances i.
inline char32_t next_code_point(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  if (b0 < 0xE0) {
    char32_t c = ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
    i += 2;
    return c;
  }
  if (b0 < 0xF0) {
    char32_t c = ((b0 & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
                 (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
    i += 3;
    return c;
  }
  char32_t c = ((b0 & 0x07u) << 18) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 12) |
               ((static_cast<unsigned char>(s[i + 2]) & 0x3Fu) << 6) | (static_cast<unsigned char>(s[i + 3]) & 0x3Fu);
  i += 4;
  return c;
}

void append_utf8(std::string& out, char32_t c);

// Unicode White_Space (what Rust's char::is_whitespace and Oniguruma's \s test).
bool is_unicode_whitespace(char32_t c);

}  // namespace ipt::tok
