// The ipt command end to end: init -> convert -> info -> score, and its errors (exit code 1 and
// a message, never a crash).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>
#include "ipt/model/ttt_keys.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;

namespace {

struct Result {
  int status;
  std::string output;
};

// `env` is prepended to the command line (e.g. "IPT_MODEL=/x").
Result run_ipt(const std::string& args, const std::string& env = "") {
  const std::string command = env + " " + std::string(IPT_BINARY_DIR) + "/ipt -t 1 " + args + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe.get())) output.append(buffer.data(), n);
  int status = pclose(pipe.release());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

struct Workspace {
  fs::path dir = fs::temp_directory_path() / ("ipt-cli-" + ipt::test::process_tag());
  Workspace() { fs::create_directories(dir); }
  ~Workspace() { fs::remove_all(dir); }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

}  // namespace

TEST(Cli, InitConvertInfoScore) {
  Workspace w;
  ASSERT_EQ(run_ipt("init --preset test -o " + (w / "base")).status, 0);
  Result convert = run_ipt("convert --in " + (w / "base") + " --out " + (w / "ttt") + " --ttt-layers 1 --ttt-chunk 8");
  ASSERT_EQ(convert.status, 0) << convert.output;
  Result info = run_ipt("info -m " + (w / "ttt"));
  ASSERT_EQ(info.status, 0) << info.output;
  EXPECT_NE(info.output.find("TTT          layers 1; chunk 8"), std::string::npos) << info.output;
  {
    std::ofstream ids(w / "ids.txt");
    for (int i = 0; i < 40; ++i) ids << (i * 37) % 256 << (i % 10 == 9 ? "\n" : " ");
  }
  Result base = run_ipt("score -m " + (w / "base") + " --ids " + (w / "ids.txt") + " --json");
  Result ttt = run_ipt("score -m " + (w / "ttt") + " --ids " + (w / "ids.txt") + " --json");
  ASSERT_EQ(base.status, 0) << base.output;
  ASSERT_EQ(ttt.status, 0) << ttt.output;
  auto a = nlohmann::json::parse(base.output), b = nlohmann::json::parse(ttt.output);
  EXPECT_EQ(a["tokens"], 39);
  EXPECT_NEAR(a["mean_nll"].get<double>(), b["mean_nll"].get<double>(), 1e-5);  // the drop-in property
  EXPECT_NEAR(a["ppl"].get<double>(), std::exp(a["mean_nll"].get<double>()), 1e-6 * a["ppl"].get<double>());
}

// The drift monitor: one entry per chunk update per TTT layer, and clear errors where it cannot run.
TEST(Cli, ScoreTracesTheFastWeights) {
  Workspace w;
  ASSERT_EQ(run_ipt("init --preset test -o " + (w / "base")).status, 0);
  Result convert = run_ipt("convert --in " + (w / "base") + " --out " + (w / "ttt") +
                       " --ttt-layers 0 1 --ttt-chunk 8 --ttt-decay 0.8");
  ASSERT_EQ(convert.status, 0) << convert.output;
  EXPECT_NE(run_ipt("info -m " + (w / "ttt")).output.find("decay 0.8"), std::string::npos);
  {
    std::ofstream ids(w / "ids.txt");
    for (int i = 0; i < 40; ++i) ids << (i * 37) % 256 << " ";
  }
  const std::string score = "score -m " + (w / "ttt") + " --ids " + (w / "ids.txt");
  Result traced = run_ipt(score + " --trace-fast-weights " + (w / "trace.json") + " --trace-stretch 16 --json");
  ASSERT_EQ(traced.status, 0) << traced.output;
  auto trace = nlohmann::json::parse(std::ifstream(w / "trace.json"));
  EXPECT_EQ(trace["ttt_decay"], 0.8);
  ASSERT_EQ(trace["drift"].size(), 2u);
  for (const char* layer : {"0", "1"}) {
    ASSERT_EQ(trace["drift"][layer].size(), 5u) << layer;  // 40 rows, chunk 8: five updates
    for (double v : trace["drift"][layer]) EXPECT_EQ(v, 0.0);  // drop-in: every update is zero
  }
  ASSERT_EQ(trace["loss_per_stretch"].size(), 3u);  // 39 predictions in stretches of 16
  EXPECT_EQ(trace["loss_per_stretch"][2]["end"], 39);
  Result plain = run_ipt(score + " --json");
  EXPECT_NEAR(trace["mean_nll"].get<double>(), nlohmann::json::parse(plain.output)["mean_nll"].get<double>(), 1e-6);

  Result frozen = run_ipt(score + " --no-ttt --trace-fast-weights " + (w / "t2.json"));
  EXPECT_EQ(frozen.status, 1);
  EXPECT_NE(frozen.output.find("needs the fast weights on"), std::string::npos) << frozen.output;
  Result no_ttt = run_ipt("score -m " + (w / "base") + " --ids " + (w / "ids.txt") + " --trace-fast-weights " + (w / "t3.json"));
  EXPECT_EQ(no_ttt.status, 1);
  EXPECT_NE(no_ttt.output.find("needs a model with TTT layers"), std::string::npos) << no_ttt.output;
  Result bad = run_ipt("convert --in " + (w / "base") + " --out " + (w / "bad") + " --ttt-layers 0 --ttt-decay 1.5");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("--ttt-decay must be in (0, 1]"), std::string::npos) << bad.output;
}

// Every TTT key with a flag (model/ttt_keys.h) reaches config.json through `ipt init`, and a wrong
// value is refused naming the flag.
TEST(Cli, EveryTttFlagSetsItsKey) {
  Workspace w;
  std::string flags;
  nlohmann::json expected;
  for (const ipt::model::TttKey& key : ipt::model::ttt_keys()) {
    if (!key.flag) continue;
    const std::string name = key.name;
    std::string text;
    if (name == "ttt_layers") text = "1", expected[name] = {1};
    else if (name == "ttt_chunk") text = "96", expected[name] = 96;
    else if (name == "ttt_proj" || name == "ttt_decode_update") text = "off", expected[name] = false;
    else if (!key.choices.empty()) text = key.choices.back(), expected[name] = key.choices.back();  // not the default
    else text = "0.5", expected[name] = 0.5;
    flags += " " + ipt::model::ttt_flag_name(key) + " " + text;
  }
  ASSERT_EQ(expected.size(), 10u);  // every key but ttt_mode
  Result init = run_ipt("init --preset test -o " + (w / "m") + flags);
  ASSERT_EQ(init.status, 0) << init.output;
  std::ifstream in(w / "m/config.json");
  const nlohmann::json written = nlohmann::json::parse(in);
  for (const auto& [name, value] : expected.items()) EXPECT_EQ(written.at(name), value) << name;
  EXPECT_EQ(written.at("ttt_mode"), true);  // --ttt-layers turns TTT on
  Result bad = run_ipt("init --preset test -o " + (w / "bad") + " --ttt-layers 1 --ttt-lr fast");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("--ttt-lr must be a number, got 'fast'"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(w / "bad/config.json"));
}

TEST(Cli, ErrorsExitWithAMessage) {
  Workspace w;
  ASSERT_EQ(run_ipt("init --preset test -o " + (w / "m")).status, 0);
  Result again = run_ipt("init --preset test -o " + (w / "m"));
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.output.find("already holds a model"), std::string::npos);
  Result preset = run_ipt("init --preset huge -o " + (w / "x"));
  EXPECT_EQ(preset.status, 1);
  EXPECT_NE(preset.output.find("unknown preset 'huge'"), std::string::npos);
  std::ofstream(w / "bad.txt") << "1 2 -3";
  Result bad = run_ipt("score -m " + (w / "m") + " --ids " + (w / "bad.txt"));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("'-3' is not a token id"), std::string::npos) << bad.output;
  std::ofstream(w / "big.txt") << "1 2 300";
  Result big = run_ipt("score -m " + (w / "m") + " --ids " + (w / "big.txt"));
  EXPECT_EQ(big.status, 1);
  EXPECT_NE(big.output.find("outside the vocabulary"), std::string::npos) << big.output;
  Result layers = run_ipt("convert --in " + (w / "m") + " --out " + (w / "t") + " --ttt-layers 5");
  EXPECT_EQ(layers.status, 1);
  EXPECT_NE(layers.output.find("ttt_layers entry 5 is outside [0, 2)"), std::string::npos) << layers.output;
  EXPECT_NE(run_ipt("score -m " + (w / "missing") + " --ids " + (w / "big.txt")).status, 0);
  EXPECT_NE(run_ipt("bench op --L 0").status, 0);
}

// Text in: `data prepare` writes shards, `data synth` writes samples, `score --text` equals
// `score --ids` over the ids `tokenizer encode` prints.
TEST(Cli, DataPrepareSynthAndScoreText) {
  Workspace w;
  const std::string source = IPT_SOURCE_DIR, tokenizer = source + "/corpus/tokenizer";
  Result prepare = run_ipt("data prepare -q --tokenizer " + tokenizer + " --input " + source + "/corpus/sample --out " +
                       (w / "ds") + " --val-fraction 0.3 --seed 1");
  ASSERT_EQ(prepare.status, 0) << prepare.output;
  EXPECT_NE(prepare.output.find("read 10 files"), std::string::npos) << prepare.output;
  EXPECT_TRUE(fs::exists(w / "ds/meta.json") && fs::exists(w / "ds/val/meta.json"));
  EXPECT_EQ(run_ipt("data prepare -q --tokenizer " + tokenizer + " --input " + source + "/corpus/sample --out " + (w / "ds")).status, 1);

  Result synth = run_ipt("data synth --task passkey,niah_single_2 --count 2 --length 300 --tokenizer " + tokenizer +
                     " --haystack " + source + "/corpus/sample -o " + (w / "synth.jsonl"));
  ASSERT_EQ(synth.status, 0) << synth.output;
  std::ifstream lines(w / "synth.jsonl");
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_LE(j["length"].get<int>(), 300);
    EXPECT_FALSE(j["answers"].empty());
    ++count;
  }
  EXPECT_EQ(count, 4);
  EXPECT_EQ(run_ipt("data synth --task nope --tokenizer " + tokenizer).status, 1);

  ASSERT_EQ(run_ipt("init --preset test --vocab-size 4096 -o " + (w / "m")).status, 0);
  std::ofstream(w / "text.txt") << "We the People of the United States, in Order to form a more perfect Union.";
  Result ids = run_ipt("tokenizer encode --tokenizer " + tokenizer + " -f " + (w / "text.txt"));
  ASSERT_EQ(ids.status, 0) << ids.output;
  std::ofstream(w / "ids.txt") << ids.output;
  Result by_text = run_ipt("score -m " + (w / "m") + " --text " + (w / "text.txt") + " --tokenizer " + tokenizer + " --json");
  Result by_ids = run_ipt("score -m " + (w / "m") + " --ids " + (w / "ids.txt") + " --json");
  ASSERT_EQ(by_text.status, 0) << by_text.output;
  ASSERT_EQ(by_ids.status, 0) << by_ids.output;
  EXPECT_EQ(nlohmann::json::parse(by_text.output)["mean_nll"], nlohmann::json::parse(by_ids.output)["mean_nll"]);
  Result neither = run_ipt("score -m " + (w / "m"));
  EXPECT_EQ(neither.status, 1);
  EXPECT_NE(neither.output.find("exactly one of --ids FILE and --text FILE"), std::string::npos) << neither.output;
}

// make run's main job on the bundled model: the per-stretch table, both whole-document losses,
// a continuation; and the errors for models it cannot demonstrate.
TEST(Cli, DemoOnTheBundledModel) {
  Workspace w;
  Result demo = run_ipt("demo --max-tokens 600 --rows 3 -n 4");
  ASSERT_EQ(demo.status, 0) << demo.output;
  EXPECT_NE(demo.output.find("whole document: TTT "), std::string::npos) << demo.output;
  EXPECT_NE(demo.output.find("    0-200 "), std::string::npos) << demo.output;  // 599 scored tokens in 3 rows
  EXPECT_NE(demo.output.find("fast-weight updates"), std::string::npos) << demo.output;
  ASSERT_EQ(run_ipt("init --preset test -o " + (w / "plain") + " --tokenizer " + IPT_SOURCE_DIR + "/corpus/tokenizer --vocab-size 4096").status, 0);
  Result plain = run_ipt("demo -m " + (w / "plain"));
  EXPECT_EQ(plain.status, 1);
  EXPECT_NE(plain.output.find("has no TTT layers"), std::string::npos) << plain.output;
  Result missing = run_ipt("demo -f " + (w / "nope.txt"));
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("cannot read"), std::string::npos) << missing.output;
}

// The demo's retrieval part: a fact from an `ipt data synth` file, answered with and without TTT
// (each marked right or wrong), accuracy over the file, and the errors for bad files and samples.
TEST(Cli, DemoRetrievalPart) {
  Workspace w;
  const std::string samples = w / "facts.jsonl";
  ASSERT_EQ(run_ipt("data synth --task passkey --length 400 --count 2 --seed 7 --tokenizer " + std::string(IPT_SOURCE_DIR) +
                "/corpus/tokenizer --haystack " + IPT_SOURCE_DIR + "/corpus/sample -o " + samples).status, 0);
  Result one = run_ipt("demo --retrieval " + samples + " --sample 1 --max-tokens 300 --rows 2 -n 2");
  ASSERT_EQ(one.status, 0) << one.output;
  EXPECT_NE(one.output.find("A fact planted beyond the 128-token attention window (sample 1 of"), std::string::npos) << one.output;
  EXPECT_NE(one.output.find("tokens before the question"), std::string::npos) << one.output;
  EXPECT_NE(one.output.find("question  \"What is the pass key? The pass key is\""), std::string::npos) << one.output;
  for (const char* run : {"with TTT    \"", "without TTT \""}) EXPECT_NE(one.output.find(run), std::string::npos) << run;
  EXPECT_NE(one.output.find("whole document: TTT "), std::string::npos) << one.output;  // the loss table follows
  Result all = run_ipt("demo --retrieval " + samples + " --retrieval-all");
  ASSERT_EQ(all.status, 0) << all.output;
  EXPECT_NE(all.output.find("retrieval over 2 documents of"), std::string::npos) << all.output;
  EXPECT_EQ(all.output.find("whole document"), std::string::npos) << all.output;  // it stops after scoring
  Result past = run_ipt("demo --retrieval " + samples + " --sample 2");
  EXPECT_EQ(past.status, 1);
  EXPECT_NE(past.output.find("is not in"), std::string::npos) << past.output;
  std::ofstream(w / "bad.jsonl") << "{\"task\": \"passkey\"}\n";
  Result bad = run_ipt("demo --retrieval " + (w / "bad.jsonl"));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("line 1 is not an `ipt data synth` sample"), std::string::npos) << bad.output;
}

// bench prefill --cp-size: one row per rank count, every rank's peak memory reported.
TEST(Cli, BenchPrefillContextParallel) {
  Workspace w;
  ASSERT_EQ(run_ipt("init --preset test -o " + (w / "m") + " --ttt-layers 1 --ttt-chunk 32").status, 0);
  Result bench = run_ipt("bench prefill -m " + (w / "m") + " --lengths 256 --cp-size 1,2 --json");
  ASSERT_EQ(bench.status, 0) << bench.output;
  const auto report = nlohmann::json::parse(bench.output);
  ASSERT_EQ(report["results"].size(), 4u);  // {TTT, no TTT} x {1, 2 ranks}
  for (const auto& row : report["results"]) {
    EXPECT_EQ(row["rank_peak_mb"].size(), static_cast<size_t>(row["cp_size"].get<int>()));
    EXPECT_GT(row["peak_mb"].get<double>(), 0);
    EXPECT_GT(row["tokens_per_s"].get<double>(), 0);
  }
  EXPECT_EQ(run_ipt("bench prefill -m " + (w / "m") + " --lengths 256 --cp-size 1 --window 16").status, 1);
}

// bench decode end to end: the decode step against the sequence path, quantized weights, and
// concurrent streams with batching on and off (every stream's tokens counted).
TEST(Cli, BenchDecodeStepsQuantizationAndStreams) {
  Workspace w;
  ASSERT_EQ(run_ipt("init --preset test -o " + (w / "m") + " --ttt-layers 1 --ttt-chunk 4").status, 0);
  Result plain = run_ipt("bench decode -m " + (w / "m") + " --contexts 16 --tokens 8 --decode-quant q8_0 --json");
  ASSERT_EQ(plain.status, 0) << plain.output;
  const auto report = nlohmann::json::parse(plain.output);
  ASSERT_EQ(report["results"].size(), 2u);  // TTT, no TTT
  EXPECT_EQ(report["results"][0]["decode_quant"], "q8_0");
  EXPECT_GT(report["results"][0]["decode_updates"].get<int64_t>(), 0);  // chunk 4: updates while decoding
  Result streams = run_ipt("bench decode -m " + (w / "m") + " --streams 1,3 --tokens 6 --json");
  ASSERT_EQ(streams.status, 0) << streams.output;
  const auto rows = nlohmann::json::parse(streams.output)["results"];
  ASSERT_EQ(rows.size(), 4u);  // {1, 3 streams} x {batching on, off}
  EXPECT_EQ(rows[2]["tokens"].get<int64_t>(), 18);
  EXPECT_EQ(rows[2]["batching"], "on");  // whether steps were shared depends on timing here;
  EXPECT_EQ(rows[3]["mean_batch"].get<double>(), 1.0);  // tests/infer/test_batcher.cpp pins it down
  EXPECT_EQ(run_ipt("bench decode -m " + (w / "m") + " --streams 0").status, 1);
  Result bad = run_ipt("bench decode -m " + (w / "m") + " --decode-quant q5_0");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("--decode-quant"), std::string::npos) << bad.output;
}

// Every command that takes a model defaults -m the same way ($IPT_MODEL, else the bundled model):
// pointed at a directory that does not exist, each one must fail on that directory, never with
// "--model is required". And two of them run on the bundled default for real.
TEST(Cli, EveryModelCommandDefaultsTheModel) {
  const std::string probe = "/nonexistent/ipt-default-model-probe";
  const std::vector<std::string> commands = {
      "score --ids /dev/null", "info", "demo", "generate -p Hello -n 1", "serve --port 0",
      "eval ppl --data /dev/null", "eval ruler --lengths 256", "bench prefill --lengths 64",
      "bench decode", "bench all", "bench serve --duration 1", "bench train --steps 1"};
  for (const std::string& command : commands) {
    Result r = run_ipt(command, "IPT_MODEL=" + probe);
    EXPECT_EQ(r.status, 1) << command << "\n" << r.output;
    EXPECT_NE(r.output.find(probe), std::string::npos) << command << " did not use $IPT_MODEL:\n" << r.output;
    EXPECT_EQ(r.output.find("required"), std::string::npos) << command << "\n" << r.output;
  }
  Result generate = run_ipt("generate -p \"The state of the Union\" -n 3 --temp 0", "IPT_MODEL=");
  EXPECT_EQ(generate.status, 0) << generate.output;
  Result info = run_ipt("info", "IPT_MODEL=");
  EXPECT_EQ(info.status, 0) << info.output;
  EXPECT_NE(info.output.find("models/default"), std::string::npos) << info.output;
}

// bench serve: mixed valid and malformed requests from more clients than the queue holds; every
// answer is classified (the command fails on any that breaks the API) and 503s are counted.
TEST(Cli, BenchServeMixedLoadClassifiesEveryAnswer) {
  Result r = run_ipt("bench serve --clients 1,6 --duration 2 --parallel 1 --queue 1 --max-tokens 2 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto report = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  ASSERT_EQ(report["rows"].size(), 2u);
  const auto& one = report["rows"][0];
  const auto& six = report["rows"][1];
  EXPECT_EQ(one["busy_503"], 0);  // one client never finds the queue full
  EXPECT_GT(one["ok"].get<int>(), 0);
  EXPECT_GT(six["busy_503"].get<int>(), 0) << six;  // six clients, one slot, one queue place
  for (const auto& row : report["rows"]) {
    EXPECT_EQ(row["errors"], 0) << row;
    EXPECT_EQ(row["requests"].get<int>(), row["ok"].get<int>() + row["rejected_malformed"].get<int>() + row["busy_503"].get<int>());
    EXPECT_GT(row["latency_ms"]["p99"].get<double>(), 0);
    EXPECT_TRUE(row["within_budget"].get<bool>()) << row;
  }
  Result bad = run_ipt("bench serve --clients 0");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("--clients must be > 0"), std::string::npos) << bad.output;
}

// --dtype on every command that runs a model: unknown values are refused naming the accepted ones
// (from the flag or from $IPT_DTYPE), and the choice is said on stderr or carried in the JSON.
TEST(Cli, EveryModelCommandTakesADtype) {
  const std::vector<std::string> commands = {
      "score --ids /dev/null", "demo", "generate -p Hello -n 1", "serve --port 0", "eval ppl --data /dev/null",
      "eval ruler --lengths 256", "bench prefill --lengths 64", "bench decode", "bench all", "bench serve --duration 1"};
  for (const std::string& command : commands) {
    Result r = run_ipt(command + " --dtype float8");
    EXPECT_NE(r.status, 0) << command << "\n" << r.output;  // CLI11's validation error
    EXPECT_NE(r.output.find("bfloat16"), std::string::npos) << command << " did not name the accepted dtypes:\n" << r.output;
  }
  Workspace w;
  ASSERT_EQ(run_ipt("init --preset test -o " + (w / "m")).status, 0);
  std::ofstream(w / "ids.txt") << "1 2 3 4 5 6 7 8 9 10";
  Result env = run_ipt("score -m " + (w / "m") + " --ids " + (w / "ids.txt"), "IPT_DTYPE=half");
  EXPECT_EQ(env.status, 1);
  EXPECT_NE(env.output.find("unknown dtype 'half'"), std::string::npos) << env.output;
  Result said = run_ipt("score -m " + (w / "m") + " --ids " + (w / "ids.txt") + " --dtype bfloat16");
  ASSERT_EQ(said.status, 0) << said.output;
  EXPECT_NE(said.output.find("score: compute dtype bfloat16 (--dtype bfloat16)"), std::string::npos) << said.output;
  Result json = run_ipt("score -m " + (w / "m") + " --ids " + (w / "ids.txt") + " --json --dtype bfloat16");
  ASSERT_EQ(json.status, 0) << json.output;
  const auto report = nlohmann::json::parse(json.output);  // nothing else on either stream
  EXPECT_EQ(report["dtype"], "bfloat16");
  Result f32 = run_ipt("score -m " + (w / "m") + " --ids " + (w / "ids.txt") + " --json --dtype float32");
  ASSERT_EQ(f32.status, 0) << f32.output;
  const double a = nlohmann::json::parse(f32.output)["mean_nll"], b = report["mean_nll"];
  EXPECT_NEAR(b, a, 0.01 * a);
  Result bench = run_ipt("bench prefill -m " + (w / "m") + " --lengths 32 --json --dtype bfloat16");
  ASSERT_EQ(bench.status, 0) << bench.output;
  const auto prefill = nlohmann::json::parse(bench.output.substr(bench.output.find('{')));
  EXPECT_EQ(prefill["dtype"], "bfloat16");
  EXPECT_EQ(prefill["results"][0]["dtype"], "bfloat16");
}

// `ipt` runs with OpenMP's passive wait policy (it sets it and re-executes itself) unless the user
// chose one. Seen in /proc/PID/environ of an `ipt` that waits to open a FIFO nobody writes to: read
// once the process is blocked in open(at) (/proc/PID/syscall; twice, 0.2 s apart), so a slow start on
// a busy machine is not mistaken for "not re-executed" (a fixed one-second sleep was, under load).
TEST(Cli, RunsWithPassiveOpenMpUnlessTheUserChose) {
  Workspace w;
  ASSERT_EQ(std::system(("mkfifo " + (w / "fifo")).c_str()), 0);
  auto policy_seen = [&](const std::string& env) {
    const std::string script = env + " " + std::string(IPT_BINARY_DIR) + "/ipt tokenizer encode --tokenizer " +
                               IPT_SOURCE_DIR + "/corpus/tokenizer -f " + (w / "fifo") +
                               " & pid=$!; blocked() { case $(cut -d' ' -f1 /proc/$pid/syscall 2>/dev/null) in "
                               "2|257) return 0;; esac; return 1; }; "
                               "for i in $(seq 600); do if blocked; then sleep 0.2; blocked && break; fi; sleep 0.1; done; "
                               "tr '\\0' '\\n' < /proc/$pid/environ | grep '^OMP_WAIT_POLICY='; "
                               "kill $pid; wait $pid 2>/dev/null; true";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(script.c_str(), "r"), pclose);
    std::string out;
    std::array<char, 256> buffer;
    while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe.get())) out.append(buffer.data(), n);
    return out;
  };
  EXPECT_EQ(policy_seen("env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT"), "OMP_WAIT_POLICY=passive\n");
  EXPECT_EQ(policy_seen("env OMP_WAIT_POLICY=active"), "OMP_WAIT_POLICY=active\n");
  EXPECT_EQ(policy_seen("env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=1000"), "");  // a spin count is a choice too
}
