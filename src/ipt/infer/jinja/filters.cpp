// Jinja's filters and tests as chat templates use them; `tojson` is transformers' own (json.dumps
// without HTML escaping, with ensure_ascii / indent / separators / sort_keys).
#include <algorithm>
#include <cmath>
#include <map>

#include "ipt/common/error.h"
#include "ipt/infer/jinja/builtins.h"
#include "ipt/infer/jinja/text.h"

namespace ipt::infer::jinja {

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

using Filter = Value (*)(const Value&, CallArgs&);
using Test = bool (*)(const Value&, CallArgs&);

const Value& need(CallArgs& args, size_t i, const char* name, const char* function) {
  const Value* v = argument(args, i, name);
  if (!v) template_error(std::string(function) + " needs the argument '" + name + "'");
  return *v;
}

int64_t length_of(const Value& v) {
  if (v.is_string()) return static_cast<int64_t>(to_code_points(v.as_string()).size());
  if (v.is_list()) return static_cast<int64_t>(v.list().size());
  if (v.is_dict()) return static_cast<int64_t>(v.dict().items.size());
  if (v.is_undefined()) return 0;
  template_error(std::string("object of type '") + v.type_name() + "' has no len()");
}

// `attribute` may be dotted ("function.name") or an index, as in Jinja's make_attrgetter.
Value attribute_of(const Value& v, const Value& attribute) {
  if (attribute.is_int()) return get_item(v, attribute);
  const std::string dot = ".";
  Value out = v;
  for (const auto& part : split(to_str(attribute), &dot, -1)) out = get_item(out, Value(part));
  return out;
}

// A keyword-only argument.
const Value* keyword(CallArgs& args, const char* name) { return argument(args, SIZE_MAX, name); }

Value f_length(const Value& v, CallArgs& a) { check_arguments(a, "length", 0, {}); return Value(length_of(v)); }

Value f_trim(const Value& v, CallArgs& a) {
  check_arguments(a, "trim", 1, {"chars"});
  const Value* chars = argument(a, 0, "chars");
  const std::string* set = chars && !chars->is_none() ? &chars->as_string() : nullptr;
  return Value(strip(to_str(v), set, true, true));
}

Value f_tojson(const Value& v, CallArgs& a) {
  check_arguments(a, "tojson", 1, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonStyle style;
  if (const Value* e = keyword(a, "ensure_ascii")) style.ensure_ascii = e->truthy();
  if (const Value* i = argument(a, 0, "indent"); i && !i->is_none()) {
    if (i->is_string()) template_error("tojson: a string indent is not supported");
    style.indent = static_cast<int>(std::max<int64_t>(0, i->as_int()));
  }
  if (const Value* s = keyword(a, "separators"); s && !s->is_none()) {
    if (!s->is_list() || s->list().size() != 2 || !s->list()[0].is_string() || !s->list()[1].is_string())
      template_error("tojson: separators must be a pair of strings");
    style.item_separator = s->list()[0].as_string();
    style.key_separator = s->list()[1].as_string();
    if (style.item_separator.empty() || style.key_separator.empty()) template_error("tojson: empty separators are not supported");
  }
  if (const Value* s = keyword(a, "sort_keys")) style.sort_keys = s->truthy();
  try {
    return Value(to_json(v, style));
  } catch (const Error& e) {
    template_error(e.what());
  }
}

Value f_string(const Value& v, CallArgs& a) { check_arguments(a, "string", 0, {}); return Value(to_str(v)); }

Value f_join(const Value& v, CallArgs& a) {
  check_arguments(a, "join", 2, {"d", "attribute"});
  const Value* sep = argument(a, 0, "d");
  const Value* attribute = argument(a, 1, "attribute");
  std::string out;
  bool first = true;
  for (const auto& item : iterate(v)) {
    out += (first ? "" : sep ? to_str(*sep) : "") + to_str(attribute ? attribute_of(item, *attribute) : item);
    first = false;
  }
  return Value(out);
}

Value f_default(const Value& v, CallArgs& a) {
  check_arguments(a, "default", 2, {"default_value", "boolean"});
  const Value* fallback = argument(a, 0, "default_value");
  const Value* boolean = argument(a, 1, "boolean");
  const bool use = v.is_undefined() || (boolean && boolean->truthy() && !v.truthy());
  return use ? (fallback ? *fallback : Value("")) : v;
}

Value f_upper(const Value& v, CallArgs& a) { check_arguments(a, "upper", 0, {}); return Value(upper(to_str(v))); }
Value f_lower(const Value& v, CallArgs& a) { check_arguments(a, "lower", 0, {}); return Value(lower(to_str(v))); }
Value f_title(const Value& v, CallArgs& a) { check_arguments(a, "title", 0, {}); return Value(jinja_title(to_str(v))); }
Value f_capitalize(const Value& v, CallArgs& a) { check_arguments(a, "capitalize", 0, {}); return Value(capitalize(to_str(v))); }

Value f_first(const Value& v, CallArgs& a) {
  check_arguments(a, "first", 0, {});
  auto items = iterate(v);
  return items.empty() ? Value::undefined("first of an empty sequence") : items.front();
}

Value f_last(const Value& v, CallArgs& a) {
  check_arguments(a, "last", 0, {});
  auto items = iterate(v);
  return items.empty() ? Value::undefined("last of an empty sequence") : items.back();
}

Value f_list(const Value& v, CallArgs& a) { check_arguments(a, "list", 0, {}); return Value(iterate(v)); }

Value f_reverse(const Value& v, CallArgs& a) {
  check_arguments(a, "reverse", 0, {});
  if (v.is_string()) {
    std::u32string t = to_code_points(v.as_string());
    std::reverse(t.begin(), t.end());
    return Value(to_utf8(t));
  }
  auto items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value(std::move(items));
}

Value f_items(const Value& v, CallArgs& a) {
  check_arguments(a, "items", 0, {});
  if (v.is_undefined()) return Value(std::vector<Value>{});
  if (!v.is_dict()) template_error(std::string("items: expected a mapping, got ") + v.type_name());
  std::vector<Value> out;
  for (const auto& [k, item] : v.dict().items) out.push_back(Value::tuple({Value(k), item}));
  return Value(std::move(out));
}

// select/reject/selectattr/rejectattr: keep the items whose test (default: truthiness) is `keep`.
Value select(const Value& v, CallArgs& a, bool by_attribute, bool keep) {
  std::vector<Value> out;
  const size_t first = by_attribute ? 1 : 0;
  const Value* attribute = by_attribute ? &need(a, 0, "attribute", "selectattr") : nullptr;
  const Value* test = argument(a, first, "");
  CallArgs test_args;
  for (size_t i = first + 1; i < a.positional.size(); ++i) test_args.positional.push_back(a.positional[i]);
  for (const auto& item : v.truthy() ? iterate(v) : std::vector<Value>{}) {  // Jinja skips a falsy input
    const Value subject = attribute ? attribute_of(item, *attribute) : item;
    CallArgs args = test_args;
    const bool passed = test ? apply_test(to_str(*test), subject, args) : subject.truthy();
    if (passed == keep) out.push_back(item);
  }
  return Value(std::move(out));
}
Value f_select(const Value& v, CallArgs& a) { return select(v, a, false, true); }
Value f_reject(const Value& v, CallArgs& a) { return select(v, a, false, false); }
Value f_selectattr(const Value& v, CallArgs& a) { return select(v, a, true, true); }
Value f_rejectattr(const Value& v, CallArgs& a) { return select(v, a, true, false); }

Value f_map(const Value& v, CallArgs& a) {
  std::vector<Value> out;
  if (const Value* attribute = keyword(a, "attribute")) {
    const Value* fallback = keyword(a, "default");
    for (const auto& item : v.truthy() ? iterate(v) : std::vector<Value>{}) {  // Jinja skips a falsy input
      Value x = attribute_of(item, *attribute);
      out.push_back(x.is_undefined() && fallback ? *fallback : x);
    }
    return Value(std::move(out));
  }
  const Value& filter = need(a, 0, "filter", "map");
  CallArgs rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (const auto& item : v.truthy() ? iterate(v) : std::vector<Value>{}) {
    CallArgs args = rest;
    out.push_back(apply_filter(to_str(filter), item, args));
  }
  return Value(std::move(out));
}

Value f_sort(const Value& v, CallArgs& a) {
  check_arguments(a, "sort", 3, {"reverse", "case_sensitive", "attribute"});
  const Value* reverse = argument(a, 0, "reverse");
  const Value* attribute = argument(a, 2, "attribute");
  auto items = iterate(v);
  auto key = [&](const Value& x) {
    Value k = attribute ? attribute_of(x, *attribute) : x;
    const Value* cs = argument(a, 1, "case_sensitive");
    return k.is_string() && !(cs && cs->truthy()) ? Value(lower(k.as_string())) : k;
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return binary_operator("<", key(x), key(y)).truthy();
  });
  if (reverse && reverse->truthy()) std::reverse(items.begin(), items.end());
  return Value(std::move(items));
}

Value f_unique(const Value& v, CallArgs& a) {
  check_arguments(a, "unique", 0, {});
  std::vector<Value> out;
  for (const auto& item : iterate(v))
    if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
  return Value(std::move(out));
}

Value f_int(const Value& v, CallArgs& a) {
  check_arguments(a, "int", 1, {"default"});
  const Value* fallback = argument(a, 0, "default");
  if (v.is_int()) return Value(v.as_int());
  if (v.is_number()) return Value(static_cast<int64_t>(v.as_double()));
  if (v.is_string()) {
    const std::string s = strip(v.as_string(), nullptr, true, true);
    char* end = nullptr;
    const double x = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == '\0') return Value(static_cast<int64_t>(x));
  }
  return fallback ? *fallback : Value(int64_t{0});
}

Value f_float(const Value& v, CallArgs& a) {
  check_arguments(a, "float", 1, {"default"});
  if (v.is_number()) return Value(v.as_double());
  if (v.is_string()) {
    const std::string s = strip(v.as_string(), nullptr, true, true);
    char* end = nullptr;
    const double x = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == '\0') return Value(x);
  }
  const Value* fallback = argument(a, 0, "default");
  return fallback ? *fallback : Value(0.0);
}

Value f_abs(const Value& v, CallArgs& a) {
  check_arguments(a, "abs", 0, {});
  if (v.kind() == Value::Kind::kFloat) return Value(std::fabs(v.as_double()));
  if (v.is_int()) return Value(static_cast<int64_t>(std::llabs(v.as_int())));
  template_error(std::string("bad operand type for abs(): '") + v.type_name() + "'");
}

Value f_replace(const Value& v, CallArgs& a) {
  check_arguments(a, "replace", 3, {});
  const Value* count = argument(a, 2, "count");
  return Value(replace(to_str(v), to_str(need(a, 0, "old", "replace")), to_str(need(a, 1, "new", "replace")),
                       count && !count->is_none() ? count->as_int() : -1));
}

Value f_indent(const Value& v, CallArgs& a) {
  check_arguments(a, "indent", 3, {"width", "first", "blank"});
  const Value* width = argument(a, 0, "width");
  const std::string pad = width ? (width->is_string() ? width->as_string() : std::string(width->as_int(), ' ')) : "    ";
  const Value* first = argument(a, 1, "first");
  const Value* blank = argument(a, 2, "blank");
  const std::string nl = "\n";
  const auto lines = split(to_str(v), &nl, -1);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += "\n";
    const bool indent = (i > 0 || (first && first->truthy())) && (!lines[i].empty() || (blank && blank->truthy()));
    out += (indent ? pad : "") + lines[i];
  }
  return Value(out);
}

Value f_safe(const Value& v, CallArgs& a) {
  check_arguments(a, "safe", 0, {});
  return Value::markup(to_str(v));
}

Value f_escape(const Value& v, CallArgs& a) {
  check_arguments(a, "escape", 0, {});
  return Value::markup(v.is_markup() ? v.as_string() : html_escape(to_str(v)));
}

Value f_min_max(const Value& v, CallArgs& a, bool maximum) {
  auto items = iterate(v);
  if (items.empty()) return Value::undefined("min/max of an empty sequence");
  Value best = items[0];
  for (const auto& item : items)
    if (binary_operator(maximum ? ">" : "<", item, best).truthy()) best = item;
  return best;
}
Value f_min(const Value& v, CallArgs& a) { return f_min_max(v, a, false); }
Value f_max(const Value& v, CallArgs& a) { return f_min_max(v, a, true); }

Value f_sum(const Value& v, CallArgs& a) {
  check_arguments(a, "sum", 2, {"attribute", "start"});
  const Value* attribute = argument(a, 0, "attribute");
  const Value* start = argument(a, 1, "start");
  Value total = start ? *start : Value(int64_t{0});
  for (const auto& item : iterate(v)) total = binary_operator("+", total, attribute ? attribute_of(item, *attribute) : item);
  return total;
}

const std::map<std::string, Filter>& filters() {
  static const std::map<std::string, Filter> table = {
      {"length", f_length}, {"count", f_length}, {"trim", f_trim}, {"tojson", f_tojson}, {"string", f_string},
      {"join", f_join}, {"default", f_default}, {"d", f_default}, {"upper", f_upper}, {"lower", f_lower},
      {"title", f_title}, {"capitalize", f_capitalize}, {"first", f_first}, {"last", f_last}, {"list", f_list},
      {"reverse", f_reverse}, {"items", f_items}, {"select", f_select}, {"reject", f_reject},
      {"selectattr", f_selectattr}, {"rejectattr", f_rejectattr}, {"map", f_map}, {"sort", f_sort},
      {"unique", f_unique}, {"int", f_int}, {"float", f_float}, {"abs", f_abs}, {"replace", f_replace},
      {"indent", f_indent}, {"safe", f_safe}, {"escape", f_escape}, {"e", f_escape}, {"min", f_min},
      {"max", f_max}, {"sum", f_sum}};
  return table;
}

// ---- tests ----

bool t_defined(const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(const Value& v, CallArgs&) { return v.is_none(); }
bool t_string(const Value& v, CallArgs&) { return v.is_string(); }
bool t_number(const Value& v, CallArgs&) { return v.is_number(); }
bool t_integer(const Value& v, CallArgs&) { return v.kind() == Value::Kind::kInt; }
bool t_float(const Value& v, CallArgs&) { return v.kind() == Value::Kind::kFloat; }
bool t_boolean(const Value& v, CallArgs&) { return v.is_bool(); }
bool t_true(const Value& v, CallArgs&) { return v.is_bool() && v.as_int(); }
bool t_false(const Value& v, CallArgs&) { return v.is_bool() && !v.as_int(); }
bool t_mapping(const Value& v, CallArgs&) { return v.is_dict(); }
bool t_iterable(const Value& v, CallArgs&) { return v.is_list() || v.is_dict() || v.is_string(); }
bool t_sequence(const Value& v, CallArgs&) { return v.is_list() || v.is_dict() || v.is_string(); }
bool t_callable(const Value& v, CallArgs&) { return v.is_function(); }
bool t_odd(const Value& v, CallArgs&) { return v.is_int() && (v.as_int() % 2 != 0); }
bool t_even(const Value& v, CallArgs&) { return v.is_int() && v.as_int() % 2 == 0; }
bool t_lower(const Value& v, CallArgs&) { return v.is_string() && lower(v.as_string()) == v.as_string(); }
bool t_upper(const Value& v, CallArgs&) { return v.is_string() && upper(v.as_string()) == v.as_string(); }
bool t_divisibleby(const Value& v, CallArgs& a) {
  const Value& n = need(a, 0, "num", "divisibleby");
  if (!v.is_int() || !n.is_int() || n.as_int() == 0) template_error("divisibleby needs non-zero integers");
  return v.as_int() % n.as_int() == 0;
}
bool compare_test(const char* op, const Value& v, CallArgs& a) {
  return binary_operator(op, v, need(a, 0, "other", op)).truthy();
}
bool t_eq(const Value& v, CallArgs& a) { return compare_test("==", v, a); }
bool t_ne(const Value& v, CallArgs& a) { return compare_test("!=", v, a); }
bool t_lt(const Value& v, CallArgs& a) { return compare_test("<", v, a); }
bool t_le(const Value& v, CallArgs& a) { return compare_test("<=", v, a); }
bool t_gt(const Value& v, CallArgs& a) { return compare_test(">", v, a); }
bool t_ge(const Value& v, CallArgs& a) { return compare_test(">=", v, a); }
bool t_in(const Value& v, CallArgs& a) { return binary_operator("in", v, need(a, 0, "seq", "in")).truthy(); }
bool t_sameas(const Value& v, CallArgs& a) {
  const Value& o = need(a, 0, "other", "sameas");
  return v.kind() == o.kind() && v == o;  // singletons (None, True, False) and equal numbers
}

const std::map<std::string, Test>& tests() {
  static const std::map<std::string, Test> table = {
      {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none}, {"string", t_string},
      {"number", t_number}, {"integer", t_integer}, {"float", t_float}, {"boolean", t_boolean}, {"true", t_true},
      {"false", t_false}, {"mapping", t_mapping}, {"iterable", t_iterable}, {"sequence", t_sequence},
      {"callable", t_callable}, {"odd", t_odd}, {"even", t_even}, {"lower", t_lower}, {"upper", t_upper},
      {"divisibleby", t_divisibleby}, {"eq", t_eq}, {"equalto", t_eq}, {"==", t_eq}, {"ne", t_ne}, {"!=", t_ne},
      {"lt", t_lt}, {"lessthan", t_lt}, {"<", t_lt}, {"le", t_le}, {"<=", t_le}, {"gt", t_gt},
      {"greaterthan", t_gt}, {">", t_gt}, {"ge", t_ge}, {">=", t_ge}, {"in", t_in}, {"sameas", t_sameas}};
  return table;
}

}  // namespace

bool has_filter(const std::string& name) { return filters().count(name) > 0; }
bool has_test(const std::string& name) { return tests().count(name) > 0; }

Value apply_filter(const std::string& name, const Value& operand, CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) template_error("no filter named '" + name + "'");
  return it->second(operand, args);
}

bool apply_test(const std::string& name, const Value& operand, CallArgs& args) {
  auto it = tests().find(name);
  if (it == tests().end()) template_error("no test named '" + name + "'");
  return it->second(operand, args);
}

}  // namespace ipt::infer::jinja
