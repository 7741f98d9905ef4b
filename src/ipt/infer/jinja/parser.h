#pragma once
// Template tokens to statements: if/elif/else, for (tuple targets, `if` filter, else), set (names,
// `ns.attr`, blocks), macro, break/continue, and transformers' {% generation %} marker (its body
// is rendered as is). Expressions follow Jinja's precedence: conditional < or < and < not <
// comparisons and `in` < + - < ~ < * / // % < ** < unary - + < filters and `is` tests < postfix.
#include <string>
#include <vector>

#include "ipt/infer/jinja/ast.h"
#include "ipt/infer/jinja/lexer.h"

namespace ipt::infer::jinja {

// Throws ipt::Error "<origin>:<line>:<column>: ..." naming what was expected or is unsupported.
Body parse(const std::vector<Token>& tokens, const std::string& origin);

}  // namespace ipt::infer::jinja
