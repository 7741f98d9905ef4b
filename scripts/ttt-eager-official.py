#!/usr/bin/env python3
"""The official release's formulation of the In-Place TTT operator in PyTorch eager, timed beside
`ipt bench op` on the same device (docs/benchmarks.md, "GPU").

docs/operator.md ("Equivalent forms"): the official training forward computes every chunk's update, takes
their exclusive prefix sum and materialises W_0 + S_i for every chunk (T x d x h numbers), then
O_i = Z_i (W_0 + S_i)^T; autograd differentiates it. Written here from that description (no code
of the release is copied). Prints one JSON line: forward and forward+backward milliseconds (best of
--repeat) and the peak memory the CUDA caching allocator handed out (or the process's RSS on CPU).

  python3 scripts/ttt-eager-official.py --L 32768 --d 4096 --h 12288 --chunk 4096 --dtype bfloat16
"""
import argparse
import json
import resource
import time

import torch


def official_forward(Z, V, W0, chunk, lr):
    L, h = Z.shape[-2], Z.shape[-1]
    d = V.shape[-1]
    T = (L + chunk - 1) // chunk
    pad = T * chunk - L
    Zc = torch.nn.functional.pad(Z, (0, 0, 0, pad)).view(T, chunk, h)
    Vc = torch.nn.functional.pad(V, (0, 0, 0, pad)).view(T, chunk, d)
    deltas = lr * torch.einsum("tcd,tch->tdh", Vc, Zc)            # every chunk's update, [T, d, h]
    prefix = torch.cumsum(deltas, dim=0) - deltas                   # exclusive prefix sum
    weights = W0.unsqueeze(0) + prefix                              # W_i for every chunk, [T, d, h]
    out = torch.einsum("tch,tdh->tcd", Zc, weights).reshape(T * chunk, d)
    return out[:L]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--L", type=int, default=32768)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--h", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    dev, dtype = torch.device(a.device), getattr(torch, a.dtype)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    Z = (torch.randn(a.L, a.h, generator=g) / a.h ** 0.5).to(dev, dtype)
    V = (torch.randn(a.L, a.d, generator=g) / a.L ** 0.5).to(dev, dtype)
    W0 = (torch.randn(a.d, a.h, generator=g) / a.h ** 0.5).to(dev, dtype)
    up = torch.randn(a.L, a.d, generator=g).to(dev, dtype)
    if dev.type == "cuda":
        with torch.no_grad():
            official_forward(Z[: 2 * a.chunk], V[: 2 * a.chunk], W0, a.chunk, a.lr)
        sync()
        torch.cuda.reset_peak_memory_stats(dev)
    fwd = fwdbwd = float("inf")
    for _ in range(a.repeat):
        with torch.no_grad():
            sync(); t = time.perf_counter()
            official_forward(Z, V, W0, a.chunk, a.lr)
            sync(); fwd = min(fwd, (time.perf_counter() - t) * 1e3)
    for _ in range(a.repeat):
        z, v, w = (x.detach().requires_grad_() for x in (Z, V, W0))
        sync(); t = time.perf_counter()
        official_forward(z, v, w, a.chunk, a.lr).backward(up)
        sync(); fwdbwd = min(fwdbwd, (time.perf_counter() - t) * 1e3)
    peak = (torch.cuda.max_memory_allocated(dev) / 2 ** 20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps({"formulation": "official (eager PyTorch)", "device": str(dev), "dtype": a.dtype,
                      "L": a.L, "d": a.d, "h": a.h, "chunk": a.chunk, "fwd_ms": fwd, "fwdbwd_ms": fwdbwd,
                      "peak_mb": peak, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
