#!/usr/bin/python3
"""Inputs of the bootstrap study's known-answer tests (Debian's python3-torch):

  OUT/linear.pt      torch.jit.script(Linear(4, 1, bias=False)), float64
  OUT/linear.h5      X [200, 4], y [200, 1]: y = X w + noise
  OUT/sym.h5         lambda [4, 4]: a random symmetric positive definite matrix
  OUT/mlp.pt         a scripted 4 -> 5 -> 1 tanh MLP (layers "hidden", "out"), float64
  OUT/ridge.h5       lambda [1] = 0.05
  OUT/zero.pt        the linear model with zero weights (gradient descent from 0)
  OUT/fresh{0..5}.h5 six data sets with linear.h5's X and fresh y = X beta + noise

Usage: make_bootstrap_inputs.py OUT   (OUT is created if it does not exist)
       make_bootstrap_inputs.py --fixture OUT
--fixture (the ctest fixture bootstrap_inputs, once per ctest run; the tests
copy the files from OUT, see tests/studies/bootstrap_inputs.hpp): OUT is
replaced whole, written under another name first and renamed; where torch or
h5py is missing, OUT is removed and the exit status is 0 (the tests then
skip or fail themselves, saying what is missing).
"""
import os
import shutil
import sys

try:
    import h5py
    import numpy as np
    import torch
except ImportError as e:
    MISSING = str(e)
else:
    MISSING = None

if MISSING is None:
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(4, 5)
            self.out = torch.nn.Linear(5, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.tanh(self.hidden(x)))


def main() -> int:
    args = sys.argv[1:]
    fixture = args[:1] == ["--fixture"]
    if fixture:
        args = args[1:]
    if len(args) != 1:
        print("usage: make_bootstrap_inputs.py [--fixture] OUT (the directory to write the inputs to)", file=sys.stderr)
        return 2
    if not fixture:
        if MISSING:
            print("make_bootstrap_inputs.py: " + MISSING, file=sys.stderr)
            return 1
        write(args[0])
        return 0
    final = os.path.abspath(args[0])
    shutil.rmtree(final, ignore_errors=True)
    if MISSING:
        print("make_bootstrap_inputs.py: %s; %s not written (the tests that need it say so)" % (MISSING, final))
        return 0
    partial = final + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    write(partial)
    os.rename(partial, final)
    print("make_bootstrap_inputs.py: wrote " + final)
    return 0


def write(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 4))
    y = x @ rng.standard_normal((4, 1)) + 0.3 * rng.standard_normal((200, 1))
    a = rng.standard_normal((4, 4))
    with h5py.File(f"{out}/linear.h5", "w") as f:
        f["X"] = x
        f["y"] = y
    with h5py.File(f"{out}/sym.h5", "w") as f:
        f["lambda"] = a @ a.T / 4 + 0.1 * np.eye(4)
    with h5py.File(f"{out}/ridge.h5", "w") as f:
        f["lambda"] = np.array([0.05])
    torch.jit.script(torch.nn.Linear(4, 1, bias=False).double()).save(f"{out}/linear.pt")
    torch.jit.script(Net().double()).save(f"{out}/mlp.pt")
    zero = torch.nn.Linear(4, 1, bias=False).double()
    with torch.no_grad():
        zero.weight.zero_()
    torch.jit.script(zero).save(f"{out}/zero.pt")
    for k in range(6):
        with h5py.File(f"{out}/fresh{k}.h5", "w") as f:
            f["X"] = x
            f["y"] = x @ (3.0 * rng.standard_normal((4, 1))) + rng.standard_normal((200, 1))


if __name__ == "__main__":
    sys.exit(main())
