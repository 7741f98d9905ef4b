#!/usr/bin/env python3
"""Writes tests/fixtures/malformed/: one broken file per failure the readers must name, and
expected.json mapping each file to the reader that opens it and a fragment of its error.
The files are committed; rerun this only to add a case."""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "malformed")
expected = {}


def safetensors(name, header, data_bytes, error, claimed=None):
    header = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(struct.pack("<Q", claimed if claimed is not None else len(header)))
        f.write(header + bytes(data_bytes))
    expected[name] = {"reader": "safetensors", "error": error}


def config(name, overrides, error, drop=()):
    base = {"architectures": ["Qwen3ForCausalLM"], "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
            "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 128}
    base.update(overrides)
    for key in drop:
        base.pop(key)
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(base, f, indent=1)
    expected[name] = {"reader": "config", "error": error}


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "too_short.safetensors"), "wb") as f:
    f.write(b"abc")
expected["too_short.safetensors"] = {"reader": "safetensors", "error": "not a safetensors file"}
safetensors("huge_header.safetensors", {}, 0, "exceeds", claimed=1 << 40)
safetensors("header_past_end.safetensors", {}, 0, "runs past the end", claimed=1000)
safetensors("bad_json.safetensors", b'{"a": ', 0, "not valid JSON")
safetensors("offsets_outside.safetensors", {"a": t("F32", [2], 0, 8)}, 4, "fall outside the data section")
safetensors("size_mismatch.safetensors", {"a": t("F32", [3], 0, 8)}, 8, "shape and dtype need 12")
safetensors("overlap.safetensors", {"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, 12, "overlap")
safetensors("unsupported_dtype.safetensors", {"a": t("F8_E4M3", [2], 0, 2)}, 2, "unsupported dtype 'F8_E4M3'")
safetensors("missing_offsets.safetensors", {"a": {"dtype": "F32", "shape": [2]}}, 8, "needs dtype, shape and data_offsets")
safetensors("negative_shape.safetensors", {"a": t("F32", [-2], 0, 8)}, 8, "non-negative integers")
config("config_unknown_arch.json", {"architectures": ["MistralForCausalLM"]}, "MistralForCausalLM")
config("config_bad_activation.json", {"hidden_act": "gelu"}, "hidden_act 'gelu' is not supported")
config("config_kv_heads.json", {"num_key_value_heads": 3}, "num_key_value_heads")
config("config_ttt_layer.json", {"ttt_mode": True, "ttt_layers": [0, 5]}, "ttt_layers entry 5")
config("config_wrong_type.json", {"hidden_size": "sixteen"}, "'hidden_size' must be")
config("config_no_arch.json", {}, "'architectures' is missing", drop=("architectures",))
config("config_rope_type.json", {"rope_scaling": {"rope_type": "wobbly", "factor": 2.0}}, "rope_scaling type 'wobbly'")
with open(os.path.join(OUT, "config_not_json.json"), "w") as f:
    f.write("{\"architectures\": [\n")
expected["config_not_json.json"] = {"reader": "config", "error": "is not valid JSON"}
with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)
print(f"wrote {len(expected)} fixtures to {os.path.normpath(OUT)}")
