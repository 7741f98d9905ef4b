"""In-Place Test-Time Training for PyTorch.

    inplace_ttt.ttt(Z, V, W0, chunk_size=..., lr=...)      the lean operator (autograd, torch.compile)
    inplace_ttt.target(X, conv_weight, proj, chunk_size=...) the LM-aligned target V = Conv(X) P
    inplace_ttt.models                                     Qwen3 / LLaMA with TTT layers (transformers)
    python -m inplace_ttt.train config.yaml                an FSDP2 example trainer (torchrun)
"""
import torch

MIN_TORCH = (2, 4)


def _torch_version():
    return tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])


if _torch_version() < MIN_TORCH:
    raise ImportError(f"inplace_ttt needs torch >= 2.4, this Python has torch {torch.__version__}")

from . import _C  # noqa: E402,F401  (registers the torch.ops.inplace_ttt ops)
from .ops import target, ttt  # noqa: E402

__all__ = ["ttt", "target"]
__version__ = "0.1.0"
