#!/usr/bin/env python3
"""Encode speed of Hugging Face `tokenizers` on a file, to set beside `ipt bench tokenizer` (docs/tokenizer.md).

  .venv/bin/python scripts/bench-tokenizers.py --tokenizer tests/fixtures/tokenizers/qwen3 -f FILE [--threads 2]

Prints MB/s for: one `encode` of the whole file (single thread, as `ipt bench tokenizer`'s
single-thread row; best of --repeat), and `encode_batch` over its lines (Rayon, --threads workers),
plus whether `encode` gives the same ids as `ipt tokenizer encode` when --ipt is given.
"""
import argparse
import os
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("-f", "--file", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ipt", help="path to build/ipt: compare ids with `ipt tokenizer encode`")
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # before tokenizers starts its pool
    import tokenizers
    path = args.tokenizer
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    t0 = time.perf_counter()
    tok = tokenizers.Tokenizer.from_file(path)
    load = time.perf_counter() - t0
    data = open(args.file, "rb").read()
    text = data.decode("utf-8", "replace")
    mb = len(data) / 1e6
    lines = text.splitlines(keepends=True)
    single, batch = [], []
    ids = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        single.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tok.encode_batch(lines, add_special_tokens=False)
        batch.append(time.perf_counter() - t0)
    print(f"tokenizers {tokenizers.__version__}: {path}, load {load:.2f} s; file {args.file}: {mb:.1f} MB, "
          f"{len(ids)} tokens")
    print("| mode | threads | MB/s |\n|------|--------:|-----:|")
    print(f"| encode(whole file), first pass | 1 | {mb / single[0]:.1f} |")
    print(f"| encode(whole file), best | 1 | {mb / min(single):.1f} |")
    print(f"| encode_batch(lines), best | {args.threads} | {mb / min(batch):.1f} |")
    if args.ipt:
        out = subprocess.run([args.ipt, "-t", "1", "tokenizer", "encode", "--tokenizer", args.tokenizer, "-f",
                              args.file], check=True, capture_output=True).stdout.split()
        same = [int(x) for x in out] == ids
        print(f"ids identical to ipt tokenizer encode: {'yes' if same else 'NO'}")
        sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
