import pytest
import torch

import inplace_ttt
from reference import target_reference, ttt_reference

CASES = [  # B, L, d, h, chunk
    (1, 16, 3, 5, 4),    # L a multiple of the chunk
    (2, 13, 4, 6, 4),    # L not a multiple, batched rows
    (1, 3, 4, 6, 8),     # L shorter than a chunk
    (1, 7, 2, 3, 1),     # chunk 1
]


def inputs(B, L, d, h, dtype=torch.float64, requires_grad=False):
    Z = torch.randn(B, L, h, dtype=dtype)
    V = torch.randn(B, L, d, dtype=dtype)
    W0 = torch.randn(d, h, dtype=dtype)
    return [t.requires_grad_(requires_grad) for t in (Z, V, W0)]


@pytest.mark.parametrize("B,L,d,h,chunk", CASES)
@pytest.mark.parametrize("algorithm", ["auto", "recurrent", "scan", "reference"])
@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_forward_equals_reference(B, L, d, h, chunk, algorithm, clip):
    Z, V, W0 = inputs(B, L, d, h)
    got = inplace_ttt.ttt(Z, V, W0, chunk_size=chunk, lr=0.3, clip=clip, algorithm=algorithm)
    want = ttt_reference(Z, V, W0, chunk, 0.3, clip)
    assert got.shape == (B, L, d)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("algorithm", ["recurrent", "scan", "reference"])
@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_decay_equals_reference(algorithm, clip):
    Z, V, W0 = inputs(2, 23, 4, 6)
    got = inplace_ttt.ttt(Z, V, W0, chunk_size=4, lr=0.3, clip=clip, decay=0.7, algorithm=algorithm)
    torch.testing.assert_close(got, ttt_reference(Z, V, W0, 4, 0.3, clip, decay=0.7), rtol=1e-10, atol=1e-10)
    assert (got - inplace_ttt.ttt(Z, V, W0, chunk_size=4, lr=0.3, clip=clip)).abs().max() > 1e-3


@pytest.mark.parametrize("algorithm", ["recurrent", "scan"])
def test_decay_gradcheck(algorithm):
    Z, V, W0 = inputs(1, 10, 3, 4, requires_grad=True)
    f = lambda z, v, w: inplace_ttt.ttt(z, v, w, chunk_size=3, lr=0.4, clip=0.8, decay=0.6, algorithm=algorithm)  # noqa
    assert torch.autograd.gradcheck(f, (Z, V, W0))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_lower_precision(dtype, tol):
    Z, V, W0 = inputs(1, 40, 8, 16)
    Z, V = Z / 4, V / 4
    want = ttt_reference(Z, V, W0, 8, 0.3)
    got = inplace_ttt.ttt(Z.to(dtype), V.to(dtype), W0.to(dtype), chunk_size=8, lr=0.3)
    assert got.dtype == dtype
    scale = want.abs().max()
    assert (got.double() - want).abs().max() / scale < tol


def test_packed_documents_equal_separate_calls():
    Z, V, W0 = inputs(1, 23, 4, 6)
    cu = [0, 5, 6, 17, 23]
    got = inplace_ttt.ttt(Z, V, W0, chunk_size=4, lr=0.3, cu_seqlens=torch.tensor(cu))
    torch.testing.assert_close(got, ttt_reference(Z, V, W0, 4, 0.3, cu_seqlens=cu))
    parts = [inplace_ttt.ttt(Z[:, a:b], V[:, a:b], W0, chunk_size=4, lr=0.3) for a, b in zip(cu, cu[1:])]
    torch.testing.assert_close(got, torch.cat(parts, 1))


@pytest.mark.parametrize("algorithm", ["recurrent", "scan"])
@pytest.mark.parametrize("clip", [0.0, 0.7])
def test_gradcheck(algorithm, clip):
    Z, V, W0 = inputs(1, 9, 3, 4, requires_grad=True)
    f = lambda z, v, w: inplace_ttt.ttt(z, v, w, chunk_size=3, lr=0.4, clip=clip, algorithm=algorithm)  # noqa
    assert torch.autograd.gradcheck(f, (Z, V, W0))


@pytest.mark.parametrize("algorithm", ["recurrent", "scan"])
@pytest.mark.parametrize("clip", [0.0, 1.0])
def test_gradients_equal_reference_autograd(algorithm, clip):
    Z, V, W0 = inputs(2, 21, 5, 7, requires_grad=True)
    up = torch.randn(2, 21, 5, dtype=torch.float64)
    got = torch.autograd.grad((inplace_ttt.ttt(Z, V, W0, chunk_size=4, lr=0.3, clip=clip,
                                               algorithm=algorithm) * up).sum(), (Z, V, W0))
    want = torch.autograd.grad((ttt_reference(Z, V, W0, 4, 0.3, clip) * up).sum(), (Z, V, W0))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("padding", ["same", "causal"])
def test_target_equals_reference(padding):
    X = torch.randn(2, 11, 4, dtype=torch.float64)
    w = torch.randn(4, 1, 5, dtype=torch.float64)
    P = torch.randn(4, 4, dtype=torch.float64)
    got = inplace_ttt.target(X, w, P, chunk_size=4, padding=padding)
    torch.testing.assert_close(got, target_reference(X, w, P, 4, padding))
    Xp = X[:1]
    cu = [0, 3, 11]
    got = inplace_ttt.target(Xp, w, None, chunk_size=4, padding=padding, cu_seqlens=cu)
    torch.testing.assert_close(got, target_reference(Xp, w, None, 4, padding, cu))


def test_target_matches_hand_computed_taps():
    # One channel, weight taps (t-2 .. t+2) = 1, 10, 100, 1000, 10000, chunk of 4: each output
    # sums the taps that stay inside the chunk.
    X = torch.tensor([[[1.0], [2.0], [3.0], [4.0], [5.0]]], dtype=torch.float64)
    w = torch.tensor([[[1.0, 10.0, 100.0, 1000.0, 10000.0]]], dtype=torch.float64)
    got = inplace_ttt.target(X, w, None, chunk_size=4)[0, :, 0].tolist()
    assert got == [100 * 1 + 1000 * 2 + 10000 * 3, 10 * 1 + 100 * 2 + 1000 * 3 + 10000 * 4,
                   1 * 1 + 10 * 2 + 100 * 3 + 1000 * 4, 1 * 2 + 10 * 3 + 100 * 4, 100 * 5]


def test_target_gradcheck():
    X = torch.randn(1, 7, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 5, dtype=torch.float64, requires_grad=True)
    P = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    f = lambda x, w, p: inplace_ttt.target(x, w, p, chunk_size=3, cu_seqlens=[0, 4, 7])  # noqa
    assert torch.autograd.gradcheck(f, (X, w, P))


def test_opcheck():
    """torch.library's own test of the registrations: schema, fake kernel, autograd."""
    Z, V, W0 = inputs(1, 10, 3, 4, requires_grad=True)
    torch.library.opcheck(torch.ops.inplace_ttt.ttt_forward, (Z, V, W0, 4, 0.3, 0.0, 1.0, [], "auto", 0))
    torch.library.opcheck(torch.ops.inplace_ttt.ttt_forward, (Z, V, W0, 3, 0.3, 0.5, 0.8, [0, 4, 10], "scan", 2))
    X = torch.randn(1, 10, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 5, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.inplace_ttt.build_target, (X, w, W0[:, :3].detach().clone().requires_grad_(),
                                                               4, "conv", "same", []))
