// Mean NLL of a GGUF model under llama.cpp (built against its llama.h, Feb 2025 API), with
// llama-perplexity's protocol: chunks of CTX tokens, each scored on its second half (targets
// CTX/2+1 … CTX-1). Writes the token ids to ids.txt so the tokenizers can be compared.
// Used by scripts/compare-llama-cpp-nll.sh; not part of the build.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
#include "llama.h"
int main(int argc, char** argv) {
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
      const float* l = llama_get_logits_ith(lctx, i);
      double mx = l[0]; for (int v = 1; v < nv; ++v) mx = std::max(mx, (double)l[v]);
      double s = 0; for (int v = 0; v < nv; ++v) s += std::exp(l[v] - mx);
      total += -(l[chunk[i + 1]] - mx - std::log(s)); ++count;
    }
    llama_batch_free(batch);
  }
  printf("llama.cpp: tokens %d  scored %ld  mean NLL %.6f  PPL %.4f\n", n, count, total / count, std::exp(total / count));
}
