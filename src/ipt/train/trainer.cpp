#include "ipt/train/trainer.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "ipt/common/error.h"
#include "ipt/common/runtime.h"
#include "ipt/common/plot.h"
#include "ipt/common/stopwatch.h"
#include "ipt/model/checkpoint.h"
#include "ipt/model/presets.h"
#include "ipt/model/ttt_keys.h"
#include "ipt/ops/loss/lm_loss.h"
#include "ipt/train/kill_point.h"

namespace ipt::train {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kBucketBytes = 25 << 20;  // gradient all-reduce bucket, as DDP's default

void apply_foundation(const ModelSection& m, model::ModelConfig& c) {
  for (const auto& [name, value] : m.foundation.items())
    model::set_ttt_key(c, *model::find_ttt_key(name), value, "model.foundation." + name);
  c.validate();
}

bool is_ttt_parameter(const std::string& name) { return name.find(".mlp.ttt_") != std::string::npos; }

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds);
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h";
  out << std::setw(s >= 3600 ? 2 : 1) << std::setfill('0') << (s / 60) % 60 << "m" << std::setw(2) << s % 60 << "s";
  return out.str();
}

bool single_piece_rows(const data::Batch& batch) {
  const int64_t L = batch.input_ids.size(1);
  for (const auto& cu : batch.cu_seqlens)
    if (!(cu.size() == 2 && cu[0] == 0 && cu[1] == L)) return false;
  return true;
}

}  // namespace

Trainer::Trainer(TrainConfig config, parallel::Communicator* comm, TrainerOptions options)
    : config_(std::move(config)), comm_(comm), options_(std::move(options)) {
  validate(config_, world());
  accumulation_ = config_.accumulation_steps(world());
  if (cp_size() > 1) {
    const parallel::Communicator* cp = options_.context_parallel;
    IPT_CHECK(cp && cp->size() == cp_size() && cp->rank() == cp_rank(), "train.cp_size ", cp_size(),
              ": rank ", rank(), " needs its context-parallel subgroup (size ", cp_size(), ", rank ", cp_rank(), ")");
  }
  train_data_ = std::make_unique<data::Dataset>(config_.data.train_path.front());
  IPT_CHECK(train_data_->documents() > 0, "data.train_path: ", config_.data.train_path.front(), " holds no documents");
  if (!config_.data.val_path.empty()) val_data_ = std::make_unique<data::Dataset>(config_.data.val_path.front());

  std::string resume_dir;
  if (!options_.resume.empty()) {
    resume_dir = options_.resume == "latest" ? latest_checkpoint(config_.train.output_dir) : options_.resume;
    IPT_CHECK(!resume_dir.empty(), "--resume latest: no checkpoint-STEP directory in ", config_.train.output_dir);
    IPT_CHECK(fs::exists(fs::path(resume_dir) / "trainer_state.json"), "--resume: ", resume_dir,
              " is not a training checkpoint (no trainer_state.json)");
  }
  build_model();
  build_synthetic_mix();
  if (cp_size() > 1) {
    // A row of one document must split into cp_size slices on the TTT chunk grid: fail here, not at step 1.
    int64_t begin, end;
    enter_slice(config_.data.max_seq_len, {}, begin, end);
  }
  if (!resume_dir.empty()) load_checkpoint(resume_dir);
}

void Trainer::build_synthetic_mix() {
  mix_draw_ = std::make_unique<MixDraw>(config_.data.synthetic_mix, config_.train.seed);
  if (!mix_draw_->active()) return;
  IPT_CHECK(!tokenizer_dir_.empty(), "data.synthetic_mix needs the model's tokenizer: set model.tokenizer_path");
  tok::Tokenizer tokenizer = [&] {
    try {
      return tok::Tokenizer::load(tokenizer_dir_);
    } catch (const Error& e) {
      throw Error(std::string("data.synthetic_mix needs the model's tokenizer: ") + e.what());
    }
  }();
  IPT_CHECK(static_cast<int64_t>(tokenizer.vocab_size()) <= model_->config().vocab_size, "data.synthetic_mix: the ",
            "tokenizer in ", tokenizer_dir_, " has ", tokenizer.vocab_size(), " tokens, more than the model's ",
            model_->config().vocab_size);
  data::Haystack haystack(haystack_documents(config_.data.synthetic_haystack, *train_data_, tokenizer));
  SyntheticRowOptions ro;
  ro.seq_len = config_.data.max_seq_len;
  ro.pad_id = std::max<int64_t>(0, model_->config().pad_token_id);
  ro.loss = config_.data.synthetic_loss == "answer" ? SyntheticLoss::kAnswer : SyntheticLoss::kAll;
  synthetic_rows_ = std::make_unique<SyntheticRows>(std::move(tokenizer), std::move(haystack), ro);
  // One sample of each task now, so a task that cannot fit max_seq_len fails before any step.
  for (const auto& [task, fraction] : config_.data.synthetic_mix) {
    if (fraction <= 0) continue;
    try {
      synthetic_rows_->tokens(task, config_.train.seed, nullptr);
    } catch (const Error& e) {
      throw Error("data.synthetic_mix." + task + ": " + e.what() + " (raise data.max_seq_len or drop the task)");
    }
  }
}

Trainer::~Trainer() = default;

void Trainer::build_model() {
  const ModelSection& m = config_.model;
  const int64_t data_vocab = train_data_->meta().vocab_size;
  if (!m.model_path.empty()) {
    model::ModelConfig c = model::ModelConfig::load((fs::path(m.model_path) / "config.json").string());
    apply_foundation(m, c);
    model::LoadOptions load;
    load.drop_in_missing_ttt = true;  // TTT turned on for a plain checkpoint: convert on load
    load.config_override = &c;
    model_ = model::load_model(m.model_path, load);
    tokenizer_dir_ = m.model_path;
  } else {
    model::ModelConfig c = !m.init_preset.empty() ? model::preset_config(m.init_preset, "qwen3", data_vocab)
                                                  : model::ModelConfig::load(m.init_config);
    apply_foundation(m, c);
    model_ = model::CausalLM(c);
    model_->init_weights(config_.train.seed);
  }
  if (!m.tokenizer_path.empty()) tokenizer_dir_ = m.tokenizer_path;
  IPT_CHECK(data_vocab <= model_->config().vocab_size, "data.train_path: the dataset's vocabulary (", data_vocab,
            ") is larger than the model's (", model_->config().vocab_size, ")");
  model_->to(options_.device);
  model_->train();
  model_->set_gradient_checkpointing(config_.train.enable_gradient_checkpointing);

  const bool ttt_only = config_.train.trainable == "ttt";
  for (auto& p : model_->named_parameters()) {
    const bool train = !ttt_only || is_ttt_parameter(p.key());
    p.value().set_requires_grad(train);
    if (train) trainable_.emplace_back(p.key(), p.value());
  }
  IPT_CHECK(!trainable_.empty(), "train.trainable: ttt, but the model has no TTT layers (set model.foundation.ttt_mode ",
            "and ttt_layers)");
  AdamWOptions adam;
  adam.beta1 = config_.train.adam_beta1;
  adam.beta2 = config_.train.adam_beta2;
  adam.eps = config_.train.adam_eps;
  adam.weight_decay = config_.train.weight_decay;
  optimizer_ = std::make_unique<AdamW>(trainable_, adam);

  if (config_.train.enable_mixed_precision) {
    if (cpu_bf16_features().empty())
      std::cerr << "train: enable_mixed_precision: this CPU has no bf16 matrix instructions; bfloat16 products are "
                   "emulated and slower than float32\n";
    compute_model_ = model::CausalLM(model_->config());
    compute_model_->to(options_.device, torch::kBFloat16);
    compute_model_->train();
    compute_model_->set_gradient_checkpointing(config_.train.enable_gradient_checkpointing);
    auto compute_params = compute_model_->named_parameters();
    for (auto& p : compute_model_->named_parameters()) p.value().set_requires_grad(false);
    for (const auto& [name, master] : trainable_) {
      torch::Tensor& p = compute_params[name];
      p.set_requires_grad(true);
      compute_trainable_.emplace_back(name, p);
    }
    // The optimizer writes each updated master into its bf16 copy in the same pass.
    std::vector<torch::Tensor> copies;
    for (const auto& [name, p] : compute_trainable_) copies.push_back(p);
    optimizer_->set_compute_copies(std::move(copies));
  }

  loader_ = std::make_unique<data::Loader>(*train_data_, loader_options());
}

void Trainer::sync_compute_weights() {
  if (!compute_model_ || compute_synced_) return;  // after the first copy, the optimizer keeps them equal
  torch::NoGradGuard no_grad;
  auto compute_params = compute_model_->named_parameters();
  for (const auto& p : model_->named_parameters()) compute_params[p.key()].copy_(p.value());
  compute_synced_ = true;
}

void Trainer::add_compute_gradients() {
  if (!compute_model_) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < trainable_.size(); ++i) {
    torch::Tensor& g = compute_trainable_[i].second.mutable_grad();
    torch::Tensor& master = trainable_[i].second.mutable_grad();
    if (!g.defined()) {
      if (master_grads_fresh_ && master.defined()) master.zero_();
      continue;
    }
    if (!master.defined())  // overwritten below when fresh; a later first gradient adds to zeros
      master = master_grads_fresh_ ? torch::empty_like(trainable_[i].second) : torch::zeros_like(trainable_[i].second);
    // The step's first gradient is converted into the float32 buffer in place (a mixed-type add_
    // would allocate a converted copy of it); later micro-batches add to it.
    if (master_grads_fresh_)
      master.copy_(g);
    else
      master.add_(g);
    g.reset();  // the next backward hands its gradient over instead of adding to zeros
  }
  master_grads_fresh_ = false;
}

data::LoaderOptions Trainer::loader_options() const {
  data::LoaderOptions lo;
  lo.batch_size = config_.train.micro_batch_size;
  lo.seq_len = config_.data.max_seq_len;
  lo.layout = config_.data.layout == "padded" ? data::BatchLayout::kPadded : data::BatchLayout::kPacked;
  // The context-parallel ranks of one data-parallel group read the same rows.
  lo.rank = dp_rank();
  lo.world_size = dp_size();
  lo.shuffle = config_.data.shuffle;
  lo.seed = config_.train.seed;
  lo.pad_id = std::max<int64_t>(0, model_->config().pad_token_id);
  return lo;
}

int64_t Trainer::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : model_->parameters()) n += p.numel();
  return n;
}

int64_t Trainer::trainable_count() const {
  int64_t n = 0;
  for (const auto& [name, p] : trainable_) n += p.numel();
  return n;
}

std::unique_ptr<parallel::ContextParallelScope> Trainer::enter_slice(int64_t length, const std::vector<int64_t>& cu,
                                                                 int64_t& begin, int64_t& end) {
  begin = 0;
  end = length;
  if (cp_size() == 1) return nullptr;
  // Cuts on the TTT chunk grid of the document they fall in, so that no chunk straddles ranks.
  const model::ModelConfig& c = model_->config();
  parallel::SlicePlan plan = parallel::plan_slices(length, cu, c.ttt_mode ? c.ttt_chunk : 0, cp_size());
  begin = plan.begin(cp_rank());
  end = plan.end(cp_rank());
  return std::make_unique<parallel::ContextParallelScope>(*options_.context_parallel, std::move(plan), cu);
}

double Trainer::accumulate(const data::Batch& batch, double scale) {
  const int64_t d = model_->config().hidden_size;
  auto run = [&](const torch::Tensor& ids, const torch::Tensor& labels, const std::vector<int64_t>& cu) -> double {
    // Under context parallelism this rank computes its slice of the rows; labels are the next
    // tokens of the whole row, so a slice's last label is the next rank's first token.
    int64_t begin, end;
    const std::unique_ptr<parallel::ContextParallelScope> scope = enter_slice(ids.size(1), cu, begin, end);
    torch::Tensor hidden = compute()->hidden_states(ids.narrow(1, begin, end - begin).to(options_.device),
                                                    scope ? std::vector<int64_t>{} : cu);
    ops::LmLoss l = ops::lm_loss(hidden.reshape({-1, d}), compute()->head_weight(),
                                 labels.narrow(1, begin, end - begin).reshape({-1}).to(options_.device));
    if (l.counted == 0) {
      // The backward of a slice exchanges gradients with the other slices: every rank runs one.
      if (scope) (hidden.sum() * 0.0).backward();
      return 0.0;
    }
    torch::Tensor nll_sum = l.loss * static_cast<double>(l.counted);
    (nll_sum * scale).backward();
    add_compute_gradients();
    return nll_sum.item<double>();
  };
  // Rows of one document each run as one batch; rows with several packed documents one by one
  // (the model takes document offsets for a single packed row).
  if (single_piece_rows(batch)) return run(batch.input_ids, batch.labels, {});
  double total = 0;
  for (int64_t row = 0; row < batch.input_ids.size(0); ++row)
    total += run(batch.input_ids.narrow(0, row, 1), batch.labels.narrow(0, row, 1), batch.cu_seqlens[row]);
  return total;
}

void Trainer::all_reduce_gradients() {
  if (world() == 1) return;
  torch::NoGradGuard no_grad;
  // Flatten into ~25 MB buckets: few large messages instead of one per tensor.
  std::vector<torch::Tensor> bucket;
  int64_t bytes = 0;
  auto flush = [&] {
    if (bucket.empty()) return;
    std::vector<torch::Tensor> flat;
    for (const auto& g : bucket) flat.push_back(g.reshape({-1}));
    torch::Tensor joined = torch::cat(flat);
    comm_->all_reduce_sum(joined);
    int64_t offset = 0;
    for (auto& g : bucket) {
      g.copy_(joined.narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
    bucket.clear();
    bytes = 0;
  };
  for (auto& [name, p] : trainable_) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);  // every rank sends the same layout
    bucket.push_back(p.grad());
    bytes += p.grad().numel() * p.grad().element_size();
    if (bytes >= kBucketBytes) flush();
  }
  flush();
}

StepResult Trainer::step() {
  IPT_CHECK(step_ < config_.train.max_steps, "train.max_steps (", config_.train.max_steps, ") already reached");
  Stopwatch clock;
  // Read the whole global batch first: the loss of every micro-batch is scaled by the label tokens
  // of the global batch, so k micro-batches sum to exactly the gradient of one batch of k.
  std::vector<data::Batch> micro;
  int64_t local_tokens = 0;
  const int64_t micro_rows = config_.train.micro_batch_size;
  for (int64_t i = 0; i < accumulation_; ++i) {
    micro.push_back(loader_->next());
    // Row index in the global batch: micro-batch i of every data-parallel rank, then that rank, as
    // the loader deals rows (the context-parallel ranks of a group get the same rows).
    const int64_t first_row = (i * dp_size() + dp_rank()) * micro_rows;
    if (synthetic_rows_) apply_mix(*mix_draw_, *synthetic_rows_, step_, first_row, micro.back());
    // The context-parallel ranks of a group hold the same rows: count them once.
    if (cp_rank() == 0) local_tokens += micro.back().label_tokens();
  }
  torch::Tensor counts = torch::tensor({static_cast<double>(local_tokens)}, torch::kFloat64);
  if (comm_) comm_->all_reduce_sum(counts);
  const double global_tokens = counts.item<double>();

  if (compute_model_) {
    master_grads_fresh_ = true;  // the first micro-batch's gradients overwrite the master's
  } else {
    for (auto& [name, p] : trainable_)
      if (p.grad().defined()) p.mutable_grad().zero_();
  }
  sync_compute_weights();
  double nll = 0;
  if (global_tokens > 0)
    for (const data::Batch& b : micro) nll += accumulate(b, 1.0 / global_tokens);
  if (compute_model_ && master_grads_fresh_)  // no backward ran: no gradient this step
    for (auto& [name, p] : trainable_)
      if (p.grad().defined()) p.mutable_grad().zero_();
  all_reduce_gradients();
  torch::Tensor nll_sum = torch::tensor({nll}, torch::kFloat64);
  if (comm_) comm_->all_reduce_sum(nll_sum);

  StepResult r;
  if (mix_draw_->active())
    r.synthetic_fraction = static_cast<double>(mix_draw_->synthetic_rows(step_, config_.train.global_batch_size)) /
                           static_cast<double>(config_.train.global_batch_size);
  r.grad_norm = grad_norm(trainable_);
  r.lr = learning_rate(config_.train, step_);
  kill_point("step", step_ + 1);
  optimizer_->step(r.lr, clip_scale(r.grad_norm, config_.train.max_grad_norm));
  ++step_;
  r.step = step_;
  r.tokens = static_cast<int64_t>(global_tokens);
  r.loss = global_tokens > 0 ? nll_sum.item<double>() / global_tokens : std::nan("");
  const double all_tokens = static_cast<double>(config_.train.global_batch_size * config_.data.max_seq_len);
  r.tokens_per_s = all_tokens / (clock.ms() / 1000.0);
  return r;
}

double Trainer::evaluate() {
  IPT_CHECK(val_data_, "evaluation needs data.val_path");
  torch::NoGradGuard no_grad;
  sync_compute_weights();  // mixed precision: evaluate what the master holds now
  // Every rank reads the same eval_batches x micro_batch_size rows and each data-parallel group
  // scores every dp-th one (its context-parallel ranks a slice each), so the validation loss does
  // not depend on the number of ranks.
  data::LoaderOptions lo;
  lo.batch_size = config_.train.micro_batch_size;
  lo.seq_len = config_.data.max_seq_len;
  lo.layout = config_.data.layout == "padded" ? data::BatchLayout::kPadded : data::BatchLayout::kPacked;
  lo.shuffle = false;  // the same rows every evaluation
  lo.pad_id = std::max<int64_t>(0, model_->config().pad_token_id);
  data::Loader loader(*val_data_, lo);
  const int64_t d = model_->config().hidden_size;
  double nll = 0, counted = 0;
  int64_t row_index = 0;
  for (int64_t i = 0; i < config_.train.eval_batches; ++i) {
    data::Batch b = loader.next();
    for (int64_t row = 0; row < b.input_ids.size(0); ++row, ++row_index) {
      if (row_index % dp_size() != dp_rank()) continue;
      int64_t begin, end;
      const std::unique_ptr<parallel::ContextParallelScope> scope = enter_slice(b.input_ids.size(1), b.cu_seqlens[row],
                                                                            begin, end);
      torch::Tensor hidden =
          compute()->hidden_states(b.input_ids.narrow(0, row, 1).narrow(1, begin, end - begin).to(options_.device),
                                   scope ? std::vector<int64_t>{} : b.cu_seqlens[row]);
      ops::LmLoss l = ops::lm_loss(hidden.reshape({-1, d}), compute()->head_weight(),
                                   b.labels[row].narrow(0, begin, end - begin).to(options_.device));
      nll += l.token_nll.sum().item<double>();
      counted += static_cast<double>(l.counted);
    }
  }
  torch::Tensor sums = torch::tensor({nll, counted}, torch::kFloat64);
  if (comm_) comm_->all_reduce_sum(sums);
  IPT_CHECK(sums[1].item<double>() > 0, "data.val_path: the validation batches hold no tokens");
  return sums[0].item<double>() / sums[1].item<double>();
}

void Trainer::log(const StepResult& r, std::optional<double> val_loss) {
  if (!is_main()) return;
  nlohmann::json j = {{"step", r.step}, {"loss", r.loss}, {"lr", r.lr}, {"tokens_per_s", r.tokens_per_s},
                      {"grad_norm", r.grad_norm}, {"tokens", r.tokens}};
  if (val_loss) j["val_loss"] = *val_loss;
  if (mix_draw_->active()) j["synthetic_fraction"] = r.synthetic_fraction;
  const fs::path metrics = fs::path(config_.train.output_dir) / "metrics.jsonl";
  std::ofstream out(metrics, std::ios::app);
  out << j.dump() << "\n";
  out.flush();
  IPT_CHECK(out.good(), "cannot append to ", metrics.string(), " (is the disk full?)");
}

void Trainer::write_plot() {
  if (!is_main() || !options_.plot) return;
  const fs::path dir(config_.train.output_dir);
  std::ifstream in(dir / "metrics.jsonl");
  PlotSeries train{"train loss", {}, {}}, val{"validation loss", {}, {}};
  for (std::string line; std::getline(in, line);) {
    auto m = nlohmann::json::parse(line, nullptr, false);
    if (m.is_discarded() || !m.contains("step")) continue;
    train.x.push_back(m["step"].get<double>());
    train.y.push_back(m["loss"].get<double>());
    if (m.contains("val_loss")) {
      val.x.push_back(m["step"].get<double>());
      val.y.push_back(m["val_loss"].get<double>());
    }
  }
  if (train.x.empty()) return;
  PlotSpec spec;
  spec.title = "training loss";
  spec.xlabel = "step";
  spec.ylabel = "loss (nats/token)";
  spec.series.push_back(train);
  if (!val.x.empty()) spec.series.push_back(val);
  try {
    plot_png(spec, (dir / "loss.png").string());
  } catch (const Error& e) {
    std::cerr << "warning: no loss plot: " << e.what() << "\n";  // training results stay valid
  }
}

void Trainer::train() {
  const TrainSection& t = config_.train;
  if (is_main()) fs::create_directories(t.output_dir);
  const bool tty = ::isatty(STDERR_FILENO);
  Stopwatch clock;
  const int64_t first = step_;
  while (step_ < t.max_steps) {
    StepResult r = step();
    std::optional<double> val_loss;
    if (t.eval_steps > 0 && (step_ % t.eval_steps == 0 || step_ == t.max_steps)) val_loss = evaluate();
    if (step_ % t.log_steps == 0 || step_ == t.max_steps || val_loss) log(r, val_loss);
    if (is_main() && options_.progress) {
      const double elapsed = clock.ms() / 1000.0;
      const double eta = elapsed / (step_ - first) * (t.max_steps - step_);
      std::ostringstream line;
      line << "step " << step_ << "/" << t.max_steps << "  loss " << std::fixed << std::setprecision(4) << r.loss
           << "  lr " << std::scientific << std::setprecision(2) << r.lr << std::fixed << std::setprecision(0)
           << "  " << r.tokens_per_s << " tok/s  ETA " << format_duration(eta);
      if (mix_draw_->active()) line << "  synthetic " << std::setprecision(2) << r.synthetic_fraction;
      if (val_loss) line << "  val " << std::setprecision(4) << *val_loss;
      if (tty) std::cerr << "\r\033[K" << line.str() << std::flush;
      else if (step_ % t.log_steps == 0 || step_ == t.max_steps || val_loss) std::cerr << line.str() << "\n";
    }
    if ((t.save_steps > 0 && step_ % t.save_steps == 0) || step_ == t.max_steps) {
      const std::string path = save_checkpoint();
      write_plot();
      if (is_main() && options_.progress) std::cerr << (tty ? "\n" : "") << "saved " << path << "\n";
    }
  }
  if (is_main() && options_.progress && tty) std::cerr << "\n";
}

}  // namespace ipt::train
