#!/usr/bin/env bash
# Stage 5 (docs/RESULTS.md section 11): a copying head in attention, so that a needle inside the
# 128-token window is found. Stage 4 (section 10) showed the bundled model never retrieves from its
# current chunk and that 2,560 in-window passkey rows (5 supervised tokens each) made no copying head.
# Here the supervision is dense: half the rows are induction copies (a random word sequence, then its
# first half again, the loss on every token), on rows of one chunk (128 tokens, so no fast-weight
# update can help), for 1000 steps; then, if a copying head forms, rows of 2048 with stage 3's mix
# so the fast weights keep their range. Every command, in order:
#   experiments/stage4/run.sh prepare             runs/stage4-base (models/default) and the twin's start
#   experiments/stage5/run.sh prepare             the bundled model's rows: stage 4's files (same commands, seeds)
#   experiments/stage5/run.sh train ttt|twin      the copy stage (the two models side by side, -t 1 each)
#   experiments/stage5/run.sh train-more ttt|twin 800 more steps of the one-chunk copy stage (see below)
#   experiments/stage5/run.sh train-more2 twin    1000 more for the twin only (cores were free while CI ran)
#   experiments/stage5/run.sh recover CKPT NAME   the 2048-token stage after the copy stage (trigger below; not run)
#   experiments/stage5/run.sh copy NAME           in-window diagnostics (128 tokens: induction, passkey; predictions kept)
#   experiments/stage5/run.sh tune NAME           the ship rule's inputs, tune splits only
#   experiments/stage5/run.sh eval NAME           test splits (experiments/stage4/run.sh eval's set), e.g. chunk64-d0.95
#   experiments/stage5/run.sh long NAME           NLL at every context 512 ... 16384 (code, technical writing) and
#                                                 512 ... 8192 (the two prose splits, whose documents are shorter)
#   experiments/stage5/run.sh train64 ttt|twin    one stage of 4096-token rows with the update chunk 64 (and the twin)
#   experiments/stage5/run.sh chunk C D           the bundled model with its update chunk C and decay D set at
#                                                 inference (runs/stage5-chunkC-dD, a copy), then `tune` on it
#   experiments/stage5/run.sh english NAME        its continuations of the test prompts scored (english_words.py),
#                                                 sampled with `ipt generate`'s defaults and greedy
#   python3 experiments/stage5/tables.py          the tables
# The ship rule, fixed before training (stage 4's): stage 5's TTT model replaces models/default if, on
# the tune splits, its in-window retrieval (length 256) gains >= 20 points, its retrieval at
# 512 / 1024 / 2048 stays within 10 points of the bundled model's at every length, and its English
# NLL at 2048 and 8192 is at most 0.02 nats worse.
# The chunk at inference (`run.sh chunk`): among C 64 and 32, each with D = 0.95^(C/128) and with
# D = 0.95, the setting with the highest tune in-window retrieval that passes the same rule sets the
# bundled model's ttt_chunk and ttt_decay; if none passes, chunk 128 stays. This rule was written after
# seeing one figure, the tune in-window retrieval at 256 of C 64 and 32 with the scaled D (81.3 and
# 70.0 against 12.7; a quick look before the sweep was planned), and before any other.
# The dense-copy stage (`train`) was stopped at step 500 of 1000 (2.0 M tokens) to free the cores,
# both models then scoring 0 of 40 on induction and on passkey at 128 tokens (`copy` on checkpoints
# 250 and 500), and resumed to step 1000 afterwards: still 0 and 0, but the twin's answers began with
# the right first word in 3 of 5 induction samples. So `train-more` continues both for 800 steps; if
# either then scores >= 50% on induction or passkey at 128 (tune), its `train` second stage (rows of
# 2048) follows and the ship rule above is applied against the model shipped by `chunk` below.
# `train64` (written after the chunk-64 figures of `run.sh chunk`, before its own): the bundled model
# trained for one 4096-token stage with the update chunk 64 (D 0.9747) on, and its twin for the same
# tokens. Its TTT model replaces the setting chosen above if it passes the same rule and its tune
# in-window retrieval is higher, or within 5 points and its English NLL at 8192 lower.
set -euo pipefail
cd "$(dirname "$0")/../.."
IPT=${IPT:-build/ipt}
export OMP_WAIT_POLICY=passive
out=runs/exp11
mkdir -p $out
STEPS_128=1000  # 1000 steps x 32 rows x 128 tokens = 4.1 M tokens
STEPS_2048=40   # 40 steps x 8 rows x 2048 tokens = 0.66 M tokens

model_dir() {
  case $1 in
    bundled) echo runs/stage4-base ;;
    chunk*) echo runs/stage5-$1 ;;
    ttt64|twin64) echo runs/stage5c-${1%64}-4096/checkpoint-60 ;;
    ttt|twin) echo runs/stage5-$1-2048/checkpoint-$STEPS_2048 ;;
    *) echo "$1" ;;  # a checkpoint directory
  esac
}

case "${1:-}" in
prepare)
  cp runs/exp10/*-bundled.json $out/
  ;;
train)
  m=$2  # ttt | twin
  # (Run as written until step 500, then stopped and continued with
  #  `$IPT -t 1 train --config experiments/configs/stage5-$m.yaml --resume runs/stage5-$m-128/checkpoint-500`.)
  $IPT -t 1 train --config experiments/configs/stage5-$m.yaml
  ;;
recover)
  # Rows of 2048 with stage 3's mix, so the fast weights keep their range: only for a copy-stage
  # checkpoint that reached the trigger above (none did; not run). CHECKPOINT NAME: NAME is then a
  # model for `tune` and `eval` as runs/stage5-NAME-2048/checkpoint-40.
  m=$(python3 -c "import json,sys; print('ttt' if json.load(open(sys.argv[1] + '/config.json')).get('ttt_mode') else 'twin')" $2)
  $IPT -t 1 train --config experiments/configs/stage3-$m.yaml --model.model_path=$2 \
    --data.max_seq_len=2048 --train.global_batch_size=8 --train.micro_batch_size=8 --train.lr=3e-4 --train.lr_min=3e-5 \
    --train.seed=11 --train.output_dir=runs/stage5-$3-2048 --train.max_steps=$STEPS_2048 --train.save_steps=20 \
    --train.eval_steps=20
  ;;
train-more)
  m=$2  # ttt | twin
  $IPT -t 1 train --config experiments/configs/stage5-$m.yaml --model.model_path=runs/stage5-$m-128/checkpoint-$STEPS_128 \
    --train.output_dir=runs/stage5-$m-128more --train.max_steps=800 --train.save_steps=200 --train.eval_steps=200 \
    --train.lr=5e-4 --train.lr_min=5e-5 --train.seed=13
  ;;
train-more2)
  m=$2  # twin (the TTT model's in-window route is the chunk below)
  $IPT -t 1 train --config experiments/configs/stage5-$m.yaml --model.model_path=runs/stage5-$m-128more/checkpoint-800 \
    --train.output_dir=runs/stage5-$m-128more2 --train.max_steps=1000 --train.save_steps=250 --train.eval_steps=250 \
    --train.lr=5e-4 --train.lr_min=5e-5 --train.seed=14
  ;;
train64)
  m=$2  # ttt | twin
  base=runs/stage4-base extra="--model.foundation.ttt_chunk=64 --model.foundation.ttt_decay=0.9747"
  [ $m = twin ] && base=runs/stage4-twin-base extra=""
  $IPT -t 1 train --config experiments/configs/stage3-$m.yaml --model.model_path=$base $extra \
    --data.max_seq_len=4096 --train.global_batch_size=4 --train.micro_batch_size=4 --train.lr=3e-4 --train.lr_min=3e-5 \
    --train.seed=12 --train.output_dir=runs/stage5c-$m-4096 --train.max_steps=60 --train.save_steps=30 --train.eval_steps=30
  ;;
chunk)
  # The fast weights absorb a chunk only after it ends, so a needle in the question's own chunk is out of
  # their reach: a shorter chunk at inference shortens that blind stretch. The decay is per update, so
  # D = 0.95^(C/128) keeps the bundled model's decay per token.
  # (The copies of the figures were written by a few lines of Python setting the two keys; `ipt convert`
  # writes the same config.json and bit-identical weights.)
  $IPT -t 1 convert --in runs/stage4-base --out runs/stage5-chunk$2-d$3 --ttt-layers 2,5 --ttt-chunk $2 --ttt-decay $3 \
    --dtype bfloat16
  bash "$0" tune chunk$2-d$3
  ;;
long)
  # Every context in one run per domain, so each row scores the same documents' same final blocks.
  m=$(model_dir $2)
  P="--block 256 --same-docs --docs 12 --compare-no-ttt --json"
  for d in exp5/heldout-code exp8/heldout-techdoc; do
    $IPT -t 1 eval ppl -m $m --data data/$d --contexts 512 1024 2048 4096 8192 16384 $P > $out/test-ppl16k-$(basename $d)-$2.json
  done
  for d in exp9/prose/test exp5/heldout-prose; do
    $IPT -t 1 eval ppl -m $m --data data/$d --contexts 512 1024 2048 4096 8192 $P > $out/test-ppl8k-$(echo $d | tr / _)-$2.json
  done
  ;;
english)
  m=$(model_dir $2)
  IPT=$IPT python3 experiments/stage5/english_words.py $m test > $out/english-words-test-default.json
  IPT=$IPT python3 experiments/stage5/english_words.py $m test --temp 0 > $out/english-words-test-greedy.json
  ;;
copy)
  name=$2
  m=$(model_dir $name)
  f=$out/tune-copy128-$(echo $name | tr / _)
  $IPT -t 1 eval ruler -m $m --tasks induction passkey --lengths 128 --samples 40 --seed 1000 \
    --haystack data/exp5/tune --predictions $f.predictions.jsonl --json > $f.json
  ;;
tune)
  IPT=$IPT bash experiments/stage4/run.sh tune-into $out "$(model_dir $2)" $2
  ;;
eval)
  IPT=$IPT bash experiments/stage4/run.sh eval-into $out "$(model_dir $2)" $2
  ;;
*)
  sed -n '2,/^set -euo/p' "$0" | grep '^#'  # this header
  exit 2
  ;;
esac
