// The trainer's checkpoints: written whole or not at all (a temporary directory swapped in), and
// read back for a bit-exact resume (weights, optimizer state, RNG, data position).
#include <ATen/CPUGeneratorImpl.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>

#include "ipt/common/durable_write.h"
#include "ipt/common/error.h"
#include "ipt/io/safetensors.h"
#include "ipt/model/checkpoint.h"
#include "ipt/train/kill_point.h"
#include "ipt/train/trainer.h"

namespace ipt::train {

namespace fs = std::filesystem;

std::string latest_checkpoint(const std::string& output_dir) {
  std::string best;
  int64_t best_step = -1;
  if (!fs::is_directory(output_dir)) return best;
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint-", 0) != 0 || !fs::exists(entry.path() / "trainer_state.json")) continue;
    char* end = nullptr;
    const int64_t step = std::strtoll(name.c_str() + 11, &end, 10);
    if (end && *end == '\0' && step > best_step) {
      best_step = step;
      best = entry.path().string();
    }
  }
  return best;
}

std::string Trainer::save_checkpoint() {
  const fs::path out(config_.train.output_dir);
  const fs::path final_dir = out / ("checkpoint-" + std::to_string(step_));
  if (!is_main()) return final_dir.string();
  const fs::path tmp = out / (".checkpoint-" + std::to_string(step_) + ".tmp");
  try {
    fs::create_directories(out);
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    model::save_model(model_, tmp.string());
    if (!tokenizer_dir_.empty()) model::copy_tokenizer_files(tokenizer_dir_, tmp.string());
    kill_point("checkpoint-model", step_);
    io::TensorMap state = optimizer_->state();
    {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      state["rng/torch_cpu"] = generator.get_state();
    }
    io::write_safetensors((tmp / "optimizer.safetensors").string(), state);
    kill_point("checkpoint-state", step_);
    const data::LoaderPosition& pos = loader_->position();
    nlohmann::json j = {{"step", step_},
                        {"max_steps", config_.train.max_steps},
                        {"world_size", world()},
                        {"cp_size", cp_size()},
                        {"global_batch_size", config_.train.global_batch_size},
                        {"micro_batch_size", config_.train.micro_batch_size},
                        {"max_seq_len", config_.data.max_seq_len},
                        {"seed", config_.train.seed},
                        {"trainable", config_.train.trainable},
                        {"synthetic_mix", config_.data.synthetic_mix},  // for the record: a resume may change it
                        {"data_position", {{"epoch", pos.epoch}, {"index", pos.index}, {"offset", pos.offset}}}};
    write_file_durably((tmp / "trainer_state.json").string(), j.dump(2) + "\n");
    // Swap in: an older copy of the same step goes only after the new one is complete.
    install_directory_durably(tmp.string(), final_dir.string());
  } catch (const fs::filesystem_error& e) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw Error("cannot write checkpoint " + final_dir.string() + ": " + e.what() +
                " (is the disk full?); the previous checkpoints are untouched");
  } catch (const Error& e) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw Error("cannot write checkpoint " + final_dir.string() + ": " + e.what() +
                " (is the disk full?); the previous checkpoints are untouched");
  }
  return final_dir.string();
}

void Trainer::load_checkpoint(const std::string& dir) {
  std::ifstream in(fs::path(dir) / "trainer_state.json");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw Error("--resume: " + dir + "/trainer_state.json is not valid JSON: " + e.what());
  }
  try {
    step_ = j.at("step").get<int64_t>();
    IPT_CHECK(j.at("global_batch_size").get<int64_t>() == config_.train.global_batch_size &&
                  j.at("max_seq_len").get<int64_t>() == config_.data.max_seq_len,
              "--resume: ", dir, " was trained with global_batch_size ", j.at("global_batch_size"), " and max_seq_len ",
              j.at("max_seq_len"), "; the config says ", config_.train.global_batch_size, " and ",
              config_.data.max_seq_len, " (the data position would not match)");
    const auto& pos = j.at("data_position");
    data::LoaderPosition p{pos.at("epoch").get<int64_t>(), pos.at("index").get<int64_t>(),
                           pos.at("offset").get<int64_t>()};
    loader_ = std::make_unique<data::Loader>(*train_data_, loader_options(), p);
  } catch (const nlohmann::json::exception& e) {
    throw Error("--resume: " + dir + "/trainer_state.json: " + e.what());
  }
  io::TensorMap weights = io::load_checkpoint(dir);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model_->named_parameters()) {
      auto it = weights.find(p.key());
      IPT_CHECK(it != weights.end(), "--resume: ", dir, " has no tensor ", p.key());
      IPT_CHECK(it->second.sizes() == p.value().sizes(), "--resume: ", p.key(), " in ", dir, " has shape ",
                it->second.sizes(), ", the model has ", p.value().sizes());
      p.value().copy_(it->second);
    }
    compute_synced_ = false;  // mixed precision: the bf16 copy follows at the next step
  }
  io::TensorMap state = io::read_safetensors((fs::path(dir) / "optimizer.safetensors").string());
  optimizer_->load_state(state);
  if (auto it = state.find("rng/torch_cpu"); it != state.end()) {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(it->second.clone());
  }
  // metrics.jsonl keeps the steps up to this checkpoint only.
  const fs::path metrics = fs::path(config_.train.output_dir) / "metrics.jsonl";
  if (is_main() && fs::exists(metrics)) {
    std::ifstream min(metrics);
    std::string kept, line;
    while (std::getline(min, line)) {
      auto m = nlohmann::json::parse(line, nullptr, false);
      if (!m.is_discarded() && m.value("step", int64_t{0}) <= step_) kept += line + "\n";
    }
    write_file_durably(metrics, kept);
  }
}

}  // namespace ipt::train
