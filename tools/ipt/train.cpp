// ipt train: train or continue training a model from a YAML config (docs/training.md), in one
// process, as one rank of a torchrun/Slurm-style group, or as N local ranks (--nproc-per-node).
#include <iostream>

#include "command.h"
#include "launch.h"
#include "model_flags.h"
#include "ipt/common/error.h"
#include "ipt/parallel/gloo.h"
#include "ipt/train/trainer.h"

namespace ipt::cli {
namespace {

struct TrainOptions {
  std::string config, resume;
  int nproc_per_node = 0;
  int cp_size = 0;  // 0: as the config says (train.cp_size)
  bool quiet = false;
  bool no_plot = false;
  DeviceFlag device;
};

int run(const TrainOptions& o, const std::vector<std::string>& extras) {
  std::vector<std::string> overrides;
  for (const std::string& e : extras) {
    IPT_CHECK(e.rfind("--", 0) == 0 && e.find('=') != std::string::npos, "unexpected argument '", e,
              "' (overrides look like --train.lr=1e-4)");
    overrides.push_back(e.substr(2));
  }
  if (o.cp_size > 0) overrides.push_back("train.cp_size=" + std::to_string(o.cp_size));
  // Parse and validate before launching anything, so a bad config fails once, not in N workers.
  train::TrainConfig config = train::load_train_config(o.config, overrides);
  if (o.nproc_per_node > 0) {
    train::validate(config, o.nproc_per_node);
    return relaunch_local(o.nproc_per_node);
  }
  std::unique_ptr<parallel::GlooCommunicator> comm = join_group_from_environment();
  const int world = comm ? comm->size() : 1;
  train::validate(config, world);  // before forming subgroups: cp_size must divide the world
  // Context parallelism: ranks dp_rank * cp + 0 .. cp - 1 share their sequences.
  std::unique_ptr<parallel::GlooCommunicator> cp_group;
  const int cp = static_cast<int>(config.train.cp_size);
  if (cp > 1)
    cp_group = std::make_unique<parallel::GlooCommunicator>(*comm, "cp-" + std::to_string(comm->rank() / cp) + "/",
                                                        comm->rank() % cp, cp);
  const bool main_rank = !comm || comm->rank() == 0;
  if (main_rank) {
    for (const std::string& note : config.notes) std::cerr << "note: " << note << "\n";
    if (cp > 1 && config.train.enable_gradient_checkpointing)
      std::cerr << "note: train.enable_gradient_checkpointing ignored under context parallelism\n";
  }
  train::TrainerOptions options;
  options.device = o.device.resolve("train", main_rank);
  // One process per GPU: under torchrun/srun each rank takes the GPU of its LOCAL_RANK.
  if (options.device.is_cuda() && comm && o.device.name.find(':') == std::string::npos)
    options.device = parse_device("cuda:" + std::to_string(parallel::Rendezvous::from_env().local_rank %
                                                           static_cast<int>(torch::cuda::device_count())));
  options.resume = o.resume;
  options.progress = !o.quiet;
  options.plot = !o.no_plot;
  options.context_parallel = cp_group.get();
  train::Trainer trainer(std::move(config), comm.get(), options);
  if (main_rank && !o.quiet)
    std::cerr << "model: " << trainer.parameter_count() << " parameters (" << trainer.trainable_count()
              << " trainable), TTT " << (trainer.model()->config().ttt_mode ? "on" : "off") << ", ranks "
              << world << (cp > 1 ? " (" + std::to_string(world / cp) + " data-parallel x " + std::to_string(cp) +
                                    " context-parallel)"
                                  : std::string())
              << (o.resume.empty() ? "" : ", resumed at step " + std::to_string(trainer.step_count())) << "\n";
  trainer.train();
  return 0;
}

Register train_command("", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = parent.add_subcommand("train", "train a model from a YAML config (overrides: --section.key=value)");
  cmd->add_option("-c,--config", o->config, "training config (YAML, docs/training.md)")->required();
  cmd->add_option("--resume", o->resume, "continue from a checkpoint directory, or 'latest' in train.output_dir");
  cmd->add_option("--nproc-per-node", o->nproc_per_node, "launch N local ranks (Gloo)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--cp-size", o->cp_size, "context parallelism: ranks sharing each sequence (= --train.cp_size=N)")
      ->check(CLI::PositiveNumber);
  o->device.add_to(cmd);
  cmd->add_flag("-q,--quiet", o->quiet, "no progress output");
  cmd->add_flag("--no-plot", o->no_plot, "do not draw OUTPUT_DIR/loss.png");
  cmd->allow_extras();
  return [o, cmd] { return run(*o, cmd->remaining()); };
});

}  // namespace
}  // namespace ipt::cli
