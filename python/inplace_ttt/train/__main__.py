"""torchrun --nproc_per_node N -m inplace_ttt.train CONFIG.yaml [--section.key=value ...] [--resume DIR]

An example trainer for In-Place TTT models on FSDP2, reading the YAML layout of `ipt train`
(docs/training.md). gloo on CPU, NCCL on GPUs; a plain `python -m inplace_ttt.train` runs one process."""
import argparse
import os
import sys

import torch
import torch.distributed as dist
import yaml

import inplace_ttt  # noqa: F401  (registers the ops)

from .config import parse
from .trainer import train


def apply_override(raw, item):
    key, sep, value = item.partition("=")
    if not sep or not key.startswith("--") or "." not in key:
        raise ValueError(f"overrides are --section.key=value, got {item!r}")
    *path, last = key[2:].split(".")
    node = raw
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m inplace_ttt.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--resume", help="a checkpoint directory (train.output_dir/checkpoint-STEP)")
    args, overrides = ap.parse_known_args(argv)
    with open(args.config) as f:
        raw = yaml.safe_load(f)
    for item in overrides:
        apply_override(raw, item)
    if "RANK" not in os.environ:  # one process without torchrun
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=os.environ.get("MASTER_PORT", "29533"))
    cuda = torch.cuda.is_available() and os.environ.get("IPT_DEVICE", "") != "cpu"
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        config = parse(raw, dist.get_world_size())
        train(config, args.resume, device)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
