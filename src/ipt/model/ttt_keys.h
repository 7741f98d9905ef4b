#pragma once
// The In-Place TTT settings of a model, in one table: each key's name (config.json and the training
// YAML's model.foundation use it; the flag is --ttt-<name with dashes>), the ModelConfig field it sets,
// its allowed values and its meaning. config.json in and out, YAML, `ipt convert/init` flags and the
// docs' key list all go through this table, so a new setting is one entry here and one field in
// ModelConfig.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "ipt/model/config.h"

namespace ipt::model {

struct TttKey {
  using Field = std::variant<bool ModelConfig::*, int64_t ModelConfig::*, double ModelConfig::*,
                             std::string ModelConfig::*, std::vector<int64_t> ModelConfig::*>;
  const char* name;                  // "ttt_lr"
  Field field;                       // &ModelConfig::ttt_lr; its type is the key's type
  std::vector<std::string> choices;  // strings: the allowed values (empty: any)
  const char* help;                  // one line, for --help and docs/models.md
  bool official;                     // a key of the official release (false: our extension)
  bool flag;                         // offered by `ipt convert` and `ipt init` as --ttt-...
  // Range checks beyond the type, on the value set; `where` names the key in the error.
  void (*check)(const ModelConfig& c, const std::string& where) = nullptr;
};

const std::vector<TttKey>& ttt_keys();
const TttKey* find_ttt_key(const std::string& name);  // nullptr when no such key

// Sets `key` from a JSON value after checking its type (and choices, and range): the error names
// `where` ("config.json: 'ttt_lr'", "model.foundation.ttt_lr") and the value. Layer indices are checked
// against the depth by ModelConfig::validate.
void set_ttt_key(ModelConfig& c, const TttKey& key, const nlohmann::json& value, const std::string& where);
nlohmann::json get_ttt_key(const ModelConfig& c, const TttKey& key);
// The value `c` holds for `key` is one of its choices and in its range (what set_ttt_key checks after setting).
void check_ttt_key(const ModelConfig& c, const TttKey& key, const std::string& where);

// Text of a command-line value ("0.3", "on", "0,6,12") as the JSON value of `key`'s type.
nlohmann::json parse_ttt_text(const TttKey& key, const std::string& text, const std::string& where);

std::string ttt_flag_name(const TttKey& key);      // "--ttt-conv-padding"
std::string ttt_type_name(const TttKey& key);      // "a number", "true or false", "same or causal", ...

}  // namespace ipt::model
