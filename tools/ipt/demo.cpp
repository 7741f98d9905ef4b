// ipt demo: the operator on a synthetic sequence — the three algorithms agree, the stream
// continues exactly, and what each costs. `make run` runs this until the bundled model exists.
#include <iomanip>
#include <iostream>

#include "command.h"
#include "ipt/eval/timing.h"
#include "ipt/ops/ttt/ttt.h"

namespace ipt::cli {
namespace {

struct DemoOptions {
  int64_t L = 4096, d = 256, h = 1024, chunk = 256;
};

int run(const DemoOptions& o) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  torch::Tensor X = torch::randn({1, o.L, o.d}), Z = torch::randn({1, o.L, o.h}) / std::sqrt(double(o.h));
  torch::Tensor W0 = torch::randn({o.d, o.h}) / std::sqrt(double(o.h));
  torch::Tensor conv = torch::randn({o.d, 1, ttt::kConvKernel}) * 0.2, P = torch::eye(o.d) * 0.02;
  ttt::TargetOptions topt;
  topt.chunk_size = o.chunk;
  torch::Tensor V = ttt::build_target(X, conv, P, topt);
  std::cout << "In-Place TTT operator demo: L=" << o.L << " d=" << o.d << " h=" << o.h << " chunk=" << o.chunk
            << " (" << (o.L + o.chunk - 1) / o.chunk << " chunks), threads=" << at::get_num_threads() << "\n";

  ttt::Options opt;
  opt.chunk_size = o.chunk;
  opt.lr = 0.3;
  opt.return_state = true;
  opt.algorithm = ttt::Algorithm::kReference;
  Stopwatch ref_watch;
  ttt::Output ref = ttt::apply(Z, V, W0, opt);
  const double ref_ms = ref_watch.ms();
  std::cout << std::fixed << std::setprecision(2) << "  reference  " << std::setw(8) << ref_ms << " ms\n";
  for (auto [algorithm, group] : {std::pair{ttt::Algorithm::kRecurrent, 0}, {ttt::Algorithm::kScan, 4}}) {
    opt.algorithm = algorithm;
    opt.scan_group = group;
    Stopwatch watch;
    ttt::Output out = ttt::apply(Z, V, W0, opt);
    const double ms = watch.ms();
    double err = ((out.out - ref.out).abs().max() / ref.out.abs().max()).item<double>();
    std::cout << "  " << std::left << std::setw(10) << ttt::to_string(algorithm) << std::right << std::setw(8) << ms
              << " ms   max relative difference to reference " << std::scientific << std::setprecision(1) << err
              << std::fixed << std::setprecision(2) << "\n";
  }
  // A stream fed the last 100 rows one at a time continues a prefix exactly.
  const int64_t split = o.L - 100;
  opt.algorithm = ttt::Algorithm::kRecurrent;
  ttt::Output prefix = ttt::apply(Z.narrow(1, 0, split), V.narrow(1, 0, split), W0, opt);
  ttt::Stream stream(prefix.states[0], o.chunk, opt.lr, opt.clip);
  std::vector<torch::Tensor> rows;
  for (int64_t t = split; t < o.L; ++t) rows.push_back(stream.feed(Z[0].narrow(0, t, 1), V[0].narrow(0, t, 1)));
  double err = ((torch::cat(rows) - ref.out[0].narrow(0, split, 100)).abs().max() / ref.out.abs().max()).item<double>();
  std::cout << "  stream: prefix of " << split << " rows, then 100 rows one at a time: " << stream.state().updates
            << " updates, max relative difference " << std::scientific << std::setprecision(1) << err << "\n";
  std::cout << "  fast weight moved by " << std::fixed << std::setprecision(3)
            << ((stream.state().weight - W0).norm() / W0.norm()).item<double>() << " of |W0| over the sequence\n";
  return 0;
}

Register demo("", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* cmd = parent.add_subcommand("demo", "operator demo: algorithms agree, streaming continues exactly");
  cmd->add_option("--L", o->L, "sequence length")->check(CLI::Range(128, 1 << 20));
  cmd->add_option("--d", o->d, "hidden size")->check(CLI::PositiveNumber);
  cmd->add_option("--h", o->h, "MLP intermediate size")->check(CLI::PositiveNumber);
  cmd->add_option("--chunk", o->chunk, "TTT chunk size")->check(CLI::PositiveNumber);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
