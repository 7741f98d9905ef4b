#pragma once
// How many parameters a config describes, from the sizes alone (no weight is allocated): what
// `ipt info` prints and what the real configs of tests/fixtures/configs are checked against.
#include <cstdint>

#include "ipt/model/config.h"

namespace ipt::model {

// Counted as Hugging Face counts them: a tied head once, biases with attention_bias, q/k norms for
// Qwen3, and in TTT layers ttt_conv [d, 1, 5] (convolution targets) and ttt_proj [d, d].
int64_t parameter_count(const ModelConfig& config);

}  // namespace ipt::model
