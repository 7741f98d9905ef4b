"""An example FSDP2 trainer: `torchrun --nproc_per_node 2 -m inplace_ttt.train config.yaml`."""
from .config import Config, learning_rate, parse

__all__ = ["Config", "parse", "learning_rate"]
