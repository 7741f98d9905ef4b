"""from_pretrained(dir): a Hugging Face directory with In-Place TTT — written by `ipt` (init, convert,
train), by convert() + save_pretrained, or by the official release — as a transformers model with
TTT MLPs. The TTT layers and settings come from config.json's ttt_* keys; the tensors
model.layers.{i}.mlp.ttt_conv.weight / ttt_proj.weight are loaded, or get the drop-in
initialisation when the checkpoint has none (a base model whose config turns TTT on)."""
import json
import os

import torch

from .convert import convert
from .mlp import TTTSettings


def _read_tensors(directory):
    from safetensors.torch import load_file

    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    elif os.path.exists(os.path.join(directory, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{directory} holds neither model.safetensors nor model.safetensors.index.json")
    tensors = {}
    for name in files:
        tensors.update(load_file(os.path.join(directory, name)))
    return tensors


def from_pretrained(directory, *, dtype=torch.float32, ttt: bool = True, attn_implementation: str = "sdpa",
                    config_overrides: dict = None, **overrides):
    """Loads `directory` as a transformers causal LM; TTT layers as config.json says (ttt_mode,
    ttt_layers, ttt_chunk, ...). ttt=False loads the same weights without TTT (TTT tensors skipped).
    config_overrides: config.json keys replaced before the model is built (ttt_mode, ttt_layers, ...).
    overrides: settings of convert() that replace the config's (chunk, lr, clip, algorithm, ...)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(directory)
    for key, value in (config_overrides or {}).items():
        setattr(config, key, value)
    layers = list(getattr(config, "ttt_layers", []) or []) if getattr(config, "ttt_mode", False) else []
    if "ttt_layers" not in config.to_dict() and getattr(config, "ttt_mode", False):
        layers = [i for i in (0, 6, 12, 18, 24, 30) if i < config.num_hidden_layers]  # the official default
    model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn_implementation)
    if ttt and layers:
        s = TTTSettings.from_config(config)
        settings = dict(chunk=s.chunk, lr=s.lr, proj=s.proj, target=s.target, clip=s.clip, padding=s.padding,
                        kind=s.kind, decay=s.decay)
        settings.update(overrides)
        convert(model, layers, **settings)
    tensors = _read_tensors(directory)
    if not ttt:
        tensors = {k: v for k, v in tensors.items() if ".mlp.ttt_" not in k}
    expected = model.state_dict()
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise ValueError(f"{directory}: tensors the model does not have: {unexpected[:8]}")
    tied = getattr(config, "tie_word_embeddings", False)
    missing = [k for k in expected if k not in tensors and not (tied and k == "lm_head.weight")]
    drop_in = [k for k in missing if ".mlp.ttt_" in k]
    if sorted(set(missing) - set(drop_in)):
        raise ValueError(f"{directory}: missing tensors: {sorted(set(missing) - set(drop_in))[:8]}")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ValueError(f"{directory}: {name} is {list(tensor.shape)}, expected {list(expected[name].shape)}")
    # Drop-in tensors keep convert()'s initialisation; everything else is the checkpoint's.
    model.load_state_dict({k: v.to(dtype) for k, v in tensors.items()}, strict=False)
    if tied:
        model.tie_weights()
    return model.eval()
