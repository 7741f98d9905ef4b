#!/usr/bin/env bash
# Mean NLL of an imported GGUF model under this engine and under llama.cpp, on the same tokens and
# the same scored positions (llama-perplexity's protocol: chunks of CTX tokens, second half of each).
#   scripts/compare-llama-cpp-nll.sh MODEL_DIR FILE.gguf TEXT LLAMA_CPP_DIR [CTX]
# LLAMA_CPP_DIR: a llama.cpp checkout built with cmake (build/bin/libllama.so). Also checks that
# our tokenizer gives llama.cpp's ids for TEXT.
set -euo pipefail
MODEL=$1 GGUF=$(realpath "$2") TEXT=$(realpath "$3") LLAMA=$(realpath "$4") CTX=${5:-512}
IPT=$(realpath "${IPT:-build/ipt}")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

g++ -O2 -std=c++17 -I"$LLAMA/include" -I"$LLAMA/ggml/include" "$HERE/llama-cpp-nll.cpp" -o "$WORK/nll" \
  -L"$LLAMA/build/bin" -lllama -lggml -lggml-base -Wl,-rpath,"$LLAMA/build/bin"
(cd "$WORK" && ./nll "$GGUF" "$TEXT" "$CTX" 2>/dev/null)
"$IPT" tokenizer encode --tokenizer "$MODEL" --file "$TEXT" > "$WORK/ours.ids"
python3 - "$WORK" "$CTX" "$IPT" "$MODEL" <<'PY'
import json, math, subprocess, sys
work, ctx, ipt, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ids = open(f"{work}/ids.txt").read().split()
print("tokenizer: ids", "identical" if ids == open(f"{work}/ours.ids").read().split() else "DIFFER", f"({len(ids)} tokens)")
total, count = 0.0, 0
for c in range(len(ids) // ctx):  # each chunk alone, llama.cpp's ids, TTT off
    open(f"{work}/chunk.ids", "w").write(" ".join(ids[c * ctx:(c + 1) * ctx]))
    out = json.loads(subprocess.check_output([ipt, "score", "-m", model, "--ids", f"{work}/chunk.ids", "--no-ttt", "--json", "--per-token", "--dtype", "float32"]))
    part = out["per_token"][ctx // 2:ctx - 1]  # per_token[i]: NLL of token i+1
    total += sum(part)
    count += len(part)
print(f"ours:      scored {count}  mean NLL {total / count:.6f}  PPL {math.exp(total / count):.4f}")
PY
