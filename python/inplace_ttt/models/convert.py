"""convert(model, layers=...): a loaded transformers Qwen3 / LLaMA model with In-Place TTT in the
chosen decoder layers (their MLPs become TTTMLPs), the config updated with the ttt_* keys so that
save_pretrained writes a checkpoint that `ipt` and from_pretrained load."""
from typing import Iterable, Optional

import torch
from torch import nn

from .mlp import TargetSource, TTTMLP, TTTSettings

SUPPORTED = ("qwen3", "llama", "qwen2")


def _decoder(model: nn.Module):
    base = getattr(model, "model", model)
    if not hasattr(base, "layers") or not hasattr(base, "embed_tokens"):
        raise TypeError(f"convert needs a transformers decoder model (Qwen3 / LLaMA), got {type(model).__name__}")
    return base


def packed_offsets(position_ids, tokens):
    """Document offsets over the rows laid end to end when position_ids restart inside a row (packed
    documents, as transformers reads them for attention), else None. Every row starts a document."""
    if position_ids is None or tokens is None or position_ids.shape[-1] < 2:
        return None
    B, L = tokens.shape[:2]
    restarts = position_ids[..., 1:] != position_ids[..., :-1] + 1
    if not bool(restarts.any()):
        return None
    restarts = restarts.expand(B, L - 1)
    offsets = []
    for b in range(B):
        offsets += [b * L] + [b * L + 1 + int(i) for i in restarts[b].nonzero().flatten()]
    return offsets + [B * L]


def _install_embedding_hooks(base: nn.Module, source: TargetSource):
    """Hands the token embeddings of each forward to the TTT MLPs (ttt_target: input_embed)."""
    if getattr(base, "_ipt_target_source", None) is not None:
        return base._ipt_target_source

    def from_embedding(module, inputs, output):
        source.embeddings = output

    def from_call(module, args, kwargs):
        cache = kwargs.get("past_key_values")
        if cache is not None and hasattr(cache, "get_seq_length") and cache.get_seq_length() > 0:
            # A continuation would start the fast weights from W0 again instead of from the prefix's.
            raise NotImplementedError("inplace_ttt.models runs whole sequences: decoding with a KV cache would "
                                      "drop the fast weights of the prefix (pass use_cache=False to generate, "
                                      "or decode with `ipt generate`, which streams them)")
        source.embeddings = kwargs.get("inputs_embeds")  # None until embed_tokens runs (input_ids given)
        tokens = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        source.cu_seqlens = packed_offsets(kwargs.get("position_ids"), tokens)

    base.register_forward_pre_hook(from_call, with_kwargs=True)
    base.embed_tokens.register_forward_hook(from_embedding)
    base._ipt_target_source = source
    return source


def convert(model: nn.Module, layers: Iterable[int], chunk: int = 8192, lr: float = 0.3, *, clip: float = 0.0,
            proj: bool = True, target: str = "hidden_states", padding: str = "same", kind: str = "conv",
            decay: float = 1.0, algorithm: str = "auto", init: bool = True, seed: Optional[int] = 0) -> nn.Module:
    """Replaces the MLP of each layer in `layers` with a TTT MLP (in place; returns the model).

    down_proj.weight becomes the fast weight's start W0; the new tensors get the drop-in
    initialisation (ttt_conv = 0, ttt_proj = diag(N(0, initializer_range^2))) unless init=False,
    so the converted model computes exactly what it did before until it is trained.
    """
    config = model.config
    if getattr(config, "model_type", None) not in SUPPORTED:
        raise ValueError(f"convert supports model types {SUPPORTED}, got {getattr(config, 'model_type', None)!r}")
    if getattr(config, "hidden_act", "silu") != "silu":
        raise ValueError(f"convert needs hidden_act silu, got {config.hidden_act!r}")
    base = _decoder(model)
    layers = sorted({int(i) for i in layers})
    n = len(base.layers)
    if not layers or layers[0] < 0 or layers[-1] >= n:
        raise ValueError(f"layers must be a non-empty list of indices in [0, {n}), got {layers}")
    settings = TTTSettings(chunk=chunk, lr=lr, proj=proj, target=target, clip=clip, padding=padding, kind=kind,
                           decay=decay, algorithm=algorithm)
    settings.validate()
    source = _install_embedding_hooks(base, getattr(base, "_ipt_target_source", None) or TargetSource())
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    std = getattr(config, "initializer_range", 0.02)
    for i in layers:
        layer = base.layers[i]
        # A TTT MLP converted again keeps its gate/up/down projections and gets new TTT tensors.
        new = TTTMLP(layer.mlp, TTTSettings(**settings.__dict__), source)
        if init:
            new.drop_in_init(std, generator)
        layer.mlp = new
    previous = set(getattr(config, "ttt_layers", []) or []) if getattr(config, "ttt_mode", False) else set()
    config.ttt_mode = True
    config.ttt_layers = sorted(previous | set(layers))
    for key, value in settings.config_keys().items():
        setattr(config, key, value)
    return model


def ttt_layers(model: nn.Module):
    """Indices of the decoder layers whose MLP is a TTT MLP."""
    return [i for i, layer in enumerate(_decoder(model).layers) if isinstance(layer.mlp, TTTMLP)]
