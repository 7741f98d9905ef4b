#!/usr/bin/env python3
"""How English a model's continuations are: `ipt generate` on fixed English prompts, scored by the
share of generated words found in a system word list (Debian's wamerican, /usr/share/dict/words) and
by the share of distinct word bigrams in each continuation (a greedy loop scores low there, however English its words).

usage: english_words.py MODEL_DIR SPLIT [generate flags ...]     SPLIT: tune | test
       english_words.py --text FILE...     the same shares for human text, as a reference
prints one JSON object: every continuation, and the two shares over all prompts and seeds.
"""
import json
import os
import re
import subprocess
import sys

PROMPTS = {
    # Settings are chosen on the tune prompts; the test prompts are only read for the figures.
    "tune": ["The kernel", "Once upon a time", "The meaning of life is", "In the beginning",
             "My favourite book", "The weather today"],
    "test": ["The state of the union is", "The old man walked", "A good friend", "The city at night",
             "When the war ended", "Science tells us that"],
}
SEEDS = [1, 2, 3]
WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")


def shares(texts, lexicon):
    """Words found in the lexicon (pooled), and distinct word bigrams per text (averaged over texts
    of two words or more)."""
    words, known, distinct = 0, 0, []
    for text in texts:
        ws = [w.lower() for w in WORD.findall(text)]
        words += len(ws)
        known += sum(w in lexicon for w in ws)
        bigrams = list(zip(ws, ws[1:]))
        if bigrams:
            distinct.append(len(set(bigrams)) / len(bigrams))
    return {"words": words, "english_words": known / max(words, 1),
            "distinct_bigrams": sum(distinct) / max(len(distinct), 1)}


def read_lexicon():
    if not os.path.exists("/usr/share/dict/words"):
        sys.exit("english_words.py: no /usr/share/dict/words (Debian: apt-get install wamerican)")
    with open("/usr/share/dict/words", encoding="utf-8", errors="replace") as f:
        # Single letters other than "a" and "I" are in the list as letters, not words.
        return {w.strip().lower() for w in f if len(w.strip()) > 1} | {"a", "i"}


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "--text":
        # Human text cut into pieces of about a continuation's length (48 tokens ~ 35 words).
        pieces = []
        for path in sys.argv[2:]:
            ws = open(path, encoding="utf-8", errors="replace").read().split()
            pieces += [" ".join(ws[i:i + 35]) for i in range(0, len(ws), 35)]
        print(json.dumps({"text": sys.argv[2:], **shares(pieces, read_lexicon())}))
        return 0
    if len(sys.argv) < 3 or sys.argv[2] not in PROMPTS:
        print(__doc__, file=sys.stderr)
        return 2
    model, split, flags = sys.argv[1], sys.argv[2], sys.argv[3:]
    ipt = os.environ.get("IPT", "build/ipt")
    lexicon = read_lexicon()
    greedy = "--temp" in flags and flags[flags.index("--temp") + 1] in ("0", "0.0")
    rows = []
    for prompt in PROMPTS[split]:
        for seed in SEEDS[:1] if greedy else SEEDS:
            cmd = [ipt, "-t", "1", "generate", "-m", model, "-p", prompt, "-n", "48", "--seed", str(seed), *flags]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"english_words.py: {' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
            text = done.stdout
            rows.append({"prompt": prompt, "seed": seed, "text": text})
    print(json.dumps({"model": model, "split": split, "flags": flags,
                      **shares([r["text"] for r in rows], lexicon), "continuations": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
