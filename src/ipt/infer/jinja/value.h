#pragma once
// The values a chat template computes with, as Python has them under Jinja: undefined, None, bool,
// int, float, str (UTF-8, indexed by code point), list, dict (insertion-ordered, string keys) and
// callables (filters' helpers, macros, bound methods). Lists and dicts are shared by reference,
// as in Python, so `namespace()` objects can be updated from inside loops.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ipt::infer::jinja {

class Value;

struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;  // `namespace()`: attributes may be assigned
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);
};

// Arguments of a call: positional, then keyword (in the order written).
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

using Function = std::function<Value(CallArgs&)>;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  Value() = default;  // undefined
  static Value undefined(std::string name = "") { Value v; v.text_ = std::move(name); return v; }
  static Value none() { return Value(Kind::kNone); }
  Value(bool b) : kind_(Kind::kBool), int_(b) {}
  Value(int i) : kind_(Kind::kInt), int_(i) {}
  Value(int64_t i) : kind_(Kind::kInt), int_(i) {}
  Value(double f) : kind_(Kind::kFloat), float_(f) {}
  Value(std::string s) : kind_(Kind::kString), text_(std::move(s)) {}
  Value(const char* s) : Value(std::string(s)) {}
  Value(std::vector<Value> list);
  static Value tuple(std::vector<Value> items);  // a list that prints as Python's tuple
  static Value markup(std::string s);            // a str marked safe (`|safe`): `+` escapes the other side
  Value(Dict dict);
  static Value function(std::string name, Function f);
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt || kind_ == Kind::kBool; }  // Python: bool is an int
  bool is_number() const { return is_int() || kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_function() const { return kind_ == Kind::kFunction; }
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_markup() const { return kind_ == Kind::kString && tuple_; }

  int64_t as_int() const { return int_; }
  double as_double() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& as_string() const { return text_; }  // also: an undefined value's name
  std::vector<Value>& list() const { return *list_; }
  Dict& dict() const { return *dict_; }
  Value call(CallArgs& args) const { return (*function_)(args); }
  const std::string& function_name() const { return text_; }

  bool truthy() const;
  bool operator==(const Value& other) const;
  bool operator!=(const Value& other) const { return !(*this == other); }
  const char* type_name() const;  // Python's: 'str', 'dict', 'NoneType', ...

 private:
  explicit Value(Kind kind) : kind_(kind) {}
  Kind kind_ = Kind::kUndefined;
  bool tuple_ = false;  // a list: a tuple; a string: Markup
  int64_t int_ = 0;
  double float_ = 0;
  std::string text_;
  std::shared_ptr<std::vector<Value>> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<Function> function_;
};

// Python's str() (what `{{ }}` prints; undefined prints nothing) and repr().
std::string to_str(const Value& v);
std::string to_repr(const Value& v);
// Python's float repr: the shortest text that reads back the same ("1.0", "1e-05", "inf").
std::string float_repr(double x);

// json.dumps as transformers' `tojson` filter calls it (ensure_ascii, indent, separators, sort_keys
// have Python's meaning; indent < 0 = None). Throws ipt::Error for values JSON cannot hold.
struct JsonStyle {
  bool ensure_ascii = false;
  int indent = -1;
  std::string item_separator, key_separator;  // "" = Python's defaults for the indent
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonStyle& style);

}  // namespace ipt::infer::jinja
