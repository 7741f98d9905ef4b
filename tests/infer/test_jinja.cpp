// The Jinja interpreter on small templates: whitespace control as transformers configures it,
// statements, expressions, filters and tests with Python's semantics, and clear errors (line and
// column) for malformed or unsupported templates.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ipt/common/error.h"
#include "ipt/infer/jinja/template.h"

using namespace ipt;
using namespace ipt::infer::jinja;

namespace {

std::string render(const std::string& source, const std::string& vars_json = "{}") {
  const Value vars = Value::from_json(nlohmann::ordered_json::parse(vars_json));
  return Template(source, "t").render(vars.dict());
}

// The message of the error rendering throws ("" if none).
std::string error_of(const std::string& source, const std::string& vars_json = "{}") {
  try {
    render(source, vars_json);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Jinja, TextAndOutput) {
  EXPECT_EQ(render("Hello {{ name }}!", R"({"name": "world"})"), "Hello world!");
  EXPECT_EQ(render("{{ missing }}|{{ none }}|{{ true }}|{{ 3 }}|{{ 2.5 }}|{{ 1.0 }}|{{ 1e-5 }}"), "|None|True|3|2.5|1.0|1e-05");
  EXPECT_EQ(render("{{ [1, 'a', none, {'k': 'v'}] }}"), "[1, 'a', None, {'k': 'v'}]");
  EXPECT_EQ(render("{{ \"it's\" }}{{ ['it\\'s'] }}"), "it's[\"it's\"]");
  EXPECT_EQ(render("a\n"), "a");  // keep_trailing_newline=False drops one final newline
  EXPECT_EQ(render("a\n\n"), "a\n");
  EXPECT_EQ(render("{# a comment #}x"), "x");
}

TEST(Jinja, WhitespaceControlTrimBlocksAndLstripBlocks) {
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before one goes.
  EXPECT_EQ(render("{% if true %}\n  yes\n{% endif %}\nafter"), "  yes\nafter");
  EXPECT_EQ(render("    {% if true %}x{% endif %}"), "x");
  // Not for {{ }}: its newline and indentation stay.
  EXPECT_EQ(render("  {{ 'a' }}\nb"), "  a\nb");
  // '-' strips every whitespace character on its side, newlines included.
  EXPECT_EQ(render("a  \n  {{- 'b' -}}  \n  c"), "abc");
  EXPECT_EQ(render("a\n{%- if true -%}\n  b\n{%- endif %}"), "ab");
  // '+' keeps what lstrip_blocks / trim_blocks would remove.
  EXPECT_EQ(render("  {%+ if true %}x{% endif +%}\ny"), "  x\ny");
  // lstrip only at the start of a line.
  EXPECT_EQ(render("a  {% if true %}x{% endif %}"), "a  x");
  EXPECT_EQ(render("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}");
}

TEST(Jinja, IfElifElseAndForLoops) {
  const char* vars = R"({"xs": ["a", "b", "c"], "d": {"k1": 1, "k2": 2}})";
  EXPECT_EQ(render("{% if x %}1{% elif xs %}2{% else %}3{% endif %}", vars), "2");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index0 }}{{ x }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}"
                   "{{ loop.length }}{% endfor %}", vars),
            "0aF31b32cL3");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ loop.revindex0 }}{{ loop.previtem }}{% endfor %}", vars), "1221a30b");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", vars), "k1=1;k2=2;");
  EXPECT_EQ(render("{% for k in d %}{{ k }}{% endfor %}", vars), "k1k2");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in xs if x != 'b' %}{{ x }}{{ loop.length }}{% endfor %}", vars), "a2c2");
  EXPECT_EQ(render("{% for x in xs | reverse %}{{ x }}{% endfor %}{% for x in xs[::-1] %}{{ x }}{% endfor %}", vars), "cbacba");
  EXPECT_EQ(render("{% for x in xs %}{% if x == 'b' %}{% continue %}{% endif %}{% if x == 'c' %}{% break %}{% endif %}{{ x }}{% endfor %}", vars), "a");
}

TEST(Jinja, SetScopesAndNamespaces) {
  // A set inside a loop stays in the loop; namespace() attributes carry values out.
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}"), "4");
  EXPECT_EQ(render("{% if true %}{% set x = 5 %}{% endif %}{{ x }}"), "5");  // if is no scope
  EXPECT_EQ(render("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(render("{% set block %}x{{ 1 + 1 }}{% endset %}[{{ block }}]"), "[x2]");
  EXPECT_EQ(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }}{{ greet('B', punct='?') }}"),
            "Hi A!Hi B?");
}

TEST(Jinja, ExpressionsWithPythonSemantics) {
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }}"), "3 -4 1 2 3.5 1024 7");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 2 }} {{ [1] + [2] }}"), "a1None abab [1, 2]");
  EXPECT_EQ(render("{{ 'b' in 'abc' }} {{ 2 not in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 1 == 1.0 }} {{ 'a' < 'b' }}"),
            "True False True True True");
  EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'a' < 'b' < 'c' }} {{ 1 == 1 == 1 }}"), "True False True True");
  EXPECT_EQ(render("{{ 'yes' if 1 > 2 else 'no' }}|{{ 'x' if false }}|{{ none or 'fallback' }}|{{ 0 and 1 }}"), "no||fallback|0");
  EXPECT_EQ(render("{{ not true }} {{ not 1 == 2 }} {{ -(3) }}"), "False True -3");
  const char* vars = R"({"m": {"role": "user", "content": "Hi"}, "xs": [1, 2, 3, 4]})";
  EXPECT_EQ(render("{{ m.role }} {{ m['content'] }} {{ m.nothing is defined }} {{ xs[-1] }} {{ xs[1:3] }} {{ xs[::2] }} {{ 'héllo'[1:3] }}", vars),
            "user Hi False 4 [2, 3] [1, 3] él");
  EXPECT_EQ(render("{{ {'a': 1, 'b': [2]}['b'][0] }} {{ (1, 2)[1] }} {{ 'x' 'y' }}"), "2 2 xy");
}

TEST(Jinja, StringMethods) {
  EXPECT_EQ(render("[{{ '  a b  '.strip() }}][{{ 'xxaxx'.strip('x') }}][{{ '\\n\\na'.lstrip('\\n') }}][{{ 'a  '.rstrip() }}]"), "[a b][a][a][a]");
  EXPECT_EQ(render("{{ 'a</think>b</think>c'.split('</think>')[-1] }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }}"),
            "c ['a', 'b'] ['a', 'b,c']");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'Ab'.upper() }}{{ 'Ab'.lower() }}"),
            "True True ABab");
  EXPECT_EQ(render("{{ 'hello world'.title() }} {{ 'a-b'.replace('-', '+') }} {{ 'abc'.find('c') }} {{ ', '.join(['a', 'b']) }}"),
            "Hello World a+b 2 a, b");
  EXPECT_EQ(render("{{ d.get('k') }} {{ d.get('z', 'no') }} {{ d.get('z') }} {{ d.keys() | list }} {{ d.values() | list }}",
                   R"({"d": {"k": 1}})"),
            "1 no None ['k'] [1]");
}

TEST(Jinja, Filters) {
  const char* vars = R"({"msgs": [{"role": "system", "c": 1}, {"role": "user", "c": 2}, {"role": "user", "c": 3}], "s": "  hi  "})";
  EXPECT_EQ(render("{{ msgs | length }} {{ s | trim }} {{ 'ab' | upper }} {{ msgs | first }} {{ (msgs | last).c }}", vars),
            "3 hi AB {'role': 'system', 'c': 1} 3");
  EXPECT_EQ(render("{{ msgs | selectattr('role', 'equalto', 'user') | list | length }} {{ msgs | rejectattr('role', 'eq', 'user') | map(attribute='c') | list }}", vars),
            "2 [1]");
  EXPECT_EQ(render("{{ msgs | map(attribute='role') | join(', ') }} {{ ['a', 'b'] | map('upper') | join }}", vars), "system, user, user AB");
  EXPECT_EQ(render("{{ x | default('d') }} {{ none | default('d') }} {{ '' | default('d', true) }} {{ 3 | string }}{{ 3 | string | length }}"),
            "d None d 31");
  EXPECT_EQ(render("{{ 'a\\nb' | indent(2) }}|{{ [3, 1, 2] | sort }}|{{ [1, 1, 2] | unique | list }}|{{ 'ab' | list }}"), "a\n  b|[1, 2, 3]|[1, 2]|['a', 'b']");
  EXPECT_EQ(render("{{ {'a': 1} | items | list }} {{ [1, 2] | sum }} {{ '5' | int + 1 }} {{ 'x' | title }}"), "[('a', 1)] 3 6 X");
}

TEST(Jinja, TojsonIsJsonDumpsAsTransformersCallsIt) {
  const char* vars = R"({"t": {"name": "f", "x": 1.0, "y": [true, null], "s": "é \"q\" <&>\n", "e": {}, "l": []}})";
  // Keys in insertion order, ", " and ": " separators, no HTML escaping, non-ASCII kept.
  EXPECT_EQ(render("{{ t | tojson }}", vars),
            R"({"name": "f", "x": 1.0, "y": [true, null], "s": "é \"q\" <&>\n", "e": {}, "l": []})");
  EXPECT_EQ(render("{{ {'b': [1, 2], 'a': {}} | tojson(indent=2) }}"), "{\n  \"b\": [\n    1,\n    2\n  ],\n  \"a\": {}\n}");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 'é'} | tojson(sort_keys=true, ensure_ascii=true) }}"), R"({"a": "\u00e9", "b": 1})");
  EXPECT_EQ(render("{{ {'a': [1, 2]} | tojson(separators=(',', ':')) }}"), R"({"a":[1,2]})");
}

TEST(Jinja, Tests) {
  EXPECT_EQ(render("{{ x is defined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ 1 is number }}"),
            "False True True True True True");
  EXPECT_EQ(render("{{ x is not defined }} {{ 3 is odd }} {{ 4 is even }} {{ 6 is divisibleby 3 }} {{ 1 is sameas true }} {{ true is sameas true }}"),
            "True True True True False True");
}

TEST(Jinja, GlobalsRaiseExceptionAndStrftime) {
  EXPECT_EQ(render("{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ dict(a=1) }} {{ namespace(a=1).a }}"),
            "[0, 1, 2] [1, 3, 5] {'a': 1} 1");
  const std::string year = render("{{ strftime_now('%Y') }}");
  EXPECT_EQ(year.size(), 4u);
  EXPECT_EQ(year.substr(0, 2), "20");
  const std::string e = error_of("line one\n{{ raise_exception('Roles must alternate') }}");
  EXPECT_NE(e.find("Roles must alternate"), std::string::npos) << e;
  EXPECT_NE(e.find("t:2:4:"), std::string::npos) << e;
}

TEST(Jinja, MalformedTemplatesAreErrorsWithLineAndColumn) {
  auto expect_error = [](const std::string& source, const std::string& where, const std::string& what) {
    const std::string e = error_of(source);
    EXPECT_NE(e.find(where), std::string::npos) << source << " -> " << e;
    EXPECT_NE(e.find(what), std::string::npos) << source << " -> " << e;
  };
  expect_error("{% if x %}never closed", "t:1:23:", "endif");
  expect_error("a\n  {{ 'unterminated }}", "t:2:6:", "unterminated string");
  expect_error("{{ x", "t:1:1:", "unterminated tag");
  expect_error("{# open", "t:1:1:", "unterminated comment");
  expect_error("x\n{% endfor %}", "t:2:4:", "unexpected '{% endfor %}'");
  expect_error("{% include 'x' %}", "t:1:4:", "unsupported statement '{% include %}'");
  expect_error("{{ x | nofilter }}", "t:1:6:", "unsupported filter 'nofilter'");
  expect_error("{{ x is nosuchtest }}", "t:1:6:", "unsupported test 'nosuchtest'");
  expect_error("{{ 1 + }}", "t:1:8:", "expected an expression");
  expect_error("{{ a b }}", "t:1:6:", "expected '}}'");
  expect_error("{% break %}", "t:1:4:", "outside a loop");
  expect_error("{% for x in [1] %}{% endif %}", "t:1:22:", "unexpected '{% endif %}'");
  // Runtime errors name the expression too.
  expect_error("\n{{ 1 + 'a' }}", "t:2:6:", "unsupported operand types for +: 'int' and 'str'");
  expect_error("{{ undefined_thing.attr }}", "t:1:", "'undefined_thing' is undefined");
  expect_error("{{ [1].append(2) }}", "t:1:", "not allowed");
  expect_error("{% set x = 1 %}{% set x.a = 2 %}", "t:1:19:", "only namespace() objects");
  expect_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "t:1:", "nested deeper than");
  expect_error("{{ 'ab' * 100000000000 }}", "t:1:", "repetition");
}
