#!/usr/bin/env python3
"""Writes a LLaMA model in Hugging Face layout (config.json + model.safetensors, as `ipt init` and
`ipt convert` write them) as a llama-architecture GGUF file that llama.cpp loads, for benchmarking
this engine against llama.cpp on the same weights (scripts/bench-llamacpp.sh).

  scripts/hf_to_gguf.py MODEL_DIR OUT.gguf [--type f32|bf16|q8_0]

--type: the storage of the 2-D weight matrices (token embedding, q/k/v/o, gate/up/down, lm_head);
the RMSNorm weights stay F32 in every type, as llama.cpp's own converter keeps them. BF16 and Q8_0
are rounded with the `gguf` package's reference quantizers (gguf.quants, the same rounding as
ggml's), so the files match what llama.cpp's tools would produce from the same F32 weights.

q_proj / k_proj rows are permuted from Hugging Face's half-split RoPE layout to the interleaved
pairs llama.cpp's LLaMA graph rotates (the inverse of gguf_unpermute_rows in
src/ipt/model/gguf_import.cpp). With a tokenizer.json in MODEL_DIR the GGUF carries that byte-level
BPE vocabulary (tokenizer.ggml.model "gpt2", pre-tokenizer recognised from the split regex);
without one it carries a placeholder vocabulary of vocab_size tokens (the 256 byte-level symbols,
then "ĠĠ" with its one merge, then "<dummy_N>"), enough for llama-bench and for scoring token ids.

Runs inside the repository's .venv/ (the convention of scripts/make-goldens.py and
scripts/make-gguf-fixtures.py): when `gguf` or `numpy` is missing it creates .venv/ if needed,
installs the pinned packages there and re-runs itself with .venv/bin/python. Not supported:
TTT models (ttt_mode true: llama.cpp has no TTT layers), rope_scaling, attention/MLP biases, architectures other
than llama.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv")
PINS = ["gguf==0.19.0", "numpy==2.4.6"]


def ensure_venv():
    try:
        import gguf  # noqa: F401
        import numpy  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.executable) == os.path.realpath(py) and os.environ.get("IPT_HF_TO_GGUF_SETUP"):
        sys.exit("hf_to_gguf.py: gguf/numpy still missing after installing them into .venv/")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    subprocess.check_call([os.path.join(VENV, "bin", "pip"), "install", "-q"] + PINS)
    os.environ["IPT_HF_TO_GGUF_SETUP"] = "1"
    os.execv(py, [py] + sys.argv)


ensure_venv()
import numpy as np  # noqa: E402
import gguf  # noqa: E402
from gguf import GGMLQuantizationType as Q  # noqa: E402

# Split regexes of the pre-tokenizers (src/ipt/tokenizer/patterns.h) -> llama.cpp's pre names.
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
         r"\s+(?!\S)|\s+")
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
          r"\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


# ------------------------------------------------------------------------------------------------
# safetensors, read directly (a JSON header, then raw little-endian tensors): no torch needed, and
# BF16 (which numpy lacks) is widened to F32 here.

def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        buf = raw[a:b]
        dt = t["dtype"]
        if dt == "F32":
            x = buf.view(np.float32)
        elif dt == "F16":
            x = buf.view(np.float16).astype(np.float32)
        elif dt == "BF16":
            x = (buf.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            sys.exit(f"hf_to_gguf.py: {path}: tensor '{name}' has dtype {dt} (F32, F16, BF16 only)")
        out[name] = x.reshape(t["shape"])
    return out


def load_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w = {}
    for f in files:
        w.update(read_safetensors(os.path.join(model_dir, f)))
    return w


# ------------------------------------------------------------------------------------------------

def permute(w, heads):
    """HF's rotate-half rows -> llama.cpp's interleaved pairs, per head: row (h, half, i) -> (h, i, half)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def pre_tokenizer_name(tok):
    pre = tok.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    regexes = [p["pattern"].get("Regex") for p in parts if p.get("type") == "Split"]
    if regexes == [QWEN2]:
        return "qwen2"
    if regexes == [LLAMA3]:
        return "llama-bpe"
    if [p.get("type") for p in parts] == ["Digits", "ByteLevel"]:
        return "smollm"
    if not regexes and parts and parts[-1].get("type") == "ByteLevel" and parts[-1].get("use_regex", True):
        return "gpt-2"
    if regexes == [GPT2]:
        return "gpt-2"
    print("hf_to_gguf.py: warning: pre-tokenizer not recognised, writing 'default'", file=sys.stderr)
    return "default"


def byte_symbols():
    """GPT-2's byte-level alphabet: the printable character standing for each byte 0..255."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def add_vocab(w, model_dir, vocab_size):
    path = os.path.join(model_dir, "tokenizer.json")
    tokens, types = [f"<dummy_{i}>" for i in range(vocab_size)], [gguf.TokenType.NORMAL] * vocab_size
    if not os.path.exists(path):
        for i, s in enumerate(byte_symbols()[:vocab_size]):
            tokens[i] = s
        merges = []
        if vocab_size > 256:  # one merge ("Ġ Ġ" -> "ĠĠ"): gguf skips empty arrays, llama.cpp needs the key
            tokens[256], merges = "\u0120\u0120", ["\u0120 \u0120"]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_add_bos_token(False)
        return "placeholder"
    tok = json.load(open(path, encoding="utf-8"))
    if tok["model"]["type"] != "BPE":
        sys.exit(f"hf_to_gguf.py: {path}: model type {tok['model']['type']} (byte-level BPE only)")
    for s, i in tok["model"]["vocab"].items():
        if i < vocab_size:
            tokens[i] = s
    for t in tok.get("added_tokens", []):
        if t["id"] < vocab_size:
            tokens[t["id"]] = t["content"]
            types[t["id"]] = gguf.TokenType.CONTROL if t.get("special") else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre_tokenizer_name(tok))
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    cfg_path = os.path.join(model_dir, "tokenizer_config.json")
    tc = json.load(open(cfg_path, encoding="utf-8")) if os.path.exists(cfg_path) else {}
    ids = {t: i for i, t in enumerate(tokens)}

    def token_id(v):
        if isinstance(v, dict):
            v = v.get("content")
        return ids.get(v) if v else None

    for key, add in [("bos_token", w.add_bos_token_id), ("eos_token", w.add_eos_token_id),
                     ("pad_token", w.add_pad_token_id), ("unk_token", w.add_unk_token_id)]:
        i = token_id(tc.get(key))
        if i is not None:
            add(i)
    w.add_add_bos_token(bool(tc.get("add_bos_token", False)))
    w.add_add_eos_token(bool(tc.get("add_eos_token", False)))
    if isinstance(tc.get("chat_template"), str):
        w.add_chat_template(tc["chat_template"])
    return f"{len(merges)} merges, pre {pre_tokenizer_name(tok)}"


def main():
    ap = argparse.ArgumentParser(description="Hugging Face LLaMA directory -> llama.cpp GGUF")
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--type", choices=["f32", "bf16", "q8_0"], default="f32")
    args = ap.parse_args()

    cfg = json.load(open(os.path.join(args.model_dir, "config.json")))
    if cfg.get("model_type", "llama") != "llama":
        sys.exit(f"hf_to_gguf.py: model_type '{cfg.get('model_type')}' (llama only)")
    if cfg.get("ttt_mode"):
        sys.exit("hf_to_gguf.py: a TTT model (ttt_mode true): llama.cpp has no TTT layers")
    if cfg.get("rope_scaling"):
        sys.exit("hf_to_gguf.py: rope_scaling is not supported")
    if cfg.get("attention_bias") or cfg.get("mlp_bias"):
        sys.exit("hf_to_gguf.py: attention/MLP biases are not supported")
    hidden, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    vocab_size = cfg["vocab_size"]

    weights = load_weights(args.model_dir)
    qtype = {"f32": Q.F32, "bf16": Q.BF16, "q8_0": Q.Q8_0}[args.type]
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
             "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[args.type]

    w = gguf.GGUFWriter(args.out, "llama")
    w.add_name(os.path.basename(os.path.normpath(args.model_dir)))
    w.add_file_type(ftype)
    w.add_context_length(cfg.get("max_position_embeddings", 2048))
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    w.add_vocab_size(vocab_size)
    vocab_note = add_vocab(w, args.model_dir, vocab_size)

    used = set()

    def tensor(gguf_name, hf_name, transform=None):
        x = weights[hf_name]
        used.add(hf_name)
        if transform is not None:
            x = transform(x)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 1 or qtype == Q.F32 or (qtype == Q.Q8_0 and x.shape[-1] % 32 != 0):
            w.add_tensor(gguf_name, x)
        else:
            w.add_tensor(gguf_name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)

    tensor("token_embd.weight", "model.embed_tokens.weight")
    tensor("output_norm.weight", "model.norm.weight")
    if "lm_head.weight" in weights and not cfg.get("tie_word_embeddings", False):
        tensor("output.weight", "lm_head.weight")
    elif "lm_head.weight" in weights:
        used.add("lm_head.weight")  # tied: llama.cpp reuses token_embd.weight
    for i in range(layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        tensor(b + "attn_norm.weight", p + "input_layernorm.weight")
        tensor(b + "attn_q.weight", p + "self_attn.q_proj.weight", lambda x: permute(x, heads))
        tensor(b + "attn_k.weight", p + "self_attn.k_proj.weight", lambda x: permute(x, kv_heads))
        tensor(b + "attn_v.weight", p + "self_attn.v_proj.weight")
        tensor(b + "attn_output.weight", p + "self_attn.o_proj.weight")
        tensor(b + "ffn_norm.weight", p + "post_attention_layernorm.weight")
        tensor(b + "ffn_gate.weight", p + "mlp.gate_proj.weight")
        tensor(b + "ffn_up.weight", p + "mlp.up_proj.weight")
        tensor(b + "ffn_down.weight", p + "mlp.down_proj.weight")
    left = sorted(set(weights) - used)
    if left:
        sys.exit(f"hf_to_gguf.py: tensors not converted: {', '.join(left[:8])}{' ...' if len(left) > 8 else ''}")

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{args.out}: llama, {layers} layers, hidden {hidden}, {heads}/{kv_heads} heads, vocab {vocab_size} "
          f"({vocab_note}), {args.type}, {os.path.getsize(args.out) / 2**20:.1f} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
