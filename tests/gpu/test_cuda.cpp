// The CUDA path against CPU references: fused attention (every mask) in float32 and bf16 with
// gradients, the TTT operator (scan and recurrent, forward and gradients, float64 CPU reference),
// the decoder's logits, a training step's gradients, session prefill + decode, and NCCL collectives
// over two GPUs. Every test skips, saying why, where no GPU can be used: the default build links
// Debian's CPU libtorch, and a torch2 build on a machine without a GPU sees none.
// scripts/device-check.sh runs this binary on a lent GPU machine.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <thread>

#include "ipt/common/device.h"
#include "ipt/common/error.h"
#include "ipt/parallel/gloo.h"
#include "ipt/infer/session.h"
#include "ipt/model/decoder.h"
#include "ipt/model/presets.h"
#include "ipt/ops/attention/attention.h"
#include "ipt/ops/loss/lm_loss.h"
#include "ipt/ops/ttt/ttt.h"

using namespace ipt;

namespace {

#define REQUIRE_GPU()                                                                                       \
  do {                                                                                                      \
    if (!cuda_usable())                                                                                     \
      GTEST_SKIP() << (IPT_HAS_CUDA_BUILD ? "no GPU visible to this CUDA build"                             \
                                          : "this build links a CPU libtorch (make build-torch2 for CUDA)"); \
  } while (0)

#ifdef IPT_WITH_CUDA
constexpr bool IPT_HAS_CUDA_BUILD = true;
#else
constexpr bool IPT_HAS_CUDA_BUILD = false;
#endif

const torch::Device kGpu(torch::kCUDA, 0);

double rel(const torch::Tensor& ours, const torch::Tensor& ref) {
  torch::Tensor a = ours.to(torch::kCPU, torch::kFloat64), b = ref.to(torch::kCPU, torch::kFloat64);
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

// A `test`-preset model with TTT in layer 1, weights at a scale where outputs are far from uniform.
model::CausalLM small_model(const std::string& arch, int64_t window) {
  model::ModelConfig c = model::preset_config("test", arch, 256);
  c.ttt_mode = true;
  c.ttt_layers = {1};
  c.ttt_chunk = 16;
  c.initializer_range = 0.08;
  if (window > 0) c.layer_window.assign(c.num_hidden_layers, window);
  model::CausalLM lm(c);
  lm->init_weights(3);
  torch::NoGradGuard no_grad;
  torch::manual_seed(4);
  for (auto& p : lm->named_parameters())
    if (p.key().find("ttt_") != std::string::npos) p.value().normal_(0.0, 0.3);
  return lm;
}

model::CausalLM copy_to(const model::CausalLM& from, const torch::Device& device, torch::Dtype dtype) {
  model::CausalLM to(from->config());
  torch::NoGradGuard no_grad;
  auto dst = to->named_parameters();
  for (const auto& p : from->named_parameters()) dst[p.key()].copy_(p.value());
  to->to(device, dtype);
  return to;
}

struct MaskCase {
  std::string name;
  int64_t Hq, Hkv, Lq, Lk, window;
  std::vector<int64_t> cu;
};

}  // namespace

TEST(Cuda, DeviceFlagParses) {
  REQUIRE_GPU();
  EXPECT_TRUE(parse_device("auto").is_cuda());
  EXPECT_EQ(parse_device("cuda:0").index(), 0);
  EXPECT_THROW(parse_device("cuda:" + std::to_string(torch::cuda::device_count())), Error);
  EXPECT_NE(describe_device(kGpu).find("cuda:0 ("), std::string::npos) << describe_device(kGpu);
}

// Fused attention on the GPU against the float64 definition on the CPU, every mask the model uses.
TEST(Cuda, AttentionMatchesCpuDefinition) {
  REQUIRE_GPU();
  const std::vector<MaskCase> cases = {{"causal", 8, 8, 700, 700, 0, {}},
                                       {"gqa", 8, 2, 700, 700, 0, {}},
                                       {"window", 8, 2, 1500, 1500, 200, {}},
                                       {"packed", 4, 2, 900, 900, 0, {0, 1, 300, 301, 900}},
                                       {"packed_window", 4, 2, 900, 900, 64, {0, 500, 900}},
                                       {"query_offset", 8, 2, 300, 1400, 0, {}},
                                       {"decode", 8, 2, 1, 1400, 256, {}}};
  for (const MaskCase& c : cases)
    for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
      torch::manual_seed(11);
      auto o64 = torch::TensorOptions().dtype(torch::kFloat64);
      torch::Tensor q = torch::randn({1, c.Hq, c.Lq, 64}, o64), k = torch::randn({1, c.Hkv, c.Lk, 64}, o64),
                    v = torch::randn({1, c.Hkv, c.Lk, 64}, o64), up = torch::randn({1, c.Hq, c.Lq, 64}, o64);
      ops::AttentionOptions opt;
      opt.window = c.window;
      opt.cu_seqlens = c.cu;
      std::vector<torch::Tensor> gpu{q.to(kGpu, dtype).requires_grad_(), k.to(kGpu, dtype).requires_grad_(),
                                     v.to(kGpu, dtype).requires_grad_()};
      std::vector<torch::Tensor> ref{q.clone().requires_grad_(), k.clone().requires_grad_(), v.clone().requires_grad_()};
      torch::Tensor out = ops::attention(gpu[0], gpu[1], gpu[2], opt);
      torch::Tensor expected = ops::attention_reference(ref[0], ref[1], ref[2], opt);
      // bf16 inputs carry 8 bits of mantissa: outputs within a few bf16 roundings.
      const double tol = dtype == torch::kBFloat16 ? 3e-2 : 1e-4;
      EXPECT_LE(rel(out, expected), tol) << c.name << " " << dtype;
      (out * up.to(kGpu, dtype)).sum().backward();
      (expected * up).sum().backward();
      for (int i = 0; i < 3; ++i) EXPECT_LE(rel(gpu[i].grad(), ref[i].grad()), 3 * tol) << c.name << " grad " << i;
    }
}

// The TTT operator on the GPU (scan, as auto picks there, and recurrent) against the float64
// reference on the CPU: outputs and the gradients of Z, V and W0, with and without clipping.
TEST(Cuda, TttOperatorMatchesCpuReference) {
  REQUIRE_GPU();
  for (double clip : {0.0, 0.5})
    for (ttt::Algorithm algorithm : {ttt::Algorithm::kScan, ttt::Algorithm::kRecurrent}) {
      torch::manual_seed(5);
      auto o64 = torch::TensorOptions().dtype(torch::kFloat64);
      const int64_t L = 1000, d = 96, h = 160;
      torch::Tensor Z = torch::randn({2, L, h}, o64) * 0.3, V = torch::randn({2, L, d}, o64) * 0.3;
      torch::Tensor W0 = torch::randn({d, h}, o64) * 0.1, up = torch::randn({2, L, d}, o64);
      ttt::Options o;
      o.chunk_size = 64;
      o.lr = 0.2;
      o.clip = clip;
      ttt::Options ref_o = o;
      o.algorithm = algorithm;
      ref_o.algorithm = ttt::Algorithm::kReference;
      std::vector<torch::Tensor> gpu{Z.to(kGpu, torch::kFloat32).requires_grad_(),
                                     V.to(kGpu, torch::kFloat32).requires_grad_(),
                                     W0.to(kGpu, torch::kFloat32).requires_grad_()};
      std::vector<torch::Tensor> ref{Z.clone().requires_grad_(), V.clone().requires_grad_(), W0.clone().requires_grad_()};
      torch::Tensor out = ttt::apply(gpu[0], gpu[1], gpu[2], o).out;
      torch::Tensor expected = ttt::apply(ref[0], ref[1], ref[2], ref_o).out;
      EXPECT_LE(rel(out, expected), 1e-4) << ttt::to_string(algorithm) << " clip " << clip;
      (out * up.to(kGpu, torch::kFloat32)).sum().backward();
      (expected * up).sum().backward();
      for (int i = 0; i < 3; ++i)
        EXPECT_LE(rel(gpu[i].grad(), ref[i].grad()), 1e-3) << ttt::to_string(algorithm) << " clip " << clip << " grad " << i;
      // bf16 inputs: float32 masters for the fast weight, products in bf16.
      torch::Tensor out_bf16 =
          ttt::apply(Z.to(kGpu, torch::kBFloat16), V.to(kGpu, torch::kBFloat16), W0.to(kGpu, torch::kBFloat16), o).out;
      EXPECT_LE(rel(out_bf16, expected), 3e-2) << ttt::to_string(algorithm) << " bf16 clip " << clip;
    }
}

// The decoder's logits on the GPU against the same weights on the CPU (float32; bf16 looser),
// with sliding windows and packed documents.
TEST(Cuda, DecoderLogitsMatchCpu) {
  REQUIRE_GPU();
  torch::NoGradGuard no_grad;
  for (const std::string arch : {"qwen3", "llama"})
    for (int64_t window : {0, 24}) {
      model::CausalLM cpu = small_model(arch, window);
      torch::manual_seed(8);
      torch::Tensor ids = torch::randint(0, 256, {1, 150}, torch::kInt64);
      const std::vector<int64_t> cu = {0, 70, 150};
      torch::Tensor expected = cpu->logits(cpu->hidden_states(ids, cu));
      for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
        model::CausalLM gpu = copy_to(cpu, kGpu, dtype);
        torch::Tensor out = gpu->logits(gpu->hidden_states(ids.to(kGpu), cu));
        EXPECT_LE(rel(out, expected), dtype == torch::kBFloat16 ? 5e-2 : 1e-4) << arch << " window " << window << " " << dtype;
      }
    }
}

// One training step's loss and gradients on the GPU equal the CPU's (float32).
TEST(Cuda, TrainingStepGradientsMatchCpu) {
  REQUIRE_GPU();
  model::CausalLM cpu = small_model("qwen3", 0);
  model::CausalLM gpu = copy_to(cpu, kGpu, torch::kFloat32);
  torch::manual_seed(9);
  torch::Tensor ids = torch::randint(0, 256, {2, 96}, torch::kInt64);
  auto loss_of = [&](model::CausalLM& lm, const torch::Tensor& batch) {
    torch::Tensor hidden = lm->hidden_states(batch.narrow(1, 0, 95));
    return ops::lm_loss(hidden.reshape({-1, hidden.size(-1)}), lm->head_weight(), batch.narrow(1, 1, 95).reshape({-1})).loss;
  };
  torch::Tensor l_cpu = loss_of(cpu, ids), l_gpu = loss_of(gpu, ids.to(kGpu));
  EXPECT_LE(rel(l_gpu, l_cpu), 1e-5);
  l_cpu.backward();
  l_gpu.backward();
  auto gpu_params = gpu->named_parameters();
  for (const auto& p : cpu->named_parameters())
    EXPECT_LE(rel(gpu_params[p.key()].grad(), p.value().grad()), 1e-3) << p.key();
}

// A session on the GPU (KV cache and fast weights there) decodes the CPU session's logits.
TEST(Cuda, SessionDecodeMatchesCpu) {
  REQUIRE_GPU();
  model::CausalLM cpu = small_model("qwen3", 0);
  model::CausalLM gpu = copy_to(cpu, kGpu, torch::kFloat32);
  torch::manual_seed(10);
  torch::Tensor prompt = torch::randint(0, 256, {40}, torch::kInt64);
  std::vector<int64_t> ids(prompt.data_ptr<int64_t>(), prompt.data_ptr<int64_t>() + 40);
  infer::SessionOptions so;
  infer::Session s_cpu(cpu, so), s_gpu(gpu, so);
  s_cpu.append(ids);
  s_gpu.append(ids);
  EXPECT_LE(rel(s_gpu.last_logits(), s_cpu.last_logits()), 1e-4);
  for (int step = 0; step < 30; ++step) {  // crosses chunk boundaries (chunk 16): decode updates too
    const int64_t next = s_cpu.last_logits().argmax().item<int64_t>();
    s_cpu.append({next});
    s_gpu.append({next});
    EXPECT_LE(rel(s_gpu.last_logits(), s_cpu.last_logits()), 1e-4) << "step " << step;
  }
}

// NCCL all-reduce and all-gather between two ranks on two GPUs (threads of this process, over a
// loopback TCPStore), the collectives data parallelism uses.
TEST(Cuda, NcclCollectivesOnTwoGpus) {
  REQUIRE_GPU();
  if (torch::cuda::device_count() < 2) GTEST_SKIP() << "NCCL needs two GPUs; this machine has one";
  const int port = parallel::free_local_port();
  std::vector<torch::Tensor> sums(2), gathered(2);
  auto rank_main = [&](int rank) {
    parallel::Rendezvous r;
    r.rank = rank;
    r.world_size = 2;
    r.master_port = port;
    parallel::GlooCommunicator comm(r, 60);
    torch::Tensor t = torch::full({1000}, static_cast<double>(rank + 1), torch::TensorOptions().device(torch::kCUDA, rank));
    comm.all_reduce_sum(t);
    sums[rank] = t.cpu();
    gathered[rank] = torch::cat(comm.all_gather(t.narrow(0, 0, 3))).cpu();
  };
  std::thread a(rank_main, 0), b(rank_main, 1);
  a.join();
  b.join();
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_TRUE(torch::allclose(sums[rank], torch::full({1000}, 3.0))) << rank;
    EXPECT_EQ(gathered[rank].numel(), 6) << rank;
  }
}

// Runs everywhere: --device names are checked, and a GPU that cannot be used says why.
TEST(Device, ParsesAndExplainsWhatIsMissing) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  EXPECT_EQ(parse_device("auto").is_cuda(), cuda_usable());
  for (const std::string bad : {"gpu", "cuda0", "cuda:", "cuda:x", "cuda:-1", "CPU"})
    EXPECT_THROW(parse_device(bad), Error) << bad;
  if (cuda_usable()) return;
  try {
    parse_device("cuda");
    ADD_FAILURE() << "cuda accepted without a usable GPU";
  } catch (const Error& e) {
    const std::string why = IPT_HAS_CUDA_BUILD ? "no GPU is visible" : "this build of ipt has no CUDA";
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
  EXPECT_EQ(describe_device(torch::kCPU), "cpu");
}
