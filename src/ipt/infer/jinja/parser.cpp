#include "ipt/infer/jinja/parser.h"

#include <set>

#include "ipt/common/error.h"

namespace ipt::infer::jinja {

namespace {

using K = Token::Kind;

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const std::string& origin) : t_(tokens), origin_(origin) {}

  Body run() {
    Body body = block({});
    if (peek().kind != K::kEnd) fail(peek(), "unexpected '{% " + tag_name() + " %}'");
    return body;
  }

 private:
  const Token& peek(size_t ahead = 0) const { return t_[std::min(i_ + ahead, t_.size() - 1)]; }
  const Token& next() { return t_[i_ < t_.size() - 1 ? i_++ : i_]; }
  [[noreturn]] void fail(const Token& at, const std::string& message) const {
    throw Error(location(origin_, at.line, at.column) + message);
  }
  bool is_op(const char* op, size_t ahead = 0) const { return peek(ahead).kind == K::kOperator && peek(ahead).text == op; }
  bool is_name(const char* name, size_t ahead = 0) const { return peek(ahead).kind == K::kName && peek(ahead).text == name; }
  bool accept_op(const char* op) { return is_op(op) ? (next(), true) : false; }
  bool accept_name(const char* name) { return is_name(name) ? (next(), true) : false; }
  void expect_op(const char* op) {
    if (!accept_op(op)) fail(peek(), std::string("expected '") + op + "', found " + describe(peek()));
  }
  std::string expect_name() {
    if (peek().kind != K::kName) fail(peek(), "expected a name, found " + describe(peek()));
    return next().text;
  }
  void expect_block_end() {
    if (peek().kind != K::kBlockClose) fail(peek(), "expected '%}', found " + describe(peek()));
    next();
  }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case K::kEnd: return "the end of the template";
      case K::kBlockClose: return "'%}'";
      case K::kPrintClose: return "'}}'";
      case K::kText: return "text";
      case K::kString: return "a string";
      default: return "'" + t.text + "'";
    }
  }
  // The name after `{%` at the current position ("" if none).
  std::string tag_name() const { return peek().kind == K::kBlockOpen && peek(1).kind == K::kName ? peek(1).text : ""; }

  template <typename T>
  std::unique_ptr<T> make(typename T::Kind kind, const Token& at) {
    auto node = std::make_unique<T>();
    node->kind = kind;
    node->line = at.line;
    node->column = at.column;
    return node;
  }

  // Statements until a `{% name %}` with a name in `ends` (left unconsumed) or the end.
  Body block(const std::set<std::string>& ends) {
    Body body;
    for (;;) {
      const Token& t = peek();
      if (t.kind == K::kEnd) {
        if (!ends.empty()) fail(t, "unexpected end of the template: expected '{% " + *ends.rbegin() + " %}'");
        return body;
      }
      if (t.kind == K::kText) {
        auto s = make<Stmt>(Stmt::Kind::kText, t);
        s->text = next().text;
        body.push_back(std::move(s));
      } else if (t.kind == K::kPrintOpen) {
        next();
        auto s = make<Stmt>(Stmt::Kind::kOutput, t);
        s->expr = expression();
        if (peek().kind != K::kPrintClose) fail(peek(), "expected '}}', found " + describe(peek()));
        next();
        body.push_back(std::move(s));
      } else if (t.kind == K::kBlockOpen) {
        if (ends.count(tag_name())) return body;
        next();
        statement(body);
      } else {
        fail(t, "unexpected " + describe(t));
      }
    }
  }

  void statement(Body& body) {
    const Token& at = peek();
    if (at.kind != K::kName) fail(at, "expected a statement name after '{%', found " + describe(at));
    const std::string name = next().text;
    if (name == "if") body.push_back(if_statement(at));
    else if (name == "for") body.push_back(for_statement(at));
    else if (name == "set") body.push_back(set_statement(at));
    else if (name == "macro") body.push_back(macro_statement(at));
    else if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail(at, "'" + name + "' outside a loop");
      expect_block_end();
      body.push_back(make<Stmt>(name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, at));
    } else if (name == "generation") {  // transformers' assistant-mask marker: render the body
      expect_block_end();
      Body inner = block({"endgeneration"});
      end_tag("endgeneration");
      for (auto& s : inner) body.push_back(std::move(s));
    } else if (name == "elif" || name == "else" || name.rfind("end", 0) == 0) {
      fail(at, "unexpected '{% " + name + " %}' (nothing open to close)");
    } else {
      fail(at, "unsupported statement '{% " + name + " %}'");
    }
  }

  void end_tag(const char* name) {
    next();  // {%
    next();  // the name
    expect_block_end();
  }

  std::unique_ptr<Stmt> if_statement(const Token& at) {
    auto s = make<Stmt>(Stmt::Kind::kIf, at);
    ExprPtr condition = expression();
    expect_block_end();
    for (;;) {
      Body body = block({"elif", "else", "endif"});
      s->branches.emplace_back(std::move(condition), std::move(body));
      const std::string tag = tag_name();
      next(), next();
      if (tag == "elif") {
        condition = expression();
        expect_block_end();
        continue;
      }
      expect_block_end();
      if (tag == "else") {
        s->otherwise = block({"endif"});
        end_tag("endif");
      }
      return s;
    }
  }

  std::unique_ptr<Stmt> for_statement(const Token& at) {
    auto s = make<Stmt>(Stmt::Kind::kFor, at);
    do s->targets.push_back(expect_name());
    while (accept_op(","));
    if (!accept_name("in")) fail(peek(), "expected 'in' in the for loop, found " + describe(peek()));
    s->expr = or_expression();  // a conditional here would swallow the loop's `if` filter
    if (accept_name("if")) s->filter = expression();
    if (accept_name("recursive")) fail(at, "recursive for loops are not supported");
    expect_block_end();
    ++loop_depth_;
    s->body = block({"else", "endfor"});
    --loop_depth_;
    if (tag_name() == "else") {
      end_tag("else");
      s->otherwise = block({"endfor"});
    }
    end_tag("endfor");
    return s;
  }

  std::unique_ptr<Stmt> set_statement(const Token& at) {
    auto s = make<Stmt>(Stmt::Kind::kSet, at);
    s->targets.push_back(expect_name());
    if (accept_op(".")) {
      s->attribute = expect_name();
    } else {
      while (accept_op(",")) s->targets.push_back(expect_name());
    }
    if (peek().kind == K::kBlockClose && s->targets.size() == 1 && s->attribute.empty()) {
      next();
      s->kind = Stmt::Kind::kSetBlock;
      s->body = block({"endset"});
      end_tag("endset");
      return s;
    }
    expect_op("=");
    s->expr = tuple_or_expression();
    expect_block_end();
    return s;
  }

  std::unique_ptr<Stmt> macro_statement(const Token& at) {
    auto s = make<Stmt>(Stmt::Kind::kMacro, at);
    s->text = expect_name();
    expect_op("(");
    while (!accept_op(")")) {
      std::string param = expect_name();
      ExprPtr fallback;
      if (accept_op("=")) fallback = expression();
      s->params.emplace_back(std::move(param), std::move(fallback));
      if (!is_op(")")) expect_op(",");
    }
    expect_block_end();
    const int loops = loop_depth_;
    loop_depth_ = 0;
    s->body = block({"endmacro"});
    loop_depth_ = loops;
    end_tag("endmacro");
    return s;
  }

  // `a, b` (a tuple without parentheses, as `set` allows) or one expression.
  ExprPtr tuple_or_expression() {
    const Token& at = peek();
    ExprPtr first = expression();
    if (!is_op(",")) return first;
    auto list = make<Expr>(Expr::Kind::kList, at);
    list->name = "tuple";
    list->items.push_back(std::move(first));
    while (accept_op(",")) list->items.push_back(expression());
    return list;
  }

  // ---- expressions, lowest precedence first ----

  ExprPtr expression() {
    const Token& at = peek();
    ExprPtr value = or_expression();
    while (accept_name("if")) {
      auto node = make<Expr>(Expr::Kind::kConditional, at);
      node->items.push_back(std::move(value));
      node->items.push_back(or_expression());
      node->items.push_back(accept_name("else") ? expression() : nullptr);
      value = std::move(node);
    }
    return value;
  }

  ExprPtr binary(const Token& at, std::string op, ExprPtr a, ExprPtr b) {
    auto node = make<Expr>(Expr::Kind::kBinary, at);
    node->name = std::move(op);
    node->items.push_back(std::move(a));
    node->items.push_back(std::move(b));
    return node;
  }

  ExprPtr or_expression() {
    ExprPtr left = and_expression();
    while (is_name("or")) {
      const Token& at = next();
      left = binary(at, "or", std::move(left), and_expression());
    }
    return left;
  }

  ExprPtr and_expression() {
    ExprPtr left = not_expression();
    while (is_name("and")) {
      const Token& at = next();
      left = binary(at, "and", std::move(left), not_expression());
    }
    return left;
  }

  ExprPtr not_expression() {
    if (is_name("not")) {
      const Token& at = next();
      auto node = make<Expr>(Expr::Kind::kUnary, at);
      node->name = "not";
      node->items.push_back(not_expression());
      return node;
    }
    return comparison();
  }

  ExprPtr comparison() {
    const Token& start = peek();
    ExprPtr first = sum();
    ExprPtr chain;
    for (;;) {
      const Token& at = peek();
      std::string op;
      if (at.kind == K::kOperator && (at.text == "==" || at.text == "!=" || at.text == "<" || at.text == ">" ||
                                      at.text == "<=" || at.text == ">="))
        op = next().text;
      else if (is_name("in")) next(), op = "in";
      else if (is_name("not") && is_name("in", 1)) next(), next(), op = "not in";
      else return chain ? std::move(chain) : std::move(first);
      if (!chain) {
        chain = make<Expr>(Expr::Kind::kCompare, start);
        chain->items.push_back(std::move(first));
      }
      chain->operators.push_back(op);
      chain->items.push_back(sum());
    }
  }

  ExprPtr sum() {
    ExprPtr left = concat();
    while (is_op("+") || is_op("-")) {
      const Token& at = next();
      left = binary(at, at.text, std::move(left), concat());
    }
    return left;
  }

  ExprPtr concat() {
    ExprPtr left = product();
    while (is_op("~")) {
      const Token& at = next();
      left = binary(at, "~", std::move(left), product());
    }
    return left;
  }

  ExprPtr product() {
    ExprPtr left = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& at = next();
      left = binary(at, at.text, std::move(left), power());
    }
    return left;
  }

  ExprPtr power() {
    ExprPtr left = unary(true);
    while (is_op("**")) {
      const Token& at = next();
      left = binary(at, "**", std::move(left), unary(true));
    }
    return left;
  }

  ExprPtr unary(bool with_filters) {
    const Token& at = peek();
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      next();
      node = make<Expr>(Expr::Kind::kUnary, at);
      node->name = at.text;
      node->items.push_back(unary(false));
    } else {
      node = postfix(primary());
    }
    return with_filters ? filters(std::move(node)) : std::move(node);
  }

  void call_arguments(Expr& node) {  // after '('
    while (!accept_op(")")) {
      if (peek().kind == K::kName && is_op("=", 1)) {
        std::string key = next().text;
        next();
        node.keyword.emplace_back(std::move(key), expression());
      } else {
        if (!node.keyword.empty()) fail(peek(), "a positional argument after keyword arguments");
        node.items.push_back(expression());
      }
      if (!is_op(")")) expect_op(",");
    }
  }

  ExprPtr filters(ExprPtr node) {
    for (;;) {
      const Token& at = peek();
      if (accept_op("|")) {
        auto f = make<Expr>(Expr::Kind::kFilter, at);
        f->name = expect_name();
        while (accept_op(".")) f->name += "." + expect_name();
        f->items.push_back(std::move(node));
        if (accept_op("(")) call_arguments(*f);
        node = postfix(std::move(f));
      } else if (accept_name("is")) {
        auto t = make<Expr>(Expr::Kind::kTest, at);
        t->negate = accept_name("not");
        t->name = expect_name();
        t->items.push_back(std::move(node));
        if (accept_op("(")) {
          call_arguments(*t);
        } else if (starts_primary() && !is_name("and") && !is_name("or") && !is_name("if") && !is_name("else") &&
                   !is_name("in") && !is_name("is") && !is_name("not")) {
          t->items.push_back(primary());  // `is divisibleby 3`, `is sameas none`
        }
        node = std::move(t);
      } else {
        return node;
      }
    }
  }

  bool starts_primary() const {
    const Token& t = peek();
    return t.kind == K::kName || t.kind == K::kString || t.kind == K::kInt || t.kind == K::kFloat ||
           (t.kind == K::kOperator && (t.text == "(" || t.text == "[" || t.text == "{"));
  }

  ExprPtr postfix(ExprPtr node) {
    for (;;) {
      const Token& at = peek();
      if (accept_op(".")) {
        auto a = make<Expr>(Expr::Kind::kAttribute, at);
        if (peek().kind == K::kInt) {  // `x.0`: Jinja reads it as x[0]
          a->kind = Expr::Kind::kIndex;
          auto index = make<Expr>(Expr::Kind::kLiteral, peek());
          index->value = Value(next().int_value);
          a->items.push_back(std::move(node));
          a->items.push_back(std::move(index));
        } else {
          a->name = expect_name();
          a->items.push_back(std::move(node));
        }
        node = std::move(a);
      } else if (accept_op("[")) {
        node = subscript(std::move(node), at);
      } else if (accept_op("(")) {
        auto c = make<Expr>(Expr::Kind::kCall, at);
        c->line = node->line, c->column = node->column;  // errors point at the callee's name
        c->items.push_back(std::move(node));
        call_arguments(*c);
        node = std::move(c);
      } else {
        return node;
      }
    }
  }

  ExprPtr subscript(ExprPtr target, const Token& at) {  // after '['
    ExprPtr parts[3];
    int colons = 0;
    for (;;) {
      if (is_op("]")) break;
      if (accept_op(":")) {
        if (++colons > 2) fail(peek(), "too many ':' in a slice");
        continue;
      }
      if (parts[colons]) fail(peek(), "expected ':' or ']', found " + describe(peek()));
      parts[colons] = expression();
    }
    expect_op("]");
    auto node = make<Expr>(colons ? Expr::Kind::kSlice : Expr::Kind::kIndex, at);
    node->items.push_back(std::move(target));
    if (!colons) {
      if (!parts[0]) fail(at, "empty subscript");
      node->items.push_back(std::move(parts[0]));
    } else {
      for (auto& p : parts) node->items.push_back(std::move(p));
    }
    return node;
  }

  ExprPtr primary() {
    const Token& at = peek();
    auto literal = [&](Value v) {
      auto node = make<Expr>(Expr::Kind::kLiteral, at);
      node->value = std::move(v);
      return node;
    };
    switch (at.kind) {
      case K::kString: {
        std::string text = next().text;
        while (peek().kind == K::kString) text += next().text;  // adjacent literals join, as in Python
        return literal(Value(text));
      }
      case K::kInt: return literal(Value(next().int_value));
      case K::kFloat: return literal(Value(next().float_value));
      case K::kName: {
        const std::string& n = next().text;
        if (n == "true" || n == "True") return literal(Value(true));
        if (n == "false" || n == "False") return literal(Value(false));
        if (n == "none" || n == "None") return literal(Value::none());
        auto node = make<Expr>(Expr::Kind::kName, at);
        node->name = n;
        return node;
      }
      case K::kOperator:
        if (accept_op("(")) {
          if (accept_op(")")) {  // () : an empty tuple
            auto empty = make<Expr>(Expr::Kind::kList, at);
            empty->name = "tuple";
            return empty;
          }
          ExprPtr first = expression();
          if (accept_op(")")) return first;
          auto tuple = make<Expr>(Expr::Kind::kList, at);
          tuple->name = "tuple";
          tuple->items.push_back(std::move(first));
          while (accept_op(",")) {
            if (is_op(")")) break;
            tuple->items.push_back(expression());
          }
          expect_op(")");
          return tuple;
        }
        if (accept_op("[")) {
          auto list = make<Expr>(Expr::Kind::kList, at);
          while (!accept_op("]")) {
            list->items.push_back(expression());
            if (!is_op("]")) expect_op(",");
          }
          return list;
        }
        if (accept_op("{")) {
          auto dict = make<Expr>(Expr::Kind::kDict, at);
          while (!accept_op("}")) {
            dict->items.push_back(expression());
            expect_op(":");
            dict->items.push_back(expression());
            if (!is_op("}")) expect_op(",");
          }
          return dict;
        }
        break;
      default: break;
    }
    fail(at, "expected an expression, found " + describe(at));
  }

  const std::vector<Token>& t_;
  const std::string& origin_;
  size_t i_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse(const std::vector<Token>& tokens, const std::string& origin) { return Parser(tokens, origin).run(); }

}  // namespace ipt::infer::jinja
