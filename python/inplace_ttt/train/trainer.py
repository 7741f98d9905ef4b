"""The training loop: FSDP2 (fully_shard per decoder layer, then the root) over a gloo (CPU) or NCCL
(GPU) process group, AdamW, the schedule of config.py, checkpoints in the Hugging Face layout that
`ipt` and inplace_ttt.models load, plus the optimizer state (torch.distributed.checkpoint) to resume."""
import json
import os
import shutil
import sys
import time

import torch
import torch.distributed as dist

from .. import models
from .config import Config, learning_rate
from .data import PackedRows, read_dataset

PRESETS = {  # ipt init's presets (src/ipt/model/presets.cpp): hidden, mlp, layers, heads, kv heads, head_dim, theta
    "test": (64, 128, 2, 4, 2, 16, 10000.0, 4096),
    "tiny": (256, 512, 6, 4, 2, 64, 1e6, 32768),
    "small": (512, 1536, 8, 8, 4, 64, 1e6, 32768),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")


def fully_shard_api():
    try:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    except ImportError:  # torch 2.4 / 2.5
        from torch.distributed._composable.fsdp import MixedPrecisionPolicy, fully_shard
    return fully_shard, MixedPrecisionPolicy


def log(rank, *parts):
    if rank == 0:
        print(*parts, file=sys.stderr, flush=True)


def build_model(c: Config, vocab_size: int):
    from transformers import AutoConfig, AutoModelForCausalLM

    f = c.model.foundation
    overrides = {k: v for k, v in f.items() if k != "ttt_layers" and k != "ttt_mode"}
    if c.model.model_path:
        return models.from_pretrained(c.model.model_path, config_overrides=dict(f))
    if c.model.init_preset:
        if c.model.init_preset not in PRESETS:
            raise ValueError(f"model.init_preset {c.model.init_preset!r}: the Python trainer knows {list(PRESETS)}")
        hidden, mlp, layers, heads, kv, head_dim, theta, positions = PRESETS[c.model.init_preset]
        model_type = c.model.arch
        config = AutoConfig.for_model(model_type, vocab_size=vocab_size, hidden_size=hidden, intermediate_size=mlp,
                                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                                      head_dim=head_dim, rope_theta=theta, max_position_embeddings=positions,
                                      rms_norm_eps=1e-6, tie_word_embeddings=True, initializer_range=0.02)
    else:
        config = AutoConfig.from_pretrained(os.path.dirname(os.path.abspath(c.model.init_config)))
    if config.vocab_size < vocab_size:
        raise ValueError(f"the model's vocabulary ({config.vocab_size}) does not cover the dataset's ({vocab_size})")
    torch.manual_seed(c.train.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    if f.get("ttt_mode", False):
        layers = f.get("ttt_layers") or [i for i in (0, 6, 12, 18, 24, 30) if i < config.num_hidden_layers]
        names = {"ttt_chunk": "chunk", "ttt_lr": "lr", "ttt_proj": "proj", "ttt_target": "target",
                 "ttt_clip": "clip", "ttt_conv_padding": "padding", "ttt_target_kind": "kind", "ttt_decay": "decay"}
        models.convert(model, layers, **{names[k]: v for k, v in overrides.items()}, seed=c.train.seed + 1)
    return model


def shard(model, mixed_precision: bool):
    fully_shard, MixedPrecisionPolicy = fully_shard_api()
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if mixed_precision else None,
                                  reduce_dtype=torch.float32)
    for layer in model.model.layers:
        fully_shard(layer, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return model


def save_checkpoint(model, optimizer, c: Config, step: int, rank: int):
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)
    import torch.distributed.checkpoint as dcp

    directory = os.path.join(c.train.output_dir, f"checkpoint-{step}")
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        os.makedirs(directory, exist_ok=True)
        if model.config.tie_word_embeddings:
            full.pop("lm_head.weight", None)
        save_file({k: v.contiguous() for k, v in full.items()}, os.path.join(directory, "model.safetensors"),
                  metadata={"format": "pt"})
        model.config.save_pretrained(directory)
        source = c.model.tokenizer_path or c.model.model_path
        for name in TOKENIZER_FILES:
            if source and os.path.exists(os.path.join(source, name)):
                shutil.copy(os.path.join(source, name), directory)
        with open(os.path.join(directory, "trainer_state.json"), "w") as f:
            json.dump({"step": step}, f)
    dcp.save({"optimizer": get_optimizer_state_dict(model, optimizer)},
             checkpoint_id=os.path.join(directory, "optimizer"))
    dist.barrier()
    return directory


def load_optimizer(model, optimizer, directory):
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict
    import torch.distributed.checkpoint as dcp

    state = {"optimizer": get_optimizer_state_dict(model, optimizer)}
    dcp.load(state, checkpoint_id=os.path.join(directory, "optimizer"))
    set_optimizer_state_dict(model, optimizer, state["optimizer"])


def train(c: Config, resume: str = None, device=torch.device("cpu")):
    rank, world = dist.get_rank(), dist.get_world_size()
    t = c.train
    for note in c.notes:
        log(rank, f"config: {note}")
    vocab_size, documents = read_dataset(c.data.train_path)
    rows = PackedRows(documents, c.data.max_seq_len, seed=t.seed, shuffle=c.data.shuffle)
    start_step = 0
    if resume:
        with open(os.path.join(resume, "trainer_state.json")) as f:
            start_step = json.load(f)["step"]
        c.model.model_path, c.model.init_preset, c.model.init_config = resume, None, None
    model = build_model(c, vocab_size)
    # Checkpoints name the class (ipt and transformers read it); fully_shard renames it FSDP<class>.
    model.config.architectures = [type(model).__name__]
    if t.trainable == "ttt":
        for name, p in model.named_parameters():
            p.requires_grad_(".mlp.ttt_" in name)
    if t.enable_gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.to(device).train()
    shard(model, t.enable_mixed_precision)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.lr, betas=(t.adam_beta1, t.adam_beta2), eps=t.adam_eps,
                                  weight_decay=t.weight_decay)
    if resume:
        load_optimizer(model, optimizer, resume)
    os.makedirs(t.output_dir, exist_ok=True)
    metrics = open(os.path.join(t.output_dir, "metrics.jsonl"), "a") if rank == 0 else None
    micro = t.micro_batch_size
    accumulation = t.global_batch_size // (micro * world)
    val = None
    if c.data.val_path and t.eval_steps:
        val = PackedRows(read_dataset(c.data.val_path)[1], c.data.max_seq_len, shuffle=False)
    losses = []
    for step in range(start_step, t.max_steps):
        began = time.perf_counter()
        lr = learning_rate(t, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        first = step * t.global_batch_size
        all_labels = rows.rows(first, t.global_batch_size)[1]
        counted = int((all_labels != -100).sum())  # the loss is the mean over the global batch's tokens
        total = torch.zeros((), dtype=torch.float64, device=device)
        for a in range(accumulation):
            ids, labels, positions = (x.to(device) for x in rows.rows(first + (a * world + rank) * micro, micro))
            # Restarting position_ids keep documents apart: attention (transformers' packed-sequence
            # masks, which need use_cache=False) and the TTT layers' fast weights and convolution.
            logits = model(input_ids=ids, position_ids=positions, use_cache=False).logits.float()
            loss_sum = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100,
                                                         reduction="sum")
            # FSDP averages gradients over ranks; scaling by the world size makes that the global mean.
            (loss_sum * world / counted).backward()
            total += loss_sum.detach().double()
        dist.all_reduce(total)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm if t.max_grad_norm > 0 else float("inf"))
        grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
        optimizer.step()
        optimizer.zero_grad()
        loss = float(total) / counted
        losses.append(loss)
        record = {"step": step + 1, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                  "tokens_per_s": t.global_batch_size * c.data.max_seq_len / (time.perf_counter() - began)}
        last = step + 1 == t.max_steps
        if val is not None and ((step + 1) % t.eval_steps == 0 or last):
            record["val_loss"] = evaluate(model, val, t, rank, world, device)
        if metrics:
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
        if rank == 0 and ((step + 1) % max(t.log_steps, 1) == 0 or last):
            log(rank, " ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
        if (t.save_steps and (step + 1) % t.save_steps == 0) or last:
            log(rank, f"saved {save_checkpoint(model, optimizer, c, step + 1, rank)}")
    return losses


@torch.no_grad()
def evaluate(model, val, t, rank, world, device):
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    count = t.eval_batches * t.micro_batch_size
    for r in range(rank, count, world):
        ids, labels, positions = (x.to(device) for x in val.rows(r, 1))
        logits = model(input_ids=ids, position_ids=positions, use_cache=False).logits.float()
        total[0] += torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100,
                                                      reduction="sum").double()
        total[1] += (labels != -100).sum()
    if count % world:  # every rank must run the same number of forwards under FSDP
        for _ in range(world - count % world if rank >= count % world else 0):
            model(input_ids=val.rows(0, 1)[0].to(device), use_cache=False)
    dist.all_reduce(total)
    model.train()
    return float(total[0] / total[1])
