"""The benchmark script runs end to end at a small size and reports both formulations."""
import os
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_op.py")


def test_bench_runs_both_formulations():
    out = subprocess.run([sys.executable, BENCH, "--L", "512", "--d", "32", "--h", "64", "--chunk", "64"],
                         capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    for words in ("official     fwd ", "official     fwd+bwd", "inplace_ttt  fwd ", "inplace_ttt  fwd+bwd",
                  "fwd+bwd  inplace_ttt / official: time"):
        assert words in out.stdout, out.stdout
