#!/usr/bin/env python3
"""Experiment 7's figures: one eval report per task / domain with every model as a labelled run,
drawn by `ipt plot` (docs/RESULTS.md section 7). Reads runs/eval7/, writes docs/figures/exp7-*.png."""
import json
import os
import subprocess
import sys

IPT = sys.argv[1] if len(sys.argv) > 1 else "build/ipt"
E = "runs/eval7"


def runs(path, labels):
    """The runs of one report, labelled: `labels` maps the run's ttt flag to a curve name."""
    report = json.load(open(path))
    out = []
    for run in report["runs"]:
        if run["ttt"] in labels:
            out.append(dict(run, label=labels[run["ttt"]]))
    return report, out


def merged(kind, parts, out_png):
    base, all_runs = None, []
    for path, labels in parts:
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            print(f"plot7: {path} missing, its curve left out", file=sys.stderr)
            continue
        report, got = runs(path, labels)
        base = base or report
        all_runs += got
    base = dict(base, runs=all_runs)
    tmp = f"{E}/merged-{out_png.split('/')[-1]}.json"
    json.dump(base, open(tmp, "w"))
    subprocess.run([IPT, "plot", "--kind", kind, tmp, "-o", out_png], check=True)


for task in ["passkey", "niah"]:
    merged("ruler-distance", [(f"{E}/ruler-{task}-ttt-clip2.json", {True: "TTT (clip 2)", False: "TTT model, fast weights frozen"}),
                              (f"{E}/ruler-{task}-twin.json", {False: "no-TTT twin"})],
           f"docs/figures/exp7-{task}-distance.png")
for domain in ["test", "heldout-prose", "heldout-code"]:
    merged("ppl", [(f"{E}/ppl-{domain}-ttt-clip2.json", {True: "TTT (clip 2)", False: "TTT model, fast weights frozen"}),
                   (f"{E}/ppl-{domain}-ttt-clip0.json", {True: "TTT, no clip"}),
                   (f"{E}/ppl-{domain}-twin.json", {False: "no-TTT twin"})],
           f"docs/figures/exp7-ppl-{domain}.png")
