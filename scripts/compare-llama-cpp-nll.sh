#!/usr/bin/env bash
# Mean NLL of an imported GGUF model under this engine and under llama.cpp, on the same tokens and
# the same scored positions (llama-perplexity's: chunks of CTX tokens, the second half of each).
#   scripts/compare-llama-cpp-nll.sh MODEL_DIR FILE.gguf TEXT LLAMA_CPP_BUILD_DIR [CTX]
# Also checks that our tokenizer gives llama-tokenize's ids for TEXT.
set -euo pipefail
MODEL=$1 GGUF=$2 TEXT=$3 LLAMA=$4 CTX=${5:-512}
IPT=${IPT:-build/ipt}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$LLAMA/bin/llama-tokenize" -m "$GGUF" -f "$TEXT" --ids --log-disable 2>/dev/null | tr -d '[],' > "$WORK/llama.ids"
"$IPT" tokenizer encode --tokenizer "$MODEL" --file "$TEXT" > "$WORK/ours.ids"
if cmp -s <(tr -s ' \n' '\n\n' < "$WORK/llama.ids" | grep -v '^$') <(tr -s ' \n' '\n\n' < "$WORK/ours.ids" | grep -v '^$'); then
  echo "tokenizer: identical ids ($(wc -w < "$WORK/llama.ids") tokens)"
else
  echo "tokenizer: ids DIFFER from llama-tokenize (scoring llama.cpp's ids below)"
fi

"$LLAMA/bin/llama-perplexity" -m "$GGUF" -f "$TEXT" -c "$CTX" -b "$CTX" -t "$(nproc)" 2>&1 | tee "$WORK/ppl.log" |
  grep -E "Final estimate" | sed 's/^/llama.cpp: /'

# Our side: each chunk scored alone, NLL of positions CTX/2+1 … CTX-1 (what llama-perplexity counts).
python3 - "$WORK/llama.ids" "$CTX" "$IPT" "$MODEL" "$WORK" <<'PY'
import json, math, subprocess, sys
ids = open(sys.argv[1]).read().split()
ctx, ipt, model, work = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
total, count = 0.0, 0
for c in range(len(ids) // ctx):
    chunk = ids[c * ctx:(c + 1) * ctx]
    path = f"{work}/chunk{c}.ids"
    open(path, "w").write(" ".join(chunk))
    out = json.loads(subprocess.check_output([ipt, "score", "-m", model, "--ids", path, "--no-ttt", "--json", "--per-token"]))
    nll = out["per_token"]          # nll[i]: token i+1 given tokens 0..i
    first = ctx // 2
    part = nll[first:ctx - 1]       # targets first+1 … ctx-1
    total += sum(part)
    count += len(part)
print(f"ours:      mean NLL {total / count:.6f}  PPL {math.exp(total / count):.4f}  over {count} tokens")
PY
