// Runs a parsed template. Scopes follow Jinja: a for loop's body and a macro get their own frame
// (a `set` there does not leak out; namespace() objects carry values out), `if` does not.
#include <algorithm>

#include "ipt/common/error.h"
#include "ipt/infer/jinja/builtins.h"
#include "ipt/infer/jinja/lexer.h"
#include "ipt/infer/jinja/parser.h"
#include "ipt/infer/jinja/template.h"

namespace ipt::infer::jinja {

namespace {

using Frames = std::vector<std::shared_ptr<Dict>>;

class Interpreter {
 public:
  Interpreter(const std::string& origin, const Dict& variables) : origin_(origin) {
    frames_.push_back(std::make_shared<Dict>(global_functions()));
    frames_.push_back(std::make_shared<Dict>(variables));
  }

  std::string render(const Body& body) {
    std::string out;
    out_ = &out;
    frames_.push_back(std::make_shared<Dict>());  // the template's own variables
    run(body);
    return out;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  template <typename Node>
  [[noreturn]] void fail(const Node& at, const std::string& message) const {
    throw Error(location(origin_, at.line, at.column) + message);
  }

  Flow run(const Body& body) {
    for (const auto& s : body) {
      const Flow flow = execute(*s);
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  Flow execute(const Stmt& s) {
    switch (s.kind) {
      case Stmt::Kind::kText: *out_ += s.text; return Flow::kNormal;
      case Stmt::Kind::kOutput: *out_ += to_str(eval(*s.expr)); return Flow::kNormal;
      case Stmt::Kind::kIf:
        for (const auto& [condition, body] : s.branches)
          if (eval(*condition).truthy()) return run(body);
        return run(s.otherwise);
      case Stmt::Kind::kFor: return for_loop(s);
      case Stmt::Kind::kSet: assign(s, eval(*s.expr)); return Flow::kNormal;
      case Stmt::Kind::kSetBlock: assign(s, Value(capture(s.body))); return Flow::kNormal;
      case Stmt::Kind::kMacro: define_macro(s); return Flow::kNormal;
      case Stmt::Kind::kBreak: return Flow::kBreak;
      case Stmt::Kind::kContinue: return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  std::string capture(const Body& body) {
    std::string text;
    std::string* outer = out_;
    out_ = &text;
    run(body);
    out_ = outer;
    return text;
  }

  void bind(Dict& frame, const Stmt& s, const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      frame.set(targets[0], v);
      return;
    }
    if (!v.is_list()) fail(s, std::string("cannot unpack a '") + v.type_name() + "' into " + std::to_string(targets.size()) + " names");
    if (v.list().size() != targets.size())
      fail(s, "cannot unpack " + std::to_string(v.list().size()) + " values into " + std::to_string(targets.size()) + " names");
    for (size_t i = 0; i < targets.size(); ++i) frame.set(targets[i], v.list()[i]);
  }

  void assign(const Stmt& s, const Value& v) {
    if (!s.attribute.empty()) {
      const Value target = lookup(s.targets[0]);
      if (!target.is_dict() || !target.dict().is_namespace)
        fail(s, "cannot assign the attribute '" + s.attribute + "' of '" + s.targets[0] + "': only namespace() objects take attributes");
      target.dict().set(s.attribute, v);
      return;
    }
    bind(*frames_.back(), s, s.targets, v);
  }

  Flow for_loop(const Stmt& s) {
    std::vector<Value> items;
    try {
      items = iterate(eval(*s.expr));
    } catch (const TemplateError& e) {
      fail(*s.expr, e.message);
    }
    if (s.filter) {  // `for x in xs if cond`: the loop (and loop.length) sees only the kept items
      std::vector<Value> kept;
      for (const auto& item : items) {
        frames_.push_back(std::make_shared<Dict>());
        bind(*frames_.back(), s, s.targets, item);
        const bool keep = eval(*s.filter).truthy();
        frames_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return run(s.otherwise);
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      auto frame = std::make_shared<Dict>();
      Dict loop;
      loop.set("index", Value(i + 1));
      loop.set("index0", Value(i));
      loop.set("revindex", Value(n - i));
      loop.set("revindex0", Value(n - i - 1));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == n - 1));
      loop.set("length", Value(n));
      loop.set("depth", Value(1));
      loop.set("depth0", Value(0));
      loop.set("previtem", i > 0 ? items[i - 1] : Value::undefined("loop.previtem"));
      loop.set("nextitem", i + 1 < n ? items[i + 1] : Value::undefined("loop.nextitem"));
      loop.set("cycle", Value::function("loop.cycle", [i](CallArgs& a) {
        if (a.positional.empty()) template_error("loop.cycle() needs at least one value");
        return a.positional[static_cast<size_t>(i) % a.positional.size()];
      }));
      frame->set("loop", Value(std::move(loop)));
      bind(*frame, s, s.targets, items[i]);
      frames_.push_back(frame);
      const Flow flow = run(s.body);
      frames_.pop_back();
      if (flow == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  void define_macro(const Stmt& s) {
    const Frames closure = frames_;
    const Stmt* macro = &s;
    frames_.back()->set(s.text, Value::function(s.text, [this, closure, macro](CallArgs& args) {
      auto frame = std::make_shared<Dict>();
      if (args.positional.size() > macro->params.size())
        template_error("macro '" + macro->text + "' takes " + std::to_string(macro->params.size()) + " arguments, " +
                       std::to_string(args.positional.size()) + " given");
      for (size_t i = 0; i < macro->params.size(); ++i) {
        const auto& [name, fallback] = macro->params[i];
        const Value* given = argument(args, i, name.c_str());
        frame->set(name, given ? *given : fallback ? eval(*fallback) : Value::undefined(name));
      }
      for (const auto& [key, v] : args.keyword)
        if (std::none_of(macro->params.begin(), macro->params.end(), [&](const auto& p) { return p.first == key; }))
          template_error("macro '" + macro->text + "' has no parameter '" + key + "'");
      if (macro_depth_ >= kMaxMacroDepth)
        template_error("macro calls nested deeper than " + std::to_string(kMaxMacroDepth) + " (endless recursion?)");
      Frames saved = std::move(frames_);
      frames_ = closure;
      frames_.push_back(frame);
      ++macro_depth_;
      std::string text;
      try {
        text = capture(macro->body);
      } catch (...) {
        --macro_depth_;
        frames_ = std::move(saved);
        throw;
      }
      --macro_depth_;
      frames_ = std::move(saved);
      return Value(text);
    }));
  }

  Value lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it)
      if (const Value* v = (*it)->find(name)) return *v;
    return Value::undefined(name);
  }

  CallArgs arguments(const Expr& e, size_t first) {
    CallArgs args;
    for (size_t i = first; i < e.items.size(); ++i) args.positional.push_back(eval(*e.items[i]));
    for (const auto& [key, value] : e.keyword) args.keyword.emplace_back(key, eval(*value));
    return args;
  }

  Value eval(const Expr& e) {
    try {
      return evaluate(e);
    } catch (const TemplateError& error) {
      fail(e, error.message);
    }
  }

  Value evaluate(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.value;
      case Expr::Kind::kName: return lookup(e.name);
      case Expr::Kind::kList: {
        std::vector<Value> items;
        for (const auto& item : e.items) items.push_back(eval(*item));
        return e.name == "tuple" ? Value::tuple(std::move(items)) : Value(std::move(items));
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
          const Value key = eval(*e.items[i]);
          if (!key.is_string()) fail(*e.items[i], std::string("dict keys must be strings here, got ") + key.type_name());
          d.set(key.as_string(), eval(*e.items[i + 1]));
        }
        return Value(std::move(d));
      }
      case Expr::Kind::kAttribute: return get_attribute(eval(*e.items[0]), e.name);
      case Expr::Kind::kIndex: return get_item(eval(*e.items[0]), eval(*e.items[1]));
      case Expr::Kind::kSlice: {
        const Value target = eval(*e.items[0]);
        Value bounds[3];
        for (int i = 0; i < 3; ++i)
          if (e.items[i + 1]) bounds[i] = eval(*e.items[i + 1]);
        auto part = [&](int i) { return e.items[i + 1] ? &bounds[i] : nullptr; };
        return get_slice(target, part(0), part(1), part(2));
      }
      case Expr::Kind::kCall: {
        const Value callee = eval(*e.items[0]);
        CallArgs args = arguments(e, 1);
        if (callee.is_undefined()) template_error("'" + callee.as_string() + "' is undefined (called as a function)");
        if (!callee.is_function()) template_error(std::string("'") + callee.type_name() + "' object is not callable");
        return callee.call(args);
      }
      case Expr::Kind::kFilter: {
        if (!has_filter(e.name)) fail(e, "unsupported filter '" + e.name + "'");
        const Value operand = eval(*e.items[0]);
        CallArgs args = arguments(e, 1);
        return apply_filter(e.name, operand, args);
      }
      case Expr::Kind::kTest: {
        if (!has_test(e.name)) fail(e, "unsupported test '" + e.name + "'");
        const Value operand = eval(*e.items[0]);
        CallArgs args = arguments(e, 1);
        return Value(apply_test(e.name, operand, args) != e.negate);
      }
      case Expr::Kind::kUnary: {
        const Value v = eval(*e.items[0]);
        if (e.name == "not") return Value(!v.truthy());
        if (e.name == "-") return unary_minus(v);
        if (!v.is_number()) template_error(std::string("bad operand type for unary +: '") + v.type_name() + "'");
        return v;
      }
      case Expr::Kind::kBinary: {
        const Value a = eval(*e.items[0]);
        if (e.name == "and") return a.truthy() ? eval(*e.items[1]) : a;
        if (e.name == "or") return a.truthy() ? a : eval(*e.items[1]);
        return binary_operator(e.name, a, eval(*e.items[1]));
      }
      case Expr::Kind::kCompare: {  // a < b < c is a < b and b < c, b evaluated once
        Value left = eval(*e.items[0]);
        for (size_t i = 0; i < e.operators.size(); ++i) {
          Value right = eval(*e.items[i + 1]);
          if (!binary_operator(e.operators[i], left, right).truthy()) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::kConditional:
        if (eval(*e.items[1]).truthy()) return eval(*e.items[0]);
        return e.items[2] ? eval(*e.items[2]) : Value::undefined("conditional without else");
    }
    return {};
  }

  static constexpr int kMaxMacroDepth = 200;  // a template's recursion must not exhaust the stack

  const std::string& origin_;
  Frames frames_;
  std::string* out_ = nullptr;
  int macro_depth_ = 0;
};

}  // namespace

Template::Template(const std::string& source, std::string origin)
    : origin_(std::move(origin)), body_(std::make_shared<const Body>(parse(lex(source, origin_), origin_))) {}

std::string Template::render(const Dict& variables) const {
  try {
    return Interpreter(origin_, variables).render(*body_);
  } catch (const TemplateError& e) {  // raised outside any expression
    throw Error(origin_ + ": " + e.message);
  }
}

}  // namespace ipt::infer::jinja
