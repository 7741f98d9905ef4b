// Mean NLL of a GGUF model under llama.cpp (built against its llama.h, Feb 2025 API).
//   nll MODEL.gguf TEXT CTX        llama-perplexity's protocol: chunks of CTX tokens, each scored on
//                                  its second half (targets CTX/2+1 … CTX-1). Writes the token ids to
//                                  ids.txt so the tokenizers can be compared.
//   nll MODEL.gguf --ids FILE [T]  the whitespace-separated ids of FILE as one sequence, every target
//                                  1 … n-1 scored (what `ipt score --ids FILE` reports), T threads
//                                  (default 2), F32 KV cache so that an F32 model is F32 throughout.
// Used by scripts/compare-llama-cpp-nll.sh and scripts/bench-llamacpp.sh; not part of the build.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
#include "llama.h"
static double log_softmax_nll(const float* l, int nv, llama_token target) {
  double mx = l[0]; for (int v = 1; v < nv; ++v) mx = std::max(mx, (double)l[v]);
  double s = 0; for (int v = 0; v < nv; ++v) s += std::exp(l[v] - mx);
  return -(l[target] - mx - std::log(s));
}

static int score_ids(const char* model_path, const char* ids_path, int threads) {
  std::ifstream in(ids_path); std::vector<llama_token> ids; long t;
  while (in >> t) ids.push_back((llama_token)t);
  const int n = ids.size();
  if (n < 2) { fprintf(stderr, "%s: need at least 2 token ids\n", ids_path); return 1; }
  llama_backend_init();
  llama_model* model = llama_model_load_from_file(model_path, llama_model_default_params());
  if (!model) { fprintf(stderr, "%s: cannot load\n", model_path); return 1; }
  const int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = n; cp.n_batch = n; cp.n_ubatch = n; cp.n_threads = cp.n_threads_batch = threads;
  cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32;
  llama_context* lctx = llama_init_from_model(model, cp);
  if (!lctx) { fprintf(stderr, "cannot create a context of %d tokens\n", n); return 1; }
  llama_batch batch = llama_batch_init(n, 0, 1);
  for (int k = 0; k < n; ++k) {
    if (ids[k] < 0 || ids[k] >= nv) { fprintf(stderr, "token id %d out of range (vocab %d)\n", ids[k], nv); return 1; }
    batch.token[k] = ids[k]; batch.pos[k] = k; batch.n_seq_id[k] = 1; batch.seq_id[k][0] = 0; batch.logits[k] = true;
  }
  batch.n_tokens = n;
  if (llama_decode(lctx, batch)) { fprintf(stderr, "decode failed\n"); return 1; }
  double total = 0;
  for (int i = 0; i + 1 < n; ++i) total += log_softmax_nll(llama_get_logits_ith(lctx, i), nv, ids[i + 1]);
  printf("{\"tokens\": %d, \"scored\": %d, \"mean_nll\": %.9f, \"ppl\": %.6f}\n", n, n - 1, total / (n - 1),
         std::exp(total / (n - 1)));
  llama_batch_free(batch); llama_free(lctx); llama_model_free(model);
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 4 && std::string(argv[2]) == "--ids") return score_ids(argv[1], argv[3], argc > 4 ? atoi(argv[4]) : 2);
  if (argc < 4) { fprintf(stderr, "usage: %s MODEL.gguf TEXT CTX | MODEL.gguf --ids FILE [THREADS]\n", argv[0]); return 2; }
  const char* model_path = argv[1]; const char* text_path = argv[2]; const int ctx = atoi(argv[3]);
  std::ifstream in(text_path); std::stringstream ss; ss << in.rdbuf(); std::string text = ss.str();
  llama_backend_init();
  llama_model* model = llama_model_load_from_file(model_path, llama_model_default_params());
  const llama_vocab* vocab = llama_model_get_vocab(model);
  std::vector<llama_token> ids(text.size() + 16);
  int n = llama_tokenize(vocab, text.c_str(), text.size(), ids.data(), ids.size(), true, false);
  ids.resize(n);
  std::ofstream out("ids.txt"); for (auto t : ids) out << t << " "; out << "\n"; out.close();
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = ctx; cp.n_batch = ctx; cp.n_ubatch = ctx; cp.n_threads = cp.n_threads_batch = 2;
  llama_context* lctx = llama_init_from_model(model, cp);
  const int nv = llama_vocab_n_tokens(vocab);
  double total = 0; long count = 0;
  for (int c = 0; (c + 1) * ctx <= n; ++c) {
    llama_kv_cache_clear(lctx);
    std::vector<llama_token> chunk(ids.begin() + c * ctx, ids.begin() + (c + 1) * ctx);
    llama_batch batch = llama_batch_init(ctx, 0, 1);
    for (int k = 0; k < ctx; ++k) {
      batch.token[k] = chunk[k]; batch.pos[k] = k; batch.n_seq_id[k] = 1; batch.seq_id[k][0] = 0;
      batch.logits[k] = k >= ctx / 2;
    }
    batch.n_tokens = ctx;
    if (llama_decode(lctx, batch)) { fprintf(stderr, "decode failed\n"); return 1; }
    for (int i = ctx / 2; i < ctx - 1; ++i) {
      total += log_softmax_nll(llama_get_logits_ith(lctx, i), nv, chunk[i + 1]); ++count;
    }
    llama_batch_free(batch);
  }
  printf("llama.cpp: tokens %d  scored %ld  mean NLL %.6f  PPL %.4f\n", n, count, total / count, std::exp(total / count));
}
