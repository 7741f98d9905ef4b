#pragma once
// Batches for language-model training from a token dataset (shards.h): rows of L tokens, either
// packed (documents back to back, with their boundaries) or one document per row (truncated and
// padded). The position is three integers, so a checkpoint resumes the exact next batch; ranks of a
// data-parallel group read disjoint rows of the same global batch.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "ipt/data/shards.h"

namespace ipt::data {

enum class BatchLayout { kPacked, kPadded };

constexpr int64_t kIgnoreLabel = -100;  // as in PyTorch's cross_entropy ignore_index

struct LoaderOptions {
  int64_t batch_size = 1;  // rows per rank
  int64_t seq_len = 2048;
  BatchLayout layout = BatchLayout::kPacked;
  int rank = 0;
  int world_size = 1;
  bool shuffle = true;  // document order: a seeded permutation per epoch
  uint64_t seed = 0;
  int64_t pad_id = 0;
};

struct Batch {
  torch::Tensor input_ids;  // [B, L] int64
  torch::Tensor labels;     // [B, L] int64: the next token of the same document, or kIgnoreLabel
  // Per row, offsets of the document pieces in it: [0, …, L]. A piece that continues a document
  // from the previous row starts a new piece (its fast weights and attention start afresh).
  std::vector<std::vector<int64_t>> cu_seqlens;
  int64_t label_tokens() const;  // labels that are not ignored
};

struct LoaderPosition {
  int64_t epoch = 0;
  int64_t index = 0;   // position in the epoch's document order
  int64_t offset = 0;  // tokens of that document already used
  bool operator==(const LoaderPosition& o) const {
    return epoch == o.epoch && index == o.index && offset == o.offset;
  }
};

class Loader {
 public:
  Loader(const Dataset& dataset, LoaderOptions options, LoaderPosition start = {});
  Batch next();
  const LoaderPosition& position() const { return position_; }

 private:
  void fill_row(int64_t* ids, int64_t* labels, std::vector<int64_t>* cu_seqlens);  // null = skip the row
  int64_t current_document() const;
  void advance_document();
  void make_order();

  const Dataset& dataset_;
  LoaderOptions options_;
  LoaderPosition position_;
  std::vector<int64_t> order_;  // documents of the current epoch, in reading order
  std::vector<int64_t> scratch_;
};

}  // namespace ipt::data
