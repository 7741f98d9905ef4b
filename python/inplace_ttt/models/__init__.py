"""Qwen3 / LLaMA with In-Place TTT for transformers (4.57): convert a loaded model, load our
checkpoints and the official release's, save with save_pretrained."""
from .checkpoint import from_pretrained
from .convert import convert, ttt_layers
from .mlp import TTTMLP, TTTSettings

__all__ = ["convert", "from_pretrained", "ttt_layers", "TTTMLP", "TTTSettings"]
