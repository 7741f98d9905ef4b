// config.json of a model (HF keys and the ttt_* keys).
#include "fuzz_target.h"
#include "ipt/model/config.h"

IPT_FUZZ_TARGET(config) {
  const std::string path = ipt::fuzz::write_scratch("config.json", data, size);
  const ipt::model::ModelConfig config = ipt::model::ModelConfig::load(path);
  // What `ipt convert` writes back must load again.
  const std::string again = ipt::fuzz::write_scratch("config-again.json", "", 0);
  std::ofstream(again) << config.to_json().dump();
  (void)ipt::model::ModelConfig::load(again);
}
