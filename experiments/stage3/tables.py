"""The tables of docs/RESULTS.md section 9 from the JSON files of experiments/stage3/run.sh (runs/exp9)
and experiment 8 (runs/exp8, the bundled model with ttt_decay 0.95).
Usage: python3 experiments/stage3/tables.py [runs]"""
import json, os, sys

runs = sys.argv[1] if len(sys.argv) > 1 else "runs"
MODELS = {  # name: (label, files by kind)
    "bundled": ("bundled (decay 0.95)", lambda kind, dom: f"{runs}/exp8/test-{kind}-{dom}-decay0.95.json"
                if dom != "english" else f"{runs}/exp9/test-{kind}-english-bundled.json"),
    "ttt": ("stage 3 TTT", lambda kind, dom: f"{runs}/exp9/test-{kind}-{dom}-ttt.json"),
    "twin": ("stage 3 twin", lambda kind, dom: f"{runs}/exp9/test-{kind}-{dom}-twin.json"),
    "ttt4096": ("stage 3c TTT", lambda kind, dom: f"{runs}/exp9/test-{kind}-{dom}-ttt4096.json"),
    "twin4096": ("stage 3c twin", lambda kind, dom: f"{runs}/exp9/test-{kind}-{dom}-twin4096.json"),
}


def load(path):
    return json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else None


def ppl_rows(dom, contexts):
    rows = []
    for name, (label, path) in MODELS.items():
        d = load(path("ppl", dom))
        if not d:
            rows.append(f"| {dom} | {label} | " + " | ".join("n/a" for _ in contexts) + " |")
            continue
        for r in d["runs"]:
            pts = {p["context"]: p for p in r["points"]}
            what = "TTT" if r["ttt"] else "frozen"
            cells = [f"{pts[c]['mean_nll']:.3f}" if c in pts else "—" for c in contexts]
            used = sorted({pts[c]["docs_used"] for c in contexts if c in pts})
            rows.append(f"| {dom} | {label}, {what if not name.startswith('twin') else 'no TTT'} | " + " | ".join(cells)
                        + f" | {'/'.join(map(str, used))} |")
    return rows


C = [512, 1024, 2048, 4096, 8192, 16384]
print("| domain | model | " + " | ".join(map(str, C)) + " | docs |")
print("|---|---|" + "--:|" * len(C) + "--|")
for dom in ["english", "prose", "code", "techdoc"]:
    for row in ppl_rows(dom, C):
        print(row)
print()
print("| model | passkey 256 / 512 / 1024 / 2048 | niah_single_1 512 / 1024 / 2048 | niah_single_2 512 / 1024 / 2048 | in window (64–128 tokens), passkey / niah |")
print("|---|--|--|--|--|")
for name, (label, path) in MODELS.items():
    pk, nh = load(path("ruler", "passkey")), load(path("ruler", "niah"))
    if not pk or not nh:
        print(f"| {label} | n/a | n/a | n/a | n/a |")
        continue
    for i, r in enumerate(pk["runs"]):
        r2 = nh["runs"][i]
        assert r["ttt"] == r2["ttt"]
        what = "TTT" if r["ttt"] else ("frozen" if not name.startswith("twin") else "no TTT")
        res = {(x["task"], x["length"]): x["score"] for x in r["results"] + r2["results"]}
        def cells(task, lengths):
            return " / ".join(f"{res[(task, l)]:.0f}" for l in lengths)
        def inwin(run):
            b = [x for x in run["by_distance"] if x["to"] <= 128]
            n = sum(x["samples"] for x in b)
            return f"{sum(x['score'] * x['samples'] for x in b) / n:.0f} ({n})" if n else "—"
        print(f"| {label}, {what} | {cells('passkey', [256, 512, 1024, 2048])} | {cells('niah_single_1', [512, 1024, 2048])}"
              f" | {cells('niah_single_2', [512, 1024, 2048])} | {inwin(r)} / {inwin(r2)} |")

print()
print("tune splits (the candidate choice): English tune NLL at 512 / 2048 / 8192; tune retrieval passkey + niah_single_1 at 512 / 1024 / 2048")
for name in ["ttt", "ttt4096"]:
    p, r = load(f"{runs}/exp9/tune-ppl-english-{name}.json"), load(f"{runs}/exp9/tune-ruler-{name}.json")
    if not p or not r:
        print(f"{name}: n/a")
        continue
    pts = {x["context"]: x for x in p["runs"][0]["points"]}
    avg = {x["length"]: x["score"] for x in r["runs"][0]["average"]}
    print(f"{name}: NLL " + " / ".join(f"{pts[c]['mean_nll']:.3f}" for c in (512, 2048, 8192))
          + f" ({pts[8192]['docs_used']} docs); retrieval " + " / ".join(f"{avg[l]:.1f}" for l in (512, 1024, 2048)))
