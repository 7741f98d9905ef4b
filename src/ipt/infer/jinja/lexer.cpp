#include "ipt/infer/jinja/lexer.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "ipt/common/error.h"
#include "ipt/tokenizer/utf8.h"

namespace ipt::infer::jinja {

std::string location(const std::string& origin, int line, int column) {
  return origin + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
}

namespace {

// Jinja reads the source through str.splitlines() and joins the lines with "\n": every Python line
// boundary becomes "\n" and one trailing boundary disappears.
std::string normalize_lines(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out += '\n';
    } else if (c == '\v' || c == '\f' || (c >= 0x1C && c <= 0x1E)) {
      out += '\n';
    } else if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x85) {
      out += '\n', ++i;  // U+0085
    } else if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(s[i + 2]) == 0xA8 || static_cast<unsigned char>(s[i + 2]) == 0xA9)) {
      out += '\n', i += 2;  // U+2028, U+2029
    } else {
      out += static_cast<char>(c);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class Lexer {
 public:
  Lexer(std::string source, const std::string& origin) : s_(std::move(source)), origin_(origin) {}

  std::vector<Token> run() {
    bool line_starting = true;  // the previous tag's end consumed a newline (or this is the start)
    while (pos_ < s_.size()) {
      size_t open = s_.find('{', pos_);
      while (open != std::string::npos && open + 1 < s_.size() && !std::strchr("{%#", s_[open + 1]))
        open = s_.find('{', open + 1);
      if (open == std::string::npos || open + 1 >= s_.size()) {
        text(s_.substr(pos_), pos_);
        break;
      }
      std::string before = s_.substr(pos_, open - pos_);
      const char kind = s_[open + 1];
      const char marker = open + 2 < s_.size() ? s_[open + 2] : '\0';
      if (marker == '-') {
        while (!before.empty() && is_space(before.back())) before.pop_back();
      } else if (marker != '+' && kind != '{') {  // lstrip_blocks: block and comment tags only
        const size_t line_start = before.rfind('\n');
        if (line_start != std::string::npos || line_starting) {
          const size_t from = line_start == std::string::npos ? 0 : line_start + 1;
          if (before.find_first_not_of(" \t", from) == std::string::npos) before.resize(from);
        }
      }
      text(before, pos_);
      pos_ = open + 2 + (marker == '-' || marker == '+' ? 1 : 0);
      if (kind == '#') comment(open);
      else tag(kind == '{', open);
      line_starting = pos_ > 0 && s_[pos_ - 1] == '\n';
    }
    push(Token::Kind::kEnd, "", s_.size());
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& message) const {
    int line = 1, column = 1;
    for (size_t i = 0; i < at && i < s_.size(); ++i) {
      if (s_[i] == '\n') ++line, column = 1;
      else if ((static_cast<unsigned char>(s_[i]) & 0xC0) != 0x80) ++column;
    }
    throw Error(location(origin_, line, column) + message);
  }

  Token& push(Token::Kind kind, std::string text, size_t at) {
    Token t{kind, std::move(text)};
    // line/column of `at`, counted incrementally from the last token
    for (; counted_ < at; ++counted_) {
      if (s_[counted_] == '\n') ++line_, column_ = 1;
      else if ((static_cast<unsigned char>(s_[counted_]) & 0xC0) != 0x80) ++column_;
    }
    t.line = line_;
    t.column = column_;
    tokens_.push_back(std::move(t));
    return tokens_.back();
  }

  void text(const std::string& t, size_t at) {
    if (!t.empty()) push(Token::Kind::kText, t, at);
  }

  // After a tag's closing delimiter: `-` strips all whitespace, trim_blocks one newline.
  void after_close(bool strip, bool block) {
    if (strip) {
      while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
    } else if (block && pos_ < s_.size() && s_[pos_] == '\n') {
      ++pos_;
    }
  }

  void comment(size_t open) {
    const size_t close = s_.find("#}", pos_);
    if (close == std::string::npos) fail(open, "unterminated comment: '{#' has no '#}'");
    const char marker = close > pos_ ? s_[close - 1] : '\0';
    pos_ = close + 2;
    after_close(marker == '-', marker != '+');
  }

  void tag(bool print, size_t open) {
    push(print ? Token::Kind::kPrintOpen : Token::Kind::kBlockOpen, print ? "{{" : "{%", open);
    const char close = print ? '}' : '%';
    int depth = 0;  // open brackets: `{{ {'a': {}} }}` ends at the last "}}", as Jinja balances them
    for (;;) {
      while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
      if (pos_ >= s_.size()) fail(open, std::string("unterminated tag: '") + (print ? "{{" : "{%") + "' has no '" + close + "}'");
      const char c = s_[pos_];
      const char n = pos_ + 1 < s_.size() ? s_[pos_ + 1] : '\0';
      const char n2 = pos_ + 2 < s_.size() ? s_[pos_ + 2] : '\0';
      if (depth == 0 && c == close && n == '}') {
        push(print ? Token::Kind::kPrintClose : Token::Kind::kBlockClose, "", pos_);
        pos_ += 2;
        after_close(false, !print);
        break;
      }
      if (depth == 0 && (c == '-' || c == '+') && n == close && n2 == '}') {
        push(print ? Token::Kind::kPrintClose : Token::Kind::kBlockClose, "", pos_);
        pos_ += 3;
        after_close(c == '-', !print && c != '+');
        break;
      }
      expression_token();
      const Token& last = tokens_.back();
      if (last.kind == Token::Kind::kOperator && (last.text == "(" || last.text == "[" || last.text == "{")) ++depth;
      if (last.kind == Token::Kind::kOperator && (last.text == ")" || last.text == "]" || last.text == "}"))
        depth = std::max(0, depth - 1);
    }
    if (!print && tokens_.size() >= 3 && tokens_[tokens_.size() - 2].kind == Token::Kind::kName &&
        tokens_[tokens_.size() - 2].text == "raw" && tokens_[tokens_.size() - 3].kind == Token::Kind::kBlockOpen)
      raw(open);
  }

  // {% raw %}...{% endraw %}: the text in between, as written.
  void raw(size_t open) {
    tokens_.resize(tokens_.size() - 3);
    size_t at = pos_;
    for (;;) {
      const size_t tag = s_.find("{%", at);
      if (tag == std::string::npos) fail(open, "'{% raw %}' has no '{% endraw %}'");
      size_t i = tag + 2;
      const bool strip_before = i < s_.size() && s_[i] == '-';
      if (i < s_.size() && (s_[i] == '-' || s_[i] == '+')) ++i;
      while (i < s_.size() && is_space(s_[i])) ++i;
      if (s_.compare(i, 6, "endraw") != 0) {
        at = tag + 2;
        continue;
      }
      i += 6;
      while (i < s_.size() && is_space(s_[i])) ++i;
      const bool strip_after = i < s_.size() && s_[i] == '-';
      if (i < s_.size() && (s_[i] == '-' || s_[i] == '+')) ++i;
      if (s_.compare(i, 2, "%}") != 0) fail(tag, "malformed '{% endraw %}'");
      std::string body = s_.substr(pos_, tag - pos_);
      if (strip_before)
        while (!body.empty() && is_space(body.back())) body.pop_back();
      text(body, pos_);
      pos_ = i + 2;
      after_close(strip_after, true);
      return;
    }
  }

  void expression_token() {
    const size_t start = pos_;
    const char c = s_[pos_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_')) ++pos_;
      push(Token::Kind::kName, s_.substr(start, pos_ - start), start);
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      number();
    } else if (c == '\'' || c == '"') {
      string_literal();
    } else {
      static const char* two[] = {"//", "**", "==", "!=", "<=", ">="};
      for (const char* op : two)
        if (s_.compare(pos_, 2, op) == 0) {
          push(Token::Kind::kOperator, op, start);
          pos_ += 2;
          return;
        }
      if (!std::strchr("+-*/%~<>=()[]{},.:|", c)) fail(pos_, std::string("unexpected character '") + c + "' in a tag");
      push(Token::Kind::kOperator, std::string(1, c), start);
      ++pos_;
    }
  }

  void number() {
    const size_t start = pos_;
    std::string digits;
    auto take_digits = [&] {
      while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
        if (s_[pos_++] != '_') digits += s_[pos_ - 1];
    };
    take_digits();
    bool is_float = false;
    if (pos_ + 1 < s_.size() && s_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(s_[pos_ + 1]))) {
      is_float = true;
      digits += s_[pos_++];
      take_digits();
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      size_t i = pos_ + 1;
      if (i < s_.size() && (s_[i] == '+' || s_[i] == '-')) ++i;
      if (i < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i]))) {
        is_float = true;
        digits += s_.substr(pos_, i - pos_);
        pos_ = i;
        take_digits();
      }
    }
    Token& t = push(is_float ? Token::Kind::kFloat : Token::Kind::kInt, digits, start);
    if (is_float) t.float_value = std::strtod(digits.c_str(), nullptr);
    else {
      errno = 0;
      t.int_value = std::strtoll(digits.c_str(), nullptr, 10);
      if (errno == ERANGE) fail(start, "integer literal " + digits + " is too large");
    }
  }

  // Python's escapes (Jinja decodes literals with "unicode-escape"); unknown ones stay as written.
  void string_literal() {
    const size_t start = pos_;
    const char quote = s_[pos_++];
    std::string value;
    for (;;) {
      if (pos_ >= s_.size()) fail(start, "unterminated string literal");
      const char c = s_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (pos_ >= s_.size()) fail(start, "unterminated string literal");
      const char e = s_[pos_++];
      auto hex = [&](int n) {
        if (pos_ + n > s_.size()) fail(pos_ - 2, "truncated \\x/\\u escape");
        char32_t cp = 0;
        for (int k = 0; k < n; ++k) {
          const char h = s_[pos_++];
          if (!std::isxdigit(static_cast<unsigned char>(h))) fail(pos_ - 1, "bad hex digit in an escape");
          cp = cp * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
        }
        tok::append_utf8(value, cp);
      };
      switch (e) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case 'a': value += '\a'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case '0': value += '\0'; break;
        case '\n': break;  // a line continuation
        case 'x': hex(2); break;
        case 'u': hex(4); break;
        case 'U': hex(8); break;
        default: value += '\\', value += e;
      }
    }
    push(Token::Kind::kString, value, start);
  }

  std::string s_;
  const std::string& origin_;
  size_t pos_ = 0, counted_ = 0;
  int line_ = 1, column_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> lex(const std::string& source, const std::string& origin) {
  IPT_CHECK(tok::is_valid_utf8(source), origin, ": the template is not valid UTF-8");
  return Lexer(normalize_lines(source), origin).run();
}

}  // namespace ipt::infer::jinja
