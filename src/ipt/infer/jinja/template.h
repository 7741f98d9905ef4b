#pragma once
// A Jinja2 template as transformers renders chat templates: an ImmutableSandboxedEnvironment with
// trim_blocks and lstrip_blocks, the loopcontrols extension, the `tojson` filter and the
// raise_exception / strftime_now globals. The subset real chat templates use (see lexer.h,
// parser.h, builtins.h); anything else is an error naming its line and column.
//
//   jinja::Template t("{% for m in messages %}{{ m.role }}{% endfor %}", "example");
//   Dict vars; vars.set("messages", Value::from_json(messages_json));
//   std::string text = t.render(vars);
#include <memory>
#include <string>

#include "ipt/infer/jinja/ast.h"
#include "ipt/infer/jinja/value.h"

namespace ipt::infer::jinja {

class Template {
 public:
  // Parses; throws ipt::Error "<origin>:<line>:<column>: ..." on malformed or unsupported text.
  Template(const std::string& source, std::string origin = "template");
  // Throws ipt::Error "<origin>:<line>:<column>: ..." on a runtime error (raise_exception among them).
  std::string render(const Dict& variables) const;

 private:
  std::string origin_;
  std::shared_ptr<const Body> body_;
};

}  // namespace ipt::infer::jinja
