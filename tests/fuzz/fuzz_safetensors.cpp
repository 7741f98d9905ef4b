// safetensors: one file's header and data (the input is the whole file).
#include "fuzz_target.h"
#include "ipt/io/safetensors.h"

IPT_FUZZ_TARGET(safetensors) {
  const std::string path = ipt::fuzz::write_scratch("model.safetensors", data, size);
  std::map<std::string, std::string> metadata;
  const ipt::io::TensorMap tensors = ipt::io::read_safetensors(path, &metadata);
  // Touch every byte each tensor claims: a view past the mapping would fault here.
  for (const auto& [name, tensor] : tensors) (void)tensor.to(torch::kFloat64).sum().item<double>();
}
