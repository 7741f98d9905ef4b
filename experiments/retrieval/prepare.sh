#!/usr/bin/env bash
# Data of experiment 5 (docs/RESULTS.md, "Retrieval beyond the window"), deterministic and idempotent:
#   data/exp5/train/   natural text the models train on: Python stdlib + Linux documentation (90% of files)
#   data/exp5/tune/    5% of the same domains' files: every TTT inference setting is chosen here
#   data/exp5/test/    another 5%: reported, never looked at while choosing
#   data/exp5/heldout-prose/  State of the Union addresses (corpus/sample): a domain never trained or tuned on
#   data/exp5/heldout-code/   Linux kernel/ and mm/ C sources: another unseen domain (C, not Python)
#   data/shards/exp5/  the training split tokenized with corpus/tokenizer (2% of its documents for val loss)
# A file goes to train/tune/test by the md5 of its name, so the split never depends on the file order.
set -euo pipefail
cd "$(dirname "$0")/../.."
IPT=${IPT:-build/ipt}
bash scripts/get-corpora.sh
out=data/exp5
if [ ! -f "$out/.done" ]; then
  rm -rf "$out" && mkdir -p "$out"/{train,tune,test,heldout-prose,heldout-code}
  for domain in python linuxdoc; do
    (cd data/corpora/$domain && find . -type f \( -name '*.py' -o -name '*.rst' \) | sort) | while read -r f; do
      name="$domain-$(echo "${f#./}" | sed 's|/|__|g')"
      bucket=$(( 16#$(printf '%s' "$name" | md5sum | cut -c1-4) % 100 ))
      if [ $bucket -lt 90 ]; then split=train; elif [ $bucket -lt 95 ]; then split=tune; else split=test; fi
      cp "data/corpora/$domain/$f" "$out/$split/$name"
    done
  done
  cp corpus/sample/*.txt "$out/heldout-prose/"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo  # the kernel C sources (Debian linux-source-6.1), if absent
  [ -f /usr/src/linux-source-6.1.tar.xz ] || $SUDO apt-get install -y --no-install-recommends linux-source-6.1 >/dev/null
  tar xJf /usr/src/linux-source-6.1.tar.xz -C "$out" --wildcards 'linux-source-6.1/kernel/*.c' 'linux-source-6.1/mm/*.c'
  find "$out/linux-source-6.1" -name '*.c' | sort | while read -r f; do
    cp "$f" "$out/heldout-code/$(echo "${f#$out/linux-source-6.1/}" | sed 's|/|__|g')"
  done
  rm -rf "$out/linux-source-6.1"
  touch "$out/.done"
fi
for s in train tune test heldout-prose heldout-code; do echo "exp5: $s: $(ls $out/$s | wc -l) files, $(du -sh $out/$s | cut -f1)"; done
[ -f data/shards/exp5/meta.json ] || $IPT data prepare --tokenizer corpus/tokenizer --input $out/train \
  --out data/shards/exp5 --val-fraction 0.02 --seed 0 --quiet
