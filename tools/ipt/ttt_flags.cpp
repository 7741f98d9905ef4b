// ipt convert / init: the --ttt-* flags, one per key of the TTT settings table.
#include <variant>

#include "model_flags.h"
#include "ipt/model/ttt_keys.h"

namespace ipt::cli {

void TttFlags::add_to(CLI::App* cmd) {
  for (const model::TttKey& key : model::ttt_keys()) {
    if (!key.flag) continue;
    auto& values = given[key.name];  // a map's elements stay put, so CLI11 may keep the reference
    CLI::Option* opt = cmd->add_option(model::ttt_flag_name(key), values, key.help);
    if (std::holds_alternative<std::vector<int64_t> model::ModelConfig::*>(key.field)) {
      opt->delimiter(',')->type_name("LAYERS");  // "0,6,12" or "0 6 12"
      continue;
    }
    opt->expected(1);
    if (!key.choices.empty()) opt->check(CLI::IsMember(key.choices));
    else if (std::holds_alternative<bool model::ModelConfig::*>(key.field)) opt->check(CLI::IsMember({"on", "off"}));
    else if (std::holds_alternative<int64_t model::ModelConfig::*>(key.field)) opt->type_name("INT");
    else opt->type_name("NUMBER");
  }
}

bool TttFlags::has_layers() const { return given.count("ttt_layers") && !given.at("ttt_layers").empty(); }

void TttFlags::apply(model::ModelConfig& c) const {
  for (const auto& [name, values] : given) {
    if (values.empty()) continue;
    std::string text;
    for (const auto& v : values) text += (text.empty() ? "" : ",") + v;
    const model::TttKey& key = *model::find_ttt_key(name);
    const std::string flag = model::ttt_flag_name(key);
    model::set_ttt_key(c, key, model::parse_ttt_text(key, text, flag), flag);
  }
  if (has_layers()) c.ttt_mode = true;
  c.validate();
}

}  // namespace ipt::cli
