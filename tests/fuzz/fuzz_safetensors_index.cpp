// model.safetensors.index.json: the input is the index of a checkpoint whose one shard exists.
#include "fuzz_target.h"
#include "ipt/io/safetensors.h"

namespace {
const std::string& checkpoint_dir() {
  static const std::string dir = [] {
    const std::filesystem::path d = ipt::fuzz::scratch_dir() / "checkpoint";
    std::filesystem::create_directories(d);
    ipt::io::write_safetensors((d / "model-00001-of-00001.safetensors").string(),
                               {{"a", torch::arange(6, torch::kFloat32).reshape({2, 3})}, {"b", torch::ones({4})}});
    return d.string();
  }();
  return dir;
}
}  // namespace

IPT_FUZZ_TARGET(safetensors_index) {
  const std::string dir = checkpoint_dir();
  std::ofstream(dir + "/model.safetensors.index.json", std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  const ipt::io::TensorMap tensors = ipt::io::load_checkpoint(dir);
  for (const auto& [name, tensor] : tensors) (void)tensor.sum().item<double>();
}
