import json
import subprocess

import pytest
import torch

import inplace_ttt
from inplace_ttt import models
from tiny import randomize_ttt, tiny_qwen3


def test_drop_in_conversion_keeps_logits():
    model = tiny_qwen3()
    ids = torch.randint(0, 96, (2, 30))
    before = model(ids).logits
    models.convert(model, layers=[0, 1], chunk=8, lr=0.3)
    assert models.ttt_layers(model) == [0, 1]
    assert model.config.ttt_mode and model.config.ttt_layers == [0, 1] and model.config.ttt_chunk == 8
    torch.testing.assert_close(model(ids).logits, before, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("arch", ["qwen3", "llama"])
@pytest.mark.parametrize("target", ["hidden_states", "input_embed"])
def test_ttt_mlp_is_the_operator_on_the_layer(arch, target):
    """The converted layer's MLP output equals the definition written out with the reference op."""
    model = tiny_qwen3(arch=arch)
    models.convert(model, layers=[1], chunk=4, lr=0.2, target=target)
    randomize_ttt(model)
    mlp = model.model.layers[1].mlp
    x = torch.randn(1, 11, 32, dtype=torch.float64)
    emb = torch.randn(1, 11, 32, dtype=torch.float64)
    mlp._source.embeddings = emb
    Z = torch.nn.functional.silu(mlp.gate_proj(x)) * mlp.up_proj(x)
    source = x if target == "hidden_states" else emb
    V = inplace_ttt.target(source, mlp.ttt_conv.weight, mlp.ttt_proj.weight, chunk_size=4)
    want = inplace_ttt.ttt(Z, V, mlp.down_proj.weight, chunk_size=4, lr=0.2, algorithm="reference")
    torch.testing.assert_close(mlp(x), want)


def test_save_and_from_pretrained_round_trip(tmp_path):
    model = tiny_qwen3(dtype=torch.float32)
    models.convert(model, layers=[1], chunk=8, lr=0.1, target="input_embed")
    randomize_ttt(model)
    model.save_pretrained(tmp_path)
    loaded = models.from_pretrained(tmp_path)
    assert models.ttt_layers(loaded) == [1]
    assert loaded.model.layers[1].mlp.settings.target == "input_embed"
    ids = torch.randint(0, 96, (1, 40))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    plain = models.from_pretrained(tmp_path, ttt=False)
    assert models.ttt_layers(plain) == []


def test_missing_tensor_is_named(tmp_path):
    model = tiny_qwen3(dtype=torch.float32)
    model.save_pretrained(tmp_path)
    from safetensors.torch import load_file, save_file
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["model.layers.0.mlp.up_proj.weight"]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="model.layers.0.mlp.up_proj.weight"):
        models.from_pretrained(tmp_path)


def _ipt_score(ipt, directory, ids, tmp_path):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(" ".join(map(str, ids)))
    out = subprocess.run([ipt, "score", "-m", str(directory), "--ids", str(ids_file), "--json", "--per-token",
                          "--dtype", "float32", "--device", "cpu"], check=True, capture_output=True, text=True)
    return torch.tensor(json.loads(out.stdout)["per_token"], dtype=torch.float64)


def _our_nll(model, ids):
    logits = model(torch.tensor([ids])).logits[0, :-1].double()
    return torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")


@pytest.mark.parametrize("arch,decay", [("qwen3", 1.0), ("llama", 1.0), ("qwen3", 0.8)])
def test_logits_equal_ipt_score_on_a_converted_model(ipt, tmp_path, arch, decay):
    """convert + save_pretrained in Python, scored by the engine's CLI: the same per-token NLL."""
    model = tiny_qwen3(dtype=torch.float32, arch=arch)
    models.convert(model, layers=[0, 1], chunk=8, lr=0.3, decay=decay)
    randomize_ttt(model)
    model.save_pretrained(tmp_path / "m")
    ids = torch.randint(0, 96, (61,)).tolist()
    want = _ipt_score(ipt, tmp_path / "m", ids, tmp_path)
    loaded = models.from_pretrained(tmp_path / "m")
    assert loaded.model.layers[0].mlp.settings.decay == decay
    with torch.no_grad():
        got, direct = _our_nll(loaded, ids), _our_nll(model, ids)
    assert (got - want).abs().max() / want.abs().max() < 1e-5
    torch.testing.assert_close(direct, got)
    # The fast weights moved: without TTT the NLL differs.
    plain = models.from_pretrained(tmp_path / "m", ttt=False)
    with torch.no_grad():
        assert (_our_nll(plain, ids) - want).abs().max() > 1e-3


def test_ipt_init_checkpoint_loads_and_scores_alike(ipt, tmp_path):
    """A directory written by `ipt init` (our config.json and tensor names), TTT tensors made non-zero."""
    d = tmp_path / "m"
    subprocess.run([ipt, "init", "--preset", "test", "--arch", "qwen3", "-o", str(d), "--ttt-layers", "0", "1",
                    "--ttt-chunk", "16", "--ttt-target", "input_embed", "--ttt-clip", "0.5"],
                   check=True, capture_output=True)
    from safetensors.torch import load_file, save_file
    tensors = load_file(d / "model.safetensors")
    g = torch.Generator().manual_seed(3)
    for k in tensors:
        if ".mlp.ttt_" in k:
            tensors[k] = torch.randn(tensors[k].shape, generator=g) * 0.5
    save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})
    loaded = models.from_pretrained(d)
    mlp = loaded.model.layers[0].mlp
    assert (mlp.settings.chunk, mlp.settings.clip, mlp.settings.target) == (16, 0.5, "input_embed")
    ids = torch.randint(0, 256, (70,)).tolist()
    want = _ipt_score(ipt, d, ids, tmp_path)
    with torch.no_grad():
        got = _our_nll(loaded, ids)
    assert (got - want).abs().max() / want.abs().max() < 1e-5


def test_cached_decoding_is_refused_not_silently_wrong():
    model = tiny_qwen3(dtype=torch.float32)
    models.convert(model, layers=[0], chunk=4)
    ids = torch.randint(0, 96, (1, 9))
    with pytest.raises(NotImplementedError, match="use_cache=False"):
        model.generate(ids, max_new_tokens=2, do_sample=False)
    out = model.generate(ids, max_new_tokens=2, do_sample=False, use_cache=False)
    assert out.shape == (1, 11)


@pytest.mark.parametrize("target", ["hidden_states", "input_embed"])
def test_packed_documents_equal_separate_forwards(target):
    """position_ids that restart mark packed documents (transformers keeps attention inside them; the
    TTT layers restart their fast weights and keep the convolution inside them): logits equal the
    documents run one by one."""
    model = tiny_qwen3(dtype=torch.float64)
    models.convert(model, layers=[0, 1], chunk=4, lr=0.3, target=target)
    randomize_ttt(model)
    lengths = [7, 1, 12]
    docs = [torch.randint(0, 96, (1, n)) for n in lengths]
    ids = torch.cat(docs, 1)
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    with torch.no_grad():
        packed = model(ids, position_ids=positions, use_cache=False).logits
        separate = torch.cat([model(d, use_cache=False).logits for d in docs], 1)
        torch.testing.assert_close(packed, separate, rtol=1e-10, atol=1e-10)
        # Two packed rows in one batch: each row's documents on their own.
        two = model(torch.cat([ids, ids]), position_ids=torch.cat([positions, positions]), use_cache=False).logits
        torch.testing.assert_close(two, torch.cat([separate, separate]), rtol=1e-10, atol=1e-10)
        unpacked = model(ids, use_cache=False).logits
        assert (unpacked - separate).abs().max() > 1e-3  # the boundaries matter
