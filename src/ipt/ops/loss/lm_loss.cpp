#include "ipt/ops/loss/lm_loss.h"

#include "ipt/common/error.h"

namespace ipt::ops {

namespace {

// Softmax statistics, the loss and the head's gradient sum in float32 at least: in bfloat16 a
// log-sum-exp over a vocabulary keeps ~3 significant digits.
torch::Dtype stat_type(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// When every row fits in one block and that block's probabilities take at most this much, the
// forward keeps them for the backward instead of it recomputing the logits (a product as large as
// the head's forward: a tenth of a SmolLM2-135M training step at 512 tokens). Memory stays
// bounded by one block, as the forward already needs; it only lives longer.
constexpr int64_t kKeepProbabilitiesBytes = int64_t{256} << 20;

// Forward saves hidden, head, labels and each row's log-sum-exp (and the probabilities, above);
// backward rebuilds a block of logits at a time: d logits = (softmax - onehot) / counted.
struct BlockedLmLoss : public torch::autograd::Function<BlockedLmLoss> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor hidden, torch::Tensor head,
                               torch::Tensor labels, int64_t block_rows, int64_t ignore_index,
                               torch::Tensor* token_nll_out, int64_t* counted_out) {
    const int64_t N = hidden.size(0);
    torch::Tensor lse = torch::empty({N}, hidden.options().dtype(stat_type(hidden)));
    torch::Tensor nll = torch::zeros({N}, lse.options());
    torch::Tensor valid = labels != ignore_index;
    torch::Tensor safe_labels = labels.clamp_min(0);
    const bool keep = N <= block_rows && N * head.size(0) * lse.element_size() <= kKeepProbabilitiesBytes;
    torch::Tensor probabilities;  // [N, V] when kept
    for (int64_t begin = 0; begin < N; begin += block_rows) {
      const int64_t n = std::min(block_rows, N - begin);
      torch::Tensor logits = torch::mm(hidden.narrow(0, begin, n), head.t()).to(lse.scalar_type());  // [n, V]
      torch::Tensor block_lse = torch::logsumexp(logits, 1);
      lse.narrow(0, begin, n).copy_(block_lse);
      torch::Tensor picked = logits.gather(1, safe_labels.narrow(0, begin, n).unsqueeze(1)).squeeze(1);
      nll.narrow(0, begin, n).copy_((block_lse - picked) * valid.narrow(0, begin, n).to(lse.scalar_type()));
      if (keep) probabilities = logits.sub_(block_lse.unsqueeze(1)).exp_();
    }
    const int64_t counted = valid.sum().item<int64_t>();
    *token_nll_out = nll;
    *counted_out = counted;
    ctx->save_for_backward({hidden, head, labels, lse, probabilities});
    ctx->saved_data["block_rows"] = block_rows;
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["counted"] = counted;
    return counted > 0 ? nll.sum() / static_cast<double>(counted) : nll.sum() * 0.0;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    torch::Tensor hidden = saved[0], head = saved[1], labels = saved[2], lse = saved[3], probabilities = saved[4];
    const int64_t block_rows = ctx->saved_data["block_rows"].toInt();
    const int64_t ignore_index = ctx->saved_data["ignore_index"].toInt();
    const int64_t counted = ctx->saved_data["counted"].toInt();
    torch::Tensor d_hidden = torch::zeros_like(hidden);
    // Several blocks sum the head's gradient in float32; one block's product is the gradient.
    const bool one_block = hidden.size(0) <= block_rows;
    torch::Tensor d_head = one_block && counted > 0 ? torch::Tensor()
                                                    : torch::zeros(head.sizes(), head.options().dtype(lse.scalar_type()));
    if (counted > 0) {
      const double scale = grad_outputs[0].item<double>() / static_cast<double>(counted);
      const int64_t N = hidden.size(0);
      for (int64_t begin = 0; begin < N; begin += block_rows) {
        const int64_t n = std::min(block_rows, N - begin);
        torch::Tensor h = hidden.narrow(0, begin, n), y = labels.narrow(0, begin, n);
        // softmax - onehot, zero on ignored rows, times the upstream scale; the kept probabilities
        // are only read (a retained graph may run this backward again).
        const torch::Tensor row_scale = (y != ignore_index).to(lse.scalar_type()).mul_(scale).unsqueeze(1);
        torch::Tensor g = probabilities.defined() ? probabilities * row_scale
                                                  : torch::mm(h, head.t())
                                                        .to(lse.scalar_type())
                                                        .sub_(lse.narrow(0, begin, n).unsqueeze(1))
                                                        .exp_()
                                                        .mul_(row_scale);
        g.scatter_add_(1, y.clamp_min(0).unsqueeze(1), -row_scale);
        const torch::Tensor g_compute = g.to(head.scalar_type());  // products in the compute type
        d_hidden.narrow(0, begin, n).copy_(torch::mm(g_compute, head));
        if (one_block) d_head = torch::mm(g_compute.t(), h);
        else if (d_head.scalar_type() == h.scalar_type()) d_head.addmm_(g_compute.t(), h);
        else d_head.add_(torch::mm(g_compute.t(), h));
      }
    }
    return {d_hidden, d_head.to(head.scalar_type()), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

LmLoss lm_loss(const torch::Tensor& hidden, const torch::Tensor& head, const torch::Tensor& labels,
               const LmLossOptions& options) {
  IPT_CHECK(hidden.dim() == 2, "lm_loss: hidden must be [N, d], got ", hidden.sizes());
  IPT_CHECK(head.dim() == 2 && head.size(1) == hidden.size(1), "lm_loss: head must be [V, ", hidden.size(1),
            "], got ", head.sizes());
  IPT_CHECK(labels.dim() == 1 && labels.size(0) == hidden.size(0) && labels.scalar_type() == torch::kInt64,
            "lm_loss: labels must be int64 [", hidden.size(0), "]");
  IPT_CHECK(hidden.scalar_type() == head.scalar_type(), "lm_loss: hidden and head must share one dtype");
  IPT_CHECK(options.block_rows > 0, "lm_loss: block_rows must be > 0");
  const int64_t vocab = head.size(0);
  torch::Tensor bad = (labels != options.ignore_index) & ((labels < 0) | (labels >= vocab));
  IPT_CHECK(!bad.any().item<bool>(), "lm_loss: a label is outside the vocabulary [0, ", vocab, ")");
  LmLoss result;
  result.loss = BlockedLmLoss::apply(hidden, head, labels, options.block_rows, options.ignore_index,
                                     &result.token_nll, &result.counted);
  return result;
}

}  // namespace ipt::ops
