#!/usr/bin/env bash
# This engine beside llama.cpp and Hugging Face transformers on one model, one command, one table.
#   scripts/bench-peers.sh [options] MODEL_GGUF MODEL_DIR
# MODEL_GGUF: the model as a GGUF file (llama.cpp runs it as it is; transformers loads it with
#   from_pretrained(gguf_file=), dequantized to float32). MODEL_DIR: the same model in this engine's
#   layout (`ipt convert --from-gguf MODEL_GGUF --out MODEL_DIR`; scripts/get-models.sh does it for
#   SmolLM2-135M-Instruct Q4_1).
# Options (each also an environment variable, given here in capitals):
#   --threads N   THREADS  threads for every engine (default 2)
#   --repeat R    REPEAT   measurements per cell, after a warm-up; the cell is their median (default 3)
#   --tests LIST  TESTS    rows, comma-separated ppN, tgN, trainN (default pp512,pp4096,tg64,train512)
#   --quick                --tests pp512,tg64 --repeat 1
#   --dtype D     DTYPE    bfloat16 (default) or float32: ipt's --dtype, transformers' autocast or not
#   --batch B     BATCH    rows of N tokens per training step, transformers (default 1; ipt trains
#                          one row per step, so its trainN cell is empty for B > 1)
#   --attn A      ATTN     transformers' attn_implementation: sdpa (default) or eager
#   --peers LIST  PEERS    which of llama.cpp,transformers,ipt to run (default all three)
#   --json PATH   JSON     also write the table (and every raw number) as JSON to PATH
# Environment: LLAMA_CPP_DIR (default /tmp/llama.cpp: its build/bin/llama-bench; scripts/build-llama-cpp.sh
#   builds it), PYTHON (default .venv/bin/python with transformers 4.57.3 and torch 2.11:
#   scripts/setup-venv.sh goldens), IPT (default build/ipt), IPT_DECODE_FLAGS (more flags for
#   `ipt bench decode`, e.g. a decode option of the build), KEEP=DIR keeps every raw output in DIR,
#   REPORT_ONLY=1 (with KEEP) prints the table again from DIR without running anything.
# A peer that cannot run (not built, no venv, a failed run) shows "–" and the reason; no number is
# ever made up. docs/benchmarks.md "Peers in one command" says what each cell measures.
set -euo pipefail
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-2}"; }
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
THREADS=${THREADS:-2} REPEAT=${REPEAT:-3} TESTS=${TESTS:-pp512,pp4096,tg64,train512} DTYPE=${DTYPE:-bfloat16}
BATCH=${BATCH:-1} ATTN=${ATTN:-sdpa} PEERS=${PEERS:-llama.cpp,transformers,ipt} JSON=${JSON:-}
LLAMA_CPP_DIR=${LLAMA_CPP_DIR:-/tmp/llama.cpp}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
IPT=$(realpath -m "${IPT:-$ROOT/build/ipt}")
args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --threads) THREADS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --tests) TESTS=$2; shift 2 ;;
    --quick) TESTS=pp512,tg64 REPEAT=1; shift ;;
    --dtype) DTYPE=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --attn) ATTN=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --json) JSON=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) echo "bench-peers.sh: unknown option $1" >&2; usage ;;
    *) args+=("$1"); shift ;;
  esac
done
[[ ${#args[@]} -eq 2 ]] || usage
GGUF=$(realpath -m "${args[0]}") MODEL=$(realpath -m "${args[1]}")
[[ $DTYPE == bfloat16 || $DTYPE == float32 ]] || { echo "bench-peers.sh: --dtype bfloat16 or float32" >&2; exit 2; }
[[ $THREADS =~ ^[1-9][0-9]*$ && $REPEAT =~ ^[1-9][0-9]*$ && $BATCH =~ ^[1-9][0-9]*$ ]] ||
  { echo "bench-peers.sh: --threads, --repeat and --batch must be positive integers" >&2; exit 2; }
PP=() TG=() TRAIN=()
IFS=, read -ra tests <<< "$TESTS"
for t in "${tests[@]}"; do
  case $t in
    pp[1-9]*) PP+=("${t#pp}") ;;
    tg[1-9]*) TG+=("${t#tg}") ;;
    train[1-9]*) TRAIN+=("${t#train}") ;;
    *) echo "bench-peers.sh: unknown test '$t' (expected ppN, tgN or trainN)" >&2; exit 2 ;;
  esac
  [[ ${t##*[a-z]} =~ ^[0-9]+$ ]] || { echo "bench-peers.sh: unknown test '$t'" >&2; exit 2; }
done
join() { local IFS=,; echo "$*"; }
wants() { [[ ,$PEERS, == *,$1,* ]]; }

if [[ -n ${REPORT_ONLY:-} && -z ${KEEP:-} ]]; then echo "bench-peers.sh: REPORT_ONLY needs KEEP=DIR" >&2; exit 2; fi
if [[ -n ${KEEP:-} ]]; then
  WORK=$(mkdir -p "$KEEP" && realpath "$KEEP")
  [[ -n ${REPORT_ONLY:-} ]] || rm -f "$WORK"/*.json "$WORK"/*.skip "$WORK"/*.log "$WORK/date"
else WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; fi
skip() { echo "$2" > "$WORK/$1.skip"; echo "bench-peers: $1: $2" >&2; }  # a peer or one of its cells
tail_of() { tail -n 3 "$1" | tr '\n' ' ' | cut -c1-300; }

if [[ -z ${REPORT_ONLY:-} ]]; then
date '+%Y-%m-%d %H:%M %Z' > "$WORK/date"
# 1. llama.cpp: llama-bench on the GGUF as it is (its own warm-up run, then -r repetitions).
BENCH=$LLAMA_CPP_DIR/build/bin/llama-bench
if ! wants llama.cpp; then skip llama.cpp "not asked for (--peers)"
elif [[ ! -x $BENCH ]]; then
  skip llama.cpp "no $BENCH (build it: scripts/build-llama-cpp.sh [SOURCE] $LLAMA_CPP_DIR, or set LLAMA_CPP_DIR)"
elif [[ ! -f $GGUF ]]; then skip llama.cpp "no GGUF file $GGUF"
elif [[ ${#PP[@]} -eq 0 && ${#TG[@]} -eq 0 ]]; then skip llama.cpp "no ppN or tgN test asked"
else
  echo "bench-peers: llama-bench ..." >&2
  "$BENCH" -m "$GGUF" -p "$(join "${PP[@]:-0}")" -n "$(join "${TG[@]:-0}")" -t "$THREADS" -r "$REPEAT" -o json \
    > "$WORK/llama.cpp.json" 2> "$WORK/llama.cpp.log" ||
    { skip llama.cpp "llama-bench failed: $(tail_of "$WORK/llama.cpp.log")"; rm -f "$WORK/llama.cpp.json"; }
fi

# 2. transformers: scripts/bench_transformers.py in the venv.
if ! wants transformers; then skip transformers "not asked for (--peers)"
elif [[ ! -x $PYTHON ]]; then skip transformers "no $PYTHON (create it: scripts/setup-venv.sh goldens, or set PYTHON)"
elif ! "$PYTHON" -c 'import torch, transformers, gguf, accelerate' 2> /dev/null; then
  skip transformers "$PYTHON lacks torch, transformers, gguf or accelerate (scripts/setup-venv.sh goldens)"
elif [[ ! -f $GGUF ]]; then skip transformers "no GGUF file $GGUF"
else
  echo "bench-peers: transformers ..." >&2
  OMP_NUM_THREADS=$THREADS "$PYTHON" "$HERE/bench_transformers.py" --gguf "$GGUF" --tests "$TESTS" \
    --threads "$THREADS" --repeat "$REPEAT" --batch "$BATCH" --dtype "$DTYPE" --attn "$ATTN" \
    > "$WORK/transformers.json" 2> "$WORK/transformers.log" ||
    { skip transformers "bench_transformers.py failed: $(tail_of "$WORK/transformers.log")"; rm -f "$WORK/transformers.json"; }
fi

# 3. ipt: its own benchmarks on MODEL_DIR, each run REPEAT times (each run warms up first).
ipt_cell() {  # NAME REPEAT-INDEX ARGS...: one measurement into ipt-NAME-I.json, or NAME's skip file
  local name=$1 i=$2; shift 2
  [[ -e $WORK/ipt-$name.skip ]] && return 0
  "$IPT" -t "$THREADS" "$@" > "$WORK/ipt-$name-$i.json" 2> "$WORK/ipt-$name.log" ||
    skip "ipt-$name" "ipt $* failed: $(tail_of "$WORK/ipt-$name.log")"
}
if ! wants ipt; then skip ipt "not asked for (--peers)"
elif [[ ! -x $IPT ]]; then skip ipt "no $IPT (build it: cmake --build build --target ipt, or set IPT)"
elif [[ ! -f $MODEL/config.json ]]; then skip ipt "no $MODEL/config.json (ipt convert --from-gguf $GGUF --out $MODEL)"
else
  echo "bench-peers: ipt ..." >&2
  mixed=$([[ $DTYPE == bfloat16 ]] && echo 1 || echo 0)
  for ((i = 1; i <= REPEAT; i++)); do
    for n in "${PP[@]}"; do ipt_cell "pp$n" "$i" bench prefill -m "$MODEL" --lengths "$n" --dtype "$DTYPE" --json; done
    for n in "${TG[@]}"; do
      # shellcheck disable=SC2086 # IPT_DECODE_FLAGS: words to pass on
      ipt_cell "tg$n" "$i" bench decode -m "$MODEL" --contexts 1 --tokens "$n" --dtype "$DTYPE" --json ${IPT_DECODE_FLAGS:-}
    done
    for n in "${TRAIN[@]}"; do
      if [[ $BATCH != 1 ]]; then
        [[ -e $WORK/ipt-train$n.skip ]] || skip "ipt-train$n" "ipt bench train trains one row per step (--batch $BATCH)"
        continue
      fi
      # The training worker `ipt bench all` runs: one warm-up step, then --steps timed steps; no TTT,
      # no checkpointing; mixed = bf16 compute, float32 master weights and AdamW state.
      ipt_cell "train$n" "$i" bench train -m "$MODEL" --seq-len "$n" --steps 1 --worker-ttt 0 \
        --worker-checkpointing 0 --worker-mixed "$mixed"
    done
  done
fi

fi

# 4. The table.
# The commit of the source tree build/ipt sits in (IPT's folder, else this script's repository).
SRC_DIR=$(dirname "$IPT"); [[ -d $SRC_DIR ]] || SRC_DIR=$ROOT
IPT_COMMIT=$(git -C "$SRC_DIR" rev-parse --short HEAD 2> /dev/null || echo unknown)
[[ -z $(git -C "$SRC_DIR" status --porcelain --untracked-files=no 2> /dev/null) ]] || IPT_COMMIT+="-dirty"
python3 - "$WORK" "$TESTS" "$THREADS" "$REPEAT" "$DTYPE" "$BATCH" "$ATTN" "$GGUF" "$MODEL" "$IPT_COMMIT" \
  "$LLAMA_CPP_DIR" "$JSON" <<'PY'
import datetime, glob, json, os, re, statistics, subprocess, sys
work, tests, threads, repeat, dtype, batch, attn, gguf, model, commit, llama_dir, json_out = sys.argv[1:]
tests = [t for t in tests.split(",") if t]
PEERS = ["llama.cpp", "transformers", "ipt"]

def read(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None

def skip_reason(name):
    p = f"{work}/{name}.skip"
    return open(p).read().strip() if os.path.exists(p) else None

cells = {t: {} for t in tests}     # test -> peer -> tokens/s
reasons = {t: {} for t in tests}   # test -> peer -> why there is no number
raw = {}

# llama.cpp: median of samples_ns per (n_prompt, n_gen) test.
llama = read(f"{work}/llama.cpp.json")
why = skip_reason("llama.cpp") or (None if llama is not None else "llama-bench wrote no JSON")
llama_commit = None
if llama is not None:
    raw["llama.cpp"] = llama
    by = {(r["n_prompt"], r["n_gen"]): r for r in llama}
    llama_commit = llama[0].get("build_commit") if llama else None
for t in tests:
    kind, n = re.fullmatch(r"(pp|tg|train)(\d+)", t).groups()
    n = int(n)
    if why:
        reasons[t]["llama.cpp"] = why
    elif kind == "train":
        reasons[t]["llama.cpp"] = "llama-bench has no training benchmark"
    else:
        r = by.get((n, 0) if kind == "pp" else (0, n))
        if r is None or not r.get("samples_ns"):
            reasons[t]["llama.cpp"] = "not in llama-bench's output"
        else:
            cells[t]["llama.cpp"] = n / (statistics.median(r["samples_ns"]) / 1e9)
if llama is not None and llama_commit is None and os.path.isdir(f"{llama_dir}/.git"):
    llama_commit = subprocess.run(["git", "-C", llama_dir, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip() or None

# transformers: its own medians.
tf = read(f"{work}/transformers.json")
why = skip_reason("transformers") or (None if tf is not None else "bench_transformers.py wrote no JSON")
if tf is not None:
    raw["transformers"] = tf
for t in tests:
    if why:
        reasons[t]["transformers"] = why
    elif t in tf["rows"]:
        cells[t]["transformers"] = tf["rows"][t]["tokens_per_s"]
    else:
        reasons[t]["transformers"] = tf["errors"].get(t, "not measured")

# ipt: the no-TTT result of each run (the model the peers run), median over the runs.
why = skip_reason("ipt")
raw["ipt"] = {}
for t in tests:
    kind = re.match(r"[a-z]+", t).group()
    if why:
        reasons[t]["ipt"] = why
        continue
    cell_why = skip_reason(f"ipt-{t}")
    runs = [read(p) for p in sorted(glob.glob(f"{work}/ipt-{t}-*.json"))]
    raw["ipt"][t] = runs
    if cell_why or not runs or any(r is None for r in runs):
        reasons[t]["ipt"] = cell_why or "no output"
        continue
    if kind == "pp":
        vals = [next(x["tokens_per_s"] for x in r["results"] if not x["ttt"]) for r in runs]
    elif kind == "tg":
        vals = [next(x["decode_tokens_per_s"] for x in r["results"] if not x["ttt"]) for r in runs]
    else:
        vals = [r["tokens_per_s"] for r in runs]
    cells[t]["ipt"] = statistics.median(vals)

def cpuinfo():
    name, flags = "unknown", set()
    try:
        for line in open("/proc/cpuinfo"):
            k, _, v = line.partition(":")
            if k.strip() == "model name" and name == "unknown":
                name = v.strip()
            elif k.strip() == "flags" and not flags:
                flags = set(v.split())
    except OSError:
        pass
    return name, [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8") if f in flags]

cpu, flags = cpuinfo()
date = (open(f"{work}/date").read().strip() if os.path.exists(f"{work}/date")
        else datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
versions = tf["versions"] if tf else None
ratio = lambda a, b: a / b if a is not None and b is not None else None
rows = []
for t in tests:
    c = cells[t]
    rows.append({"test": t, "llama.cpp": c.get("llama.cpp"), "transformers": c.get("transformers"), "ipt": c.get("ipt"),
                 "ipt/llama.cpp": ratio(c.get("ipt"), c.get("llama.cpp")),
                 "ipt/transformers": ratio(c.get("ipt"), c.get("transformers")), "missing": reasons[t]})

fmt = lambda v: "–" if v is None else f"{v:.1f}"
fmtr = lambda v: "–" if v is None else f"{v:.2f}×"
amx = [f for f in flags if f.startswith("amx")]
print(f"peers: {os.path.basename(gguf)} (llama.cpp, transformers) / {model} (ipt); tokens/s, median of {repeat}; "
      f"threads {threads}; {dtype}")
print(f"cpu: {cpu}; avx512_bf16 {'yes' if 'avx512_bf16' in flags else 'no'}; amx {' '.join(amx) if amx else 'no'}; "
      f"{date}; ipt {commit}; llama.cpp {llama_commit or '–'}; "
      + (f"transformers {versions['transformers']}, torch {versions['torch']}" if versions else "transformers –"))
print()
print("| test | llama.cpp | transformers | ipt | ipt / llama.cpp | ipt / transformers |")
print("|:--|--:|--:|--:|--:|--:|")
for r in rows:
    print(f"| {r['test']} | {fmt(r['llama.cpp'])} | {fmt(r['transformers'])} | {fmt(r['ipt'])} | "
          f"{fmtr(r['ipt/llama.cpp'])} | {fmtr(r['ipt/transformers'])} |")
# Reasons, each said once: a whole peer's, then single cells'.
said = set()
notes = []
for peer in PEERS:
    rs = {reasons[t].get(peer) for t in tests}
    if len(rs) == 1 and None not in rs:
        notes.append(f"{peer}: {rs.pop()}")
        said.add(peer)
for t in tests:
    for peer in PEERS:
        if peer not in said and peer in reasons[t]:
            notes.append(f"{peer} {t}: {reasons[t][peer]}")
if notes:
    print("\n– means no number: " + "; ".join(notes))
wtype = llama[0].get("model_type", "").split()[-1] if llama else "its own types"
print(f"\nweights: llama.cpp the GGUF as stored ({wtype}; F16 KV cache, no flash attention); transformers the GGUF "
      f"dequantized to float32{', run under bf16 autocast' if dtype == 'bfloat16' else ''} ({attn} attention); "
      f"ipt {os.path.basename(model)} with --dtype {dtype}{' (training: bf16 compute, float32 master)' if dtype == 'bfloat16' else ''}. "
      f"tgN: N one-token steps after a 1-token prompt (llama.cpp: from an empty cache). "
      f"trainN: rows of N tokens, {batch} per step (transformers), 1 (ipt).")
extra = sorted({f"{k} {v}" for runs in raw["ipt"].values() for r in runs if r
                for k, v in r.items() if k.startswith("decode_") and isinstance(v, str)})
if extra:
    print("ipt bench decode: " + ", ".join(extra))

if json_out:
    report = {"gguf": gguf, "model_dir": model, "cpu": cpu, "cpu_flags": flags, "threads": int(threads),
              "repeat": int(repeat), "statistic": "median", "dtype": dtype, "train_batch": int(batch),
              "transformers_attn": attn, "date": date, "ipt_commit": commit, "llama_cpp_commit": llama_commit,
              "versions": versions, "unit": "tokens/s", "rows": rows, "raw": raw}
    with open(json_out, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
PY
