#include "ipt/bench/all.h"

#include <filesystem>
#include <functional>
#include <iomanip>
#include <sstream>

#include "ipt/bench/flops.h"
#include "ipt/bench/gemm.h"
#include "ipt/common/device.h"
#include "ipt/common/runtime.h"
#include "ipt/model/checkpoint.h"

namespace ipt::bench {
namespace {

namespace fs = std::filesystem;

// One table row: a test, its numbers with and without TTT (either may be absent), a unit.
nlohmann::json row(const std::string& test, const std::string& unit, const nlohmann::json& ttt,
                   const nlohmann::json& no_ttt, const std::string& note = "") {
  nlohmann::json r = {{"test", test}, {"unit", unit}, {"ttt", ttt}, {"no_ttt", no_ttt}, {"note", note}};
  if (ttt.is_number() && no_ttt.is_number()) r["ratio"] = ttt.get<double>() / no_ttt.get<double>();
  return r;
}

std::string cell(const nlohmann::json& v) {
  if (!v.is_number()) return "-";
  std::ostringstream s;
  s << std::fixed << std::setprecision(v.get<double>() < 10 ? 3 : 1) << v.get<double>();
  return s.str();
}

}  // namespace

nlohmann::json run_all(const AllOptions& o, const WorkerLauncher& workers) {
  const model::ModelConfig config = model::ModelConfig::load(o.model + "/config.json");
  const std::string& dtype = o.dtype;
  const std::string m = "'" + o.model + "' --dtype " + dtype;
  nlohmann::json rows = nlohmann::json::array();
  auto sides = [&](const std::function<nlohmann::json(int ttt)>& measure) {
    nlohmann::json with = config.ttt_mode ? measure(1) : nlohmann::json(), without = measure(0);
    return std::make_pair(with, without);
  };

  // Prefill of pp tokens: the prefill benchmark's worker, one child per side.
  auto [pp_ttt, pp_plain] = sides([&](int ttt) {
    return workers.run("bench prefill -m " + m + " --worker-length " + std::to_string(o.pp) + " --worker-ttt " +
                       std::to_string(ttt) + " --worker-window 0");
  });
  rows.push_back(row("pp" + std::to_string(o.pp), "tokens/s", pp_ttt.is_null() ? pp_ttt : pp_ttt["tokens_per_s"],
                     pp_plain["tokens_per_s"]));
  rows.push_back(row("pp" + std::to_string(o.pp) + " peak", "MB", pp_ttt.is_null() ? pp_ttt : pp_ttt["peak_mb"],
                     pp_plain["peak_mb"]));
  // MFU against the GEMM rate measured here, now, in the same dtype (attention over the average
  // pp/2 keys of a causal prefill).
  const double ceiling = measure_mlp_gemm_gflops(config, o.pp, model::parse_dtype(dtype), o.device);
  const double pp_flops = forward_flops_per_token(config, o.pp / 2.0) / 1e9;
  rows.push_back(row("gemm ceiling (" + dtype + ", " + std::to_string(o.pp) + " rows)", "GFLOP/s", nullptr, ceiling));
  rows.push_back(row("pp" + std::to_string(o.pp) + " MFU vs that ceiling", "fraction",
                     pp_ttt.is_null() ? pp_ttt : nlohmann::json(pp_ttt["tokens_per_s"].get<double>() * pp_flops / ceiling),
                     pp_plain["tokens_per_s"].get<double>() * pp_flops / ceiling));

  // Decoding tg tokens after a pp-token prompt, and training steps of pp tokens, through the workers
  // of ipt bench decode / bench train when the executable has them.
  if (o.has_decode) {
    auto [tg_ttt, tg_plain] = sides([&](int ttt) {
      return workers.run("bench decode -m " + m + " --tokens " + std::to_string(o.tg) + " --worker-context " +
                         std::to_string(o.pp) + " --worker-ttt " + std::to_string(ttt));
    });
    rows.push_back(row("tg" + std::to_string(o.tg) + " @ pp" + std::to_string(o.pp), "tokens/s",
                       tg_ttt.is_null() ? tg_ttt : tg_ttt["decode_tokens_per_s"], tg_plain["decode_tokens_per_s"]));
  } else {
    rows.push_back(row("tg" + std::to_string(o.tg), "tokens/s", nullptr, nullptr, "bench decode not in this build"));
  }
  if (o.has_train) {
    // bfloat16 trains in mixed precision (bf16 compute, float32 master), as train.enable_mixed_precision.
    const bool mixed = dtype == "bfloat16";
    auto [train_ttt, train_plain] = sides([&](int ttt) {
      return workers.run("bench train -m '" + o.model + "' --seq-len " + std::to_string(o.pp) + " --steps 1 --worker-ttt " +
                         std::to_string(ttt) + " --worker-checkpointing 0 --worker-mixed " + (mixed ? "1" : "0"));
    });
    rows.push_back(row("train seq " + std::to_string(o.pp) + (mixed ? " (mixed bf16)" : " (float32)"), "tokens/s",
                       train_ttt.is_null() ? train_ttt : train_ttt["tokens_per_s"], train_plain["tokens_per_s"]));
  } else {
    rows.push_back(row("train", "tokens/s", nullptr, nullptr, "bench train not in this build"));
  }

  // The TTT operator alone at the model's sizes (recurrent algorithm, forward and forward+backward).
  if (config.ttt_mode) {
    std::ostringstream args;
    args << "bench op --worker recurrent --L " << o.op_length << " --d " << config.hidden_size << " --h "
         << config.intermediate_size << " --chunk " << config.ttt_chunk << " --lr " << config.ttt_lr
         << " --clip 0 --scan-group 8 --repeat 1";
    nlohmann::json op = workers.run(args.str());
    rows.push_back(row("ttt op fwd L" + std::to_string(o.op_length), "tokens/s",
                       o.op_length / (op["fwd_ms"].get<double>() / 1000), nullptr));
    rows.push_back(row("ttt op fwd+bwd L" + std::to_string(o.op_length), "tokens/s",
                       o.op_length / (op["fwdbwd_ms"].get<double>() / 1000), nullptr));
  }

  // The tokenizer: the model's (or --tokenizer) on a sample text.
  const std::string tokenizer = o.tokenizer.empty() ? o.model : o.tokenizer;
  if (fs::exists(fs::path(tokenizer) / "tokenizer.json") && fs::exists(o.text)) {
    nlohmann::json t = workers.run("bench tokenizer --tokenizer '" + tokenizer + "' -f '" + o.text + "' --json");
    rows.push_back(row("tokenizer 1 thread", "MB/s", nullptr, t["single_mb_s"]));
    rows.push_back(row("tokenizer parallel (" + std::to_string(t["threads"].get<int>()) + " threads)", "MB/s", nullptr,
                       t["parallel_mb_s"]));
  } else {
    rows.push_back(row("tokenizer", "MB/s", nullptr, nullptr,
                       "no tokenizer.json in " + tokenizer + " or no " + o.text + " (--tokenizer, --text)"));
  }

  return {{"model", o.model}, {"threads", workers.threads}, {"dtype", dtype},
          {"device", describe_device(o.device)}, {"cpu_bf16", cpu_bf16_features()}, {"rows", rows}};
}

void print_all_table(const nlohmann::json& report, const model::ModelConfig& config, std::ostream& out) {
  const std::string cpu_bf16 = report["cpu_bf16"].get<std::string>();
  out << "bench all  " << report["model"].get<std::string>() << "  (" << config.num_hidden_layers << " layers, hidden "
      << config.hidden_size << ", TTT " << (config.ttt_mode ? "on" : "off") << ")  dtype "
      << report["dtype"].get<std::string>() << "  cpu bf16: " << (cpu_bf16.empty() ? "none" : cpu_bf16) << "\n\n"
      << "| test | unit | with TTT | without TTT | TTT / no TTT | note |\n|:--|:--|--:|--:|--:|:--|\n";
  for (const auto& r : report["rows"])
    out << "| " << r["test"].get<std::string>() << " | " << r["unit"].get<std::string>() << " | " << cell(r["ttt"])
        << " | " << cell(r["no_ttt"]) << " | " << cell(r.value("ratio", nlohmann::json())) << " | "
        << r["note"].get<std::string>() << " |\n";
}

}  // namespace ipt::bench
