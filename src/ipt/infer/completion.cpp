#include "ipt/infer/completion.h"

#include <algorithm>
#include <string_view>

#include "ipt/tokenizer/utf8.h"

namespace ipt::infer {

size_t utf8_safe_end(const std::string& s, size_t end) {
  size_t i = end, back = 0;
  while (i > 0 && back < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) --i, ++back;
  if (i == 0) return end;
  const auto lead = static_cast<unsigned char>(s[i - 1]);
  const size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  return back + 1 < need ? i - 1 : end;
}

std::vector<int64_t> prompt_ids(const tok::Tokenizer& tokenizer, const std::string& text, bool at_start) {
  std::vector<int64_t> ids;
  if (at_start && tokenizer.config().add_bos_token && tokenizer.bos_id()) ids.push_back(*tokenizer.bos_id());
  for (int32_t id : tokenizer.encode(text)) ids.push_back(id);
  return ids;
}

Completion complete(Session& session, const tok::Tokenizer& tokenizer, const CompletionRequest& r,
                    const EmitText& emit, DecodeBatcher* batcher) {
  Completion out;
  out.prompt_tokens = static_cast<int64_t>(r.prompt.size());
  if (!r.prompt.empty()) session.append(r.prompt);
  Sampler sampler(r.sampling);
  size_t hold = 0;  // a stop string may still match in the last `hold` bytes
  for (const auto& s : r.stops) hold = std::max(hold, s.size() - 1);
  std::string bytes;
  size_t emitted = 0, scanned = 0;  // bytes handed out; bytes searched for stop strings
  size_t characters = 0;            // code points in `bytes` (text_offset of the next token)
  std::vector<TokenLogprob> scored;  // with logprobs: every generated token, and where its text starts
  std::vector<size_t> starts;
  size_t handed = 0;  // scored tokens given to emit so far
  // The scored tokens not yet handed out whose text starts before byte `end`.
  auto scored_before = [&](size_t end) {
    std::vector<TokenLogprob> part;
    while (handed < scored.size() && starts[handed] < end) part.push_back(scored[handed++]);
    return part;
  };
  bool stop_hit = false, client_gone = false;
  auto on_token = [&](int64_t token) {
    if (r.logprobs >= 0) {  // the logits this token was sampled from (decode runs after the callback)
      scored.push_back(token_logprob(session.last_logits(), token, r.logprobs, r.sample_vocab));
      scored.back().text_offset = characters;
      starts.push_back(bytes.size());
    }
    // One token's bytes appended: no re-decoding of the text so far.
    const std::string piece = tokenizer.decode_bytes({static_cast<int32_t>(token)}, true);
    for (unsigned char c : piece) characters += (c & 0xC0) != 0x80;
    bytes += piece;
    size_t cut = std::string::npos;
    for (const auto& s : r.stops) cut = std::min(cut, bytes.find(s, scanned));
    if (cut != std::string::npos) {
      bytes.resize(cut);
      stop_hit = true;
      return false;
    }
    scanned = bytes.size() > hold ? bytes.size() - hold : 0;  // a match must end in a later token
    const size_t end = utf8_safe_end(bytes, scanned);
    if (emit && end > emitted) {
      // Invalid bytes (a model can emit any byte) become U+FFFD, as in the final text.
      if (!emit(tok::to_valid_utf8(std::string_view(bytes).substr(emitted, end - emitted)), scored_before(end)))
        client_gone = true;
      emitted = end;
    }
    return !client_gone;
  };
  const auto tokens = session.generate(r.max_tokens, sampler, r.stop_ids, on_token, batcher);
  out.completion_tokens = static_cast<int64_t>(tokens.size());
  // Tokens wholly inside a stop string are not part of the answer; the rest are.
  std::vector<TokenLogprob> rest = scored_before(stop_hit ? bytes.size() : std::string::npos);
  // The final text with invalid UTF-8 repaired (a generation can stop inside a character).
  if (emit && !client_gone && (bytes.size() > emitted || !rest.empty()))
    emit(tok::to_valid_utf8(std::string_view(bytes).substr(std::min(emitted, bytes.size()))), rest);
  out.text = stop_hit ? tok::to_valid_utf8(bytes)
                      : tokenizer.decode(std::vector<int32_t>(tokens.begin(), tokens.end()), true);
  out.finish_reason = stop_hit || session.stopped_at_stop() ? "stop" : "length";
  if (r.logprobs >= 0) out.logprobs.assign(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(handed));
  return out;
}

}  // namespace ipt::infer
