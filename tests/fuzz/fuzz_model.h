#pragma once
// The small model the session and server targets run: built the same way in every process
// (fixed seed), so a session file saved by one run loads in the next (its fingerprint matches).
#include <torch/torch.h>

#include "ipt/model/decoder.h"
#include "ipt/model/presets.h"

namespace ipt::fuzz {

inline const model::CausalLM& fuzz_model() {
  static const model::CausalLM lm = [] {
    torch::manual_seed(20261201);
    model::ModelConfig c = model::preset_config("test", "qwen3", 4096);  // corpus/tokenizer's vocabulary
    c.max_position_embeddings = 256;  // small contexts keep every request short
    c.ttt_mode = true;
    c.ttt_layers = {1};
    c.ttt_chunk = 16;
    c.validate();
    model::CausalLM m(c);
    m->eval();
    return m;
  }();
  return lm;
}

}  // namespace ipt::fuzz
