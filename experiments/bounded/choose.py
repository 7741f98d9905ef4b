"""Experiment 8's choice of ttt_decay on the tune split: the lowest tune perplexity at the longest
context among the decays whose tune retrieval (average over tasks) is within 10 points of the best
at every length. Prints the table to stderr and the chosen decay to stdout.
Usage: choose.py RUN_DIR DECAY..."""
import json
import sys

run_dir, decays = sys.argv[1], sys.argv[2:]
ppl, retrieval = {}, {}
for lam in decays:
    points = json.load(open(f"{run_dir}/tune-ppl-decay{lam}.json"))["runs"][0]["points"]
    ppl[lam] = {p["context"]: p["ppl"] for p in points}
    average = json.load(open(f"{run_dir}/tune-ruler-decay{lam}.json"))["runs"][0]["average"]
    retrieval[lam] = {a["length"]: a["score"] for a in average}
lengths = sorted(next(iter(retrieval.values())))
contexts = sorted(next(iter(ppl.values())))
best = {n: max(retrieval[lam][n] for lam in decays) for n in lengths}
eligible = [lam for lam in decays if all(retrieval[lam][n] >= best[n] - 10 for n in lengths)]
chosen = min(eligible, key=lambda lam: ppl[lam][contexts[-1]])
print("| ttt_decay | retrieval " + " / ".join(map(str, lengths)) + " | tune ppl at " + " / ".join(map(str, contexts)) + " |",
      file=sys.stderr)
print("|--:|--|--|", file=sys.stderr)
for lam in decays:
    mark = "**" if lam == chosen else ""
    r = " / ".join(f"{retrieval[lam][n]:.1f}" for n in lengths)
    p = " / ".join(f"{ppl[lam][c]:.1f}" for c in contexts)
    print(f"| {mark}{lam}{mark} | {r} | {p} |", file=sys.stderr)
print(chosen)
