#!/usr/bin/env python3
"""inplace_ttt.models against the official In-Place-TTT release's modeling code, on a tiny Qwen3 or
LLaMA with TTT layers: same weights, same tokens; prints the largest relative difference of the
logits and of every parameter's gradient, in float64 and float32.

The official code is imported from a checkout outside this repository (never copied into it):
    python/scripts/compare_official.py /path/to/In-Place-TTT   (or IPT_OFFICIAL_DIR=...)
It needs transformers 4.57.3, einops and opt_einsum; its package __init__ (which pulls liger_kernel)
is skipped: the modeling module is imported on its own.
"""
import argparse
import importlib
import json
import os
import sys
import types

import torch

import inplace_ttt  # noqa: F401
from inplace_ttt import models


def load_official(official_dir, arch):
    folder = {"qwen3": "hf_qwen3", "llama": "hf_llama"}[arch]
    name = f"_official_{folder}"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [os.path.join(official_dir, "hf_models", folder)]
        sys.modules[name] = package
    modeling = importlib.import_module(f"{name}.modeling_{arch}")
    configuration = importlib.import_module(f"{name}.configuration_{arch}")
    config_class = configuration.Qwen3Config if arch == "qwen3" else configuration.LlamaConfig
    model_class = modeling.Qwen3ForCausalLM if arch == "qwen3" else modeling.LlamaForCausalLM
    return config_class, model_class


def compare(official_dir, arch="qwen3", dtype=torch.float64, target="hidden_states", length=45, chunk=8,
            seed=0):
    """-> {"logits": max relative difference, "grads": max relative difference over parameters, ...}"""
    config_class, model_class = load_official(official_dir, arch)
    extra = {"head_dim": 8} if arch == "qwen3" else {}
    config = config_class(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                          tie_word_embeddings=False, ttt_mode=True, ttt_layers=[0, 2], ttt_proj=True, ttt_lr=0.3,
                          ttt_chunk=chunk, ttt_target=target, attn_implementation="eager", **extra)
    torch.manual_seed(seed)
    official = model_class(config).to(dtype)
    with torch.no_grad():  # non-zero TTT tensors (the official init zeroes the conv), so weights move
        for name, p in official.named_parameters():
            if ".mlp.ttt_" in name:
                p.copy_(torch.randn_like(p) * 0.3)

    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM
    base_config = (Qwen3Config if arch == "qwen3" else LlamaConfig)(**{
        k: v for k, v in config.to_dict().items() if not k.startswith("ttt_")})
    base_config._attn_implementation = "eager"
    ours = (Qwen3ForCausalLM if arch == "qwen3" else LlamaForCausalLM)(base_config).to(dtype)
    models.convert(ours, layers=[0, 2], chunk=chunk, lr=0.3, target=target)
    ours.load_state_dict(official.state_dict(), strict=True)  # same names: ttt_conv, ttt_proj
    ids = torch.randint(0, 96, (2, length), generator=torch.Generator().manual_seed(seed + 1))

    def run(model):
        model.zero_grad()
        out = model(ids)
        loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        return out.logits.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}

    want_logits, want_grads = run(official)
    got_logits, got_grads = run(ours)
    rel = lambda a, b: ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()  # noqa: E731
    grads = {n: rel(got_grads[n], want_grads[n]) for n in want_grads}
    ttt_grad_norm = sum(want_grads[n].norm() ** 2 for n in want_grads if ".mlp.ttt_" in n) ** 0.5
    return {"arch": arch, "dtype": str(dtype).replace("torch.", ""), "target": target, "length": length,
            "chunk": chunk, "logits": rel(got_logits, want_logits), "grads": max(grads.values()),
            "worst_grad": max(grads, key=grads.get), "ttt_grad_norm": float(ttt_grad_norm)}


def official_checkpoint(official_dir, directory, arch="qwen3"):
    """An official model saved with save_pretrained (its config.json and ttt_* tensors), loaded by
    inplace_ttt.models.from_pretrained: -> max relative logits difference (float32)."""
    config_class, model_class = load_official(official_dir, arch)
    extra = {"head_dim": 8} if arch == "qwen3" else {}
    config = config_class(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                          ttt_mode=True, ttt_layers=[1], ttt_chunk=8, ttt_lr=0.3, **extra)
    torch.manual_seed(0)
    official = model_class(config).eval()
    with torch.no_grad():
        for name, p in official.named_parameters():
            if ".mlp.ttt_" in name:
                p.copy_(torch.randn_like(p) * 0.3)
    official.save_pretrained(directory)
    ours = models.from_pretrained(directory)
    assert models.ttt_layers(ours) == [1]
    ids = torch.randint(0, 96, (1, 37), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want, got = official(ids).logits, ours(ids).logits
    return ((got - want).abs().max() / want.abs().max()).item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("official_dir", nargs="?", default=os.environ.get("IPT_OFFICIAL_DIR"))
    a = ap.parse_args()
    if not a.official_dir:
        ap.error("give the official checkout's directory (or set IPT_OFFICIAL_DIR)")
    for arch in ("qwen3", "llama"):
        for dtype in (torch.float64, torch.float32):
            for target in ("hidden_states", "input_embed"):
                print(json.dumps(compare(a.official_dir, arch, dtype, target)))
    import tempfile
    for arch in ("qwen3", "llama"):
        with tempfile.TemporaryDirectory() as directory:
            print(json.dumps({"official checkpoint -> from_pretrained": arch,
                              "logits": official_checkpoint(a.official_dir, directory, arch)}))


if __name__ == "__main__":
    main()
