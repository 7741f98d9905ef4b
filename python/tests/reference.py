"""Plain-PyTorch references, written from the definition (docs/operator.md), for the tests."""
import torch


def ttt_reference(Z, V, W0, chunk, lr, clip=0.0, cu_seqlens=None, decay=1.0):
    """Chunk by chunk: O_i = Z_i W_i^T, then W = W0 + decay (W - W0) + s * lr * V_i^T Z_i (differentiable)."""
    B, L, _ = Z.shape
    bounds = [(b, 0, L) for b in range(B)] if cu_seqlens is None else [
        (0, a, e) for a, e in zip(cu_seqlens, cu_seqlens[1:])]
    rows = {}
    for b, begin, end in bounds:
        W = W0
        for s in range(begin, end, chunk):
            e = min(s + chunk, end)
            rows[(b, s)] = Z[b, s:e] @ W.t()
            if e - s == chunk:
                U = lr * V[b, s:e].t() @ Z[b, s:e]
                if clip > 0:
                    U = U * torch.clamp(clip / U.norm(), max=1.0)
                W = W0 + decay * (W - W0) + U
    return torch.stack([torch.cat([rows[k] for k in sorted(rows) if k[0] == b]) for b in range(B)])


def target_reference(X, conv_weight, proj, chunk, padding="same", cu_seqlens=None):
    """Depthwise 5-tap convolution inside each chunk (zeros outside it), then @ proj."""
    B, L, d = X.shape
    docs = [(0, L)] if cu_seqlens is None else list(zip(cu_seqlens, cu_seqlens[1:]))
    first_tap = -2 if padding == "same" else -4
    out = torch.zeros_like(X)
    for a, e in docs:
        for s in range(a, e, chunk):
            c = min(s + chunk, e)
            for t in range(s, c):
                for k in range(5):
                    j = t + first_tap + k
                    if s <= j < c:
                        out[:, t] = out[:, t] + X[:, j] * conv_weight[:, 0, k]
    return out if proj is None else out @ proj
