#!/usr/bin/env python3
"""Retrieval beyond the attention window, measured as loss: a random token string S is read, then a
gap of natural text, then S again. The mean NLL of the second S shows how much of S the model still
has: attention sees S only while the gap is shorter than the window; fast weights can keep it longer.

usage: copy_beyond_window.py IPT MODEL[,MODEL...] [--gaps 0,128,384,768] [--length 64] [--trials 8]
Prints a JSON object {model: {gap: mean NLL of the repeat}} and a Markdown table.
"""
import argparse, array, json, random, subprocess, tempfile, os

p = argparse.ArgumentParser()
p.add_argument("ipt")
p.add_argument("models")
p.add_argument("--gaps", default="0,128,384,768")
p.add_argument("--length", type=int, default=64)
p.add_argument("--trials", type=int, default=8)
p.add_argument("--filler", default="data/shards/mix/val/shard-00000.bin", help="uint16 token shard for the gap")
p.add_argument("--eos", type=int, default=4093)
a = p.parse_args()

tokens = array.array("H")
tokens.frombytes(open(a.filler, "rb").read())
filler = [t for t in tokens[:200000] if t != a.eos]
gaps = [int(g) for g in a.gaps.split(",")]
results = {}
for model in a.models.split(","):
    results[model] = {}
    for gap in gaps:
        nll = []
        for trial in range(a.trials):
            rng = random.Random(1000 * trial + gap)
            s = [rng.randrange(100, 4000) for _ in range(a.length)]
            start = rng.randrange(0, len(filler) - gap - 1)
            ids = filler[start:start + 32] + s + filler[start + 32:start + 32 + gap] + s
            with tempfile.NamedTemporaryFile("w", suffix=".ids", delete=False) as f:
                f.write(" ".join(map(str, ids)))
            out = subprocess.run([a.ipt, "-t", "1", "score", "-m", model, "--ids", f.name, "--json", "--per-token"],
                                 capture_output=True, text=True, check=True).stdout
            os.unlink(f.name)
            per = json.loads(out)["per_token"]
            # per[i] is the NLL of token i+1: the repeat's tokens are the last `length` (its first one
            # cannot be predicted from S, so it is left out).
            rep = per[-(a.length - 1):]
            nll.append(sum(rep) / len(rep))
        results[model][gap] = sum(nll) / len(nll)
print(json.dumps(results, indent=1))
print("| model | " + " | ".join(f"gap {g}" for g in gaps) + " |")
print("|---|" + "---:|" * len(gaps))
for model, r in results.items():
    print(f"| {model} | " + " | ".join(f"{r[g]:.3f}" for g in gaps) + " |")
