#!/usr/bin/env bash
# The GPU checks, on a lent GPU machine (PyTorch 2.11 with CUDA, nvcc, CMake; no package registry).
# From this machine, after `bash scripts/device-debs.sh` once:
#   run(command="bash scripts/device-check.sh", carry=[".device"], timeout_s=540)
# It unpacks the carried Debian packages into a private prefix, builds the torch2 configuration
# against the machine's own libtorch, runs the CUDA tests (tests/gpu) and the GPU benchmarks, and
# leaves logs and JSON in $OUT (default ./device-out). Budget: under 8 minutes of wall time.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
start=$SECONDS
log() { echo "[device-check $((SECONDS - start))s] $*" | tee -a "$OUT/summary.txt"; }

ROOT=/tmp/ipt-deps
mkdir -p "$ROOT"
for deb in .device/debs/*.deb; do dpkg -x "$deb" "$ROOT"; done
ARCH_LIB=$ROOT/usr/lib/x86_64-linux-gnu
export PKG_CONFIG_LIBDIR=$ARCH_LIB/pkgconfig:$ROOT/usr/share/pkgconfig PKG_CONFIG_SYSROOT_DIR=$ROOT
export LD_LIBRARY_PATH=$ARCH_LIB:${LD_LIBRARY_PATH:-}
PKG_CONFIG=$(command -v pkg-config || echo "$ROOT/usr/bin/pkgconf")
TORCH_CMAKE=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
log "$(nvidia-smi -L 2>&1 | head -1); torch $(python3 -c 'import torch; print(torch.__version__)'); $(nproc) cores"

BUILD=build-device
cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release -DIPT_BUILD_BENCH=OFF -DPKG_CONFIG_EXECUTABLE="$PKG_CONFIG" \
  -DCMAKE_PREFIX_PATH="$TORCH_CMAKE;$ROOT/usr" >"$OUT/configure.log" 2>&1 || { log "configure failed"; tail -30 "$OUT/configure.log"; exit 1; }
grep "libtorch" "$OUT/configure.log" | tee -a "$OUT/summary.txt"
cmake --build $BUILD -j "$(nproc)" --target ipt test_gpu test_ops >"$OUT/build.log" 2>&1 || { log "build failed"; grep -m20 -A5 "error" "$OUT/build.log"; exit 1; }
log "built"

# CUDA against CPU references; then the CPU operator tests of the same build.
$BUILD/tests/test_gpu --gtest_brief=1 2>&1 | tee "$OUT/test_gpu.log" | tail -25
log "test_gpu: $(grep -E '^\[  (PASSED|FAILED|SKIPPED)' "$OUT/test_gpu.log" | tr '\n' ' ')"
IPT_DEVICE=cpu $BUILD/tests/test_ops --gtest_brief=1 >"$OUT/test_ops.log" 2>&1
log "test_ops (CPU, same build): $(grep -E '^\[  (PASSED|FAILED)' "$OUT/test_ops.log" | tr '\n' ' ')"

IPT=$BUILD/ipt
# The TTT operator at a Qwen3-8B layer's size, ours against the official formulation in eager PyTorch.
OP="--L 32768 --d 4096 --h 12288 --chunk 4096"
timeout 120 $IPT bench op --device cuda --dtype bfloat16 $OP --algorithms scan,recurrent --scan-group 4 --repeat 2 --json \
  >"$OUT/op_ours_bf16.json" 2>"$OUT/op_ours.err"; log "bench op (ours, bf16): $(tr -d ' \n' <"$OUT/op_ours_bf16.json" | head -c 900)"
timeout 120 python3 scripts/ttt-eager-official.py $OP --dtype bfloat16 --repeat 2 >"$OUT/op_official_bf16.json" 2>&1
log "official eager (bf16): $(cat "$OUT/op_official_bf16.json")"

# A Qwen3-0.6B-shaped model with TTT in every 6th layer: prefill and training steps, with/without TTT.
python3 - <<'PY'
import json
c = json.load(open("tests/fixtures/configs/qwen3-0.6b.json"))
c.update(ttt_mode=True, ttt_layers=list(range(0, c["num_hidden_layers"], 6)), ttt_chunk=4096, ttt_target="hidden_states")
json.dump(c, open("/tmp/qwen3-0.6b-ttt.json", "w"))
PY
$IPT init --config /tmp/qwen3-0.6b-ttt.json -o /tmp/q06 --force >"$OUT/init.log" 2>&1 || log "init failed: $(tail -3 "$OUT/init.log")"
timeout 150 $IPT bench prefill -m /tmp/q06 --device cuda --dtype bfloat16 --lengths 8192,32768 --json >"$OUT/prefill.json" 2>"$OUT/prefill.err"
log "prefill: $(python3 -c "import json; r=json.load(open('$OUT/prefill.json')); print([(x['length'], x['ttt'], round(x['tokens_per_s']), round(x.get('gpu_peak_mb', 0))) for x in r['results']])" 2>&1)"
timeout 150 $IPT bench train -m /tmp/q06 --device cuda --seq-len 8192 --steps 3 --precision mixed --json >"$OUT/train.json" 2>"$OUT/train.err"
log "train: $(python3 -c "import json; r=json.load(open('$OUT/train.json')); print([(x['ttt'], x['checkpointing'], round(x['tokens_per_s']), round(x['peak_mb'])) for x in r['results']])" 2>&1)"
log "done"
