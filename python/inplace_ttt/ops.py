"""Python front of the torch.library ops: argument checks with Python exceptions that name the
argument, the autograd formula (our reverse-scan backward) and fake kernels for torch.compile."""
import math
from typing import Optional, Sequence, Union

import torch

DTYPES = (torch.float32, torch.bfloat16, torch.float64)
ALGORITHMS = ("auto", "recurrent", "scan", "reference")
Seqlens = Optional[Union[Sequence[int], torch.Tensor]]


def ttt(Z: torch.Tensor, V: torch.Tensor, W0: torch.Tensor, *, chunk_size: int, lr: float, clip: float = 0.0,
        decay: float = 1.0, cu_seqlens: Seqlens = None, algorithm: str = "auto", scan_group: int = 0) -> torch.Tensor:
    """In-Place TTT: O_i = Z_i W_i^T, W_{i+1} = W_i + s_i lr V_i^T Z_i per chunk of `chunk_size` rows.

    Z [B, L, h] (the MLP's hidden activations), V [B, L, d] (the target), W0 [d, h] (down_proj.weight)
    -> [B, L, d]. clip > 0 scales each update to Frobenius norm <= clip. cu_seqlens [0, n1, ..., L]
    packs documents into one row (B == 1); each starts from W0. decay in (0, 1] pulls the fast weight
    back before each update, W <- W0 + decay (W - W0) (1: the official update). Differentiable in Z, V, W0.
    """
    _check_ttt(Z, V, W0)
    chunk_size, lr, clip = _check_hyper(chunk_size, lr, clip)
    seqlens = _check_seqlens(cu_seqlens, Z.shape[0], Z.shape[1])
    if isinstance(decay, bool) or not isinstance(decay, (int, float, torch.SymFloat)) or not (0 < decay <= 1):
        raise ValueError(f"decay must be a number in (0, 1] (1 = no decay), got {decay!r}")
    decay = float(decay)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if not isinstance(scan_group, int) or scan_group < 0:
        raise ValueError(f"scan_group must be an int >= 0 (0 = all chunks), got {scan_group!r}")
    if algorithm == "reference":
        return torch.ops.inplace_ttt.ttt_reference(Z, V, W0, chunk_size, lr, clip, decay, seqlens)
    out, _ = torch.ops.inplace_ttt.ttt_forward(Z, V, W0, chunk_size, lr, clip, decay, seqlens, algorithm,
                                               scan_group)
    return out


def target(X: torch.Tensor, conv_weight: Optional[torch.Tensor], proj: Optional[torch.Tensor], *, chunk_size: int,
           kind: str = "conv", padding: str = "same", cu_seqlens: Seqlens = None) -> torch.Tensor:
    """The LM-aligned target V = Conv(X) P: a depthwise 5-tap convolution inside each chunk of each
    document (taps t-2..t+2 for "same", t-4..t for "causal", zeros outside the chunk), then X P with
    P = proj [d, d] (None: no projection). kind="reconstruction" is X P. X [B, L, d] -> [B, L, d]."""
    if not isinstance(X, torch.Tensor) or X.dim() != 3:
        raise ValueError(f"X must be a tensor [B, L, d], got {_describe(X)}")
    if X.dtype not in DTYPES:
        raise TypeError(f"X must be float32, bfloat16 or float64, got {X.dtype}")
    d = X.shape[2]
    if kind not in ("conv", "reconstruction"):
        raise ValueError(f"kind must be 'conv' or 'reconstruction', got {kind!r}")
    if padding not in ("same", "causal"):
        raise ValueError(f"padding must be 'same' or 'causal', got {padding!r}")
    if kind == "conv":
        if not isinstance(conv_weight, torch.Tensor) or tuple(conv_weight.shape) != (d, 1, 5):
            raise ValueError(f"conv_weight must be a tensor [{d}, 1, 5], got {_describe(conv_weight)}")
        _same(X, conv_weight, "conv_weight")
    elif conv_weight is not None:
        _same(X, conv_weight, "conv_weight")
    if proj is not None:
        if not isinstance(proj, torch.Tensor) or tuple(proj.shape) != (d, d):
            raise ValueError(f"proj must be a tensor [{d}, {d}] or None, got {_describe(proj)}")
        _same(X, proj, "proj")
    chunk_size, _, _ = _check_hyper(chunk_size, 0.0, 0.0)
    seqlens = _check_seqlens(cu_seqlens, X.shape[0], X.shape[1])
    return torch.ops.inplace_ttt.build_target(X, conv_weight, proj, chunk_size, kind, padding, seqlens)


# --- argument checks -------------------------------------------------------------------------

def _describe(x):
    return f"shape {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def _same(ref, t, name):
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} must have dtype {ref.dtype} like the other inputs, got {t.dtype}")
    if t.device != ref.device:
        raise ValueError(f"{name} must be on {ref.device} like the other inputs, got {t.device}")


def _check_ttt(Z, V, W0):
    for name, t, dims, layout in (("Z", Z, 3, "[B, L, h]"), ("V", V, 3, "[B, L, d]"), ("W0", W0, 2, "[d, h]")):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor {layout}, got {type(t).__name__}")
        if t.dim() != dims:
            raise ValueError(f"{name} must be {layout}, got shape {list(t.shape)}")
    if Z.dtype not in DTYPES:
        raise TypeError(f"Z must be float32, bfloat16 or float64, got {Z.dtype}")
    _same(Z, V, "V")
    _same(Z, W0, "W0")
    B, L, h = Z.shape
    d = V.shape[2]
    if tuple(V.shape[:2]) != (B, L):
        raise ValueError(f"V must be [B, L, d] with [B, L] = {[B, L]} as in Z, got shape {list(V.shape)}")
    if tuple(W0.shape) != (d, h):
        raise ValueError(f"W0 must be [d, h] = {[d, h]} (d from V, h from Z), got shape {list(W0.shape)}")
    if L == 0:
        raise ValueError("Z must hold at least one token (L > 0)")


def _check_hyper(chunk_size, lr, clip):
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be an int > 0, got {chunk_size!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float, torch.SymFloat)):
        raise ValueError(f"lr must be a finite number, got {lr!r}")
    if isinstance(clip, bool) or not isinstance(clip, (int, float, torch.SymFloat)):
        raise ValueError(f"clip must be a finite number >= 0 (0 = off), got {clip!r}")
    # Comparisons, not math.isfinite: torch.compile(dynamic=True) hands in symbolic floats. NaN fails both.
    if not abs(lr) < math.inf:
        raise ValueError(f"lr must be a finite number, got {lr!r}")
    if not (0 <= clip < math.inf):
        raise ValueError(f"clip must be a finite number >= 0 (0 = off), got {clip!r}")
    return chunk_size, float(lr), float(clip)


def _check_seqlens(cu_seqlens, batch, length):
    if cu_seqlens is None:
        return []
    if isinstance(cu_seqlens, torch.Tensor):
        if cu_seqlens.dim() != 1 or cu_seqlens.is_floating_point():
            raise ValueError(f"cu_seqlens must be a 1-d integer tensor or list, got {_describe(cu_seqlens)}")
        cu_seqlens = cu_seqlens.tolist()
    seqlens = [int(x) for x in cu_seqlens]
    if batch != 1:
        raise ValueError(f"cu_seqlens needs a batch of one packed row, got batch size {batch}")
    if len(seqlens) < 2 or seqlens[0] != 0 or seqlens[-1] != length:
        raise ValueError(f"cu_seqlens must run from 0 to the sequence length {length}, got {seqlens}")
    if any(b <= a for a, b in zip(seqlens, seqlens[1:])):
        raise ValueError(f"cu_seqlens must be strictly increasing, got {seqlens}")
    return seqlens


# --- autograd and fake kernels ---------------------------------------------------------------

def _full_chunks(L, chunk_size, seqlens, batch):
    if seqlens:
        return sum((b - a) // chunk_size for a, b in zip(seqlens, seqlens[1:]))
    return batch * (L // chunk_size)


@torch.library.register_fake("inplace_ttt::ttt_forward")
def _ttt_forward_fake(Z, V, W0, chunk_size, lr, clip, decay, cu_seqlens, algorithm, scan_group):
    out = Z.new_empty((Z.shape[0], Z.shape[1], W0.shape[0]))
    scales = torch.empty((_full_chunks(Z.shape[1], chunk_size, cu_seqlens, Z.shape[0]),), dtype=torch.float64,
                         device="cpu")
    return out, scales


@torch.library.register_fake("inplace_ttt::ttt_backward")
def _ttt_backward_fake(grad_out, Z, V, W0, scales, chunk_size, lr, clip, decay, cu_seqlens, algorithm, scan_group):
    return torch.empty_like(Z), torch.empty_like(V), torch.empty_like(W0)


def _ttt_setup(ctx, inputs, output):
    Z, V, W0, *hyper = inputs
    ctx.save_for_backward(Z, V, W0, output[1])
    ctx.hyper = hyper
    ctx.mark_non_differentiable(output[1])


def _ttt_backward(ctx, grad_out, grad_scales):
    Z, V, W0, scales = ctx.saved_tensors
    dZ, dV, dW0 = torch.ops.inplace_ttt.ttt_backward(grad_out, Z, V, W0, scales, *ctx.hyper)
    return (dZ, dV, dW0) + (None,) * len(ctx.hyper)


torch.library.register_autograd("inplace_ttt::ttt_forward", _ttt_backward, setup_context=_ttt_setup)


@torch.library.register_fake("inplace_ttt::build_target")
def _target_fake(X, conv_weight, proj, chunk_size, kind, padding, cu_seqlens):
    return torch.empty_like(X)


@torch.library.register_fake("inplace_ttt::build_target_backward")
def _target_backward_fake(grad_out, X, conv_weight, proj, chunk_size, kind, padding, cu_seqlens):
    return (torch.empty_like(X), X.new_empty((0,)) if conv_weight is None else torch.empty_like(conv_weight),
            X.new_empty((0,)) if proj is None else torch.empty_like(proj))


def _target_setup(ctx, inputs, output):
    X, conv_weight, proj, *options = inputs
    ctx.save_for_backward(X, conv_weight, proj)
    ctx.options = options


def _target_backward(ctx, grad_out):
    X, conv_weight, proj = ctx.saved_tensors
    dX, dw, dP = torch.ops.inplace_ttt.build_target_backward(grad_out.contiguous(), X, conv_weight, proj,
                                                              *ctx.options)
    return dX, dw if conv_weight is not None else None, dP if proj is not None else None, None, None, None, None


torch.library.register_autograd("inplace_ttt::build_target", _target_backward, setup_context=_target_setup)
