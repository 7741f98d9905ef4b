#include "ipt/parallel/gloo.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>

#include "ipt/common/error.h"
#include "ipt/parallel/nccl.h"

namespace ipt::parallel {

namespace {

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

int env_int(const char* name, const char* fallback_name, int fallback_value, bool required) {
  const char* used = name;
  const char* value = env(name);
  if (!value && fallback_name) {
    used = fallback_name;
    value = env(fallback_name);
  }
  if (!value) {
    IPT_CHECK(!required, "distributed run: environment variable ", name, " is not set");
    return fallback_value;
  }
  char* end = nullptr;
  const long parsed = std::strtol(value, &end, 10);
  IPT_CHECK(end && *end == '\0' && parsed >= 0 && parsed < (1L << 30), "distributed run: ", used, "='", value,
            "' is not a non-negative integer");
  return static_cast<int>(parsed);
}

}  // namespace

bool Rendezvous::in_environment() {
  return env_int("WORLD_SIZE", "SLURM_NTASKS", 1, false) > 1;
}

Rendezvous Rendezvous::from_env() {
  Rendezvous r;
  r.world_size = env_int("WORLD_SIZE", "SLURM_NTASKS", 1, false);
  IPT_CHECK(r.world_size >= 1, "distributed run: WORLD_SIZE must be >= 1");
  r.rank = env_int("RANK", "SLURM_PROCID", 0, r.world_size > 1);
  r.local_rank = env_int("LOCAL_RANK", "SLURM_LOCALID", 0, false);
  IPT_CHECK(r.rank < r.world_size, "distributed run: RANK (", r.rank, ") must be below WORLD_SIZE (", r.world_size, ")");
  if (const char* addr = env("MASTER_ADDR")) r.master_addr = addr;
  r.master_port = env_int("MASTER_PORT", nullptr, 29500, r.world_size > 1);
  IPT_CHECK(r.master_port > 0 && r.master_port < 65536, "distributed run: MASTER_PORT=", r.master_port,
            " is not a port number");
  return r;
}

struct GlooCommunicator::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  bool loopback = false;  // the group talks over 127.0.0.1 (subgroups use the same device)
  std::chrono::milliseconds timeout{0};
  std::unique_ptr<NcclGroup> nccl;  // GPU tensors; formed by the first collective on one

  NcclGroup& nccl_group(int rank, int size) {
    if (!nccl) nccl = NcclGroup::create(store, rank, size, timeout);
    return *nccl;
  }
};

namespace {

c10::intrusive_ptr<c10d::ProcessGroupGloo::Options> gloo_options(bool loopback, std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // Loopback for single-machine groups; otherwise the interface this host's name resolves to.
  options->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                      : c10d::ProcessGroupGloo::createDefaultDevice());
  return options;
}

}  // namespace

GlooCommunicator::GlooCommunicator(const Rendezvous& r, double timeout_s)
    : impl_(std::make_unique<Impl>()), rank_(r.rank), size_(r.world_size) {
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(r.master_port);
    store_options.isServer = r.rank == 0;
    store_options.numWorkers = r.world_size;
    store_options.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(r.master_addr, store_options);
    impl_->loopback = r.master_addr == "127.0.0.1" || r.master_addr == "localhost";
    impl_->timeout = timeout;
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, r.rank, r.world_size,
                                                               gloo_options(impl_->loopback, timeout));
  } catch (const c10::Error& e) {
    throw Error("distributed run: cannot join the group at " + r.master_addr + ":" + std::to_string(r.master_port) +
                " as rank " + std::to_string(r.rank) + " of " + std::to_string(r.world_size) + ": " +
                e.what_without_backtrace());
  }
}

GlooCommunicator::GlooCommunicator(GlooCommunicator& parent, const std::string& name, int rank, int size,
                                   double timeout_s)
    : impl_(std::make_unique<Impl>()), rank_(rank), size_(size) {
  IPT_CHECK(size >= 1 && size <= parent.size() && rank >= 0 && rank < size, "subgroup '", name, "': rank ", rank,
            " of ", size, " does not fit a group of ", parent.size());
  IPT_CHECK(!name.empty(), "a subgroup needs a name (its key prefix in the store)");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  try {
    impl_->store = c10::make_intrusive<c10d::PrefixStore>(name, parent.impl_->store);
    impl_->loopback = parent.impl_->loopback;
    impl_->timeout = timeout;
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, rank, size,
                                                               gloo_options(impl_->loopback, timeout));
  } catch (const c10::Error& e) {
    throw Error("distributed run: cannot form subgroup '" + name + "' as rank " + std::to_string(rank) + " of " +
                std::to_string(size) + ": " + e.what_without_backtrace());
  }
}

GlooCommunicator::~GlooCommunicator() = default;

namespace {

// Gloo has no half or bfloat16 kernels ("Invalid scalar type"): those travel as float32, which
// holds them exactly (and sums them more accurately).
bool gloo_lacks(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf;
}

}  // namespace

std::vector<torch::Tensor> GlooCommunicator::all_gather(const torch::Tensor& t) {
  if (t.is_cuda()) return impl_->nccl_group(rank_, size_).all_gather(t);
  if (gloo_lacks(t)) {
    std::vector<torch::Tensor> gathered = all_gather(t.detach().to(torch::kFloat32));
    for (torch::Tensor& g : gathered) g = g.to(t.scalar_type());
    return gathered;
  }
  std::vector<torch::Tensor> inputs{t.detach().contiguous()};
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < size_; ++r) outputs[0].push_back(torch::empty_like(inputs[0]));
  impl_->group->allgather(outputs, inputs)->wait();
  return outputs[0];
}

void GlooCommunicator::all_reduce_sum(torch::Tensor& t) {
  if (t.is_cuda()) return impl_->nccl_group(rank_, size_).all_reduce_sum(t);
  torch::NoGradGuard no_grad;
  if (gloo_lacks(t)) {
    torch::Tensor wide = t.to(torch::kFloat32);
    all_reduce_sum(wide);
    t.copy_(wide);
    return;
  }
  std::vector<torch::Tensor> tensors{t.is_contiguous() ? t : t.contiguous()};
  impl_->group->allreduce(tensors)->wait();
  if (!tensors[0].is_same(t)) t.copy_(tensors[0]);
}

std::string current_executable() {
  std::error_code ec;
  auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  IPT_CHECK(!ec, "cannot find the running executable (/proc/self/exe): ", ec.message());
  return path.string();
}

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  IPT_CHECK(fd >= 0, "launch: cannot create a socket to pick a free port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  IPT_CHECK(ok, "launch: cannot pick a free port");
  return ntohs(addr.sin_port);
}

namespace {

std::vector<pid_t> g_children;
std::atomic<int> g_forwarded_signal{0};

void forward_signal(int sig) {
  g_forwarded_signal = sig;
  for (pid_t pid : g_children) ::kill(pid, sig);
}

}  // namespace

int launch_local(int n, const std::vector<std::string>& argv) {
  IPT_CHECK(n >= 1, "--nproc-per-node must be >= 1, got ", n);
  IPT_CHECK(!argv.empty(), "launch: empty command");
  const int port = free_local_port();
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  g_children.clear();
  for (int rank = 0; rank < n; ++rank) {
    const pid_t pid = ::fork();
    IPT_CHECK(pid >= 0, "launch: fork failed for rank ", rank);
    if (pid == 0) {
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(n).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(n).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::execv(args[0], args.data());
      _exit(127);  // exec failed
    }
    g_children.push_back(pid);
  }
  struct sigaction action {}, old_int{}, old_term{};
  action.sa_handler = forward_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, &old_int);
  ::sigaction(SIGTERM, &action, &old_term);
  int first_failure = 0;
  for (size_t done = 0; done < g_children.size();) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    ++done;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && first_failure == 0) {
      first_failure = code;
      // The others would wait for the lost rank until their collective times out.
      for (pid_t other : g_children)
        if (other != pid) ::kill(other, SIGTERM);
    }
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  g_children.clear();
  if (first_failure == 0 && g_forwarded_signal) first_failure = 128 + g_forwarded_signal;
  return first_failure;
}

}  // namespace ipt::parallel
