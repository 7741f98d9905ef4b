#!/usr/bin/env bash
# Stage 4 (docs/RESULTS.md section 10): retrieval inside the attention window. The bundled model
# (stage 3's) and a no-TTT twin made from it continue on rows of 256 tokens with 80% retrieval rows
# (the needle inside the 128-token window for about half of them), then briefly on rows of 2048 with
# stage 3's mix, so that the fast weights keep their range. Every command, in order:
#   experiments/stage4/run.sh prepare                 runs/stage4-base (models/default) and the twin's start
#   experiments/stage4/run.sh train ttt|twin          both stages (the two models side by side, -t 1 each)
#   experiments/stage4/run.sh tune bundled|ttt        the ship rule's inputs, tune splits only
#   experiments/stage4/run.sh eval bundled|ttt|twin   test splits: retrieval, NLL on four domains, continuations
#   experiments/stage4/run.sh train128 ttt|twin       a second variant, after the first failed the rule on the
#                                                     tune splits: rows of 128 tokens (one chunk, so only
#                                                     attention can find the needle), then the same 2048 stage
#   experiments/stage4/run.sh tune|eval ttt128|twin128   the same evaluation for it
#   experiments/stage4/run.sh eval-into OUT MODEL NAME   the test-split evaluation of any model (stage 5's)
#   experiments/stage4/run.sh tune-into OUT MODEL NAME   the ship rule's tune figures of any model (stage 5's)
# The ship rule, fixed before training: stage 4's TTT model replaces models/default if, on the tune
# splits, its in-window retrieval (length 256) gains >= 20 points, its retrieval at 512 / 1024 / 2048
# stays within 10 points of the bundled model's at every length, and its English NLL at 2048 and
# 8192 is at most 0.02 nats worse. Data: every split it reads is section 9's (experiments/stage3/run.sh
# prepare, which also runs experiments/bounded/run.sh for the technical-writing split).
set -euo pipefail
cd "$(dirname "$0")/../.."
IPT=${IPT:-build/ipt}
export OMP_WAIT_POLICY=passive
out=runs/exp10
mkdir -p $out
STEPS_256=60   # 60 steps x 32 rows x 256 tokens = 0.49 M tokens
STEPS_2048=20  # 20 steps x 8 rows x 2048 tokens = 0.33 M tokens
STEPS_128=100  # 100 steps x 32 rows x 128 tokens = 0.41 M tokens

model_dir() {
  case $1 in
    bundled) echo runs/stage4-base ;;
    ttt|twin) echo runs/stage4-$1-2048/checkpoint-$STEPS_2048 ;;
    ttt128|twin128) echo runs/stage4b-${1%128}-2048/checkpoint-$STEPS_2048 ;;
  esac
}

case "${1:-}" in
prepare)
  mkdir -p runs/stage4-base
  for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do cp models/default/$f runs/stage4-base/; done
  python3 experiments/stage3/strip_ttt.py runs/stage4-base runs/stage4-twin-base
  ;;
train)
  m=$2  # ttt | twin
  $IPT -t 1 train --config experiments/configs/stage4-$m.yaml
  # Rows of 2048 (16 chunk updates) with stage 3's mix and schedule shape, from the stage above.
  $IPT -t 1 train --config experiments/configs/stage3-$m.yaml --model.model_path=runs/stage4-$m-256/checkpoint-$STEPS_256 \
    --data.max_seq_len=2048 --train.global_batch_size=8 --train.micro_batch_size=8 --train.lr=3e-4 --train.lr_min=3e-5 \
    --train.seed=10 --train.output_dir=runs/stage4-$m-2048 --train.max_steps=$STEPS_2048 --train.save_steps=$STEPS_2048 \
    --train.eval_steps=$STEPS_2048
  ;;
train128)
  m=$2  # ttt | twin
  # niah_single_1/2 do not fit in 128 tokens: passkey alone (80% of the rows).
  $IPT -t 1 train --config experiments/configs/stage4-$m.yaml --data.max_seq_len=128 --train.output_dir=runs/stage4b-$m-128 \
    --data.synthetic_mix.passkey=0.8 --data.synthetic_mix.niah_single_1=0 --data.synthetic_mix.niah_single_2=0 \
    --train.max_steps=$STEPS_128 --train.save_steps=$STEPS_128 --train.eval_steps=$STEPS_128
  $IPT -t 1 train --config experiments/configs/stage3-$m.yaml --model.model_path=runs/stage4b-$m-128/checkpoint-$STEPS_128 \
    --data.max_seq_len=2048 --train.global_batch_size=8 --train.micro_batch_size=8 --train.lr=3e-4 --train.lr_min=3e-5 \
    --train.seed=10 --train.output_dir=runs/stage4b-$m-2048 --train.max_steps=$STEPS_2048 --train.save_steps=$STEPS_2048 \
    --train.eval_steps=$STEPS_2048
  ;;
tune)
  bash "$0" tune-into $out "$(model_dir $2)" $2
  ;;
tune-into)
  # The ship rule's inputs for one model, also used by stage 5: OUT_DIR MODEL_DIR NAME.
  out=$2 m=$3 name=$4
  $IPT -t 1 eval ruler -m $m --tasks passkey niah_single_1 --lengths 256 --samples 40 --seed 1000 \
    --haystack data/exp5/tune --json > $out/tune-ruler256-$name.json
  $IPT -t 1 eval ruler -m $m --tasks passkey niah_single_1 --lengths 512 1024 2048 --samples 20 --seed 1000 \
    --haystack data/exp5/tune --json > $out/tune-ruler-$name.json
  $IPT -t 1 eval ppl -m $m --data data/exp9/prose/tune --contexts 2048 8192 --block 256 --same-docs --docs 14 \
    --json > $out/tune-ppl-english-$name.json
  ;;
eval)
  bash "$0" eval-into $out "$(model_dir $2)" $2
  ;;
eval-into)
  # The test-split evaluation of one model, also used by stage 5: OUT_DIR MODEL_DIR NAME.
  out=$2 m=$3 name=$4
  cmp=--compare-no-ttt; [ ${name#twin} != $name ] && cmp=""   # the twin has no fast weights to freeze
  for p in "The state of the union is" "The kernel"; do
    $IPT -t 1 generate -m $m -p "$p" -n 48 --temp 0 > "$out/generate-$name-$(echo $p | cut -d' ' -f2).txt"
    $IPT -t 1 generate -m $m -p "$p" -n 48 --temp 0.7 --seed 1 > "$out/generate-sampled-$name-$(echo $p | cut -d' ' -f2).txt"
  done
  H="--samples 40 --seed 5000 --haystack data/exp5/test $cmp --json"
  $IPT -t 1 eval ruler -m $m --tasks passkey niah_single_1 niah_single_2 --lengths 256 $H > $out/test-ruler256-$name.json
  H="--samples 20 --seed 5000 --haystack data/exp5/test $cmp --json"
  $IPT -t 1 eval ruler -m $m --tasks passkey --lengths 512 1024 2048 $H > $out/test-ruler-passkey-$name.json
  $IPT -t 1 eval ruler -m $m --tasks niah_single_1 niah_single_2 --lengths 512 1024 2048 $H > $out/test-ruler-niah-$name.json
  P="--block 256 --same-docs --docs 12 $cmp --json"
  $IPT -t 1 eval ppl -m $m --data data/exp9/prose/test --contexts 512 2048 8192 $P > $out/test-ppl-english-$name.json
  $IPT -t 1 eval ppl -m $m --data data/exp5/heldout-prose --contexts 512 2048 8192 $P > $out/test-ppl-prose-$name.json
  $IPT -t 1 eval ppl -m $m --data data/exp5/heldout-code --contexts 512 2048 8192 $P > $out/test-ppl-code-$name.json
  $IPT -t 1 eval ppl -m $m --data data/exp8/heldout-techdoc --contexts 512 2048 8192 $P > $out/test-ppl-techdoc-$name.json
  ;;
*)
  sed -n '2,/^set -euo/p' "$0" | grep '^#'  # this header
  exit 2
  ;;
esac
