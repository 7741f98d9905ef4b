#define PCRE2_CODE_UNIT_WIDTH 8
#include "ipt/tokenizer/regex.h"

#include <pcre2.h>

#include <algorithm>
#include <cstdio>

#include "ipt/common/error.h"

namespace ipt::tok {
namespace {

constexpr const char* kWordClass = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}";
constexpr const char* kHexClass = "0-9A-Fa-f";

bool is_ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// Bytes of the UTF-8 sequence starting at p[i] (1 for ASCII or a stray byte).
size_t utf8_length(std::string_view p, size_t i) {
  const auto b = static_cast<unsigned char>(p[i]);
  size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  return std::min(n, p.size() - i);
}

}  // namespace

std::string translate_oniguruma(std::string_view p, const std::string& what) {
  std::string out;
  out.reserve(p.size() + 32);
  std::vector<bool> fold_stack;  // case-fold state saved at each open group
  bool fold = false;
  bool in_class = false;
  size_t class_start = 0;  // index just after "[" or "[^"
  auto unsupported = [&](const std::string& construct) {
    throw Error(what + ": regex construct " + construct + " is not supported (pattern: " + std::string(p) + ")");
  };
  for (size_t i = 0; i < p.size();) {
    const char c = p[i];
    if (c == '\\') {
      IPT_CHECK(i + 1 < p.size(), what, ": regex ends with a lone backslash (pattern: ", p, ")");
      const char e = p[i + 1];
      if ((e == 'p' || e == 'P') && i + 2 < p.size() && p[i + 2] == '{') {
        const size_t close = p.find('}', i + 2);
        IPT_CHECK(close != std::string_view::npos, what, ": unterminated \\p{...} in regex (pattern: ", p, ")");
        out.append(p.substr(i, close + 1 - i));
        i = close + 1;
        continue;
      }
      switch (e) {
        case 's': out += "\\p{White_Space}"; break;
        case 'S': out += "\\P{White_Space}"; break;
        case 'w': out += in_class ? std::string(kWordClass) : "[" + std::string(kWordClass) + "]"; break;
        case 'W':
          if (in_class) unsupported("\\W inside a character class");
          out += "[^" + std::string(kWordClass) + "]";
          break;
        case 'h': out += in_class ? std::string(kHexClass) : "[" + std::string(kHexClass) + "]"; break;
        case 'H':
          if (in_class) unsupported("\\H inside a character class");
          out += "[^" + std::string(kHexClass) + "]";
          break;
        case 'b': case 'B': unsupported("\\b / \\B (word boundary)"); break;
        case 'G': unsupported("\\G"); break;
        default:
          out.append(p.substr(i, 1 + utf8_length(p, i + 1)));
          i += 1 + utf8_length(p, i + 1);
          continue;
      }
      i += 2;
      continue;
    }
    if (in_class) {
      if (c == ']' && i > class_start) {
        in_class = false;
      } else if (c == '[') {
        if (p.substr(i, 2) == "[:") {
          const size_t close = p.find(":]", i + 2);
          IPT_CHECK(close != std::string_view::npos, what, ": unterminated POSIX class in regex (pattern: ", p, ")");
          out.append(p.substr(i, close + 2 - i));
          i = close + 2;
          continue;
        }
        unsupported("'[' nested in a character class");
      } else if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') {
        unsupported("'&&' (class intersection)");
      }
      const size_t n = utf8_length(p, i);
      out.append(p.substr(i, n));
      i += n;
      continue;
    }
    switch (c) {
      case '[':
        if (fold) unsupported("character class inside (?i:...)");
        in_class = true;
        out += '[';
        ++i;
        if (i < p.size() && p[i] == '^') {
          out += '^';
          ++i;
        }
        class_start = i;
        continue;
      case '(':
        if (p.substr(i, 4) == "(?i:") {
          fold_stack.push_back(fold);
          fold = true;
          out += "(?:";
          i += 4;
          continue;
        }
        if (p.substr(i, 2) == "(?") {
          const char k = i + 2 < p.size() ? p[i + 2] : '\0';
          const bool plain = k == ':' || k == '=' || k == '!' || k == '>' ||
                             (k == '<' && i + 3 < p.size() && (p[i + 3] == '=' || p[i + 3] == '!'));
          if (!plain) unsupported("'(?" + std::string(1, k) + "' (inline flags or named groups)");
        }
        fold_stack.push_back(fold);
        out += '(';
        ++i;
        continue;
      case ')':
        if (!fold_stack.empty()) {
          fold = fold_stack.back();
          fold_stack.pop_back();
        }
        out += ')';
        ++i;
        continue;
      default:
        if (fold && is_ascii_letter(c)) {
          // Both ASCII cases, plus the two non-ASCII letters that Unicode case folding maps onto
          // ASCII ones, as Oniguruma (the Rust `tokenizers`) folds: U+017F ſ -> s, U+212A Kelvin -> k.
          const char lower = static_cast<char>(c | 0x20);
          out += '[';
          out += lower;
          out += static_cast<char>(lower & ~0x20);
          if (lower == 's') out += "\xC5\xBF";
          if (lower == 'k') out += "\xE2\x84\xAA";
          out += ']';
          ++i;
          continue;
        }
        const size_t n = utf8_length(p, i);
        out.append(p.substr(i, n));
        i += n;
    }
  }
  IPT_CHECK(!in_class, what, ": unterminated character class in regex (pattern: ", p, ")");
  return out;
}

struct RegexScratch::Impl {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
};

RegexScratch::RegexScratch() : impl_(std::make_unique<Impl>()) {
  impl_->data = pcre2_match_data_create(1, nullptr);
  impl_->context = pcre2_match_context_create(nullptr);
  // Long runs of spaces backtrack through \s*; give the JIT room (grown on demand up to 64 MiB).
  impl_->jit_stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
  IPT_CHECK(impl_->data && impl_->context && impl_->jit_stack, "tokenizer: cannot allocate regex match state");
  pcre2_jit_stack_assign(impl_->context, nullptr, impl_->jit_stack);
  // The default limit (10M) stops \s*[\r\n]+ backtracking through a 20 MB run of spaces; the
  // tokenizer patterns are linear per match, so lift it.
  pcre2_set_match_limit(impl_->context, 0xFFFFFFFFu);
  pcre2_set_depth_limit(impl_->context, 0xFFFFFFFFu);
}

RegexScratch::~RegexScratch() {
  pcre2_jit_stack_free(impl_->jit_stack);
  pcre2_match_context_free(impl_->context);
  pcre2_match_data_free(impl_->data);
}

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

Regex::Regex(std::string source, std::string translated, const std::string& what)
    : code_(std::make_unique<Code>()), source_(std::move(source)), translated_(std::move(translated)), what_(what) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated_.data()), translated_.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  IPT_CHECK(code_->code, what, ": invalid regex '", source_, "': ", pcre2_message(error), " at offset ", offset,
            " of the PCRE2 translation '", translated_, "'");
  code_->jit = pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE) == 0;  // else the interpreter runs it
}

Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;
Regex::~Regex() = default;

Regex Regex::from_oniguruma(std::string_view pattern, const std::string& what) {
  IPT_CHECK(pattern.size() < (1u << 20), what, ": regex is too long");
  return Regex(std::string(pattern), translate_oniguruma(pattern, what), what);
}

Regex Regex::literal(std::string_view text, const std::string& what) {
  std::string escaped;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      char buffer[8];
      std::snprintf(buffer, sizeof(buffer), "\\x{%x}", u);
      escaped += buffer;
    } else {
      escaped += c;
    }
  }
  return Regex(std::string(text), escaped, what);
}

void Regex::find_all(std::string_view s, RegexScratch& scratch, std::vector<std::pair<uint32_t, uint32_t>>& out) const {
  out.clear();
  auto* state = scratch.impl();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  PCRE2_SIZE start = 0;
  while (start <= s.size()) {
    const int rc = code_->jit
                       ? pcre2_jit_match(code_->code, subject, s.size(), start, 0, state->data, state->context)
                       : pcre2_match(code_->code, subject, s.size(), start, PCRE2_NO_UTF_CHECK, state->data,
                                     state->context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    IPT_CHECK(rc >= 0, what_, ": regex match failed (", pcre2_message(rc), ") on a ", s.size(), "-byte piece");
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state->data);
    const PCRE2_SIZE b = ov[0], e = ov[1];
    out.emplace_back(static_cast<uint32_t>(b), static_cast<uint32_t>(e));
    if (e > b) {
      start = e;
    } else {
      if (e >= s.size()) break;
      start = e + utf8_length(s, e);
    }
  }
}

}  // namespace ipt::tok
