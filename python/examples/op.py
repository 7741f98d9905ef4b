"""The operator in a few lines: target, TTT, gradients, the reference, torch.compile, a bad argument (docs/python.md)."""
import torch, inplace_ttt
torch.manual_seed(0)
Z = torch.randn(1, 1024, 512, dtype=torch.float64, requires_grad=True)   # MLP hidden activations
X = torch.randn(1, 1024, 128, dtype=torch.float64, requires_grad=True)   # the layer's input
W0 = (torch.randn(128, 512, dtype=torch.float64) / 512 ** 0.5).requires_grad_()  # down_proj.weight
conv = torch.randn(128, 1, 5, dtype=torch.float64) * 0.1
P = torch.eye(128, dtype=torch.float64) * 0.02
V = inplace_ttt.target(X, conv, P, chunk_size=128)                       # Conv(X) P
O = inplace_ttt.ttt(Z, V, W0, chunk_size=128, lr=0.3)                    # [1, 1024, 128]
O.square().mean().backward()
ref = inplace_ttt.ttt(Z, V, W0, chunk_size=128, lr=0.3, algorithm="reference")
print("out", tuple(O.shape), "max |ours - reference|", (O - ref).abs().max().item())
print("grads", tuple(Z.grad.shape), tuple(X.grad.shape), tuple(W0.grad.shape))
f = torch.compile(lambda Z, V, W0: inplace_ttt.ttt(Z, V, W0, chunk_size=128, lr=0.3), fullgraph=True)
print("compiled == eager:", torch.equal(f(Z, V, W0), O))
try:
    inplace_ttt.ttt(Z, V, W0.t(), chunk_size=128, lr=0.3)
except ValueError as e:
    print("ValueError:", e)
