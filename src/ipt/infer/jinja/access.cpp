// Attribute and item access, and the Python methods templates call on str, dict and list
// (the mutating ones are refused, as transformers' ImmutableSandboxedEnvironment refuses them).
#include <algorithm>
#include <optional>

#include "ipt/infer/jinja/builtins.h"
#include "ipt/infer/jinja/text.h"

namespace ipt::infer::jinja {

const Value* argument(CallArgs& args, size_t i, const char* name) {
  if (i < args.positional.size()) return &args.positional[i];
  for (const auto& [key, value] : args.keyword)
    if (key == name) return &value;
  return nullptr;
}

void check_arguments(const CallArgs& args, const std::string& function, size_t max_positional,
                     std::initializer_list<const char*> keywords) {
  if (args.positional.size() > max_positional)
    template_error(function + "() takes at most " + std::to_string(max_positional) + " positional argument(s), " +
                   std::to_string(args.positional.size()) + " given");
  for (const auto& [key, value] : args.keyword)
    if (std::none_of(keywords.begin(), keywords.end(), [&](const char* k) { return key == k; }))
      template_error(function + "() got an unexpected keyword argument '" + key + "'");
}

std::vector<Value> iterate(const Value& v) {
  if (v.is_list()) return v.list();
  if (v.is_dict()) {
    std::vector<Value> keys;
    for (const auto& [k, item] : v.dict().items) keys.emplace_back(k);
    return keys;
  }
  if (v.is_string()) {
    std::vector<Value> chars;
    for (char32_t c : to_code_points(v.as_string())) chars.emplace_back(to_utf8(std::u32string(1, c)));
    return chars;
  }
  if (v.is_undefined()) return {};
  template_error(std::string("'") + v.type_name() + "' object is not iterable");
}

namespace {

const std::string* optional_string(CallArgs& args, size_t i, const char* name, const std::string& method) {
  const Value* v = argument(args, i, name);
  if (!v || v->is_none()) return nullptr;
  if (!v->is_string()) template_error(method + "() argument must be str or None, not " + v->type_name());
  return &v->as_string();
}

const std::string& string_argument(CallArgs& args, size_t i, const char* name, const std::string& method) {
  const Value* v = argument(args, i, name);
  if (!v || !v->is_string()) template_error(method + "() needs a str argument '" + name + "'");
  return v->as_string();
}

int64_t int_argument(CallArgs& args, size_t i, const char* name, int64_t fallback) {
  const Value* v = argument(args, i, name);
  if (!v) return fallback;
  if (!v->is_int()) template_error(std::string("'") + name + "' must be an integer");
  return v->as_int();
}

Value string_method(const std::string& s, const std::string& name, CallArgs& args) {
  const std::string m = "str." + name;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    check_arguments(args, m, 1, {});
    return Value(strip(s, optional_string(args, 0, "chars", m), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    check_arguments(args, m, 2, {"sep", "maxsplit"});
    const std::string* sep = optional_string(args, 0, "sep", m);
    if (sep && sep->empty()) template_error("empty separator");
    const int64_t max_split = int_argument(args, 1, "maxsplit", -1);
    if (name == "rsplit" && max_split >= 0) template_error("str.rsplit() with maxsplit is not supported");
    std::vector<Value> out;
    for (auto& piece : split(s, sep, max_split)) out.emplace_back(std::move(piece));
    return Value(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    check_arguments(args, m, 1, {});
    const Value* affix = argument(args, 0, "");
    if (!affix) template_error(m + "() takes one argument");
    std::vector<Value> options = affix->is_list() ? affix->list() : std::vector<Value>{*affix};
    for (const auto& o : options) {
      if (!o.is_string()) template_error(m + "() argument must be str or a tuple of str");
      const std::string& a = o.as_string();
      if (a.size() > s.size()) continue;
      if (name == "startswith" ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0)
        return Value(true);
    }
    return Value(false);
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    check_arguments(args, m, 0, {});
    return Value(name == "upper" ? upper(s) : name == "lower" ? lower(s) : name == "title" ? python_title(s) : capitalize(s));
  }
  if (name == "replace") {
    check_arguments(args, m, 3, {});
    return Value(replace(s, string_argument(args, 0, "old", m), string_argument(args, 1, "new", m),
                         int_argument(args, 2, "count", -1)));
  }
  if (name == "find" || name == "count") {
    check_arguments(args, m, 1, {});
    const std::string& needle = string_argument(args, 0, "sub", m);
    if (name == "find") {
      const size_t at = s.find(needle);
      return Value(at == std::string::npos ? int64_t{-1} : static_cast<int64_t>(to_code_points(s.substr(0, at)).size()));
    }
    if (needle.empty()) return Value(static_cast<int64_t>(to_code_points(s).size() + 1));
    int64_t n = 0;
    for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + needle.size())) ++n;
    return Value(n);
  }
  if (name == "join") {
    check_arguments(args, m, 1, {});
    const Value* items = argument(args, 0, "iterable");
    if (!items) template_error("str.join() takes one argument");
    std::string out;
    bool first = true;
    for (const auto& item : iterate(*items)) {
      if (!item.is_string()) template_error(std::string("str.join(): expected str, found ") + item.type_name());
      out += (first ? "" : s) + item.as_string();
      first = false;
    }
    return Value(out);
  }
  template_error("'str' object has no method '" + name + "'");
}

Value dict_method(const Value& d, const std::string& name, CallArgs& args) {
  const std::string m = "dict." + name;
  if (name == "items" || name == "keys" || name == "values") {
    check_arguments(args, m, 0, {});
    std::vector<Value> out;
    for (const auto& [k, v] : d.dict().items)
      out.push_back(name == "items" ? Value::tuple({Value(k), v}) : name == "keys" ? Value(k) : v);
    return Value(std::move(out));
  }
  if (name == "get") {
    check_arguments(args, m, 2, {});
    const Value* key = argument(args, 0, "key");
    if (!key) template_error("dict.get() needs a key");
    const Value* found = key->is_string() ? d.dict().find(key->as_string()) : nullptr;
    if (found) return *found;
    const Value* fallback = argument(args, 1, "default");
    return fallback ? *fallback : Value::none();
  }
  if (name == "copy") return Value(Dict{d.dict().items});
  template_error("'dict' object has no method '" + name + "'");
}

bool is_string_method(const std::string& n) {
  static const char* names[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper",
                                "lower", "title", "capitalize", "replace", "find", "count", "join"};
  return std::any_of(std::begin(names), std::end(names), [&](const char* x) { return n == x; });
}

bool is_mutating(const std::string& n) {
  static const char* names[] = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
                                "update", "setdefault", "popitem"};
  return std::any_of(std::begin(names), std::end(names), [&](const char* x) { return n == x; });
}

}  // namespace

Value get_attribute(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) template_error("'" + obj.as_string() + "' is undefined (reading its attribute '" + name + "')");
  if ((obj.is_list() || obj.is_dict()) && is_mutating(name) && !(obj.is_dict() && obj.dict().is_namespace))
    template_error("access to the mutating method '" + name + "' is not allowed (the template environment is immutable)");
  if (obj.is_string() && is_string_method(name)) {
    const std::string s = obj.as_string();
    return Value::function("str." + name, [s, name](CallArgs& args) { return string_method(s, name, args); });
  }
  if (obj.is_dict()) {
    if (!obj.dict().is_namespace && (name == "items" || name == "keys" || name == "values" || name == "get" || name == "copy"))
      return Value::function("dict." + name, [obj, name](CallArgs& args) { return dict_method(obj, name, args); });
    if (const Value* v = obj.dict().find(name)) return *v;
  }
  return Value::undefined(name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) template_error("'" + obj.as_string() + "' is undefined (reading an item)");
  if (obj.is_dict()) {
    if (key.is_string())
      if (const Value* v = obj.dict().find(key.as_string())) return *v;
    return key.is_string() ? get_attribute(obj, key.as_string()) : Value::undefined(to_str(key));
  }
  if ((obj.is_list() || obj.is_string()) && key.is_int()) {
    const std::u32string chars = obj.is_string() ? to_code_points(obj.as_string()) : U"";
    const int64_t n = obj.is_list() ? static_cast<int64_t>(obj.list().size()) : static_cast<int64_t>(chars.size());
    int64_t i = key.as_int();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined("[" + to_str(key) + "]");
    return obj.is_list() ? obj.list()[i] : Value(to_utf8(chars.substr(i, 1)));
  }
  if (key.is_string()) return get_attribute(obj, key.as_string());
  return Value::undefined(to_str(key));
}

Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step) {
  if (!obj.is_list() && !obj.is_string()) template_error(std::string("'") + obj.type_name() + "' object is not subscriptable");
  auto bound = [](const Value* v, const char* what) -> std::optional<int64_t> {
    if (!v || v->is_none()) return std::nullopt;
    if (!v->is_int()) template_error(std::string("slice ") + what + " must be an integer or None");
    return v->as_int();
  };
  const int64_t by = bound(step, "step").value_or(1);
  if (by == 0) template_error("slice step cannot be zero");
  const std::u32string chars = obj.is_string() ? to_code_points(obj.as_string()) : U"";
  const int64_t n = obj.is_list() ? static_cast<int64_t>(obj.list().size()) : static_cast<int64_t>(chars.size());
  // Python's slice.indices()
  auto clamp = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t i = *v < 0 ? *v + n : *v;
    if (by > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  const int64_t from = clamp(bound(start, "start"), by > 0 ? 0 : n - 1);
  const int64_t to = clamp(bound(stop, "stop"), by > 0 ? n : -1);
  std::vector<Value> items;
  std::u32string text;
  for (int64_t i = from; by > 0 ? i < to : i > to; i += by) {
    if (obj.is_list()) items.push_back(obj.list()[i]);
    else text += chars[i];
  }
  return obj.is_list() ? Value(std::move(items)) : Value(to_utf8(text));
}

}  // namespace ipt::infer::jinja
