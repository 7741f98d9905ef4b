#pragma once
// GPT-2's byte-level alphabet: every byte is shown as one printable code point, so that a vocabulary
// of byte strings can be stored as text. Bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF stand for
// themselves; the other 68 bytes (controls, space, 0x7F-0xA0, 0xAD) take U+0100.. in byte order.
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace ipt::tok {

// The code point that shows byte b.
char32_t byte_to_char(unsigned char b);
// The byte that code point c shows, if c is one of the 256.
std::optional<unsigned char> char_to_byte(char32_t c);

// Byte-level text (UTF-8 of shown code points) -> raw bytes; nullopt if a code point is not one of
// the 256 or `text` is not valid UTF-8.
std::optional<std::string> byte_level_decode(std::string_view text);
// Raw bytes -> byte-level text.
std::string byte_level_encode(std::string_view bytes);

}  // namespace ipt::tok
