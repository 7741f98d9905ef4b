"""The FSDP2 trainer: 2 processes (gloo, CPU) give 1 process's loss curve over 20 steps of a tiny
Qwen3 with a TTT layer; checkpoints load with from_pretrained; resume continues the curve."""
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import REPO
from inplace_ttt import models

STEPS = 20


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from conftest import ipt_binary
    ipt = ipt_binary()
    if not ipt:
        pytest.skip("the ipt binary is not built: it writes the token dataset (ipt data prepare)")
    out = tmp_path_factory.mktemp("data") / "sample"
    subprocess.run([ipt, "data", "prepare", "--tokenizer", os.path.join(REPO, "corpus", "tokenizer"), "--input",
                    os.path.join(REPO, "corpus", "sample"), "--out", str(out), "--val-fraction", "0.2", "--seed", "1",
                    "-q"], check=True, capture_output=True)
    return out


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(config, tmp_path, nproc, name, extra=()):
    cfg = dict(config)
    cfg["train"] = dict(cfg["train"], output_dir=str(tmp_path / name))
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", IPT_DEVICE="cpu")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
           str(free_port()), "-m", "inplace_ttt.train", str(path), *extra]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{name}: " + result.stderr[-4000:]
    with open(tmp_path / name / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def config_for(dataset, micro):
    """Global batch 4 (micro-batches of `micro` rows per rank); 4 validation rows either way."""
    return {
        "model": {"init_preset": "test", "foundation": {"ttt_mode": True, "ttt_layers": [1], "ttt_chunk": 16,
                                                         "ttt_lr": 0.3}},
        "data": {"train_path": str(dataset), "val_path": str(dataset / "val"), "max_seq_len": 64},
        "train": {"global_batch_size": 4, "micro_batch_size": micro, "lr": 3e-3, "lr_warmup_ratio": 0.1,
                  "max_steps": STEPS, "save_steps": 10, "eval_steps": 10, "eval_batches": 4 // micro, "seed": 0,
                  "max_grad_norm": 1.0, "enable_full_shard": True},
    }


def test_two_processes_equal_one(dataset, tmp_path):
    one = run(config_for(dataset, 4), tmp_path, 1, "one")
    two = run(config_for(dataset, 2), tmp_path, 2, "two")
    a = torch.tensor([m["loss"] for m in one], dtype=torch.float64)
    b = torch.tensor([m["loss"] for m in two], dtype=torch.float64)
    assert len(a) == len(b) == STEPS
    assert a[-1] < a[0] - 0.5, f"training did not learn: {a.tolist()}"
    assert ((a - b).abs() / a.abs()).max() < 1e-5, (a.tolist(), b.tolist())
    assert abs(one[-1]["val_loss"] - two[-1]["val_loss"]) / one[-1]["val_loss"] < 1e-5
    # The checkpoints load (with their TTT layer) and give the same logits.
    ids = torch.randint(0, 4096, (1, 48))
    m1 = models.from_pretrained(tmp_path / "one" / f"checkpoint-{STEPS}")
    m2 = models.from_pretrained(tmp_path / "two" / f"checkpoint-{STEPS}")
    assert models.ttt_layers(m1) == [1]
    with torch.no_grad():
        l1, l2 = m1(ids).logits, m2(ids).logits
    assert (l1 - l2).abs().max() / l1.abs().max() < 1e-4


def test_resume_continues_the_curve(dataset, tmp_path):
    full = run(config_for(dataset, 2), tmp_path, 2, "full")
    resumed = run(config_for(dataset, 2), tmp_path, 2, "full2",
                  extra=["--resume", str(tmp_path / "full" / "checkpoint-10")])
    a = torch.tensor([m["loss"] for m in full[10:]])
    b = torch.tensor([m["loss"] for m in resumed])
    assert len(b) == STEPS - 10
    assert ((a - b).abs() / a).max() < 1e-5, (a.tolist(), b.tolist())


def test_config_errors_name_the_key():
    from inplace_ttt.train import parse
    with pytest.raises(ValueError, match="unknown key train.lrr"):
        parse({"model": {"init_preset": "test"}, "data": {"train_path": "x"}, "train": {"lrr": 1}})
    with pytest.raises(ValueError, match="train.max_steps must be an integer"):
        parse({"model": {"init_preset": "test"}, "data": {}, "train": {"max_steps": "many"}})


def test_checkpoint_scores_with_ipt(dataset, tmp_path, ipt):
    """The trainer's checkpoint is a model directory the engine loads: same NLL as from_pretrained."""
    cfg = config_for(dataset, 4)
    cfg["train"] = dict(cfg["train"], max_steps=3, save_steps=0, eval_steps=0)
    run(cfg, tmp_path, 1, "short")
    directory = tmp_path / "short" / "checkpoint-3"
    ids = torch.randint(0, 4096, (50,)).tolist()
    (tmp_path / "ids.txt").write_text(" ".join(map(str, ids)))
    out = subprocess.run([ipt, "score", "-m", str(directory), "--ids", str(tmp_path / "ids.txt"), "--json",
                          "--dtype", "float32", "--device", "cpu"], check=True, capture_output=True, text=True)
    model = models.from_pretrained(directory)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1]
    ours = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:])).item()
    assert abs(ours - json.loads(out.stdout)["mean_nll"]) / ours < 1e-5


def test_gradient_checkpointing_and_mixed_precision(dataset, tmp_path):
    """Recomputing layers in the backward changes nothing; bf16 compute (FSDP2's MixedPrecisionPolicy,
    float32 masters) follows the float32 curve closely."""
    def short(**train):
        cfg = config_for(dataset, 2)
        cfg["train"] = dict(cfg["train"], max_steps=6, save_steps=0, eval_steps=0, **train)
        return cfg

    plain = run(short(), tmp_path, 1, "plain")
    recomputed = run(short(enable_gradient_checkpointing=True), tmp_path, 1, "recomputed")
    bf16 = run(short(enable_mixed_precision=True), tmp_path, 1, "bf16")
    a, b, c = (torch.tensor([m["loss"] for m in r]) for r in (plain, recomputed, bf16))
    assert ((a - b).abs() / a).max() < 1e-6, (a.tolist(), b.tolist())
    assert ((a - c).abs() / a).max() < 2e-2, (a.tolist(), c.tolist())
    from safetensors.torch import load_file
    weights = load_file(tmp_path / "bf16" / "checkpoint-6" / "model.safetensors")
    assert all(w.dtype == torch.float32 for w in weights.values())


def test_packed_rows_labels_and_positions():
    import numpy as np
    from inplace_ttt.train.data import PackedRows
    rows = PackedRows([np.arange(100, 105), np.arange(200, 203), np.arange(300, 310)], 6, shuffle=False)
    ids, labels, positions = rows.rows(0, 3)
    assert ids.tolist() == [[100, 101, 102, 103, 104, 200], [201, 202, 300, 301, 302, 303],
                            [304, 305, 306, 307, 308, 309]]
    assert labels.tolist() == [[101, 102, 103, 104, -100, 201], [202, -100, 301, 302, 303, 304],
                               [305, 306, 307, 308, 309, -100]]
    assert positions.tolist() == [[0, 1, 2, 3, 4, 0], [0, 1, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]]
    assert rows.rows(3, 1)[0].tolist() == [[100, 101, 102, 103, 104, 200]]  # epoch 2, same order unshuffled
