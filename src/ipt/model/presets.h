#pragma once
// Named model shapes for `ipt init`: test (unit tests), tiny (~5M parameters), small (~30M),
// paper-500m (the paper's from-scratch 500M configuration).
#include <string>
#include <vector>

#include "ipt/model/config.h"

namespace ipt::model {

const std::vector<std::string>& preset_names();
// arch: "qwen3" | "llama"; vocab_size 0 keeps the preset's.
ModelConfig preset_config(const std::string& name, const std::string& arch = "qwen3", int64_t vocab_size = 0);

}  // namespace ipt::model
