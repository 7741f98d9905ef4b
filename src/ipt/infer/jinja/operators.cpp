// Python's arithmetic, comparison and membership on template values.
#include <cmath>

#include "ipt/infer/jinja/builtins.h"

namespace ipt::infer::jinja {

namespace {

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined())
    template_error("'" + (a.is_undefined() ? a : b).as_string() + "' is undefined (operator " + op + ")");
  template_error(std::string("unsupported operand types for ") + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

Value repeat(const Value& seq, int64_t times) {
  const size_t size = seq.is_string() ? seq.as_string().size() : seq.list().size();
  if (times > 0 && size > 0 && static_cast<uint64_t>(times) > (64ull << 20) / size)
    template_error("sequence repetition over 64 Mi items");
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += seq.as_string();
    return Value(out);
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.list().begin(), seq.list().end());
  return Value(std::move(out));
}

bool less(const Value& a, const Value& b, const std::string& op) {
  if (a.is_int() && b.is_int()) return a.as_int() < b.as_int();
  if (a.is_number() && b.is_number()) return a.as_double() < b.as_double();
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 orders as code points
  if (a.is_list() && b.is_list()) {
    const auto &x = a.list(), &y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (x[i] != y[i]) return less(x[i], y[i], op);
    return x.size() < y.size();
  }
  template_error("'" + op + "' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

bool contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string())
      template_error(std::string("'in <string>' requires string as left operand, not ") + item.type_name());
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_list()) {
    for (const auto& v : container.list())
      if (v == item) return true;
    return false;
  }
  if (container.is_dict()) return item.is_string() && container.dict().find(item.as_string());
  if (container.is_undefined()) template_error("'" + container.as_string() + "' is undefined (operator in)");
  template_error(std::string("argument of type '") + container.type_name() + "' is not iterable");
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

Value unary_minus(const Value& v) {
  if (v.kind() == Value::Kind::kFloat) return Value(-v.as_double());
  if (v.is_int()) return Value(-v.as_int());
  template_error(std::string("bad operand type for unary -: '") + v.type_name() + "'");
}

Value binary_operator(const std::string& op, const Value& a, const Value& b) {
  const bool ints = a.is_int() && b.is_int();
  const bool numbers = a.is_number() && b.is_number();
  if (op == "==") return Value(a == b);
  if (op == "!=") return Value(a != b);
  if (op == "<") return Value(less(a, b, op));
  if (op == ">") return Value(less(b, a, op));
  if (op == "<=") return Value(!less(b, a, op));
  if (op == ">=") return Value(!less(a, b, op));
  if (op == "in") return Value(contains(b, a));
  if (op == "not in") return Value(!contains(b, a));
  if (op == "~") return Value(to_str(a) + to_str(b));
  if (op == "+") {
    if (ints) return Value(a.as_int() + b.as_int());
    if (numbers) return Value(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      // markupsafe: Markup + str escapes the str (templates that mark literals |safe rely on it).
      if (a.is_markup() || b.is_markup())
        return Value::markup((a.is_markup() ? a.as_string() : html_escape(a.as_string())) +
                             (b.is_markup() ? b.as_string() : html_escape(b.as_string())));
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      std::vector<Value> out = a.list();
      out.insert(out.end(), b.list().begin(), b.list().end());
      return Value(std::move(out));
    }
    unsupported(op, a, b);
  }
  if (op == "-") {
    if (ints) return Value(a.as_int() - b.as_int());
    if (numbers) return Value(a.as_double() - b.as_double());
    unsupported(op, a, b);
  }
  if (op == "*") {
    if (ints) return Value(a.as_int() * b.as_int());
    if (numbers) return Value(a.as_double() * b.as_double());
    if ((a.is_string() || a.is_list()) && b.is_int()) return repeat(a, b.as_int());
    if ((b.is_string() || b.is_list()) && a.is_int()) return repeat(b, a.as_int());
    unsupported(op, a, b);
  }
  if (op == "/" || op == "//" || op == "%") {
    if (!numbers) unsupported(op, a, b);
    if (b.as_double() == 0) template_error(op == "%" ? "integer modulo by zero" : "division by zero");
    if (op == "/") return Value(a.as_double() / b.as_double());
    if (ints) {
      const int64_t q = floor_div(a.as_int(), b.as_int());
      return op == "//" ? Value(q) : Value(a.as_int() - q * b.as_int());
    }
    const double q = std::floor(a.as_double() / b.as_double());
    return op == "//" ? Value(q) : Value(a.as_double() - q * b.as_double());
  }
  if (op == "**") {
    if (!numbers) unsupported(op, a, b);
    if (ints && b.as_int() >= 0) {
      int64_t r = 1;
      for (int64_t i = 0; i < b.as_int(); ++i) r *= a.as_int();
      return Value(r);
    }
    return Value(std::pow(a.as_double(), b.as_double()));
  }
  template_error("unknown operator '" + op + "'");
}

}  // namespace ipt::infer::jinja
