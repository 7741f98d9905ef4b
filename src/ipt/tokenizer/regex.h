#pragma once
// Split patterns of tokenizer.json are Oniguruma regexes (what the Rust `tokenizers` crate runs).
// They run here on PCRE2 (UTF + UCP, JIT-compiled) after a small translation that keeps
// Oniguruma's meaning where PCRE2's differs:
//   \s \S      -> \p{White_Space} \P{White_Space}   (PCRE2's \s misses U+0085)
//   \w \W      -> Alphabetic|M|Nd|Pc and its complement (Oniguruma's Unicode word characters)
//   \h \H      -> hex digit / not (Oniguruma), not horizontal space (PCRE2)
//   (?i:...)   -> case folding of the (ASCII) letters in the group as Oniguruma does it: both
//                 cases, and U+017F ſ for s, U+212A (Kelvin) for k, so (?i:'s) matches "'ſ"
//   ^ $        -> line anchors (PCRE2_MULTILINE), as in Oniguruma's Ruby syntax
// Constructs whose meaning the translation cannot keep (a character class inside (?i:...),
// class intersections "&&", nested classes, inline flag changes other than (?i:) throw ipt::Error.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ipt::tok {

// Per-thread match state (match data and JIT stack); one may serve several regexes, not two
// threads at once.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;
  struct Impl;
  Impl* impl() const { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

class Regex {
 public:
  // `pattern` in Oniguruma syntax; `what` names it in error messages.
  static Regex from_oniguruma(std::string_view pattern, const std::string& what);
  // Matches `text` literally.
  static Regex literal(std::string_view text, const std::string& what);

  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // Every non-overlapping match in `subject` (valid UTF-8), left to right, as [begin, end) byte
  // offsets, appended to `out` (cleared first). An empty match advances the search by one code point.
  void find_all(std::string_view subject, RegexScratch& scratch, std::vector<std::pair<uint32_t, uint32_t>>& out) const;

  const std::string& source() const { return source_; }         // as given
  const std::string& translated() const { return translated_; } // as compiled by PCRE2

 private:
  Regex(std::string source, std::string translated, const std::string& what);
  struct Code;
  std::unique_ptr<Code> code_;
  std::string source_, translated_, what_;
};

// The translation alone (exposed for tests).
std::string translate_oniguruma(std::string_view pattern, const std::string& what);

}  // namespace ipt::tok
