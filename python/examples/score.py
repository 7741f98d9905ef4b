#!/usr/bin/env python3
"""Scores a text with a TTT checkpoint through inplace_ttt.models (transformers) and through the
engine's `ipt score`, with TTT and without: the per-token NLLs must agree.

    python python/examples/score.py models/default corpus/sample/1941_franklin_d_roosevelt_d.txt --ipt build/ipt
"""
import argparse
import json
import os
import subprocess
import tempfile

import torch
from tokenizers import Tokenizer

from inplace_ttt import models


def ipt_score(ipt, directory, ids, ttt):
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(" ".join(map(str, ids)))
        f.flush()
        cmd = [ipt, "score", "-m", directory, "--ids", f.name, "--json", "--per-token", "--dtype", "float32"]
        out = subprocess.run(cmd + ([] if ttt else ["--no-ttt"]), check=True, capture_output=True, text=True)
    return torch.tensor(json.loads(out.stdout)["per_token"], dtype=torch.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--ipt", default="build/ipt")
    ap.add_argument("--max-tokens", type=int, default=2048)
    a = ap.parse_args()
    ids = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json")).encode(open(a.text).read()).ids
    ids = ids[: a.max_tokens]
    for ttt in (True, False):
        model = models.from_pretrained(a.model, ttt=ttt)
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].double()
        ours = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")
        theirs = ipt_score(a.ipt, a.model, ids, ttt)
        rel = ((ours - theirs).abs().max() / theirs.abs().max()).item()
        print(f"TTT {'on ' if ttt else 'off'} layers {models.ttt_layers(model)}: tokens {len(ids)}  "
              f"mean NLL inplace_ttt {ours.mean():.6f}  ipt score {theirs.mean():.6f}  "
              f"max per-token difference {rel:.2e} (relative)")


if __name__ == "__main__":
    main()
