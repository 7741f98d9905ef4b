#pragma once
// Synthetic long-context tasks mixed into training batches (data.synthetic_mix, docs/training.md).
//
// Each row of a global batch is identified by (step, global row index); a hash of (train.seed,
// step, row) decides whether that row is replaced by a generated sample of task T (probability
// fraction_T) and seeds the sample. Nothing is stored, so runs are reproducible by seed, resume
// bit-exactly, and give the same rows for any number of ranks or micro-batches.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipt/data/loader.h"
#include "ipt/data/synth.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::train {

// The per-row draw: which task (if any) replaces a row.
class MixDraw {
 public:
  // Fractions must be in [0, 1] and add up to at most 1; task names must be synth_tasks().
  MixDraw(const std::map<std::string, double>& fractions, uint64_t seed);
  bool active() const { return total_ > 0; }  // false: no row is ever replaced
  // The task replacing row `row` (0-based in the global batch) of optimizer step `step`, if any.
  std::optional<std::string> task_for(int64_t step, int64_t row) const;
  uint64_t sample_seed(int64_t step, int64_t row) const;  // the generator's seed for that row
  // Rows of the global batch of `step` (rows 0 .. global_rows-1) that are synthetic.
  int64_t synthetic_rows(int64_t step, int64_t global_rows) const;

 private:
  std::vector<std::pair<std::string, double>> cumulative_;  // task, upper end of its interval in [0, 1)
  double total_ = 0;
  uint64_t seed_;
};

// The checks MixDraw makes, usable before any work (config validation).
void validate_mix(const std::map<std::string, double>& fractions);

enum class SyntheticLoss { kAll, kAnswer };

struct SyntheticRowOptions {
  int64_t seq_len = 2048;
  int64_t pad_id = 0;
  SyntheticLoss loss = SyntheticLoss::kAll;
  int64_t tokens_to_generate = 64;  // answer budget the generator keeps free (clamped to seq_len / 4)
};

// Turns a generated sample into one row of token ids and labels in the loader's conventions.
class SyntheticRows {
 public:
  SyntheticRows(tok::Tokenizer tokenizer, data::Haystack haystack, SyntheticRowOptions options);
  // Writes seq_len ids and labels: prompt, " " + answers joined by ", ", eos (when the tokenizer
  // has one); labels are the next token, kIgnoreLabel past the end and (loss = answer) on the prompt.
  // `cu_seqlens` becomes {0, n, L} when the row is padded after n tokens, else {0, L}.
  void fill(const std::string& task, uint64_t seed, int64_t* ids, int64_t* labels,
            std::vector<int64_t>* cu_seqlens) const;
  // The token sequence of one sample and where its answer starts (exposed for tests). A draw that
  // cannot fit the row (a long key's prompt alone outgrows it) is redrawn from a seed derived from
  // this one, up to kDraws times, so a training run never stops at a step for one unlucky sample.
  std::vector<int64_t> tokens(const std::string& task, uint64_t seed, int64_t* answer_start) const;
  static constexpr int kDraws = 8;
  // One draw from exactly `seed`, no redraw: an Error when it cannot fit (exposed for tests).
  std::vector<int64_t> draw(const std::string& task, uint64_t seed, int64_t* answer_start) const;
  const tok::Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  tok::Tokenizer tokenizer_;
  data::Haystack haystack_;
  SyntheticRowOptions options_;
};

// Haystack documents: the text files under `paths` (files or directories), or, when `paths` is
// empty, the first documents of `dataset` decoded with `tokenizer` (up to about `max_chars`).
std::vector<std::string> haystack_documents(const std::vector<std::string>& paths, const data::Dataset& dataset,
                                            const tok::Tokenizer& tokenizer, size_t max_chars = 4 << 20);

// Replaces the rows of `batch` that the draw picks. `first_row` is the global-batch index of the
// batch's row 0 (rows are consecutive). Returns the number of rows replaced.
int64_t apply_mix(const MixDraw& draw, const SyntheticRows& rows, int64_t step, int64_t first_row, data::Batch& batch);

}  // namespace ipt::train
