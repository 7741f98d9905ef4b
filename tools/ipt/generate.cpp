// ipt generate: text (or token ids) in, a continuation streamed to stdout, a stats line on stderr.
// Flags as llama.cpp users know them; --session FILE keeps the conversation's memory (KV caches
// and fast weights) across runs.
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "command.h"
#include "model_flags.h"
#include "inputs.h"
#include "ipt/common/error.h"
#include "ipt/common/stopwatch.h"
#include "ipt/infer/chat.h"
#include "ipt/infer/completion.h"
#include "ipt/infer/session.h"
#include "ipt/model/checkpoint.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::cli {
namespace {

namespace fs = std::filesystem;

struct GenerateOptions {
  std::string model, prompt, prompt_file, ids_file, session_file, decode_update;
  int64_t n_predict = 128, context = 0, prefill_chunk = 512;
  std::optional<double> clip;
  bool no_ttt = false, ignore_eos = false, chat = false;
  infer::SamplerOptions sampling;
  DtypeFlag dtype;
  DecodeQuantFlag decode_quant;
  DeviceFlag device;
};


int run(const GenerateOptions& o) {
  torch::NoGradGuard no_grad;
  const int given = !o.prompt.empty() + !o.prompt_file.empty() + !o.ids_file.empty();
  IPT_CHECK(given == 1, "generate: give exactly one of -p TEXT, -f FILE and --ids FILE");
  IPT_CHECK(o.n_predict >= 0, "generate: -n must be >= 0, got ", o.n_predict);
  infer::validate(o.sampling);
  const bool text_mode = o.ids_file.empty();
  std::optional<tok::Tokenizer> tokenizer;
  if (text_mode || fs::exists(fs::path(o.model) / "tokenizer.json")) {
    IPT_CHECK(fs::exists(fs::path(o.model) / "tokenizer.json"), "generate: the model directory ", o.model,
              " has no tokenizer.json; copy one in (ipt init --tokenizer DIR) or pass token ids with --ids FILE");
    tokenizer = tok::Tokenizer::load(o.model);
  }
  IPT_CHECK(!o.chat || text_mode, "generate: --chat needs a text prompt (-p or -f)");
  model::LoadOptions load;
  load.device = o.device.resolve("generate");
  load.dtype = o.dtype.resolve(o.model, "generate", load.device);
  load.decode_quantization = o.decode_quant.resolve();
  model::CausalLM lm = model::load_model(o.model, load);

  infer::SessionOptions so;
  so.ttt = !o.no_ttt;
  if (!o.decode_update.empty()) so.decode_update = o.decode_update == "on";
  so.ttt_clip = o.clip;
  so.context = o.context;
  so.prefill_chunk = o.prefill_chunk;
  if (tokenizer) so.sample_vocab = static_cast<int64_t>(tokenizer->vocab_size());  // only ids it can decode
  const bool resume = !o.session_file.empty() && fs::exists(o.session_file);
  infer::Session session = resume ? infer::Session::load(lm, o.session_file) : infer::Session(lm, so);
  if (resume)
    std::cerr << "session " << o.session_file << ": " << session.position() << " tokens, "
              << session.ttt_updates() << " fast-weight updates so far (its own TTT options apply)\n";

  std::vector<int64_t> prompt;
  std::optional<infer::ChatTemplate> chat;
  if (!text_mode) {
    prompt = parse_token_ids(read_input(o.ids_file), o.ids_file);
  } else {
    std::string text = o.prompt_file.empty() ? o.prompt : read_input(o.prompt_file);
    if (o.chat) {
      chat = infer::ChatTemplate::detect(*tokenizer, o.model);
      text = chat->render({{"user", text}});
    }
    prompt = infer::prompt_ids(*tokenizer, text, session.position() == 0 && !chat);  // a template writes its BOS
  }
  IPT_CHECK(!prompt.empty(), "generate: the prompt is empty");

  std::vector<int64_t> stops;
  if (!o.ignore_eos) {
    stops = lm->config().eos_token_ids;
    if (tokenizer && tokenizer->eos_id()) stops.push_back(*tokenizer->eos_id());
    if (chat) stops.insert(stops.end(), chat->stop_ids().begin(), chat->stop_ids().end());
  }

  const int64_t updates_before = session.ttt_updates();
  Stopwatch prefill_watch;
  session.append(prompt);
  const double prefill_s = prefill_watch.ms() / 1000;
  const int64_t updates_after_prompt = session.ttt_updates();

  // Stream: text through infer::complete (whole UTF-8 characters, each token decoded once); token
  // ids as numbers without a tokenizer.
  int64_t generated = 0;
  Stopwatch decode_watch;
  if (tokenizer) {
    infer::CompletionRequest request;  // the prompt is already in the session
    request.max_tokens = o.n_predict;
    request.sampling = o.sampling;
    request.stop_ids = stops;
    generated = infer::complete(session, *tokenizer, request, [](const std::string& text, auto) {
                  std::cout << text << std::flush;
                  return true;
                }).completion_tokens;
  } else {
    infer::Sampler sampler(o.sampling);
    auto print_id = [&](int64_t token) {
      std::cout << (generated++ == 0 ? "" : " ") << token << std::flush;
      return true;
    };
    session.generate(o.n_predict, sampler, stops, print_id);
  }
  const double decode_s = decode_watch.ms() / 1000;
  std::cout << std::endl;
  if (!o.session_file.empty()) session.save(o.session_file);

  std::cerr << std::fixed << std::setprecision(1) << "prompt " << prompt.size() << " tokens, "
            << prompt.size() / std::max(prefill_s, 1e-9) << " tok/s | generated " << generated << " tokens, "
            << generated / std::max(decode_s, 1e-9) << " tok/s | fast-weight updates " << updates_after_prompt - updates_before
            << " in prefill, " << session.ttt_updates() - updates_after_prompt << " while decoding"
            << (session.stopped_at_stop() ? " | stopped at end-of-turn" : "") << "\n";
  return 0;
}

Register generate_command("", [](CLI::App& parent) -> Action {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = parent.add_subcommand("generate", "continue a prompt, streaming tokens to stdout");
  add_model_option(cmd, o->model);
  o->dtype.add_to(cmd);
  o->decode_quant.add_to(cmd);
  o->device.add_to(cmd);
  cmd->add_option("-p,--prompt", o->prompt, "prompt text");
  cmd->add_option("-f,--file", o->prompt_file, "read the prompt from a file");
  cmd->add_option("--ids", o->ids_file, "prompt as whitespace-separated token ids (prints ids; no tokenizer needed)");
  cmd->add_option("-n,--n-predict", o->n_predict, "tokens to generate (default 128)");
  cmd->add_option("-c,--ctx-size", o->context, "context size in tokens (default: the model's max_position_embeddings)");
  cmd->add_option("--temp", o->sampling.temperature, "temperature (0 = greedy; default 0.8)");
  cmd->add_option("--top-k", o->sampling.top_k, "top-k (0 = off; default 40)");
  cmd->add_option("--top-p", o->sampling.top_p, "top-p (1 = off; default 0.95)");
  cmd->add_option("--min-p", o->sampling.min_p, "min-p (0 = off; default 0.05)");
  cmd->add_option("--repeat-penalty", o->sampling.repeat_penalty, "repeat penalty (1 = off; default 1)");
  cmd->add_option("--repeat-last-n", o->sampling.repeat_last_n, "tokens the penalty looks back (default 64)");
  cmd->add_option("--seed", o->sampling.seed, "sampling seed (default 0)");
  cmd->add_flag("--no-ttt", o->no_ttt, "keep the fast weights at W0 (the plain model)");
  cmd->add_option("--ttt-decode-update", o->decode_update, "on: update while decoding (default: the model's "
                  "ttt_decode_update; on is what the official inference does); off: no update after the prompt")->check(CLI::IsMember({"on", "off"}));
  cmd->add_option("--ttt-clip", o->clip, "clip each fast-weight update's norm (default: the model's ttt_clip)");
  cmd->add_option("--session", o->session_file, "session file: continue it if it exists, save it at the end");
  cmd->add_option("--prefill-chunk", o->prefill_chunk, "tokens per prefill step (default 512)");
  cmd->add_flag("--chat", o->chat, "wrap the prompt as one user message in the model's chat template");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "do not stop at end-of-sequence tokens");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace ipt::cli
