#!/usr/bin/env python3
"""Hugging Face transformers (eager PyTorch, no torch.compile) as a peer of `ipt bench`: prefill,
decode and training tokens/s of one model on the CPU, printed as one JSON object.

  .venv/bin/python scripts/bench_transformers.py --gguf FILE.gguf [--model-dir DIR]
      [--tests pp512,pp4096,tg64,train512] [--threads 2] [--repeat 3] [--batch 1]
      [--dtype bfloat16|float32] [--attn sdpa|eager] [--prompt 1] [--source auto|gguf|dir]

The model: AutoModelForCausalLM.from_pretrained(dirname(FILE), gguf_file=basename(FILE),
dtype=float32) -- transformers dequantizes the GGUF itself with gguf-py, as scripts/make-goldens.py
does -- or, with --source dir (or --source auto and no --gguf), from_pretrained(DIR) on a Hugging Face
layout (config.json + safetensors). Weights stay float32; --dtype bfloat16 runs every test under
torch.autocast("cpu", dtype=torch.bfloat16) (float32: no autocast).

Tests (N tokens each; every value is the median of --repeat measurements after one warm-up run):
  ppN     prefill: one forward of [1, N] random ids with use_cache=True (the KV cache is built) and
          logits_to_keep=1 (the next token's logits only), in torch.inference_mode(), one autocast
          region per forward (so it includes autocast's cast of the float32 weights to bf16).
  tgN     decode: a --prompt-token prompt (default 1) is prefilled untimed, then N greedy steps, each
          one forward of the previous step's argmax token against the KV cache (use_cache=True,
          past_key_values); timed are the N steps only. Prompt and steps share one autocast region
          under torch.no_grad(), so the weights' bf16 copies made for the prompt serve every step
          (autocast's cast cache; torch 2.11 skips that cache under inference_mode, where each step
          would cast every weight again: --decode-mode inference_mode measures that).
  trainN  training step on --batch rows of N tokens (random ids; N + 1 per row, shifted for the
          labels): forward under autocast, float32 cross-entropy over all N positions, backward,
          clip_grad_norm_(1.0), torch.optim.AdamW(lr=1e-4) step on the float32 parameters
          (mixed precision: bf16 compute, float32 master weights, gradients and optimizer state).
          tokens/s = batch * N / step seconds.
A test that fails (out of memory, ...) is reported under "errors" and the others still run.
"""
import argparse
import json
import os
import re
import statistics
import sys
import time


def log(*a):
    print("bench_transformers:", *a, file=sys.stderr, flush=True)


def parse_tests(spec):
    tests = []
    for t in spec.split(","):
        t = t.strip()
        if not t:
            continue
        m = re.fullmatch(r"(pp|tg|train)(\d+)", t)
        if not m or int(m.group(2)) <= 0:
            sys.exit(f"bench_transformers: unknown test '{t}' (expected ppN, tgN or trainN)")
        tests.append((t, m.group(1), int(m.group(2))))
    return tests


def dir_is_hf(d):
    """A Hugging Face layout transformers can load: config.json with a model_type, safetensors, no TTT."""
    try:
        cfg = json.load(open(os.path.join(d, "config.json")))
    except (OSError, ValueError):
        return False, "no readable config.json"
    if cfg.get("ttt_mode"):
        return False, "its config has TTT layers (ttt_mode), which transformers does not have"
    if not any(f.endswith(".safetensors") for f in os.listdir(d)):
        return False, "no .safetensors file"
    return True, ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", help="GGUF file to load (transformers dequantizes it to float32)")
    ap.add_argument("--model-dir", help="Hugging Face model directory (config.json + safetensors)")
    ap.add_argument("--source", choices=["auto", "gguf", "dir"], default="auto",
                    help="auto: the GGUF when given, else --model-dir")
    ap.add_argument("--tests", default="pp512,pp4096,tg64,train512")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", 2)))
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("REPEAT", 3)))
    ap.add_argument("--batch", type=int, default=1, help="rows per training step")
    ap.add_argument("--prompt", type=int, default=1, help="prompt tokens prefilled (untimed) before tgN")
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa",
                    help="attn_implementation (sdpa: transformers' default)")
    ap.add_argument("--decode-mode", choices=["no_grad", "inference_mode"], default="no_grad",
                    help="grad mode of tgN (no_grad: autocast's weight cache works; inference_mode: it does not)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tests = parse_tests(args.tests)
    if args.repeat < 1 or args.batch < 1 or args.prompt < 1 or args.threads < 1:
        sys.exit("bench_transformers: --repeat, --batch, --prompt and --threads must be >= 1")

    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    source = args.source
    if source == "auto":
        source = "gguf" if args.gguf else "dir"
    if source == "gguf":
        if not args.gguf or not os.path.isfile(args.gguf):
            sys.exit(f"bench_transformers: GGUF file '{args.gguf}' not found")
        path = os.path.abspath(args.gguf)
        load_from = dict(pretrained_model_name_or_path=os.path.dirname(path), gguf_file=os.path.basename(path))
    else:
        if not args.model_dir:
            sys.exit("bench_transformers: --source dir needs --model-dir")
        ok, why = dir_is_hf(args.model_dir)
        if not ok:
            sys.exit(f"bench_transformers: {args.model_dir}: {why}")
        path = os.path.abspath(args.model_dir)
        load_from = dict(pretrained_model_name_or_path=path)

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(**load_from, dtype=torch.float32, attn_implementation=args.attn)
    model.eval()
    load_s = time.perf_counter() - t0
    cfg = model.config
    vocab = cfg.vocab_size
    n_params = sum(p.numel() for p in model.parameters())
    log(f"loaded {type(model).__name__} from {path} ({n_params / 1e6:.1f} M parameters) in {load_s:.1f} s; "
        f"{args.threads} threads, {args.dtype}, attention {args.attn}")

    bf16 = args.dtype == "bfloat16"

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    gen = torch.Generator().manual_seed(args.seed)

    def rand_ids(*shape):
        return torch.randint(0, vocab, shape, generator=gen, dtype=torch.int64)

    def prefill(n):
        ids = rand_ids(1, n)
        model.eval()
        with torch.inference_mode(), autocast():
            t = time.perf_counter()
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            out.logits.float()  # the next token's logits, as the other engines end a prefill
            return n / (time.perf_counter() - t)

    # torch 2.11's autocast keeps no cast cache under inference_mode (pytorch/pytorch#165068): there
    # every decode step would cast all float32 weights to bf16 again. Under no_grad the bf16 copies
    # made for the prompt serve every step, as a user decoding under autocast would see.
    decode_mode = torch.inference_mode if args.decode_mode == "inference_mode" else torch.no_grad

    def decode(n):
        ids = rand_ids(1, args.prompt)
        model.eval()
        with decode_mode(), autocast():
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            logits = out.logits[:, -1]
            t = time.perf_counter()
            for _ in range(n):
                token = logits.argmax(dim=-1, keepdim=True)  # greedy
                out = model(input_ids=token, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                logits = out.logits[:, -1]
            logits.float()
            return n / (time.perf_counter() - t)

    opt = None

    def train(n):
        nonlocal opt
        model.train()
        if opt is None:
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ids = rand_ids(args.batch, n + 1)
        inputs, labels = ids[:, :n], ids[:, 1:]
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast():
            logits = model(input_ids=inputs, use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        s = time.perf_counter() - t
        model.eval()
        return args.batch * n / s

    run = dict(pp=prefill, tg=decode, train=train)
    rows, errors = {}, {}
    for name, kind, n in tests:
        try:
            run[kind](n)  # warm-up
            samples = [run[kind](n) for _ in range(args.repeat)]
        except Exception as e:  # noqa: BLE001 (out of memory and the like: report it, go on)
            errors[name] = f"{type(e).__name__}: {e}"[:300]
            log(f"{name}: failed: {errors[name]}")
            continue
        rows[name] = dict(tokens_per_s=statistics.median(samples), samples=samples)
        log(f"{name}: {rows[name]['tokens_per_s']:.1f} tokens/s (median of {args.repeat}: "
            + ", ".join(f"{x:.1f}" for x in samples) + ")")

    print(json.dumps(dict(
        peer="transformers", source=source, model=path, model_class=type(model).__name__,
        parameters=n_params, threads=args.threads, repeat=args.repeat, batch=args.batch,
        prompt=args.prompt, dtype=args.dtype,
        autocast="torch.autocast('cpu', dtype=torch.bfloat16)" if bf16 else None,
        attn_implementation=args.attn, decode_mode=args.decode_mode, load_seconds=load_s,
        versions=dict(transformers=transformers.__version__, torch=torch.__version__),
        rows=rows, errors=errors), indent=1))


if __name__ == "__main__":
    main()
