"""torch.compile(fullgraph=True) traces the ops (fake kernels) and gives eager's values and gradients."""
import torch

import inplace_ttt


def block(Z, X, conv_weight, proj, W0):
    V = inplace_ttt.target(X, conv_weight, proj, chunk_size=4)
    return torch.tanh(inplace_ttt.ttt(Z, V, W0, chunk_size=4, lr=0.3, clip=2.0)).sum()


def test_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    args = [torch.randn(1, 10, 6), torch.randn(1, 10, 4), torch.randn(4, 1, 5), torch.randn(4, 4),
            torch.randn(4, 6)]
    eager_args = [a.clone().requires_grad_() for a in args]
    compiled_args = [a.clone().requires_grad_() for a in args]
    eager = block(*eager_args)
    eager.backward()
    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")(*compiled_args)
    compiled.backward()
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(compiled_args, eager_args):
        torch.testing.assert_close(a.grad, b.grad)


def test_compile_inductor_dynamic_length():
    torch._dynamo.reset()
    f = torch.compile(lambda Z, V, W0: inplace_ttt.ttt(Z, V, W0, chunk_size=4, lr=0.3) * 2, fullgraph=True,
                      dynamic=True)
    W0 = torch.randn(3, 5)
    for L in (9, 17):
        Z, V = torch.randn(1, L, 5), torch.randn(1, L, 3)
        torch.testing.assert_close(f(Z, V, W0), inplace_ttt.ttt(Z, V, W0, chunk_size=4, lr=0.3) * 2)


def test_compile_converted_model_fullgraph():
    """A whole converted transformers model (both target sources) traces in one graph; same logits and
    gradients as eager."""
    from inplace_ttt import models
    from tiny import randomize_ttt, tiny_qwen3

    for target in ("hidden_states", "input_embed"):
        torch._dynamo.reset()
        model = tiny_qwen3(dtype=torch.float32)
        models.convert(model, [0, 1], chunk=8, target=target)
        randomize_ttt(model)
        ids = torch.randint(0, 96, (1, 40))
        loss = lambda: model(ids, use_cache=False).logits.square().mean()  # noqa: E731
        eager = loss()
        eager_grads = torch.autograd.grad(eager, list(model.parameters()))
        compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")()
        compiled_grads = torch.autograd.grad(compiled, list(model.parameters()))
        torch.testing.assert_close(compiled, eager)
        for a, b in zip(compiled_grads, eager_grads):
            torch.testing.assert_close(a, b)
