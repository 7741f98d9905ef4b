#include "ipt/data/loader.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "ipt/common/error.h"

namespace ipt::data {

int64_t Batch::label_tokens() const { return (labels != kIgnoreLabel).sum().item<int64_t>(); }

Loader::Loader(const Dataset& dataset, LoaderOptions options, LoaderPosition start)
    : dataset_(dataset), options_(options), position_(start) {
  IPT_CHECK(options.batch_size > 0, "batch size must be > 0, got ", options.batch_size);
  IPT_CHECK(options.seq_len > 0, "sequence length must be > 0, got ", options.seq_len);
  IPT_CHECK(options.world_size > 0 && options.rank >= 0 && options.rank < options.world_size, "rank ", options.rank,
            " is outside a world of ", options.world_size);
  IPT_CHECK(dataset.documents() > 0, "the dataset has no documents");
  IPT_CHECK(start.epoch >= 0 && start.index >= 0 && start.index < dataset.documents() && start.offset >= 0,
            "loader position (epoch ", start.epoch, ", document ", start.index, ", offset ", start.offset,
            ") is outside this dataset of ", dataset.documents(), " documents");
  make_order();
  IPT_CHECK(start.offset < dataset.document_length(current_document()), "loader position offset ", start.offset,
            " is past the end of its document");
}

void Loader::make_order() {
  order_.resize(dataset_.documents());
  std::iota(order_.begin(), order_.end(), 0);
  if (options_.shuffle) {
    std::mt19937_64 rng(options_.seed * 1000003ULL + static_cast<uint64_t>(position_.epoch));
    std::shuffle(order_.begin(), order_.end(), rng);
  }
}

int64_t Loader::current_document() const { return order_[position_.index]; }

void Loader::advance_document() {
  position_.offset = 0;
  if (++position_.index == static_cast<int64_t>(order_.size())) {
    position_.index = 0;
    position_.epoch += 1;
    make_order();
  }
}

void Loader::fill_row(int64_t* ids, int64_t* labels, std::vector<int64_t>* cu_seqlens) {
  const int64_t L = options_.seq_len;
  if (cu_seqlens) cu_seqlens->assign(1, 0);
  int64_t filled = 0;
  while (filled < L) {
    const int64_t doc = current_document(), length = dataset_.document_length(doc);
    const int64_t n = std::min(L - filled, length - position_.offset);
    if (ids) {
      // One token more than the piece, when the document has it: the last label.
      const int64_t with_next = std::min(n + 1, length - position_.offset);
      scratch_.resize(with_next);
      dataset_.read(doc, position_.offset, with_next, scratch_.data());
      std::copy(scratch_.begin(), scratch_.begin() + n, ids + filled);
      for (int64_t i = 0; i < n; ++i) labels[filled + i] = i + 1 < with_next ? scratch_[i + 1] : kIgnoreLabel;
    }
    filled += n;
    if (cu_seqlens) cu_seqlens->push_back(filled);
    position_.offset += n;
    if (options_.layout == BatchLayout::kPadded) {
      advance_document();  // one document per row; the rest of a long document is dropped
      break;
    }
    if (position_.offset == length) advance_document();
  }
  if (ids && filled < L) {
    std::fill(ids + filled, ids + L, options_.pad_id);
    std::fill(labels + filled, labels + L, kIgnoreLabel);
    if (cu_seqlens) cu_seqlens->push_back(L);  // the padding is a piece of its own
  }
}

Batch Loader::next() {
  const int64_t B = options_.batch_size, L = options_.seq_len;
  Batch batch;
  batch.input_ids = torch::empty({B, L}, torch::kInt64);
  batch.labels = torch::empty({B, L}, torch::kInt64);
  batch.cu_seqlens.resize(B);
  int64_t* ids = batch.input_ids.data_ptr<int64_t>();
  int64_t* labels = batch.labels.data_ptr<int64_t>();
  // The global batch is world_size * B rows in stream order; this rank's rows are its block.
  for (int r = 0; r < options_.world_size; ++r)
    for (int64_t row = 0; row < B; ++row) {
      if (r == options_.rank)
        fill_row(ids + row * L, labels + row * L, &batch.cu_seqlens[row]);
      else
        fill_row(nullptr, nullptr, nullptr);
    }
  return batch;
}

}  // namespace ipt::data
