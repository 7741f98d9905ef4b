#include "ipt/train/synthetic_mix.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/data/prepare.h"

namespace ipt::train {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// One 64-bit value per (seed, step, row, stream): independent streams for the draw and the sample.
uint64_t row_hash(uint64_t seed, int64_t step, int64_t row, uint64_t stream) {
  uint64_t h = splitmix64(seed ^ 0x5157a11c5eedULL);
  h = splitmix64(h ^ static_cast<uint64_t>(step));
  h = splitmix64(h ^ static_cast<uint64_t>(row));
  return splitmix64(h ^ stream);
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

}  // namespace

void validate_mix(const std::map<std::string, double>& fractions) {
  const auto& tasks = data::synth_tasks();
  double total = 0;
  for (const auto& [task, fraction] : fractions) {
    IPT_CHECK(std::find(tasks.begin(), tasks.end(), task) != tasks.end(), "data.synthetic_mix.", task,
              ": unknown synthetic task (valid: ", join(tasks, ", "), ")");
    IPT_CHECK(fraction >= 0 && fraction <= 1, "data.synthetic_mix.", task, " must be in [0, 1], got ", fraction);
    total += fraction;
  }
  IPT_CHECK(total <= 1.0 + 1e-9, "data.synthetic_mix fractions add up to ", total, " > 1");
}

MixDraw::MixDraw(const std::map<std::string, double>& fractions, uint64_t seed) : seed_(seed) {
  validate_mix(fractions);
  for (const auto& [task, fraction] : fractions) {
    if (fraction <= 0) continue;
    total_ += fraction;
    cumulative_.emplace_back(task, total_);
  }
}

std::optional<std::string> MixDraw::task_for(int64_t step, int64_t row) const {
  if (!active()) return std::nullopt;
  const double u = static_cast<double>(row_hash(seed_, step, row, 1) >> 11) * 0x1.0p-53;  // uniform in [0, 1)
  for (const auto& [task, upper] : cumulative_)
    if (u < upper) return task;
  return std::nullopt;
}

uint64_t MixDraw::sample_seed(int64_t step, int64_t row) const { return row_hash(seed_, step, row, 2); }

int64_t MixDraw::synthetic_rows(int64_t step, int64_t global_rows) const {
  int64_t n = 0;
  for (int64_t row = 0; row < global_rows; ++row) n += task_for(step, row).has_value();
  return n;
}

SyntheticRows::SyntheticRows(tok::Tokenizer tokenizer, data::Haystack haystack, SyntheticRowOptions options)
    : tokenizer_(std::move(tokenizer)), haystack_(std::move(haystack)), options_(options) {
  IPT_CHECK(options_.seq_len >= 16, "data.max_seq_len ", options_.seq_len,
            " is too short for synthetic tasks (at least 16 tokens; a few hundred to be useful)");
  options_.tokens_to_generate = std::max<int64_t>(1, std::min(options_.tokens_to_generate, options_.seq_len / 4));
}

std::vector<int64_t> SyntheticRows::tokens(const std::string& task, uint64_t seed, int64_t* answer_start) const {
  for (int attempt = 0;; ++attempt) {
    try {
      return draw(task, attempt == 0 ? seed : splitmix64(seed + static_cast<uint64_t>(attempt)), answer_start);
    } catch (const Error& e) {
      if (attempt + 1 == kDraws)
        throw Error(std::string(e.what()) + " (" + std::to_string(kDraws) + " draws from seed " + std::to_string(seed) + ")");
    }
  }
}

std::vector<int64_t> SyntheticRows::draw(const std::string& task, uint64_t seed, int64_t* answer_start) const {
  const data::TokenCounter count = [&](const std::string& s) { return static_cast<int64_t>(tokenizer_.encode(s).size()); };
  auto sample_tokens = [&](int64_t answer_budget, int64_t* prompt_tokens) {
    data::SynthOptions so;
    so.task = task;
    so.max_length = options_.seq_len + 1;  // a row of L inputs uses L + 1 tokens (the last label)
    so.tokens_to_generate = answer_budget;
    so.seed = seed;
    const data::SynthSample sample = data::generate(so, haystack_, count);
    // Prompt and answer are encoded apart, as a model sees them when it generates the answer.
    std::vector<int64_t> ids;
    for (int32_t id : tokenizer_.encode(sample.input)) ids.push_back(id);
    *prompt_tokens = static_cast<int64_t>(ids.size());
    for (int32_t id : tokenizer_.encode(" " + join(sample.answers, ", "))) ids.push_back(id);
    if (auto eos = tokenizer_.eos_id()) ids.push_back(*eos);
    return ids;
  };
  int64_t prompt = 0;
  std::vector<int64_t> ids = sample_tokens(options_.tokens_to_generate, &prompt);
  // Again with the answer's real size as the budget, so the haystack fills the row instead of
  // padding; kept only if it still fits (the answer may differ with the haystack size).
  const int64_t answer = static_cast<int64_t>(ids.size()) - prompt;
  if (answer < options_.tokens_to_generate) {
    int64_t tight_prompt = 0;
    std::vector<int64_t> tight = sample_tokens(std::max<int64_t>(answer, 1), &tight_prompt);
    if (static_cast<int64_t>(tight.size()) <= options_.seq_len + 1) {
      ids = std::move(tight);
      prompt = tight_prompt;
    }
  }
  if (answer_start) *answer_start = prompt;
  return ids;
}

void SyntheticRows::fill(const std::string& task, uint64_t seed, int64_t* ids, int64_t* labels,
                         std::vector<int64_t>* cu_seqlens) const {
  const int64_t L = options_.seq_len;
  int64_t answer_start = 0;
  const std::vector<int64_t> seq = tokens(task, seed, &answer_start);
  // Longer than L + 1 only when the answer outgrows its budget: the end is cut, as the loader cuts documents.
  const int64_t n = std::min<int64_t>(L, static_cast<int64_t>(seq.size()));
  for (int64_t i = 0; i < n; ++i) {
    ids[i] = seq[i];
    const bool has_next = i + 1 < static_cast<int64_t>(seq.size());
    const bool counted = options_.loss == SyntheticLoss::kAll || i + 1 >= answer_start;
    labels[i] = has_next && counted ? seq[i + 1] : data::kIgnoreLabel;
  }
  std::fill(ids + n, ids + L, options_.pad_id);
  std::fill(labels + n, labels + L, data::kIgnoreLabel);
  *cu_seqlens = n < L ? std::vector<int64_t>{0, n, L} : std::vector<int64_t>{0, L};  // padding: a piece of its own
}

std::vector<std::string> haystack_documents(const std::vector<std::string>& paths, const data::Dataset& dataset,
                                            const tok::Tokenizer& tokenizer, size_t max_chars) {
  std::vector<std::string> documents;
  size_t chars = 0;
  if (!paths.empty()) {
    for (const std::string& path : data::list_input_files(paths)) {
      std::ifstream in(path, std::ios::binary);
      IPT_CHECK(in, "data.synthetic_haystack: cannot read ", path);
      std::stringstream text;
      text << in.rdbuf();
      documents.push_back(text.str());
    }
    return documents;
  }
  // The training text itself, decoded: enough documents for varied sentences and words, bounded
  // so that a large dataset is not decoded whole.
  for (int64_t doc = 0; doc < dataset.documents() && chars < max_chars; ++doc) {
    const std::vector<int64_t> ids = dataset.document(doc);
    std::vector<int32_t> ids32(ids.begin(), ids.end());
    documents.push_back(tokenizer.decode(ids32, /*skip_special_tokens=*/true));
    chars += documents.back().size();
  }
  return documents;
}

int64_t apply_mix(const MixDraw& draw, const SyntheticRows& rows, int64_t step, int64_t first_row, data::Batch& batch) {
  if (!draw.active()) return 0;
  const int64_t B = batch.input_ids.size(0), L = batch.input_ids.size(1);
  int64_t* ids = batch.input_ids.data_ptr<int64_t>();
  int64_t* labels = batch.labels.data_ptr<int64_t>();
  int64_t replaced = 0;
  for (int64_t row = 0; row < B; ++row) {
    const auto task = draw.task_for(step, first_row + row);
    if (!task) continue;
    rows.fill(*task, draw.sample_seed(step, first_row + row), ids + row * L, labels + row * L, &batch.cu_seqlens[row]);
    ++replaced;
  }
  return replaced;
}

}  // namespace ipt::train
