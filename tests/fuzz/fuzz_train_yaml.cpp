// Training configs (`ipt train --config F.yaml`), parsed and validated as the trainer does.
#include "fuzz_target.h"
#include "ipt/train/config.h"

IPT_FUZZ_TARGET(train_yaml) {
  const ipt::train::TrainConfig config = ipt::train::parse_train_config(std::string(reinterpret_cast<const char*>(data), size));
  ipt::train::validate(config, 1);
}
