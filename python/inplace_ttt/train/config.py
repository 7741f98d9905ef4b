"""The YAML layout of `ipt train` (docs/training.md): model / data / train sections with the same keys,
defaults and learning-rate schedule. Keys the Python trainer cannot honour are errors naming them."""
import math
import os
from dataclasses import dataclass, field, fields
from typing import List, Optional

FOUNDATION_KEYS = ("ttt_mode", "ttt_layers", "ttt_proj", "ttt_lr", "ttt_chunk", "ttt_target", "ttt_clip",
                   "ttt_conv_padding", "ttt_target_kind", "ttt_decay")
# Keys of the official recipes that neither trainer uses (accepted, reported).
OFFICIAL_ONLY = {"data": ("train_size", "dataloader_type", "datasets_type", "data_type", "text_keys", "drop_last"),
                 "train": ("data_parallel_mode", "rmpad", "rmpad_with_pos_ids", "dyn_bsz", "dyn_bsz_margin",
                           "use_wandb", "enable_full_shard", "init_device", "ckpt_manager", "save_hf_weights")}


@dataclass
class ModelSection:
    model_path: Optional[str] = None
    init_preset: Optional[str] = None
    init_config: Optional[str] = None
    tokenizer_path: Optional[str] = None
    arch: str = "qwen3"
    foundation: dict = field(default_factory=dict)


@dataclass
class DataSection:
    train_path: str = ""
    val_path: Optional[str] = None
    max_seq_len: int = 2048
    layout: str = "packed"
    shuffle: bool = True
    synthetic_mix: dict = field(default_factory=dict)
    synthetic_haystack: Optional[List[str]] = None
    synthetic_loss: str = "all"


@dataclass
class TrainSection:
    output_dir: str = ""
    global_batch_size: int = 8
    micro_batch_size: int = 1
    cp_size: int = 1
    ulysses_parallel_size: int = 1
    optimizer: str = "adamw"
    lr: float = 3e-4
    lr_min: float = 0.0
    lr_warmup_ratio: float = 0.0
    lr_decay_ratio: float = 1.0
    lr_decay_style: str = "cosine"
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    max_steps: int = 100
    save_steps: int = 0
    eval_steps: int = 0
    log_steps: int = 1
    eval_batches: int = 4
    enable_gradient_checkpointing: bool = False
    enable_mixed_precision: bool = False
    seed: int = 0
    trainable: str = "all"


@dataclass
class Config:
    model: ModelSection
    data: DataSection
    train: TrainSection
    notes: List[str] = field(default_factory=list)


def _section(cls, values, name, notes):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"{name} must be a mapping, got {values!r}")
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key in OFFICIAL_ONLY.get(name, ()):
            notes.append(f"{name}.{key} ignored (an official key without effect here)")
            continue
        if key not in known:
            raise ValueError(f"unknown key {name}.{key} (known: {', '.join(sorted(known))})")
        default = known[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ValueError(f"{name}.{key} must be true or false, got {value!r}")
        if isinstance(default, int) and not isinstance(default, bool) and (isinstance(value, bool) or
                                                                            not isinstance(value, int)):
            raise ValueError(f"{name}.{key} must be an integer, got {value!r}")
        if isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name}.{key} must be a number, got {value!r}")
            value = float(value)
        kwargs[key] = value
    return cls(**kwargs)


def parse(raw: dict, world_size: int = 1) -> Config:
    if not isinstance(raw, dict):
        raise ValueError("the config must be a YAML mapping with model, data and train sections")
    for key in raw:
        if key not in ("model", "data", "train"):
            raise ValueError(f"unknown section {key!r} (expected model, data, train)")
    notes = []
    c = Config(_section(ModelSection, raw.get("model"), "model", notes),
               _section(DataSection, raw.get("data"), "data", notes),
               _section(TrainSection, raw.get("train"), "train", notes), notes)
    validate(c, world_size)
    return c


def validate(c: Config, world_size: int):
    m, d, t = c.model, c.data, c.train
    sources = [k for k in ("model_path", "init_preset", "init_config") if getattr(m, k)]
    if len(sources) != 1:
        raise ValueError(f"give exactly one of model.model_path, model.init_preset, model.init_config (got {sources})")
    for key in m.foundation:
        if key not in FOUNDATION_KEYS:
            raise ValueError(f"unknown key model.foundation.{key} (known: {', '.join(FOUNDATION_KEYS)})")
    if not d.train_path:
        raise ValueError("data.train_path is required")
    for key in ("train_path", "val_path"):
        path = getattr(d, key)
        if path and not os.path.exists(os.path.join(path, "meta.json")):
            raise ValueError(f"data.{key}: {path} is not a dataset (no meta.json; make one with ipt data prepare)")
    if d.layout != "packed":
        raise ValueError(f"data.layout {d.layout!r}: the Python trainer reads packed rows only")
    if any(d.synthetic_mix.values()):
        raise ValueError("data.synthetic_mix is not supported by the Python trainer (ipt train has it)")
    if d.max_seq_len < 2:
        raise ValueError(f"data.max_seq_len must be >= 2, got {d.max_seq_len}")
    if not t.output_dir:
        raise ValueError("train.output_dir is required")
    if t.cp_size != 1 or t.ulysses_parallel_size != 1:
        raise ValueError("train.cp_size / ulysses_parallel_size must be 1: the Python trainer shards with FSDP2 only")
    if t.optimizer != "adamw":
        raise ValueError(f"train.optimizer must be adamw, got {t.optimizer!r}")
    if t.lr_decay_style not in ("cosine", "linear", "constant"):
        raise ValueError(f"train.lr_decay_style must be cosine, linear or constant, got {t.lr_decay_style!r}")
    if t.trainable not in ("all", "ttt"):
        raise ValueError(f"train.trainable must be all or ttt, got {t.trainable!r}")
    if t.max_steps <= 0 or t.micro_batch_size <= 0 or t.global_batch_size <= 0:
        raise ValueError("train.max_steps, micro_batch_size and global_batch_size must be > 0")
    if t.global_batch_size % (t.micro_batch_size * world_size):
        raise ValueError(f"train.global_batch_size {t.global_batch_size} must be a multiple of micro_batch_size "
                         f"{t.micro_batch_size} x {world_size} ranks")


def learning_rate(t: TrainSection, step: int) -> float:
    """Linear warmup over lr_warmup_ratio of the steps, decay over the last lr_decay_ratio, constant between."""
    total = float(t.max_steps)
    warmup = math.floor(t.lr_warmup_ratio * total)
    if step < warmup:
        return t.lr * (step + 1) / warmup
    if t.lr_decay_style == "constant":
        return t.lr
    decay = min(math.floor(t.lr_decay_ratio * total), total - warmup)
    start = total - decay
    if step < start or decay <= 0:
        return t.lr
    progress = min(1.0, (step - start + 1) / decay)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if t.lr_decay_style == "cosine" else 1 - progress
    return t.lr_min + (t.lr - t.lr_min) * shape
