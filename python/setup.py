"""Builds inplace_ttt._C against the torch that is installed (so: `pip install --no-build-isolation`).

The extension compiles the engine's operator sources from the repository's src/ directly (no copy):
src/ipt/ops/ttt/*.cpp but stream.cpp (decoding streams, which need ops/matvec), the bf16 GEMM lookup
the chunk update may use (src/ipt/ops/gemm/bf16_gemm.cpp; torch's wheel keeps oneDNN private, so in
Python it finds none and the update stays a torch product) plus python/csrc. Set CXX="ccache g++"
to reuse objects between builds; MAX_JOBS bounds the parallel compiles.
"""
import os
import sys

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", "src"))
TTT_DIR = os.path.join(SRC, "ipt", "ops", "ttt")
MIN_TORCH = (2, 4)

try:
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension
except ImportError:
    sys.exit("inplace_ttt builds against the torch you have installed, and none was found in this Python.\n"
             "Install torch >= 2.4 first, then: pip install --no-build-isolation ./python")
if tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) < MIN_TORCH:
    sys.exit(f"inplace_ttt needs torch >= 2.4, found {torch.__version__}")
if not os.path.isdir(os.path.join(SRC, "ipt", "ops", "ttt")):
    sys.exit(f"inplace_ttt compiles the engine's sources from {SRC}; build it from a checkout of the repository")

sources = [os.path.join(HERE, "csrc", f) for f in ("ops.cpp", "module.cpp")]
sources += sorted(os.path.join(TTT_DIR, f) for f in os.listdir(TTT_DIR) if f.endswith(".cpp") and f != "stream.cpp")
sources.append(os.path.join(SRC, "ipt", "ops", "gemm", "bf16_gemm.cpp"))

setup(
    name="inplace_ttt",
    version="0.1.0",
    description="In-Place Test-Time Training: the lean operator, Qwen3/LLaMA models and an FSDP2 trainer for PyTorch",
    packages=find_packages(include=["inplace_ttt", "inplace_ttt.*"]),
    python_requires=">=3.9",
    install_requires=["torch>=2.4"],
    extras_require={"models": ["transformers==4.57.3", "safetensors"], "train": ["pyyaml"]},
    ext_modules=[
        CppExtension(
            "inplace_ttt._C",
            sources,
            include_dirs=[SRC],
            extra_compile_args=["-O2", "-g0", "-std=c++17", "-Wno-unused-parameter"],
        )
    ],
    cmdclass={"build_ext": BuildExtension},
)
