"""Tiny transformers models for the tests (random weights, float64 where exactness is checked)."""
import torch


def tiny_qwen3(dtype=torch.float64, layers=2, vocab=96, seed=0, arch="qwen3"):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  rms_norm_eps=1e-6, tie_word_embeddings=False)
    if arch == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=8, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
    return model.to(dtype).eval()


@torch.no_grad()
def randomize_ttt(model, scale=0.3, seed=1):
    """Non-zero TTT tensors, so the fast weights actually move (the drop-in init keeps them still)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if ".mlp.ttt_" in name:
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p) * scale)
