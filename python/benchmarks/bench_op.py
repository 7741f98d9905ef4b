#!/usr/bin/env python3
"""The official formulation of In-Place TTT (every chunk's update materialised, [T, d, h], then a
cumsum: scripts/ttt-eager-official.py) against inplace_ttt.ttt, forward and forward+backward, in one
run. Each variant runs in a fresh child process, so its peak resident memory (VmHWM, which sees
torch's allocations unlike tracemalloc) is its own.

    python python/benchmarks/bench_op.py --L 32768 --d 1024 --h 4096 --chunk 256
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
VARIANTS = [("official", "fwd"), ("official", "fwd+bwd"), ("inplace_ttt", "fwd"), ("inplace_ttt", "fwd+bwd")]


def rss_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def official_forward():
    spec = importlib.util.spec_from_file_location("ttt_eager_official",
                                                  os.path.join(REPO, "scripts", "ttt-eager-official.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.official_forward


def child(a):
    import torch
    import inplace_ttt

    dtype = getattr(torch, a.dtype)
    g = torch.Generator().manual_seed(0)
    Z = (torch.randn(a.L, a.h, generator=g) / a.h ** 0.5).to(dtype)
    V = (torch.randn(a.L, a.d, generator=g) / a.L ** 0.5).to(dtype)
    W0 = (torch.randn(a.d, a.h, generator=g) / a.h ** 0.5).to(dtype)
    up = torch.randn(a.L, a.d, generator=g).to(dtype)
    if a.formulation == "official":
        forward = official_forward()
        f = lambda z, v, w: forward(z, v, w, a.chunk, a.lr)  # noqa: E731
    else:
        f = lambda z, v, w: inplace_ttt.ttt(z[None], v[None], w, chunk_size=a.chunk, lr=a.lr)[0]  # noqa: E731
    inputs_mb = rss_mb("VmRSS")
    best = float("inf")
    for _ in range(a.repeat):
        if a.mode == "fwd":
            with torch.no_grad():
                t = time.perf_counter()
                out = f(Z, V, W0)
                best = min(best, time.perf_counter() - t)
        else:
            z, v, w = (x.detach().requires_grad_() for x in (Z, V, W0))
            t = time.perf_counter()
            out = f(z, v, w)
            out.backward(up)
            best = min(best, time.perf_counter() - t)
        del out
    print(json.dumps({"formulation": a.formulation, "mode": a.mode, "seconds": best, "peak_mb": rss_mb("VmHWM"),
                      "inputs_mb": inputs_mb, "threads": torch.get_num_threads()}))


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--L", type=int, default=32768)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--h", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--formulation", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.formulation:
        return child(a)
    import torch
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"L {a.L}  d {a.d}  h {a.h}  chunk {a.chunk}  {a.dtype}  (best of {a.repeat}; peak = the child's VmHWM)")
    rows = {}
    for formulation, mode in VARIANTS:
        cmd = [sys.executable, __file__, "--formulation", formulation, "--mode", mode] + [
            f"--{k}={getattr(a, k)}" for k in ("L", "d", "h", "chunk", "lr", "dtype", "repeat")]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{formulation} {mode}: failed ({out.stderr.strip().splitlines()[-1:]})")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows[(formulation, mode)] = r
        print(f"{formulation:12s} {mode:8s} {r['seconds']:9.3f} s  peak {r['peak_mb']:8.0f} MB  "
              f"(after inputs {r['inputs_mb']:.0f} MB)")
    for mode in ("fwd", "fwd+bwd"):
        o, u = rows.get(("official", mode)), rows.get(("inplace_ttt", mode))
        if o and u:
            print(f"{mode:8s} inplace_ttt / official: time {u['seconds'] / o['seconds']:.3f}x  "
                  f"peak memory {u['peak_mb'] / o['peak_mb']:.3f}x")


if __name__ == "__main__":
    main()
