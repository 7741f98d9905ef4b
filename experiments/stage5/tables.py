"""Stage 5's tables (docs/RESULTS.md section 11) from runs/exp11/*.json: the copy stage's checkpoints, the tune sweep of the update
chunk at inference (and the model trained at chunk 64) against the ship rule, then the test splits for
the bundled model before (chunk 128) and after (the chosen chunk): retrieval by needle distance and by
length, NLL by context, and the continuations' English.
Usage: python3 experiments/stage5/tables.py [RUNS_DIR]"""
import json, os, sys

out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "runs", "exp11")
CHOSEN = "chunk64-d0.95"


def load(name):
    """The JSON a run wrote, or None while it is missing or still being written."""
    try:
        return json.load(open(os.path.join(out, name)))
    except (OSError, ValueError):
        return None


def in_window(run):
    b = [x for x in run["by_distance"] if x["to"] <= 128]
    n = sum(x["samples"] for x in b)
    return sum(x["score"] * x["samples"] for x in b) / n, n


# Route (a): the copy stage's checkpoints at 128 tokens (`run.sh copy`): the score (all four words right),
# and how often the answer's first word is right, from the predictions file.
def first_word_rate(name):
    try:
        rows = [json.loads(l) for l in open(os.path.join(out, f"tune-copy128-{name}.predictions.jsonl"))]
    except OSError:
        return None
    first = lambda text: (text.split() or [""])[0]
    rows = [r for r in rows if r["task"] == "induction"]
    return sum(first(r["prediction"]) == first(r["answers"][0]) for r in rows), len(rows)


print("| checkpoint (tokens) | TTT model: induction / passkey / first word | twin: induction / passkey / first word |")
print("|---|--|--|")
for label, ckpt in (("bundled (0)", None), ("250 (1.0 M)", "128_checkpoint-250"), ("500 (2.0 M)", "128_checkpoint-500"),
                    ("750 (3.1 M)", "128_checkpoint-750"), ("1000 (4.1 M)", "128_checkpoint-1000"),
                    ("1200 (4.9 M)", "128more_checkpoint-200"), ("1400 (5.7 M)", "128more_checkpoint-400"),
                    ("1600 (6.6 M)", "128more_checkpoint-600"), ("1800 (7.4 M)", "128more_checkpoint-800"),
                    ("2050 (8.4 M)", "128more2_checkpoint-250"), ("2300 (9.4 M)", "128more2_checkpoint-500"),
                    ("2550 (10.4 M)", "128more2_checkpoint-750"), ("2800 (11.5 M)", "128more2_checkpoint-1000")):
    cells = []
    for m in ("ttt", "twin"):
        name = "bundled" if ckpt is None else f"runs_stage5-{m}-{ckpt}"
        r, fw = load(f"tune-copy128-{name}.json"), first_word_rate(name)
        if not r:
            cells.append("n/a")
            continue
        sc = {x["task"]: x["score"] for x in r["runs"][0]["results"]}
        cells.append(f"{sc['induction']:.0f} / {sc['passkey']:.0f} / " + (f"{fw[0]} of {fw[1]}" if fw else "n/a"))
    print(f"| {label} | {cells[0]} | {cells[1]} |")

print()
print("| tune splits | chunk / decay | in window (samples) | retrieval 512 / 1024 / 2048 | English NLL 2048 / 8192 | rule |")
print("|---|---|--:|--|--|--|")
base = None
for name, label in (("bundled", "bundled"), ("chunk64-d0.9747", "at inference"), ("chunk64-d0.95", "at inference"),
                    ("chunk32-d0.9873", "at inference"), ("chunk32-d0.95", "at inference"),
                    ("ttt64", "trained at chunk 64 (train64)")):
    r256, r, p = load(f"tune-ruler256-{name}.json"), load(f"tune-ruler-{name}.json"), load(f"tune-ppl-english-{name}.json")
    if not (r256 and r and p):
        print(f"| {label} | {name} | n/a | n/a | n/a | |")
        continue
    score, n = in_window(r256["runs"][0])
    avg = [x["score"] for x in r["runs"][0]["average"]]
    nll = [x["mean_nll"] for x in p["runs"][0]["points"]]
    cfg = json.load(open(os.path.join(r["model"], "config.json")))
    if base is None:
        base, verdict = (score, avg, nll), "–"
    else:
        fails = []
        if score < base[0] + 20: fails.append(f"in-window +{score - base[0]:.1f}")
        if any(a < b - 10 for a, b in zip(avg, base[1])): fails.append("retrieval")
        if any(a > b + 0.02 for a, b in zip(nll, base[2])): fails.append("NLL " + " / ".join(f"{a - b:+.3f}" for a, b in zip(nll, base[2])))
        verdict = "fails (" + "; ".join(fails) + ")" if fails else "passes"
    print(f"| {label} | {cfg['ttt_chunk']} / {cfg.get('ttt_decay', 1)} | {score:.1f} ({n}) | "
          f"{' / '.join(f'{a:.1f}' for a in avg)} | {' / '.join(f'{x:.3f}' for x in nll)} | {verdict} |")

print()
print("| test splits | in window 0–64 / 64–128 (samples) | beyond, 128–256 | at 256: passkey / niah_single_1 / niah_single_2 | passkey 512 / 1024 / 2048 | niah_single_1 512 / 1024 / 2048 | niah_single_2 512 / 1024 / 2048 |")
print("|---|--|--|--|--|--|--|")
for name, label in (("bundled", "chunk 128 (before)"), (CHOSEN, "chunk 64 (shipped)")):
    r256, pk, nh = load(f"test-ruler256-{name}.json"), load(f"test-ruler-passkey-{name}.json"), load(f"test-ruler-niah-{name}.json")
    if not (r256 and pk and nh):
        continue
    for i, run in enumerate(r256["runs"]):
        d = {(x["from"], x["to"]): x for x in run["by_distance"]}
        cell = lambda a, b: f"{d[(a, b)]['score']:.0f} ({d[(a, b)]['samples']})" if (a, b) in d else "—"
        at256 = " / ".join(f"{x['score']:.0f}" for x in run["results"])
        res = {(x["task"], x["length"]): x["score"] for x in pk["runs"][i]["results"] + nh["runs"][i]["results"]}
        cells = lambda task: " / ".join(f"{res[(task, l)]:.0f}" for l in (512, 1024, 2048))
        print(f"| {label}, {'TTT' if run['ttt'] else 'frozen'} | {cell(0, 64)} / {cell(64, 128)} | {cell(128, 256)} | {at256} | "
              f"{cells('passkey')} | {cells('niah_single_1')} | {cells('niah_single_2')} |")

print()
print("| domain | model | 512 | 1024 | 2048 | 4096 | 8192 | 16384 |")
print("|---|---|--:|--:|--:|--:|--:|--:|")
long_files = {"english": "test-ppl8k-exp9_prose_test", "prose": "test-ppl8k-exp5_heldout-prose",
              "code": "test-ppl16k-heldout-code", "techdoc": "test-ppl16k-heldout-techdoc"}
for dom in ("english", "prose", "code", "techdoc"):
    for name, label in (("bundled", "chunk 128 (before)"), (CHOSEN, "chunk 64 (shipped)")):
        p = load(f"{long_files[dom]}-{name}.json")  # `run.sh long`: every context in one run
        if not p:
            continue
        for run in p["runs"]:
            pts = {x["context"]: x["mean_nll"] for x in run["points"]}
            row = " | ".join(f"{pts[c]:.3f}" if c in pts else "—" for c in (512, 1024, 2048, 4096, 8192, 16384))
            print(f"| {dom} ({run['points'][0]['docs_used']} docs) | {label}, {'TTT' if run.get('ttt', True) else 'frozen'} | {row} |")

print()
for f in sorted(os.listdir(out) if os.path.isdir(out) else []):
    if f.startswith("english-words-"):
        d = load(f)
        print(f"{f}: flags {' '.join(d['flags']) or '(defaults)'}: {d['words']} words, English {100 * d['english_words']:.1f}%, "
              f"distinct bigrams {100 * d['distinct_bigrams']:.1f}%")
