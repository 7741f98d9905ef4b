#!/usr/bin/env bash
# This engine against llama.cpp on the same weights, one markdown table with ratios.
#   scripts/bench-llamacpp.sh [--init] LLAMA_CPP_DIR MODEL_DIR [THREADS]
# LLAMA_CPP_DIR: a llama.cpp checkout built with cmake into LLAMA_CPP_DIR/build (build/bin/llama-bench
#   and the shared libraries libllama.so, libggml*.so; see docs/benchmarks.md for the build line).
# MODEL_DIR: a LLaMA model in Hugging Face layout without TTT. --init creates it first when it does
#   not exist: `ipt init --config configs/models/llama-108m.json --out MODEL_DIR` (108.6 M parameters,
#   random weights, vocab 4096, float32).
# THREADS: for both engines (default: all cores).
# The model is converted to GGUF F32, BF16 and Q8_0 (scripts/hf_to_gguf.py) in a temporary folder;
# each is run with `llama-bench -p PP -n TG -pg PP,TG -r REPS -t THREADS -o json`, and this engine
# with `ipt -t THREADS bench all --pp PP --tg TG --json --dtype float32|bfloat16`. Then the mean NLL
# of the same NTOK random token ids under `ipt score` and under llama.cpp (scripts/llama-cpp-nll.cpp)
# checks that both run the same model: float32 against F32 within 1e-4 relative (exit status 1 if not).
# Environment: IPT (default build/ipt), PP (512), TG (64), REPS (5), NTOK (512), KEEP=DIR to keep
# the GGUF files and raw JSON in DIR (GGUF files already there are reused), REPORT_ONLY=1 (with
# KEEP) to print the table again from DIR's JSON without running anything.
set -euo pipefail
INIT=0
if [[ ${1:-} == --init ]]; then INIT=1; shift; fi
if [[ $# -lt 2 ]]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
LLAMA=$(realpath "$1") MODEL=$2 THREADS=${3:-$(nproc)}
IPT=$(realpath -m "${IPT:-$ROOT/build/ipt}")
PP=${PP:-512} TG=${TG:-64} REPS=${REPS:-5} NTOK=${NTOK:-512}
BIN=$LLAMA/build/bin

if [[ -z ${REPORT_ONLY:-} ]]; then
[[ -x $IPT ]] || { echo "bench-llamacpp.sh: $IPT not found (build the engine, or set IPT)" >&2; exit 1; }
"$IPT" bench all --help | grep -q -- --dtype ||
  { echo "bench-llamacpp.sh: $IPT bench all has no --dtype flag (rebuild the engine)" >&2; exit 1; }
[[ -x $BIN/llama-bench ]] || { echo "bench-llamacpp.sh: $BIN/llama-bench not found (build llama.cpp)" >&2; exit 1; }
if [[ ! -e $MODEL/config.json ]]; then
  if [[ $INIT == 1 ]]; then
    echo "creating $MODEL from configs/models/llama-108m.json" >&2
    "$IPT" init --config "$ROOT/configs/models/llama-108m.json" --out "$MODEL" >&2
  else
    echo "bench-llamacpp.sh: $MODEL/config.json not found (--init creates a 108M LLaMA there)" >&2
    exit 1
  fi
fi
fi
MODEL=$(realpath "$MODEL")

if [[ -n ${REPORT_ONLY:-} ]]; then [[ -n ${KEEP:-} ]] || { echo "REPORT_ONLY needs KEEP=DIR" >&2; exit 2; }; fi
if [[ -n ${KEEP:-} ]]; then WORK=$(mkdir -p "$KEEP" && realpath "$KEEP"); else
  WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
fi

if [[ -z ${REPORT_ONLY:-} ]]; then
# 1. GGUF files.
for t in f32 bf16 q8_0; do
  [[ -s $WORK/model-$t.gguf ]] || python3 "$HERE/hf_to_gguf.py" "$MODEL" "$WORK/model-$t.gguf" --type "$t"
done

# 2. llama.cpp speed (llama-bench keeps its defaults otherwise: F16 KV cache, no flash attention).
for t in f32 bf16 q8_0; do
  echo "llama-bench $t ..." >&2
  "$BIN/llama-bench" -m "$WORK/model-$t.gguf" -p "$PP" -n "$TG" -pg "$PP,$TG" -r "$REPS" -t "$THREADS" -o json \
    > "$WORK/llama-$t.json" 2> "$WORK/llama-$t.log" || { cat "$WORK/llama-$t.log" >&2; exit 1; }
done

# 3. This engine's speed.
for d in float32 bfloat16; do
  echo "ipt bench all --dtype $d ..." >&2
  "$IPT" -t "$THREADS" bench all -m "$MODEL" --pp "$PP" --tg "$TG" --json --dtype "$d" > "$WORK/ipt-$d.json"
done

# 4. NLL agreement on the same random ids.
python3 - "$MODEL/config.json" "$NTOK" > "$WORK/ids.txt" <<'PY'
import json, random, sys
vocab = json.load(open(sys.argv[1]))["vocab_size"]
r = random.Random(1234)
print(" ".join(str(r.randrange(vocab)) for _ in range(int(sys.argv[2]))))
PY
g++ -O2 -std=c++17 -I"$LLAMA/include" -I"$LLAMA/ggml/include" "$HERE/llama-cpp-nll.cpp" -o "$WORK/nll" \
  -L"$BIN" -lllama -lggml -lggml-base -Wl,-rpath,"$BIN"
for t in f32 bf16 q8_0; do
  "$WORK/nll" "$WORK/model-$t.gguf" --ids "$WORK/ids.txt" "$THREADS" > "$WORK/nll-llama-$t.json" 2> "$WORK/nll-llama-$t.log" ||
    { cat "$WORK/nll-llama-$t.log" >&2; exit 1; }
done
for d in float32 bfloat16; do
  "$IPT" -t "$THREADS" score -m "$MODEL" --ids "$WORK/ids.txt" --json --dtype "$d" > "$WORK/nll-ipt-$d.json"
done

fi

# 5. The table.
python3 - "$WORK" "$PP" "$TG" "$THREADS" "$MODEL" <<'PY'
import json, sys
work, pp, tg, threads, model = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
TYPES = [("f32", "F32"), ("bf16", "BF16"), ("q8_0", "Q8_0")]
DTYPES = ["float32", "bfloat16"]

llama = {}  # type -> {"pp", "tg", "tg@pp"} tokens/s
for t, _ in TYPES:
    runs = json.load(open(f"{work}/llama-{t}.json"))
    # Seconds of the fastest repetition (this project's benches report best of N too; on a shared
    # machine the mean is hostage to the slowest run).
    sec = {(r["n_prompt"], r["n_gen"]): min(r["samples_ns"]) / 1e9 if r.get("samples_ns")
           else (r["n_prompt"] + r["n_gen"]) / r["avg_ts"] for r in runs}
    # -pg PP,TG: the prefill then the decode in one context; the decode's own time is that less the
    # prefill's, from the pp run.
    t_dec = sec[(pp, tg)] - sec[(pp, 0)]
    llama[t] = {"pp": pp / sec[(pp, 0)], "tg": tg / sec[(0, tg)], "tg@pp": tg / t_dec if t_dec > 0 else float("nan")}

ours = {}
for d in DTYPES:
    j = json.load(open(f"{work}/ipt-{d}.json"))
    if j.get("dtype", d) != d:
        sys.exit(f"ipt bench all --dtype {d} reported dtype {j.get('dtype')}")
    rows = {r["test"]: r for r in j["rows"]}
    val = lambda name: (rows[name]["no_ttt"] if rows[name]["no_ttt"] is not None else rows[name]["ttt"])
    ours[d] = {"pp": val(f"pp{pp}"), "tg@pp": val(f"tg{tg} @ pp{pp}"), "tg": None}

def cell(v):
    return "—" if v is None else f"{v:.1f}"

def ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}×"

print(f"model {model}, {threads} threads (tokens/s; llama.cpp: fastest of llama-bench's repetitions)\n")
print("| test | llama.cpp F32 | llama.cpp BF16 | llama.cpp Q8_0 | ipt float32 | ipt bfloat16 "
      "| ipt bf16 / best llama.cpp | ipt f32 / llama.cpp F32 |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for key, name in [("pp", f"prefill pp{pp}"), ("tg@pp", f"decode tg{tg} @ pp{pp}"), ("tg", f"decode tg{tg} (empty context)")]:
    lc = [llama[t][key] for t, _ in TYPES]
    o32, o16 = ours["float32"][key], ours["bfloat16"][key]
    best = max(lc)
    print(f"| {name} | " + " | ".join(cell(v) for v in lc) + f" | {cell(o32)} | {cell(o16)} | "
          f"{ratio(o16, best)} | {ratio(o32, lc[0])} |")
print(f"\ndecode tg{tg} @ pp{pp}, llama.cpp: from llama-bench's pg{pp},{tg} less its pp{pp}; "
      f"decode tg{tg} (empty context) is llama-bench's own tg{tg}, which this engine's bench does not run.")

nll = lambda path: json.load(open(path))["mean_nll"]
l32, l16, l8 = (nll(f"{work}/nll-llama-{t}.json") for t, _ in TYPES)
o32, o16 = nll(f"{work}/nll-ipt-float32.json"), nll(f"{work}/nll-ipt-bfloat16.json")
ntok = json.load(open(f"{work}/nll-llama-f32.json"))["scored"]
rel = abs(o32 - l32) / abs(l32)
ok = rel <= 1e-4
print(f"\nNLL check ({ntok} targets of random ids): ipt float32 {o32:.6f} vs llama.cpp F32 {l32:.6f}: "
      f"relative difference {rel:.2e} ({'PASS' if ok else 'FAIL'}, limit 1e-4)")
print(f"NLL check: ipt bfloat16 {o16:.6f} vs ipt float32 {o32:.6f}: relative difference {abs(o16 - o32) / abs(o32):.2e}")
print(f"NLL (for reference): llama.cpp BF16 {l16:.6f} ({abs(l16 - l32) / abs(l32):.2e} from F32), "
      f"Q8_0 {l8:.6f} ({abs(l8 - l32) / abs(l32):.2e} from F32)")
sys.exit(0 if ok else 1)
PY
