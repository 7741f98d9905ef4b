#pragma once
// Flags shared by the commands that take, create or change a model.
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <iostream>

#include "ipt/common/device.h"
#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/config.h"
#include "ipt/ops/quant/quant.h"

namespace ipt::cli {

// The model a command uses when -m is not given: $IPT_MODEL, else the bundled default model
// (models/default in the source tree this tool was built from).
inline std::string default_model_dir() {
  if (const char* env = std::getenv("IPT_MODEL"); env && *env) return env;
  return IPT_DEFAULT_MODEL_DIR;
}

// Every -m/--model declared through add_model_option. main() refuses to start if a command
// declares --model any other way, so no command can lose the shared default again.
inline std::set<const CLI::Option*>& model_options() {
  static std::set<const CLI::Option*> options;
  return options;
}

// -m/--model, defaulting to default_model_dir(). The only way a command declares -m.
inline CLI::Option* add_model_option(CLI::App* cmd, std::string& dir) {
  dir = default_model_dir();
  CLI::Option* option =
      cmd->add_option("-m,--model", dir, "model directory (default: $IPT_MODEL, else the bundled models/default)");
  model_options().insert(option);
  return option;
}

// --dtype: the compute type a command runs the model in. Weights and activations take it; RMSNorm,
// softmax statistics, RoPE, the loss, sampling and the TTT fast weights' accumulated updates stay
// in float32 (docs/models.md "Compute dtype").
struct DtypeFlag {
  std::string name = default_dtype();

  // $IPT_DTYPE, else auto. The test suite sets IPT_DTYPE=float32 so that its numbers do not depend
  // on which CPU runs it.
  static std::string default_dtype() {
    const char* env = std::getenv("IPT_DTYPE");
    return env && *env ? env : "auto";
  }

  void add_to(CLI::App* cmd) {
    cmd->add_option("--dtype", name,
                    "compute dtype: auto (bfloat16 on a GPU or where the CPU has AMX or AVX-512 BF16, else float32), config "
                    "(the model's torch_dtype), float32 or bfloat16 (default: $IPT_DTYPE, else auto)")
        ->check(CLI::IsMember({"auto", "config", "float32", "bfloat16"}));
  }

  // The type to run `config` in on `device`, and one line on stderr saying which and why.
  // `announce` false: a benchmark's worker, whose parent already said it, or --json output (which
  // carries the dtype itself).
  torch::Dtype resolve(const model::ModelConfig& config, const std::string& command, const torch::Device& device,
                       bool announce = true) const {
    IPT_CHECK(name == "auto" || name == "config" || name == "float32" || name == "bfloat16", command,
              ": unknown dtype '", name, "' (--dtype or $IPT_DTYPE): expected auto, config, float32 or bfloat16");
    const std::string features = cpu_bf16_features();
    torch::Dtype dtype = torch::kFloat32;
    std::string why;
    if (name == "auto" && device.is_cuda()) {
      dtype = torch::kBFloat16;  // every GPU this build targets has bf16 tensor cores
      why = "auto: on a GPU";
    } else if (name == "auto") {
      dtype = features.empty() ? torch::kFloat32 : torch::kBFloat16;
      why = features.empty() ? "auto: this CPU has no bf16 matrix instructions" : "auto: this CPU has " + features;
    } else if (name == "config") {
      dtype = model::parse_dtype(config.torch_dtype);
      IPT_CHECK(dtype == torch::kFloat32 || dtype == torch::kBFloat16, command, ": --dtype config: the model's torch_dtype is ",
                config.torch_dtype, "; this command runs float32 or bfloat16");
      why = "the model's torch_dtype";
    } else {
      dtype = model::parse_dtype(name);
      why = "--dtype " + name;
    }
    if (!announce) return dtype;
    std::cerr << command << ": compute dtype " << (dtype == torch::kBFloat16 ? "bfloat16" : "float32") << " (" << why
              << ")\n";
    if (dtype == torch::kBFloat16 && features.empty() && !device.is_cuda())
      std::cerr << command << ": warning: this CPU has no bf16 matrix instructions (amx_bf16, avx512_bf16); bfloat16 "
                             "products are emulated and slower than float32\n";
    return dtype;
  }
  torch::Dtype resolve(const std::string& model_dir, const std::string& command, const torch::Device& device,
                       bool announce = true) const {
    return resolve(model::ModelConfig::load(model_dir + "/config.json"), command, device, announce);
  }
};

// --device: where a command runs the model. auto (the default, or $IPT_DEVICE) is the first GPU
// when this build has CUDA and the machine has a GPU, else the CPU.
struct DeviceFlag {
  std::string name = default_device();

  static std::string default_device() {
    const char* env = std::getenv("IPT_DEVICE");
    return env && *env ? env : "auto";
  }

  void add_to(CLI::App* cmd) {
    cmd->add_option("--device", name,
                    "cpu, cuda or cuda:N, or auto: the first GPU when this build has CUDA and one is visible, else "
                    "the CPU (default: $IPT_DEVICE, else auto)");
  }

  // The device, and one line on stderr saying which and why (announce false: a worker, --json).
  torch::Device resolve(const std::string& command, bool announce = true) const {
    torch::Device device = torch::kCPU;
    try {
      device = parse_device(name);
    } catch (const Error& e) {
      throw Error(command + ": --device (or $IPT_DEVICE): " + e.what());
    }
    // Benchmark workers and launched ranks are children of this process: they inherit the choice.
    setenv("IPT_DEVICE", device.str().c_str(), 1);
    if (announce)
      std::cerr << command << ": device " << describe_device(device)
                << (name == "auto" ? (device.is_cuda() ? " (auto: a GPU is visible)"
                                                       : " (auto: no GPU usable by this build)")
                                   : " (--device " + name + ")")
                << "\n";
    return device;
  }
};

// --decode-quant: the block format single-token decoding reads the linear maps in (ops/quant).
struct DecodeQuantFlag {
  std::string name = "none";

  void add_to(CLI::App* cmd) {
    cmd->add_option("--decode-quant", name,
                    "keep the weights single-token decoding reads in a block format: q8_0, q4_1 or q4_0 "
                    "(GGUF's; inputs quantized to 8 bits per block), or none = the compute dtype (default)")
        ->check(CLI::IsMember({"none", "q8_0", "q4_0", "q4_1"}));
  }
  std::optional<ops::quant::Type> resolve() const {
    if (name == "none") return std::nullopt;
    return ops::quant::parse_type(name);
  }
};

inline const char* dtype_name(torch::Dtype dtype) { return dtype == torch::kBFloat16 ? "bfloat16" : "float32"; }

// --ttt-*: one flag per key of model/ttt_keys.h that offers one (ttt_mode has none: --ttt-layers turns
// it on). Defined in ttt_flags.cpp.
struct TttFlags {
  std::map<std::string, std::vector<std::string>> given;  // key name -> the flag's values (empty: not given)

  void add_to(CLI::App* cmd);
  bool has_layers() const;
  // Sets every key whose flag was given; --ttt-layers also turns TTT on. Errors name the flag.
  void apply(model::ModelConfig& c) const;
};

}  // namespace ipt::cli
