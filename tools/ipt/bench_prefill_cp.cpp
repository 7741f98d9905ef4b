// ipt bench prefill-cp-rank (internal): one rank of `ipt bench prefill --cp-size N`, started by
// bench::measure_prefill_context_parallel (ipt/bench/prefill_cp.h) as one of N local processes.
#include <memory>

#include "command.h"
#include "launch.h"
#include "model_flags.h"
#include "ipt/bench/prefill_cp.h"

namespace ipt::cli {
namespace {

struct RankOptions {
  std::string model, out_dir;
  int64_t length = 0;
  int ttt = 1;
};

Register bench_cp_rank("bench", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<RankOptions>();
  CLI::App* cmd = parent.add_subcommand("prefill-cp-rank", "internal: one rank of bench prefill --cp-size");
  cmd->group("");
  add_model_option(cmd, o->model);
  cmd->add_option("--length", o->length)->required()->check(CLI::PositiveNumber);
  cmd->add_option("--ttt", o->ttt)->required();
  cmd->add_option("--out", o->out_dir)->required();
  return [o] {
    std::unique_ptr<parallel::GlooCommunicator> group = join_group_from_environment();
    bench::measure_prefill_rank(o->model, o->length, o->ttt != 0, group.get(), o->out_dir);
    return 0;
  };
});

}  // namespace
}  // namespace ipt::cli
