#pragma once
// The parsed template: expressions and statements, each with the line and column it came from.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ipt/infer/jinja/value.h"

namespace ipt::infer::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // value
    kName,       // name
    kList,       // items (name "tuple": a tuple)
    kDict,       // items: key, value, key, value ...
    kAttribute,  // items[0].name
    kIndex,      // items[0][items[1]]
    kSlice,      // items[0][items[1]:items[2]:items[3]] (null = omitted)
    kCall,       // items[0](items[1..], keyword)
    kFilter,     // items[0] | name(items[1..], keyword)
    kTest,       // items[0] is [not] name(items[1..]); negate
    kUnary,      // name: "-", "+", "not"; items[0]
    kBinary,     // name: the operator ("+", "and", "or", "~", ...); items[0], items[1]
    kCompare,    // items[0] operators[0] items[1] operators[1] items[2] ... (Python's chained comparisons)
    kConditional // items[0] if items[1] else items[2] (null: undefined)
  };
  Kind kind;
  int line = 0, column = 0;
  std::string name;
  Value value;
  bool negate = false;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  std::vector<std::string> operators;  // kCompare: "==", "<", "in", "not in", ...
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches: (condition, body) ...; otherwise
    kFor,       // targets in expr [if filter]: body; otherwise ({% else %}: nothing iterated)
    kSet,       // targets (or target.attribute) = expr
    kSetBlock,  // {% set target %}body{% endset %}
    kMacro,     // name(params with defaults): body
    kBreak,
    kContinue,
  };
  Kind kind;
  int line = 0, column = 0;
  std::string text;                  // kText; kMacro / kSetBlock: the name
  std::vector<std::string> targets;  // kFor, kSet (one with `attribute` for `ns.x = ...`)
  std::string attribute;
  ExprPtr expr, filter;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, otherwise;
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro: default null = required
};

}  // namespace ipt::infer::jinja
