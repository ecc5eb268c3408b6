"""Shared pieces of the Python package's tests: executables, a small
scriptable MLP, data and temporary directories."""
import os
import shutil
import tempfile
import unittest

import h5py
import torch


def gradmatch_executable():
    """The built gradmatch (ctest passes GRADMATCH_EXECUTABLE)."""
    exe = os.environ.get("GRADMATCH_EXECUTABLE") or shutil.which("gradmatch")
    if not exe:
        raise unittest.SkipTest("set GRADMATCH_EXECUTABLE to the built gradmatch executable")
    return exe


def trajectory_reference_executable():
    exe = os.environ.get("GRADMATCH_TRAJECTORY_REFERENCE")
    if not exe:
        raise unittest.SkipTest("set GRADMATCH_TRAJECTORY_REFERENCE to the built trajectory_rows_reference")
    return exe


class Mlp(torch.nn.Module):
    """d -> width -> k with tanh (twice differentiable) and optional dropout."""

    def __init__(self, d: int, width: int, k: int, dropout: float = 0.0):
        super().__init__()
        self.hidden = torch.nn.Linear(d, width)
        self.drop = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(width, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(torch.tanh(self.hidden(x))))


def regression_data(n, d, k, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, k, generator=g, dtype=torch.float64)
    y = torch.sin(x @ w) + 0.1 * torch.randn(n, k, generator=g, dtype=torch.float64)
    return x, y


def save_data(path, x, y):
    with h5py.File(path, "w") as f:
        f["X"] = x.numpy()
        f["y"] = y.numpy()


class TempDirTest(unittest.TestCase):
    """A fresh temporary directory per test (self.dir); one compute thread."""

    def setUp(self):
        torch.set_num_threads(1)
        self.dir = tempfile.mkdtemp(prefix="gradmatch-py-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, name):
        return os.path.join(self.dir, name)
