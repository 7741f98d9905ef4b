"""The In-Place TTT MLP for transformers' Qwen3 / LLaMA decoder layers.

In a TTT layer the gated MLP's down projection W0 is the start of a fast weight: the hidden
activations Z = act(gate(x)) * up(x) of chunk i are multiplied by the current fast weight, which then
takes one step W += lr * V_i^T Z_i towards the target V = Conv(X) P (inplace_ttt.ttt / target).
X is the MLP input (ttt_target "hidden_states", the official default) or the token embeddings
("input_embed", handed over by the model's hooks, see convert.py).
"""
from dataclasses import dataclass

import torch
from torch import nn

from ..ops import target as build_target
from ..ops import ttt

TARGET_SOURCES = ("hidden_states", "input_embed")


@dataclass
class TTTSettings:
    """The config.json keys (official names, then ours) with their defaults."""
    chunk: int = 8192                 # ttt_chunk
    lr: float = 0.3                   # ttt_lr
    proj: bool = True                 # ttt_proj
    target: str = "hidden_states"     # ttt_target
    clip: float = 0.0                 # ttt_clip
    padding: str = "same"             # ttt_conv_padding
    kind: str = "conv"                # ttt_target_kind
    decay: float = 1.0                # ttt_decay (1 = the official, undecayed update)
    algorithm: str = "auto"

    def validate(self):
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk <= 0:
            raise ValueError(f"chunk (ttt_chunk) must be an int > 0, got {self.chunk!r}")
        if self.target not in TARGET_SOURCES:
            raise ValueError(f"target (ttt_target) must be one of {TARGET_SOURCES}, got {self.target!r}")
        if self.padding not in ("same", "causal"):
            raise ValueError(f"padding (ttt_conv_padding) must be 'same' or 'causal', got {self.padding!r}")
        if self.kind not in ("conv", "reconstruction"):
            raise ValueError(f"kind (ttt_target_kind) must be 'conv' or 'reconstruction', got {self.kind!r}")
        if self.clip < 0:
            raise ValueError(f"clip (ttt_clip) must be >= 0, got {self.clip!r}")
        if not 0 < self.decay <= 1:
            raise ValueError(f"decay (ttt_decay) must be in (0, 1], got {self.decay!r}")

    def config_keys(self):
        keys = {"ttt_chunk": self.chunk, "ttt_lr": self.lr, "ttt_proj": self.proj, "ttt_target": self.target,
                "ttt_clip": self.clip, "ttt_conv_padding": self.padding, "ttt_target_kind": self.kind}
        if self.decay != 1.0:  # absent = the official update, as ipt writes it
            keys["ttt_decay"] = self.decay
        return keys

    @classmethod
    def from_config(cls, config):
        get = lambda key, default: getattr(config, key, default)  # noqa: E731
        return cls(chunk=get("ttt_chunk", 8192), lr=get("ttt_lr", 0.3), proj=get("ttt_proj", True),
                   target=get("ttt_target", "hidden_states"), clip=get("ttt_clip", 0.0),
                   padding=get("ttt_conv_padding", "same"), kind=get("ttt_target_kind", "conv"),
                   decay=get("ttt_decay", 1.0))


class TargetSource:
    """What the TTT MLPs of one model read from the current forward, set by hooks on the model
    (convert.py): the token embeddings (ttt_target input_embed) and, for packed rows (position_ids
    that restart), the document offsets of the rows laid end to end."""

    def __init__(self):
        self.embeddings = None
        self.cu_seqlens = None  # [0, ..., B*L] over the flattened batch, or None: one document per row


class TTTMLP(nn.Module):
    """Drop-in for a Qwen3MLP / LlamaMLP: keeps its gate_proj, up_proj, down_proj and act_fn (so
    checkpoint names are unchanged) and adds ttt_conv.weight [d, 1, 5] and ttt_proj.weight [d, d]."""

    def __init__(self, mlp: nn.Module, settings: TTTSettings, source: TargetSource):
        super().__init__()
        settings.validate()
        self.gate_proj, self.up_proj, self.down_proj = mlp.gate_proj, mlp.up_proj, mlp.down_proj
        self.act_fn = mlp.act_fn
        self.settings = settings
        self._source = source
        d = self.down_proj.out_features
        w = self.down_proj.weight
        self.ttt_conv = (nn.Conv1d(d, d, 5, padding=2, groups=d, bias=False, device=w.device, dtype=w.dtype)
                         if settings.kind == "conv" else None)
        self.ttt_proj = nn.Linear(d, d, bias=False, device=w.device, dtype=w.dtype) if settings.proj else None

    @torch.no_grad()
    def drop_in_init(self, std: float, generator=None):
        """conv = 0 and P = diag(N(0, std^2)): every update is zero, the outputs are the base model's."""
        if self.ttt_conv is not None:
            self.ttt_conv.weight.zero_()
        if self.ttt_proj is not None:
            d = self.ttt_proj.weight.shape[0]
            diag = torch.randn(d, generator=generator, dtype=torch.float64) * std
            self.ttt_proj.weight.copy_(torch.diag(diag).to(self.ttt_proj.weight))

    def forward(self, x):
        s = self.settings
        Z = self.act_fn(self.gate_proj(x)) * self.up_proj(x)
        X = x
        if s.target == "input_embed":
            X = self._source.embeddings
            if X is None or X.shape[:2] != x.shape[:2]:
                raise RuntimeError("ttt_target input_embed: the model's embeddings were not captured for this "
                                   "forward (call the converted model, not the MLP alone)")
            X = X.to(x.dtype)
        conv = self.ttt_conv.weight if self.ttt_conv is not None else None
        proj = self.ttt_proj.weight if self.ttt_proj is not None else None
        cu = self._source.cu_seqlens
        if cu is not None:  # packed documents: one row of B*L tokens, fast weights restart per document
            B, L = x.shape[:2]
            if cu[-1] != B * L:
                raise RuntimeError(f"packed rows: document offsets end at {cu[-1]}, the batch holds {B * L} tokens")
            Z, X = Z.reshape(1, B * L, -1), X.reshape(1, B * L, -1)
        V = build_target(X, conv, proj, chunk_size=s.chunk, kind=s.kind, padding=s.padding, cu_seqlens=cu)
        out = ttt(Z, V, self.down_proj.weight, chunk_size=s.chunk, lr=s.lr, clip=s.clip, decay=s.decay,
                  algorithm=s.algorithm, cu_seqlens=cu)
        return out if cu is None else out.reshape(x.shape[0], x.shape[1], -1)

    def extra_repr(self):
        s = self.settings
        return f"chunk={s.chunk}, lr={s.lr}, clip={s.clip}, decay={s.decay}, target={s.target}, proj={s.proj}"
