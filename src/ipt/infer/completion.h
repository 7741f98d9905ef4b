#pragma once
// One completion on a session: append the prompt, generate until a stop token, a stop string or
// max_tokens, and hand the text out as it becomes final — never part of a UTF-8 character, never
// the start of a stop string that may still match (it is held back until it cannot).
//
//   CompletionRequest r{prompt_ids, 64, sampling, {"\n\n"}, {eos}};
//   Completion c = complete(session, tokenizer, r, [](const std::string& text, auto) { std::cout << text; return true; });
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ipt/infer/openai.h"
#include "ipt/infer/sampler.h"
#include "ipt/infer/session.h"
#include "ipt/tokenizer/tokenizer.h"

namespace ipt::infer {

class DecodeBatcher;

struct CompletionRequest {
  std::vector<int64_t> prompt;  // tokens appended first (may be empty: continue the session)
  int64_t max_tokens = 0;
  SamplerOptions sampling;
  std::vector<std::string> stops;  // stop strings: the text ends before the first match
  std::vector<int64_t> stop_ids;   // stop tokens (not part of the text)
  int64_t logprobs = -1;           // -1: none; else how many top alternatives per token
  int64_t sample_vocab = 0;        // logprobs only over ids below this (0: all)
};

struct Completion {
  std::string text, finish_reason;  // finish_reason: "stop" or "length"
  int64_t prompt_tokens = 0, completion_tokens = 0;
  std::vector<TokenLogprob> logprobs;  // with logprobs >= 0: the returned text's tokens
};

// Text as it becomes final (valid UTF-8) and the scored tokens whose text starts in it; return
// false to stop (the client is gone).
using EmitText = std::function<bool(const std::string& text, std::vector<TokenLogprob> tokens)>;

// Runs one completion; `emit` may be empty (only the result is wanted). `batcher` (optional) lets
// concurrent completions decode in shared steps.
Completion complete(Session& session, const tok::Tokenizer& tokenizer, const CompletionRequest& request,
                    const EmitText& emit = {}, DecodeBatcher* batcher = nullptr);

// Token ids of a prompt: the tokenizer's BOS first when `at_start` (the session is empty) and its
// config asks for one (add_bos_token), then the text. A chat template's text writes its own.
std::vector<int64_t> prompt_ids(const tok::Tokenizer& tokenizer, const std::string& text, bool at_start);

// Bytes of `s` up to `end` without a trailing incomplete UTF-8 sequence.
size_t utf8_safe_end(const std::string& s, size_t end);

}  // namespace ipt::infer
