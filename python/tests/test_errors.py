"""Bad input is a Python exception that names the argument, never a crash of the interpreter."""
import pytest
import torch

import inplace_ttt

Z = torch.randn(1, 8, 6)
V = torch.randn(1, 8, 4)
W0 = torch.randn(4, 6)


def call(**changes):
    args = dict(Z=Z, V=V, W0=W0, chunk_size=4, lr=0.3)
    args.update(changes)
    return inplace_ttt.ttt(args.pop("Z"), args.pop("V"), args.pop("W0"), **args)


@pytest.mark.parametrize("changes,error,words", [
    (dict(Z=torch.randn(8, 6)), ValueError, "Z must be [B, L, h]"),
    (dict(V=torch.randn(1, 7, 4)), ValueError, "V must be [B, L, d]"),
    (dict(W0=torch.randn(6, 4)), ValueError, "W0 must be [d, h]"),
    (dict(W0=[[1.0]]), TypeError, "W0 must be a torch.Tensor"),
    (dict(Z=Z.long(), V=V.long(), W0=W0.long()), TypeError, "Z must be float32, bfloat16 or float64"),
    (dict(V=V.double()), TypeError, "V must have dtype torch.float32"),
    (dict(W0=W0.to("meta")), ValueError, "W0 must be on cpu"),
    (dict(chunk_size=0), ValueError, "chunk_size must be an int > 0"),
    (dict(chunk_size=-3), ValueError, "chunk_size must be an int > 0"),
    (dict(chunk_size=2.5), ValueError, "chunk_size must be an int > 0"),
    (dict(lr=float("nan")), ValueError, "lr must be a finite number"),
    (dict(clip=-1.0), ValueError, "clip must be a finite number >= 0"),
    (dict(cu_seqlens=[0, 5]), ValueError, "cu_seqlens must run from 0 to the sequence length 8"),
    (dict(cu_seqlens=[1, 8]), ValueError, "cu_seqlens must run from 0"),
    (dict(cu_seqlens=[0, 5, 5, 8]), ValueError, "cu_seqlens must be strictly increasing"),
    (dict(Z=torch.randn(2, 8, 6), V=torch.randn(2, 8, 4), cu_seqlens=[0, 8]), ValueError, "batch of one packed row"),
    (dict(algorithm="fast"), ValueError, "algorithm must be one of"),
    (dict(decay=0.0), ValueError, "decay must be a number in (0, 1]"),
    (dict(decay=1.2), ValueError, "decay must be a number in (0, 1]"),
])
def test_bad_arguments_name_the_argument(changes, error, words):
    with pytest.raises(error) as info:
        call(**changes)
    assert words in str(info.value)


def test_target_bad_arguments():
    X = torch.randn(1, 8, 4)
    with pytest.raises(ValueError, match=r"conv_weight must be a tensor \[4, 1, 5\]"):
        inplace_ttt.target(X, torch.randn(4, 1, 3), None, chunk_size=4)
    with pytest.raises(ValueError, match=r"proj must be a tensor \[4, 4\]"):
        inplace_ttt.target(X, torch.randn(4, 1, 5), torch.randn(3, 4), chunk_size=4)
    with pytest.raises(ValueError, match="chunk_size"):
        inplace_ttt.target(X, torch.randn(4, 1, 5), None, chunk_size=0)
    with pytest.raises(ValueError, match="padding"):
        inplace_ttt.target(X, torch.randn(4, 1, 5), None, chunk_size=4, padding="valid")


def test_direct_op_calls_raise_instead_of_crashing():
    """The C++ checks behind the Python ones: a RuntimeError naming the argument."""
    ops = torch.ops.inplace_ttt
    with pytest.raises(RuntimeError, match="W0 must be"):
        ops.ttt_forward(Z, V, torch.randn(5, 6), 4, 0.3, 0.0, 1.0, [], "auto", 0)
    with pytest.raises(RuntimeError, match="chunk_size must be > 0"):
        ops.ttt_forward(Z, V, W0, 0, 0.3, 0.0, 1.0, [], "auto", 0)
    with pytest.raises(RuntimeError, match="cu_seqlens must run from 0"):
        ops.ttt_forward(Z, V, W0, 4, 0.3, 0.0, 1.0, [0, 3], "auto", 0)
    with pytest.raises(RuntimeError, match="algorithm"):
        ops.ttt_forward(Z, V, W0, 4, 0.3, 0.0, 1.0, [], "nope", 0)
    with pytest.raises(RuntimeError, match="decay must be in"):
        ops.ttt_forward(Z, V, W0, 4, 0.3, 0.0, 1.5, [], "auto", 0)
    with pytest.raises(RuntimeError, match="ttt_proj.weight must be"):
        ops.build_target(torch.randn(1, 8, 4), torch.randn(4, 1, 5), torch.randn(3, 3), 4, "conv", "same", [])
    with pytest.raises(RuntimeError, match="unknown TTT target kind"):
        ops.build_target(torch.randn(1, 8, 4), torch.randn(4, 1, 5), None, 4, "other", "same", [])


def test_old_torch_is_refused_at_import():
    import subprocess
    import sys
    code = "import torch; torch.__version__ = '2.3.1'; import inplace_ttt"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1 and "ImportError: inplace_ttt needs torch >= 2.4" in out.stderr, out.stderr[-500:]
