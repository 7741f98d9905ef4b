#!/usr/bin/env bash
# Data of stage 3 (docs/RESULTS.md section 9), deterministic and idempotent:
#   data/exp9/prose/{train,tune,test}/  English prose from Debian packages, as documents:
#       bible-kjv-text (read with bible-kjv's `bible`): the King James Bible, one document per book;
#       fortunes: each fortune file (literature, wisdom, people, ...) in documents of 200 fortunes;
#       dict-devil: Ambrose Bierce's The Devil's Dictionary, one document (383 kB).
#     Split 90 / 5 / 5 by the md5 of the document's name, as experiments/retrieval/prepare.sh does.
#     Never the State of the Union addresses (held-out prose) nor the Python documentation (held-out
#     technical writing).
#   data/exp9/exp5-share/  15% of experiment 5's training files (data/exp5/train, Python stdlib +
#     Linux docs), picked by the md5 of "exp9-" + the file name: the domains the bundled model knows.
#   data/shards/exp9/  both tokenized with corpus/tokenizer (2% of documents for validation loss);
#     the experiment-5 share first, so the synthetic tasks' default haystack (the first ~4 MB of the
#     training text) stays the text experiment 7 trained retrieval on.
set -euo pipefail
cd "$(dirname "$0")/../.."
IPT=${IPT:-build/ipt}
bash experiments/retrieval/prepare.sh >/dev/null   # data/exp5
out=data/exp9
if [ ! -f $out/.done ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  command -v bible >/dev/null && [ -d /usr/share/games/fortunes ] && [ -f /usr/share/dictd/devil.dict.dz ] ||
    $SUDO apt-get install -y --no-install-recommends bible-kjv bible-kjv-text fortunes dict-devil >/dev/null
  rm -rf $out && mkdir -p $out/raw $out/prose/{train,tune,test} $out/exp5-share
  bible -l100000 "Genesis 1:1-Revelation 22:21" > $out/raw/kjv.txt
  python3 - $out <<'PY'
import gzip, os, re, sys
out = sys.argv[1]
docs = {}
# The Bible: a heading line "Book N" starts each chapter; verse lines are "  N text".
book, chapters = None, {}
order = []
for line in open(f"{out}/raw/kjv.txt", encoding="utf-8"):
    line = line.rstrip("\n")
    m = re.match(r"^(\S.*) (\d+)$", line)
    if m:
        b, ch = m.group(1), int(m.group(2))
        if b not in chapters:
            chapters[b] = []
            order.append(b)
        chapters[b].append((ch, []))
        book = b
        continue
    m = re.match(r"^\s+\d+ (.*)$", line)
    if m and book:
        chapters[book][-1][1].append(m.group(1).strip())
for b in order:
    text = b + "\n\n" + "\n\n".join(f"Chapter {ch}\n\n" + " ".join(vs) for ch, vs in chapters[b]) + "\n"
    docs["kjv-" + b.replace(" ", "_")] = text
# Fortunes: files of quotes separated by lines of "%".
fdir = "/usr/share/games/fortunes"
for f in sorted(os.listdir(fdir)):
    p = os.path.join(fdir, f)
    if "." in f or not os.path.isfile(p) or f in ("ascii-art", "translate-me"):
        continue
    quotes = [q.strip("\n") for q in open(p, encoding="utf-8", errors="replace").read().split("\n%\n")]
    quotes = [q for q in quotes if q.strip() and q.strip() != "%"]
    for i in range(0, len(quotes), 200):
        docs[f"fortunes-{f}-{i // 200:03d}"] = "\n\n".join(quotes[i:i + 200]) + "\n"
# The Devil's Dictionary: dictd's text from the title on, its two header entries dropped, as one
# document (its entries, "ABDOMEN, n.  The temple of ...", are too short to be documents).
raw = gzip.open("/usr/share/dictd/devil.dict.dz").read().decode("utf-8", errors="replace")
docs["devil-000"] = raw[raw.find("THE DEVIL'S DICTIONARY"):] + "\n"
import hashlib
for name in sorted(docs):
    bucket = int(hashlib.md5(name.encode()).hexdigest()[:4], 16) % 100
    split = "train" if bucket < 90 else "tune" if bucket < 95 else "test"
    with open(f"{out}/prose/{split}/{name}.txt", "w", encoding="utf-8") as fh:
        fh.write(docs[name])
PY
  rm -rf $out/raw
  (cd data/exp5/train && ls | sort) | while read -r f; do
    bucket=$(( 16#$(printf '%s' "exp9-$f" | md5sum | cut -c1-4) % 100 ))
    if [ $bucket -lt 15 ]; then cp "data/exp5/train/$f" $out/exp5-share/; fi
  done
  touch $out/.done
fi
for s in prose/train prose/tune prose/test exp5-share; do echo "exp9: $s: $(ls $out/$s | wc -l) files, $(du -sh $out/$s | cut -f1)"; done
[ -f data/shards/exp9/meta.json ] || $IPT data prepare --tokenizer corpus/tokenizer --input $out/exp5-share $out/prose/train \
  --out data/shards/exp9 --val-fraction 0.02 --seed 0 --quiet
