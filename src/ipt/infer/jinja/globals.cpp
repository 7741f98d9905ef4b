// The global functions a template can call: Jinja's range, namespace and dict, and the two
// transformers adds, raise_exception (the template refuses a conversation) and strftime_now.
#include <ctime>

#include "ipt/infer/jinja/builtins.h"

namespace ipt::infer::jinja {

namespace {

Value range(CallArgs& a) {
  check_arguments(a, "range", 3, {});
  std::vector<int64_t> bounds;
  for (const auto& v : a.positional) {
    if (!v.is_int()) template_error(std::string("range() needs integers, got ") + v.type_name());
    bounds.push_back(v.as_int());
  }
  if (bounds.empty()) template_error("range expected at least 1 argument");
  const int64_t start = bounds.size() > 1 ? bounds[0] : 0;
  const int64_t stop = bounds.size() > 1 ? bounds[1] : bounds[0];
  const int64_t step = bounds.size() > 2 ? bounds[2] : 1;
  if (step == 0) template_error("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (out.size() >= 1'000'000) template_error("range() is too long (over 1000000 items)");
    out.emplace_back(i);
  }
  return Value(std::move(out));
}

Value make_dict(CallArgs& a, bool is_namespace) {
  const char* name = is_namespace ? "namespace" : "dict";
  if (a.positional.size() > 1) template_error(std::string(name) + "() takes at most one positional argument");
  Dict d;
  d.is_namespace = is_namespace;
  if (!a.positional.empty()) {
    if (!a.positional[0].is_dict()) template_error(std::string(name) + "() takes a mapping and keyword arguments");
    d.items = a.positional[0].dict().items;
  }
  for (const auto& [k, v] : a.keyword) d.set(k, v);
  return Value(std::move(d));
}

Value raise_exception(CallArgs& a) {
  const Value* message = argument(a, 0, "message");
  template_error("the chat template raised an exception: " + (message ? to_str(*message) : std::string("(no message)")));
}

Value strftime_now(CallArgs& a) {
  check_arguments(a, "strftime_now", 1, {});
  const Value* format = argument(a, 0, "format");
  if (!format || !format->is_string()) template_error("strftime_now() needs a format string");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[256];
  const size_t n = std::strftime(buf, sizeof buf, format->as_string().c_str(), &local);
  if (n == 0 && !format->as_string().empty()) template_error("strftime_now(): the formatted date is empty or too long");
  return Value(std::string(buf, n));
}

}  // namespace

Dict global_functions() {
  Dict d;
  d.set("range", Value::function("range", range));
  d.set("namespace", Value::function("namespace", [](CallArgs& a) { return make_dict(a, true); }));
  d.set("dict", Value::function("dict", [](CallArgs& a) { return make_dict(a, false); }));
  d.set("raise_exception", Value::function("raise_exception", raise_exception));
  d.set("strftime_now", Value::function("strftime_now", strftime_now));
  return d;
}

}  // namespace ipt::infer::jinja
