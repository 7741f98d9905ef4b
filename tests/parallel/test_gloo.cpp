// The Gloo communicator (two ranks as two threads of this process, over loopback TCP) and the
// rendezvous environment: values from torchrun and Slurm variables, errors naming the variable.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "ipt/common/error.h"
#include "ipt/parallel/gloo.h"
#include "support/expect_error.h"

using namespace ipt;

using ipt::test::expect_error;

namespace {

// Sets variables for one test and restores the previous environment afterwards.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> values) {
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID",
                             "SLURM_NTASKS", "SLURM_LOCALID"}) {
      const char* old = std::getenv(name);
      saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      ::unsetenv(name);
    }
    for (const auto& [name, value] : values) ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) ::setenv(name.c_str(), value->c_str(), 1);
      else ::unsetenv(name.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

}  // namespace

TEST(Rendezvous, ReadsTorchrunAndSlurmEnvironments) {
  {
    ScopedEnv env({});
    EXPECT_FALSE(parallel::Rendezvous::in_environment());
    EXPECT_EQ(parallel::Rendezvous::from_env().world_size, 1);
  }
  {
    ScopedEnv env({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29555"}});
    parallel::Rendezvous r = parallel::Rendezvous::from_env();
    EXPECT_TRUE(parallel::Rendezvous::in_environment());
    EXPECT_EQ(r.rank, 1);
    EXPECT_EQ(r.world_size, 4);
    EXPECT_EQ(r.local_rank, 1);
    EXPECT_EQ(r.master_addr, "node7");
    EXPECT_EQ(r.master_port, 29555);
  }
  {
    ScopedEnv env({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "3"}, {"SLURM_LOCALID", "0"}, {"MASTER_PORT", "1234"}});
    parallel::Rendezvous r = parallel::Rendezvous::from_env();
    EXPECT_EQ(r.rank, 2);
    EXPECT_EQ(r.world_size, 3);
    EXPECT_EQ(r.master_addr, "127.0.0.1");
  }
}

TEST(Rendezvous, BadEnvironmentsNameTheVariable) {
  {
    ScopedEnv env({{"WORLD_SIZE", "2"}, {"MASTER_PORT", "29500"}});
    expect_error([] { parallel::Rendezvous::from_env(); }, "RANK is not set");
  }
  {
    ScopedEnv env({{"WORLD_SIZE", "2"}, {"RANK", "0"}});
    expect_error([] { parallel::Rendezvous::from_env(); }, "MASTER_PORT is not set");
  }
  {
    ScopedEnv env({{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_PORT", "29500"}});
    expect_error([] { parallel::Rendezvous::from_env(); }, "must be below WORLD_SIZE");
  }
  {
    ScopedEnv env({{"WORLD_SIZE", "two"}});
    expect_error([] { parallel::Rendezvous::from_env(); }, "WORLD_SIZE='two'");
  }
}

TEST(GlooCommunicator, CollectivesOverLoopback) {
  const int port = parallel::free_local_port();
  std::vector<std::vector<torch::Tensor>> gathered(2), uneven(2), gathered_bf16(2);
  std::vector<torch::Tensor> reduced(2), reduced_bf16(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 2; ++rank)
    ranks.emplace_back([&, rank] {
      try {
        parallel::Rendezvous r;
        r.rank = rank;
        r.world_size = 2;
        r.master_port = port;
        parallel::GlooCommunicator comm(r, 60);
        EXPECT_EQ(comm.rank(), rank);
        EXPECT_EQ(comm.size(), 2);
        gathered[rank] = comm.all_gather(torch::full({2, 3}, static_cast<float>(rank + 1)));
        reduced[rank] = torch::arange(5, torch::kFloat64) * (rank + 1);
        comm.all_reduce_sum(reduced[rank]);
        uneven[rank] = comm.all_gather_uneven(torch::ones({rank + 1, 2}), 0);
        // bfloat16, which Gloo itself refuses ("Invalid scalar type"): carried as float32.
        gathered_bf16[rank] = comm.all_gather(torch::full({2}, 1.5 * (rank + 1), torch::kBFloat16));
        reduced_bf16[rank] = torch::full({3}, 0.25 * (rank + 1), torch::kBFloat16);
        comm.all_reduce_sum(reduced_bf16[rank]);
      } catch (const std::exception& e) {
        errors[rank] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  for (int rank = 0; rank < 2; ++rank) {
    ASSERT_EQ(errors[rank], "");
    ASSERT_EQ(gathered[rank].size(), 2u);
    EXPECT_TRUE(torch::equal(gathered[rank][0], torch::full({2, 3}, 1.0f)));
    EXPECT_TRUE(torch::equal(gathered[rank][1], torch::full({2, 3}, 2.0f)));
    EXPECT_TRUE(torch::equal(reduced[rank], torch::arange(5, torch::kFloat64) * 3));
    EXPECT_EQ(uneven[rank][0].size(0), 1);
    EXPECT_EQ(uneven[rank][1].size(0), 2);
    ASSERT_EQ(gathered_bf16[rank].size(), 2u);
    EXPECT_EQ(gathered_bf16[rank][1].scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(gathered_bf16[rank][1], torch::full({2}, 3.0, torch::kBFloat16)));
    EXPECT_EQ(reduced_bf16[rank].scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(reduced_bf16[rank], torch::full({3}, 0.75, torch::kBFloat16)));
  }
}

// Four ranks split into two subgroups of two ({0, 1}, {2, 3}) formed at once over the same store:
// each subgroup's collectives see only its members; the world group still works afterwards.
TEST(GlooCommunicator, SubgroupsOverTheSameStore) {
  const int port = parallel::free_local_port();
  std::vector<torch::Tensor> sub_sum(4), world_sum(4);
  std::vector<std::vector<torch::Tensor>> sub_gathered(4);
  std::vector<std::string> errors(4);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 4; ++rank)
    ranks.emplace_back([&, rank] {
      try {
        parallel::Rendezvous r;
        r.rank = rank;
        r.world_size = 4;
        r.master_port = port;
        parallel::GlooCommunicator world(r, 60);
        parallel::GlooCommunicator sub(world, "cp-" + std::to_string(rank / 2) + "/", rank % 2, 2, 60);
        EXPECT_EQ(sub.rank(), rank % 2);
        EXPECT_EQ(sub.size(), 2);
        sub_sum[rank] = torch::full({3}, static_cast<double>(rank + 1));
        sub.all_reduce_sum(sub_sum[rank]);
        sub_gathered[rank] = sub.all_gather(torch::full({1}, static_cast<float>(rank)));
        world_sum[rank] = torch::ones({2});
        world.all_reduce_sum(world_sum[rank]);
      } catch (const std::exception& e) {
        errors[rank] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  for (int rank = 0; rank < 4; ++rank) {
    ASSERT_EQ(errors[rank], "");
    const int first = rank / 2 * 2;  // the subgroup's first world rank
    EXPECT_TRUE(torch::equal(sub_sum[rank], torch::full({3}, static_cast<double>(first + 1 + first + 2))));
    ASSERT_EQ(sub_gathered[rank].size(), 2u);
    EXPECT_EQ(sub_gathered[rank][0].item<float>(), first);
    EXPECT_EQ(sub_gathered[rank][1].item<float>(), first + 1);
    EXPECT_TRUE(torch::equal(world_sum[rank], torch::full({2}, 4.0f)));
  }
}

TEST(GlooCommunicator, SubgroupThatDoesNotFitIsAnError) {
  const int port = parallel::free_local_port();
  parallel::Rendezvous r;
  r.master_port = port;  // a world of one
  parallel::GlooCommunicator world(r, 10);
  expect_error([&] { parallel::GlooCommunicator(world, "cp-0/", 0, 2, 10); }, "does not fit a group of 1");
  expect_error([&] { parallel::GlooCommunicator(world, "cp-0/", 1, 1, 10); }, "rank 1 of 1");
}

TEST(LaunchLocal, ReturnsTheFirstFailure) {
  EXPECT_EQ(parallel::launch_local(2, {"/bin/sh", "-c", "test \"$WORLD_SIZE\" = 2 && test -n \"$MASTER_PORT\""}), 0);
  EXPECT_EQ(parallel::launch_local(2, {"/bin/sh", "-c", "exit $((RANK * 3))"}), 3);
  expect_error([] { parallel::launch_local(0, {"/bin/true"}); }, "--nproc-per-node must be >= 1");
}
