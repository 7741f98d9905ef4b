import os
import shutil

import pytest
import torch

REPO = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def ipt_binary():
    """The engine's CLI: $IPT, else the repository's build/ipt."""
    path = os.environ.get("IPT") or os.path.join(REPO, "build", "ipt")
    return path if os.path.exists(path) else shutil.which("ipt")


@pytest.fixture
def ipt():
    path = ipt_binary()
    if not path:
        pytest.skip("the ipt binary is not built (make build-ipt, or set IPT=path)")
    return path


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
