// Crashes and interrupted work, through the binary: `ipt train` SIGKILLed at chosen points (inside
// a step, inside a checkpoint write) and at random moments, resumed with `--resume latest` until
// it finishes, ends bit-identical to a run that was never interrupted; an interrupted checkpoint
// is never picked by `latest`. A full disk (ulimit -f) during data prepare, a checkpoint, a
// session save and convert fails with an error naming the path, earlier files intact.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ipt/io/safetensors.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;

namespace {

struct Workspace {
  fs::path dir = fs::temp_directory_path() / ("ipt-kill-" + ipt::test::process_tag());
  Workspace() { fs::create_directories(dir); }
  ~Workspace() { fs::remove_all(dir); }
  std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

// Runs `ipt -t 1 ARGS` with `env` (NAME=VALUE) added; returns the wait status. With kill_after_ms,
// sends SIGKILL after that long if it is still running. With file_limit_bytes, runs under
// `ulimit -f` (writes past it fail with EFBIG; SIGXFSZ is ignored so the write returns an error).
int run_ipt(const std::vector<std::string>& args, const std::vector<std::string>& env = {}, int kill_after_ms = -1,
            const std::string& log = "/dev/null", long file_limit_bytes = -1) {
  const pid_t pid = fork();
  if (pid == 0) {
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    if (file_limit_bytes >= 0) {
      signal(SIGXFSZ, SIG_IGN);
      rlimit limit{static_cast<rlim_t>(file_limit_bytes), static_cast<rlim_t>(file_limit_bytes)};
      setrlimit(RLIMIT_FSIZE, &limit);
    }
    FILE* out = std::fopen(log.c_str(), "w");
    if (out) {
      dup2(fileno(out), 1);
      dup2(fileno(out), 2);
    }
    std::vector<std::string> all = {std::string(IPT_BINARY_DIR) + "/ipt", "-t", "1"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  if (kill_after_ms >= 0) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kill_after_ms);
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return status;
  }
  waitpid(pid, &status, 0);
  return status;
}

bool killed(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL; }
bool succeeded(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The sample corpus as token shards, prepared once for every test here.
const std::string& dataset() {
  static const ipt::test::TempDir scratch("ipt-kill-data");  // removed when the test process exits
  static const std::string dir = [] {
    const std::string d = (scratch.path / "shards").string();
    const std::string source = IPT_SOURCE_DIR;
    EXPECT_TRUE(succeeded(run_ipt({"data", "prepare", "--tokenizer", source + "/corpus/tokenizer", "--input",
                                   source + "/corpus/sample", "--out", d, "--val-fraction", "0.1", "--seed", "1", "-q"})));
    return d;
  }();
  return dir;
}

std::string write_config(const Workspace& w, const std::string& name, const std::string& output_dir) {
  const std::string path = w / (name + ".yaml");
  std::ofstream(path) << "model:\n"
                         "  init_preset: test\n"
                         "  foundation: {ttt_mode: true, ttt_layers: [1], ttt_chunk: 16}\n"
                         "data:\n"
                         "  train_path: " << dataset() << "\n"
                         "  max_seq_len: 64\n"
                         "train:\n"
                         "  output_dir: " << output_dir << "\n"
                         "  global_batch_size: 4\n"
                         "  micro_batch_size: 2\n"
                         "  lr: 0.003\n"
                         "  max_steps: 10\n"
                         "  save_steps: 2\n"
                         "  eval_steps: 0\n"
                         "  seed: 3\n";
  return path;
}

// Every tensor of the final checkpoint's weights and optimizer state, compared exactly.
void expect_same_checkpoint(const std::string& a, const std::string& b) {
  for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
    const auto x = ipt::io::read_safetensors(a + "/" + file), y = ipt::io::read_safetensors(b + "/" + file);
    ASSERT_EQ(x.size(), y.size()) << file;
    for (const auto& [name, t] : x) {
      ASSERT_TRUE(y.count(name)) << file << ": " << name;
      EXPECT_TRUE(torch::equal(t, y.at(name))) << file << ": " << name << " differs";
    }
  }
  EXPECT_EQ(slurp(a + "/trainer_state.json"), slurp(b + "/trainer_state.json"));
}

std::vector<std::string> train_args(const std::string& config, const std::string& output_dir) {
  std::vector<std::string> args = {"train", "--config", config, "-q", "--no-plot"};
  if (fs::exists(output_dir)) {
    for (const auto& e : fs::directory_iterator(output_dir))
      if (e.path().filename().string().rfind("checkpoint-", 0) == 0) {
        args.insert(args.end(), {"--resume", "latest"});
        break;
      }
  }
  return args;
}

}  // namespace

TEST(Kill, TrainingKilledAtChosenPointsResumesBitIdentical) {
  Workspace w;
  const std::string ref = w / "ref", out = w / "killed";
  ASSERT_TRUE(succeeded(run_ipt(train_args(write_config(w, "ref", ref), ref))));
  const std::string config = write_config(w, "killed", out);
  // Each run dies at its point; the next resumes from what `latest` finds.
  const std::vector<std::pair<std::string, std::string>> points = {
      {"step:1", ""},                             // before any checkpoint: start again from scratch
      {"step:3", "checkpoint-2"},                 // inside step 3: resume at 2
      {"checkpoint-model:4", "checkpoint-2"},     // weights of 4 written, nothing else
      {"checkpoint-state:4", "checkpoint-2"},     // all but trainer_state.json of 4 written
      {"step:7", "checkpoint-6"},
      {"checkpoint-state:10", "checkpoint-8"}};   // the last checkpoint, torn
  for (const auto& [point, latest_after] : points) {
    const std::string log = w / "log.txt";
    const int status = run_ipt(train_args(config, out), {"IPT_KILL_AT=" + point}, -1, log);
    ASSERT_TRUE(killed(status)) << point << ": " << slurp(log);
    // `latest` is the last complete checkpoint; the torn one stays a hidden temporary directory.
    std::string newest;
    int64_t best = -1;
    for (const auto& e : fs::directory_iterator(out)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("checkpoint-", 0) == 0 && std::stoll(name.substr(11)) > best) {
        best = std::stoll(name.substr(11));
        newest = name;
      }
    }
    EXPECT_EQ(newest, latest_after) << point;
  }
  ASSERT_TRUE(succeeded(run_ipt(train_args(config, out))));
  expect_same_checkpoint(ref + "/checkpoint-10", out + "/checkpoint-10");
}

TEST(Kill, TrainingKilledAtRandomMomentsResumesBitIdentical) {
  Workspace w;
  const std::string ref = w / "ref", out = w / "killed";
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(succeeded(run_ipt(train_args(write_config(w, "ref", ref), ref))));
  const int full_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
  const std::string config = write_config(w, "killed", out);
  std::mt19937 rng(7);
  int kills = 0;
  for (int attempt = 0; attempt < 30 && !fs::exists(out + "/checkpoint-10"); ++attempt) {
    // Within the first half of a whole run's time: a resumed run has less left to do, and a
    // later moment would often find it finished (then it is not a kill, and not a failure).
    const int delay = std::uniform_int_distribution<int>(full_ms / 6, full_ms / 2)(rng);
    const int status = run_ipt(train_args(config, out), {}, attempt < 8 ? delay : -1);
    if (killed(status)) ++kills;
    else ASSERT_TRUE(succeeded(status)) << "attempt " << attempt;
  }
  EXPECT_GE(kills, 2);
  ASSERT_TRUE(fs::exists(out + "/checkpoint-10"));
  expect_same_checkpoint(ref + "/checkpoint-10", out + "/checkpoint-10");
}

namespace {
// Bytes of every regular file under `dir`, by relative path.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = slurp(e.path().string());
  return files;
}

// A failed write under a file-size limit: exit 1, and the message names `path`.
void expect_disk_error(int status, const std::string& log, const std::string& path) {
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "status " << status << ": " << slurp(log);
  EXPECT_NE(slurp(log).find(path), std::string::npos) << "the error does not name " << path << ":\n" << slurp(log);
  EXPECT_EQ(slurp(log).find("terminate"), std::string::npos) << slurp(log);
}
}  // namespace

TEST(Kill, FullDiskFailsCleanlyNamingThePath) {
  Workspace w;
  const std::string source = IPT_SOURCE_DIR, log = w / "log.txt";
  const long limit = 64 << 10;  // every file the commands below write is larger than 64 KiB

  // data prepare: a new dataset, then --append onto a complete one.
  const std::string data = w / "data";
  expect_disk_error(run_ipt({"data", "prepare", "--tokenizer", source + "/corpus/tokenizer", "--input", source + "/corpus/sample",
                             "--out", data, "-q", "--shard-tokens", "100000"}, {}, -1, log, limit), log, data);
  fs::remove_all(data);
  ASSERT_TRUE(succeeded(run_ipt({"data", "prepare", "--tokenizer", source + "/corpus/tokenizer", "--input",
                                 source + "/corpus/sample", "--out", data, "-q"})));
  const auto data_before = snapshot(data);
  expect_disk_error(run_ipt({"data", "prepare", "--tokenizer", source + "/corpus/tokenizer", "--input", source + "/corpus/sample",
                             "--out", data, "-q", "--append", "--shard-tokens", "100000"}, {}, -1, log, limit), log, data);
  EXPECT_EQ(snapshot(data), data_before) << "data prepare --append changed the dataset it failed to extend";

  // A checkpoint: checkpoint-2 written, then the write of checkpoint-4 fails.
  const std::string out = w / "run", config = write_config(w, "disk", out);
  ASSERT_TRUE(succeeded(run_ipt({"train", "--config", config, "-q", "--no-plot", "--train.max_steps=2"})));
  const auto run_before = snapshot(out + "/checkpoint-2");
  expect_disk_error(run_ipt({"train", "--config", config, "-q", "--no-plot", "--resume", "latest"}, {}, -1, log, limit), log,
                    out + "/checkpoint-4");
  EXPECT_EQ(snapshot(out + "/checkpoint-2"), run_before);
  EXPECT_FALSE(fs::exists(out + "/checkpoint-4"));

  // convert, and a session save of generate, over complete earlier outputs.
  const std::string model = w / "model", converted = w / "converted";
  ASSERT_TRUE(succeeded(run_ipt({"init", "--preset", "test", "--vocab-size", "4096", "--tokenizer", source + "/corpus/tokenizer", "-o", model})));
  ASSERT_TRUE(succeeded(run_ipt({"convert", "--in", model, "--out", converted, "--ttt-layers", "1"})));
  const auto converted_before = snapshot(converted);
  expect_disk_error(run_ipt({"convert", "--in", model, "--out", converted, "--ttt-layers", "0", "--force"}, {}, -1, log, limit), log,
                    converted);
  EXPECT_EQ(snapshot(converted), converted_before) << "a failed convert --force damaged the model it was replacing";

  const std::string session = w / "chat.session";
  ASSERT_TRUE(succeeded(run_ipt({"generate", "-m", converted, "-p", "Hello there", "-n", "2", "--session", session})));
  const std::string session_before = slurp(session);
  expect_disk_error(run_ipt({"generate", "-m", converted, "-p", "Hello there", "-n", "2", "--session", session}, {}, -1, log, 4096),
                    log, session);  // a session of a few tokens is only tens of KiB
  EXPECT_EQ(slurp(session), session_before);
}
