#include "ipt/model/score.h"

#include "ipt/common/error.h"
#include "ipt/parallel/context_parallel.h"
#include "ipt/ops/loss/lm_loss.h"

namespace ipt::model {

ScoreResult score_tokens(CausalLM& lm, const std::vector<int64_t>& ids, const ScoreOptions& options) {
  const int64_t n = static_cast<int64_t>(ids.size());
  IPT_CHECK(n >= 2, "score: need at least two tokens, got ", n);
  torch::NoGradGuard no_grad;
  torch::Tensor all = torch::tensor(ids, torch::kInt64).view({1, n}).to(lm->device());

  ScoreResult result;
  result.tokens = n - 1;
  result.slice_end = n;
  // The drift monitor: each TTT layer's MLP appends to its own list during the forward.
  std::vector<GatedMlpImpl*> traced;
  if (options.trace_fast_weights) {
    const ModelConfig& config = lm->config();
    IPT_CHECK(options.context_parallel == nullptr, "score: the fast-weight trace runs in one process (no --cp-size)");
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
      if (!config.is_ttt_layer(l)) continue;
      GatedMlpImpl* mlp = lm->model->layers[l]->as<DecoderLayerImpl>()->mlp.get();
      if (!mlp->ttt().enabled) continue;  // loaded with TTT off
      mlp->set_drift_sink(&result.fast_weight_drift[l]);
      traced.push_back(mlp);
    }
    IPT_CHECK(!traced.empty(), "score: the fast-weight trace needs a model with TTT layers (config ttt_mode, ",
              "ttt_layers) loaded with TTT on");
  }
  struct Untrace {
    std::vector<GatedMlpImpl*>& mlps;
    ~Untrace() {
      for (GatedMlpImpl* m : mlps) m->set_drift_sink(nullptr);
    }
  } untrace{traced};
  torch::Tensor hidden;
  if (parallel::Communicator* comm = options.context_parallel) {
    // Cuts on the TTT chunk grid so that no chunk straddles two ranks.
    const ModelConfig& config = lm->config();
    const int64_t chunk = config.ttt_mode ? config.ttt_chunk : 0;
    parallel::SlicePlan plan = parallel::plan_slices(n, {}, chunk, comm->size());
    result.slice_begin = plan.begin(comm->rank());
    result.slice_end = plan.end(comm->rank());
    parallel::ContextParallelScope scope(*comm, plan);
    hidden = lm->hidden_states(all.narrow(1, result.slice_begin, result.slice_end - result.slice_begin))[0];
  } else {
    hidden = lm->hidden_states(all)[0];
  }
  // Row i predicts token i + 1; the sequence's last row predicts nothing.
  const int64_t rows = std::min(result.slice_end, n - 1) - result.slice_begin;
  torch::Tensor labels = all[0].narrow(0, result.slice_begin + 1, rows).contiguous();
  ops::LmLoss loss = ops::lm_loss(hidden.narrow(0, 0, rows), lm->head_weight(), labels);
  torch::Tensor token_nll = loss.token_nll.to(torch::kFloat64);
  torch::Tensor total = token_nll.sum().reshape({1});
  if (options.context_parallel) {
    options.context_parallel->all_reduce_sum(total);
    if (options.per_token) token_nll = torch::cat(options.context_parallel->all_gather_uneven(token_nll, 0));
  }
  result.total_nll = total.item<double>();
  if (options.per_token) result.token_nll = token_nll.to(torch::kCPU, torch::kFloat32);
  return result;
}

}  // namespace ipt::model
