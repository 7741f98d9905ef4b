#pragma once
// Collectives across processes and machines: a Communicator over c10d's ProcessGroupGloo with a
// TCPStore rendezvous, the environment torchrun and Slurm set, and a local launcher that starts N
// copies of the current command (`--nproc-per-node N`).
#include <memory>
#include <string>
#include <vector>

#include "ipt/parallel/communicator.h"

namespace ipt::parallel {

struct Rendezvous {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0, world_size = 1, local_rank = 0;

  // True when the environment describes a multi-process run (WORLD_SIZE or SLURM_NTASKS > 1).
  static bool in_environment();
  // RANK / WORLD_SIZE / LOCAL_RANK (torchrun), else SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID;
  // MASTER_ADDR (default 127.0.0.1) and MASTER_PORT (required when WORLD_SIZE > 1). Throws
  // ipt::Error naming the variable that is missing, not a number, or inconsistent.
  static Rendezvous from_env();
};

// All ranks call the constructor; it returns once every rank has joined (or throws after
// `timeout_s`). Tensors on the CPU go through Gloo; tensors on a GPU through NCCL (the CUDA build),
// whose group forms over the same store at the first collective on a GPU tensor.
class GlooCommunicator : public Communicator {
 public:
  explicit GlooCommunicator(const Rendezvous& rendezvous, double timeout_s = 300);
  // A subgroup of `parent` (e.g. the context-parallel ranks of one data-parallel group): its
  // members call this with the same `name`, each with its `rank` within the subgroup of `size`.
  // It rendezvouses over the parent's store under the prefix `name`, so several subgroups with
  // different names can form at once. Returns once every member has joined.
  GlooCommunicator(GlooCommunicator& parent, const std::string& name, int rank, int size, double timeout_s = 300);
  ~GlooCommunicator() override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::vector<torch::Tensor> all_gather(const torch::Tensor& t) override;
  void all_reduce_sum(torch::Tensor& t) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_, size_;
};

// Runs `argv` (argv[0] = the executable) as `n` processes on this machine with RANK, LOCAL_RANK,
// WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT set; SIGINT/SIGTERM are forwarded to
// them. Waits for all; returns 0 or the first non-zero exit status (a worker killed by a signal
// counts as 128 + signal) — when one fails the others are terminated.
int launch_local(int n, const std::vector<std::string>& argv);

// A loopback TCP port the kernel considers free right now (bound to port 0, then released).
int free_local_port();

// The path of the running executable (/proc/self/exe).
std::string current_executable();

}  // namespace ipt::parallel
