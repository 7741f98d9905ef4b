#pragma once
// What templates call: operators, attribute and item access (Python's str/dict/list methods),
// Jinja's filters and tests, and the globals transformers provides (range, namespace, dict,
// raise_exception, strftime_now). Errors are TemplateError; the evaluator adds the location.
#include <string>

#include "ipt/infer/jinja/value.h"

namespace ipt::infer::jinja {

struct TemplateError {
  std::string message;
};

[[noreturn]] inline void template_error(std::string message) { throw TemplateError{std::move(message)}; }

// Binary operators: + - * / // % ** ~ == != < > <= >= in, "not in" (and/or are short-circuited
// by the evaluator).
Value binary_operator(const std::string& op, const Value& a, const Value& b);
Value unary_minus(const Value& v);

// `obj.name`: a method bound to obj (str, dict, list), a dict's item, or undefined.
Value get_attribute(const Value& obj, const std::string& name);
// `obj[key]`: dict items, list/str indices (negative from the end); missing = undefined.
Value get_item(const Value& obj, const Value& key);
// `obj[start:stop:step]` on a list or str (null pointers = omitted).
Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step);

Value apply_filter(const std::string& name, const Value& operand, CallArgs& args);
bool apply_test(const std::string& name, const Value& operand, CallArgs& args);
bool has_filter(const std::string& name);
bool has_test(const std::string& name);

Dict global_functions();

// HTML escaping as markupsafe.escape does it (& < > " ').
std::string html_escape(const std::string& s);

// Iterating: a list's items, a dict's keys, a string's characters; undefined iterates as empty.
std::vector<Value> iterate(const Value& v);

// Argument helpers: the i-th positional or the keyword `name`, else `fallback`.
const Value* argument(CallArgs& args, size_t i, const char* name);
void check_arguments(const CallArgs& args, const std::string& function, size_t max_positional,
                     std::initializer_list<const char*> keywords);

}  // namespace ipt::infer::jinja
