"""Stage 4's tables (docs/RESULTS.md section 10) from runs/exp10/*.json: the ship rule's tune
figures, then the test splits' retrieval (by needle distance at 256 tokens; by length beyond the
window) and NLL, for the bundled model, the stage-4 TTT model and its twin.
Usage: python3 experiments/stage4/tables.py [RUNS_DIR]"""
import json, os, sys

out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "runs", "exp10")


def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None


def bins(run, to=128):
    b = [x for x in run["by_distance"] if x["to"] <= to]
    n = sum(x["samples"] for x in b)
    return (sum(x["score"] * x["samples"] for x in b) / n, n) if n else (float("nan"), 0)


print("tune: in-window (256 tokens, passkey + niah_single_1, needle <= 128 tokens back) | retrieval 512 / 1024 / 2048 | English NLL 2048 / 8192")
for name in ("bundled", "ttt"):
    r256, r, p = load(f"tune-ruler256-{name}.json"), load(f"tune-ruler-{name}.json"), load(f"tune-ppl-english-{name}.json")
    if not (r256 and r and p):
        print(f"{name}: n/a")
        continue
    score, n = bins(r256["runs"][0])
    avg = " / ".join(f"{x['score']:.1f}" for x in r["runs"][0]["average"])
    nll = " / ".join(f"{x['mean_nll']:.3f}" for x in p["runs"][0]["points"])
    print(f"{name}: {score:.1f} ({n}) | {avg} | {nll}")

print()
print("| model | in window 0–64 / 64–128 (samples) | beyond, 128–256 | passkey 512 / 1024 / 2048 | niah_single_1 512 / 1024 / 2048 | niah_single_2 512 / 1024 / 2048 |")
print("|---|--|--|--|--|--|")
for name, label in (("bundled", "bundled (stage 3)"), ("ttt", "stage 4, TTT model"), ("twin", "stage 4, twin")):
    r256, pk, nh = load(f"test-ruler256-{name}.json"), load(f"test-ruler-passkey-{name}.json"), load(f"test-ruler-niah-{name}.json")
    if not (r256 and pk and nh):
        print(f"| {label} | n/a | n/a | n/a | n/a | n/a |")
        continue
    for i, run in enumerate(r256["runs"]):
        what = "TTT" if run["ttt"] else ("no TTT" if name == "twin" else "frozen")
        d = {(x["from"], x["to"]): x for x in run["by_distance"]}
        def cell(a, b):
            x = d.get((a, b))
            return f"{x['score']:.0f} ({x['samples']})" if x else "—"
        res = {(x["task"], x["length"]): x["score"] for x in pk["runs"][i]["results"] + nh["runs"][i]["results"]}
        def cells(task):
            return " / ".join(f"{res[(task, l)]:.0f}" for l in (512, 1024, 2048))
        print(f"| {label}, {what} | {cell(0, 64)} / {cell(64, 128)} | {cell(128, 256)} | {cells('passkey')} | "
              f"{cells('niah_single_1')} | {cells('niah_single_2')} |")

print()
print("| domain | model | 512 | 2048 | 8192 |")
print("|---|---|--:|--:|--:|")
for dom in ("english", "prose", "code", "techdoc"):
    for name, label in (("bundled", "bundled (stage 3)"), ("ttt", "stage 4, TTT model"), ("twin", "stage 4, twin")):
        p = load(f"test-ppl-{dom}-{name}.json")
        if not p:
            print(f"| {dom} | {label} | n/a | n/a | n/a |")
            continue
        for run in p["runs"]:
            what = "TTT" if run.get("ttt", True) else "frozen"
            if name == "twin":
                what = "no TTT"
            pts = " | ".join(f"{x['mean_nll']:.3f}" for x in run["points"])
            print(f"| {dom} | {label}, {what} | {pts} |")
