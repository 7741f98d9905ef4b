#include "ipt/model/ttt_keys.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/ops/ttt/ttt.h"

namespace ipt::model {

namespace {

using json = nlohmann::json;
using C = ModelConfig;

const std::vector<TttKey> kKeys{
    {"ttt_mode", &C::ttt_mode, {}, "TTT on or off for the whole model", true, false},
    {"ttt_layers", &C::ttt_layers, {}, "layers whose MLP down-projection is a fast weight (the flag also turns ttt_mode on)",
     true, true},
    {"ttt_proj", &C::ttt_proj, {}, "the learned projection P in the target V = Conv(X) P", true, true},
    {"ttt_lr", &C::ttt_lr, {}, "fast-weight learning rate (eta)", true, true,
     [](const C& c, const std::string& where) { IPT_CHECK(std::isfinite(c.ttt_lr), where, " must be finite"); }},
    {"ttt_chunk", &C::ttt_chunk, {}, "tokens per chunk: one fast-weight update per chunk", true, true,
     [](const C& c, const std::string& where) { IPT_CHECK(c.ttt_chunk > 0, where, " must be > 0, got ", c.ttt_chunk); }},
    {"ttt_target", &C::ttt_target, {"hidden_states", "input_embed"}, "what the target's convolution reads", true, true},
    {"ttt_conv_padding", &C::ttt_conv_padding, {"same", "causal"},
     "the target convolution's padding (same: looks ahead, as the official code)", false, true},
    {"ttt_clip", &C::ttt_clip, {}, "clip each update's Frobenius norm to this (0 = off)", false, true,
     [](const C& c, const std::string& where) {
       IPT_CHECK(std::isfinite(c.ttt_clip) && c.ttt_clip >= 0, where, " must be >= 0, got ", c.ttt_clip);
     }},
    {"ttt_decay", &C::ttt_decay, {}, "decay of the accumulated update towards W0 per chunk, in (0, 1] (1 = official)",
     false, true, [](const C& c, const std::string& where) { ttt::check_decay(c.ttt_decay, where); }},
    {"ttt_decode_update", &C::ttt_decode_update, {}, "update the fast weights while decoding, whenever a chunk fills",
     false, true},
    {"ttt_target_kind", &C::ttt_target_kind, {"conv", "reconstruction"},
     "the update's target: the LM-aligned convolution, or reconstruction of the MLP's input", false, true},
};

std::string choice_list(const std::vector<std::string>& choices) {
  std::string list;
  for (size_t i = 0; i < choices.size(); ++i) list += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
  return list;
}

}  // namespace

const std::vector<TttKey>& ttt_keys() { return kKeys; }

const TttKey* find_ttt_key(const std::string& name) {
  auto it = std::find_if(kKeys.begin(), kKeys.end(), [&](const TttKey& k) { return name == k.name; });
  return it == kKeys.end() ? nullptr : &*it;
}

std::string ttt_flag_name(const TttKey& key) {
  std::string flag = std::string("--") + key.name;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

std::string ttt_type_name(const TttKey& key) {
  if (!key.choices.empty()) return choice_list(key.choices);
  return std::visit(
      [](auto member) -> std::string {
        using T = std::remove_reference_t<decltype(C{}.*member)>;
        if constexpr (std::is_same_v<T, bool>) return "true or false";
        else if constexpr (std::is_same_v<T, int64_t>) return "an integer";
        else if constexpr (std::is_same_v<T, double>) return "a number";
        else if constexpr (std::is_same_v<T, std::string>) return "a string";
        else return "a list of layer indices";
      },
      key.field);
}

void set_ttt_key(ModelConfig& c, const TttKey& key, const json& value, const std::string& where) {
  auto wrong = [&] { return Error(where + " must be " + ttt_type_name(key) + ", got " + value.dump()); };
  std::visit(
      [&](auto member) {
        using T = std::remove_reference_t<decltype(c.*member)>;
        // Exact JSON types: nlohmann would cast 1.5 to an integer and 1e65 to undefined behaviour.
        if constexpr (std::is_same_v<T, bool>) {
          if (!value.is_boolean()) throw wrong();
        } else if constexpr (std::is_same_v<T, int64_t>) {
          if (!value.is_number_integer()) throw wrong();
        } else if constexpr (std::is_same_v<T, double>) {
          if (!value.is_number()) throw wrong();
        } else if constexpr (std::is_same_v<T, std::string>) {
          if (!value.is_string()) throw wrong();
        } else {
          const bool integers = value.is_array() && std::all_of(value.begin(), value.end(), [](const json& e) {
                                  return e.is_number_integer();
                                });
          if (!integers) throw wrong();
        }
        // Checked on a copy, so a caller's config is unchanged by a refused value.
        ModelConfig trial = c;
        trial.*member = value.get<T>();
        check_ttt_key(trial, key, where);
        c.*member = trial.*member;
      },
      key.field);
}

void check_ttt_key(const ModelConfig& c, const TttKey& key, const std::string& where) {
  if (!key.choices.empty()) {
    const std::string value = get_ttt_key(c, key);
    IPT_CHECK(std::find(key.choices.begin(), key.choices.end(), value) != key.choices.end(), where, ": '", value,
              "' is not one of ", choice_list(key.choices));
  }
  if (key.check) key.check(c, where);
}

json get_ttt_key(const ModelConfig& c, const TttKey& key) {
  return std::visit([&](auto member) { return json(c.*member); }, key.field);
}

json parse_ttt_text(const TttKey& key, const std::string& text, const std::string& where) {
  auto wrong = [&] { return Error(where + " must be " + ttt_type_name(key) + ", got '" + text + "'"); };
  return std::visit(
      [&](auto member) -> json {
        using T = std::remove_reference_t<decltype(C{}.*member)>;
        if constexpr (std::is_same_v<T, bool>) {
          if (text == "on" || text == "true") return true;
          if (text == "off" || text == "false") return false;
          throw wrong();
        } else if constexpr (std::is_same_v<T, std::string>) {
          return text;
        } else {
          // Numbers and comma-separated integer lists: the whole text must parse.
          std::vector<json> items;
          std::stringstream in(text);
          for (std::string item; std::getline(in, item, ',');) {
            size_t used = 0;
            try {
              if constexpr (std::is_same_v<T, double>) items.push_back(std::stod(item, &used));
              else items.push_back(static_cast<int64_t>(std::stoll(item, &used)));
            } catch (const std::exception&) {
              throw wrong();
            }
            if (used != item.size()) throw wrong();
          }
          if constexpr (std::is_same_v<T, std::vector<int64_t>>) return items;
          if (items.size() != 1) throw wrong();
          return items[0];
        }
      },
      key.field);
}

}  // namespace ipt::model
