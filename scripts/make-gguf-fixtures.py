#!/usr/bin/env python3
"""Writes the GGUF test fixtures under tests/fixtures/gguf with Python's `gguf` package (llama.cpp's
own writer and reference quantizers):

  types/<TYPE>.gguf   one tensor "data" of that type (random floats, quantized by gguf.quants where it
                      can, random valid blocks for the K-quants it cannot quantize) and "expected":
                      gguf.quants.dequantize(data) as F32.
  metadata.gguf       one key of every metadata value type, arrays included.
  tiny-llama.gguf     a 2-layer llama with q/k permuted as convert_hf_to_gguf.py does (q/k in Q8_0),
  tiny-llama-hf/      ... and the same model in Hugging Face layout (safetensors, float32).
  tiny-qwen3.gguf     a 2-layer qwen3 (q/k norms, head_dim != hidden/heads, tied embeddings),
  tiny-qwen3-hf/      ... and its Hugging Face twin.
  tiny-qwen2.gguf     a 2-layer qwen2 (q/k/v biases, no o bias, untied head),
  tiny-qwen2-hf/      ... and its Hugging Face twin (Qwen2ForCausalLM).
The models carry the byte-level BPE tokenizer of tests/fixtures/tokenizers/trained (pre "qwen2").

Run: python3 -m venv .venv && .venv/bin/pip install gguf numpy safetensors
     .venv/bin/python scripts/make-gguf-fixtures.py   (deterministic: fixed seeds)
"""
import json
import os
import shutil
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf")
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "tokenizers", "trained")


def write(path, arch, fill):
    w = gguf.GGUFWriter(path, arch)
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def random_k_blocks(rng, qtype, n_blocks):
    """Random bytes are valid K-quant blocks; only the f16 scales are set to sane values."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    scales = rng.uniform(1e-3, 2e-2, size=(n_blocks, 2)).astype(np.float16).view(np.uint8)
    if qtype == Q.Q6_K:
        raw[:, -2:] = scales[:, :2]          # d is the last field
    else:
        raw[:, 0:4] = scales                 # d, dmin come first
    return raw


def make_types():
    os.makedirs(os.path.join(OUT, "types"), exist_ok=True)
    rng = np.random.default_rng(1234)
    rows, cols = 4, 512
    for qtype in [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]:
        x = rng.standard_normal((rows, cols)).astype(np.float32)
        if qtype in (Q.F16, Q.BF16):
            x[0, :4] = [np.inf, -np.inf, 6.0e-8, -3.0e-5]  # infinities and f16 subnormals
        if qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
            _, type_size = gguf.GGML_QUANT_SIZES[qtype]
            data = random_k_blocks(rng, qtype, rows * cols // 256).reshape(rows, -1)
        elif qtype == Q.F32:
            data = x
        else:
            data = gguf.quants.quantize(x, qtype)
        expected = gguf.quants.dequantize(data, qtype).astype(np.float32)
        assert expected.shape == (rows, cols)

        def fill(w, data=data, expected=expected, qtype=qtype):
            w.add_tensor("data", data, raw_dtype=qtype if qtype != Q.F32 else None)
            w.add_tensor("expected", expected)
        write(os.path.join(OUT, "types", qtype.name + ".gguf"), "test", fill)


def make_metadata():
    def fill(w):
        w.add_uint8("t.u8", 200)
        w.add_int8("t.i8", -100)
        w.add_uint16("t.u16", 60000)
        w.add_int16("t.i16", -30000)
        w.add_uint32("t.u32", 4000000000)
        w.add_int32("t.i32", -2000000000)
        w.add_float32("t.f32", 0.25)
        w.add_bool("t.bool", True)
        w.add_string("t.str", "héllo")
        w.add_uint64("t.u64", 1 << 40)
        w.add_int64("t.i64", -(1 << 40))
        w.add_float64("t.f64", 1.0 / 3.0)
        w.add_array("t.arr_str", ["a", "", "ünï"])
        w.add_array("t.arr_i32", [1, -2, 3])
        w.add_array("t.arr_f32", [0.5, -1.5])
        w.add_uint32("general.alignment", 64)
        w.add_tensor("t", np.arange(6, dtype=np.float32).reshape(2, 3))
    write(os.path.join(OUT, "metadata.gguf"), "test", fill)


def add_tokenizer(w):
    tok = json.load(open(os.path.join(TOKENIZER, "tokenizer.json"), encoding="utf-8"))
    vocab = tok["model"]["vocab"]
    added = {t["id"]: t for t in tok["added_tokens"]}
    n = max(list(vocab.values()) + list(added)) + 1
    tokens, types = [""] * n, [1] * n
    for s, i in vocab.items():
        tokens[i] = s
    for i, t in added.items():
        tokens[i], types[i] = t["content"], 3 if t["special"] else 4
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(997)  # as the source tokenizer_config.json: eos = pad = <|endoftext|>, no bos
    w.add_pad_token_id(997)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")
    return n


def permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def make_model(arch):
    rng = np.random.default_rng({"llama": 7, "qwen3": 8, "qwen2": 9}[arch])
    layers, hidden, inter, heads, kv_heads = 2, 32, 64, 4, 2
    head_dim = 16 if arch == "qwen3" else 8  # qwen3: heads * head_dim != hidden
    tied = arch == "qwen3"
    vocab = 1000
    f16 = lambda a: a.astype(np.float16).astype(np.float32)  # what an F16 tensor holds
    r = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)
    hf, gg = {}, []  # HF tensors; GGUF (name, array, raw_dtype)
    emb = f16(r(vocab, hidden))
    hf["model.embed_tokens.weight"] = emb
    gg.append(("token_embd.weight", emb.astype(np.float16), None))
    norm = (1 + r(hidden)).astype(np.float32)
    hf["model.norm.weight"] = norm
    gg.append(("output_norm.weight", norm, None))
    if not tied:
        out = f16(r(vocab, hidden))
        hf["lm_head.weight"] = out
        gg.append(("output.weight", out.astype(np.float16), None))
    for l in range(layers):
        p, b = f"model.layers.{l}.", f"blk.{l}."
        for g, h, shape in [("attn_q", "self_attn.q_proj", (heads * head_dim, hidden)),
                            ("attn_k", "self_attn.k_proj", (kv_heads * head_dim, hidden))]:
            w = r(*shape)
            if arch == "llama":
                n = heads if g == "attn_q" else kv_heads
                blocks = gguf.quants.quantize(permute(w, heads, n), Q.Q8_0)
                stored = gguf.quants.dequantize(blocks, Q.Q8_0)
                # The HF original is what the GGUF holds, un-permuted.
                hf[p + h + ".weight"] = stored.reshape(n, shape[0] // n // 2, 2, hidden).swapaxes(1, 2).reshape(shape)
                assert np.array_equal(permute(hf[p + h + ".weight"], heads, n), stored)
                gg.append((b + g + ".weight", blocks, Q.Q8_0))
            else:
                hf[p + h + ".weight"] = w
                gg.append((b + g + ".weight", w, None))
        for g, h, shape in [("attn_v", "self_attn.v_proj", (kv_heads * head_dim, hidden)),
                            ("attn_output", "self_attn.o_proj", (hidden, heads * head_dim)),
                            ("ffn_gate", "mlp.gate_proj", (inter, hidden)),
                            ("ffn_up", "mlp.up_proj", (inter, hidden)),
                            ("ffn_down", "mlp.down_proj", (hidden, inter))]:
            w = f16(r(*shape))
            hf[p + h + ".weight"] = w
            gg.append((b + g + ".weight", w.astype(np.float16), None))
        if arch == "qwen2":  # Qwen2's attention biases: q, k and v (F32, as convert_hf_to_gguf.py keeps 1-D tensors)
            for g, h, n in [("attn_q", "self_attn.q_proj", heads * head_dim), ("attn_k", "self_attn.k_proj", kv_heads * head_dim),
                            ("attn_v", "self_attn.v_proj", kv_heads * head_dim)]:
                bias = r(n)
                hf[p + h + ".bias"] = bias
                gg.append((b + g + ".bias", bias, None))
        norms = [("attn_norm", "input_layernorm", hidden), ("ffn_norm", "post_attention_layernorm", hidden)]
        if arch == "qwen3":
            norms += [("attn_q_norm", "self_attn.q_norm", head_dim), ("attn_k_norm", "self_attn.k_norm", head_dim)]
        for g, h, n in norms:
            w = (1 + r(n)).astype(np.float32)
            hf[p + h + ".weight"] = w
            gg.append((b + g + ".weight", w, None))

    name = f"tiny-{arch}"

    def fill(w):
        w.add_name(name)
        w.add_block_count(layers)
        w.add_context_length(2048)
        w.add_embedding_length(hidden)
        w.add_feed_forward_length(inter)
        w.add_head_count(heads)
        w.add_head_count_kv(kv_heads)
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        w.add_rope_dimension_count(head_dim)
        w.add_rope_freq_base(500000.0 if arch == "llama" else 1000000.0)
        w.add_layer_norm_rms_eps(1e-5 if arch == "llama" else 1e-6)
        assert add_tokenizer(w) == vocab
        for n, a, t in gg:
            w.add_tensor(n, a, raw_dtype=t)
    write(os.path.join(OUT, name + ".gguf"), arch, fill)

    d = os.path.join(OUT, name + "-hf")
    os.makedirs(d, exist_ok=True)
    config = {
        "architectures": [{"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM", "qwen2": "Qwen2ForCausalLM"}[arch]],
        "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": head_dim, "hidden_act": "silu",
        "rms_norm_eps": 1e-5 if arch == "llama" else 1e-6,
        "rope_theta": 500000.0 if arch == "llama" else 1000000.0, "max_position_embeddings": 2048,
        "tie_word_embeddings": tied, "eos_token_id": 997, "pad_token_id": 997,
        "torch_dtype": "float32",
    }
    json.dump(config, open(os.path.join(d, "config.json"), "w"), indent=2)
    save_file({k: np.ascontiguousarray(v) for k, v in hf.items()}, os.path.join(d, "model.safetensors"))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKENIZER, f), os.path.join(d, f))


if __name__ == "__main__":
    make_types()
    make_metadata()
    make_model("llama")
    make_model("qwen3")
    make_model("qwen2")
    for dirpath, _, files in sorted(os.walk(OUT)):
        for f in sorted(files):
            print(f"{os.path.getsize(os.path.join(dirpath, f)):8d}  {os.path.relpath(os.path.join(dirpath, f), ROOT)}")
