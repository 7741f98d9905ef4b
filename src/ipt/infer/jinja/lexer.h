#pragma once
// Splits a template into text and the tokens inside its tags, with Jinja's whitespace rules as
// transformers configures them: `{%-`/`-%}` (and for `{{ }}`, `{# #}`) strip all whitespace on
// that side, trim_blocks drops the newline after a block or comment tag, lstrip_blocks drops the
// spaces and tabs before one at the start of a line, `{%+`/`+%}` turn those two off for a tag, and
// a single trailing newline of the template is dropped (keep_trailing_newline=False).
#include <cstdint>
#include <string>
#include <vector>

namespace ipt::infer::jinja {

struct Token {
  enum class Kind { kText, kPrintOpen, kPrintClose, kBlockOpen, kBlockClose, kName, kString, kInt, kFloat, kOperator, kEnd };
  Kind kind;
  std::string text;  // text, name, operator, or the decoded string literal
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1, column = 1;
};

// Throws ipt::Error "<origin>:<line>:<column>: ..." for an unterminated tag, comment or string.
std::vector<Token> lex(const std::string& source, const std::string& origin);

// "<origin>:<line>:<column>: " for error messages.
std::string location(const std::string& origin, int line, int column);

}  // namespace ipt::infer::jinja
