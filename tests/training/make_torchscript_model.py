#!/usr/bin/python3
"""Scripts a small MLP with Debian's python3-torch, trains it with an explicit
ridge penalty lambda * sum(theta^2) to a stationary point in float64, and saves
what `gradmatch fit --model` needs:

  OUT/model.pt   the TorchScript module (torch.jit.script + save)
  OUT/classifier.pt  an untrained scripted Linear(6, 3), for class labels
  OUT/frozen0.pt, OUT/frozen1.pt  the same MLP with a random hidden layer
                 frozen (requires_grad False) and its output layer at the
                 exact minimum of mse + lambda * sum(out params^2) (closed form)
  OUT/data.h5    X [n, d], y [n, k] (float64), lambda [1] and, for cross-checks,
                 pred [n, k] (the model's outputs) and grad [p] (the full-batch
                 mean MSE gradient at the saved parameters, flat in
                 named_parameters() order)

Usage: make_torchscript_model.py OUT [LAMBDA (default 0.01)] [SEED (default 0)]
The MSE is torch's mean over examples and outputs, as gradmatch's.
"""
import sys

import h5py
import torch


class Net(torch.nn.Module):
    def __init__(self, d: int, width: int, k: int):
        super().__init__()
        self.hidden = torch.nn.Linear(d, width)
        self.out = torch.nn.Linear(width, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(x)))


def main() -> int:
    out = sys.argv[1]
    lam = float(sys.argv[2]) if len(sys.argv) > 2 else 0.01
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    n, d, width, k = 120, 4, 6, 2
    x = torch.randn(n, d, dtype=torch.float64)
    w = torch.randn(d, k, dtype=torch.float64)
    y = torch.sin(x @ w) + 0.1 * torch.randn(n, k, dtype=torch.float64)

    model = Net(d, width, k).double()
    params = list(model.parameters())
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=2000, tolerance_grad=1e-14,
                            tolerance_change=0.0, history_size=50, line_search_fn="strong_wolfe")

    def objective():
        return torch.nn.functional.mse_loss(model(x), y) + lam * sum((p * p).sum() for p in params)

    def closure():
        opt.zero_grad()
        value = objective()
        value.backward()
        return value

    for _ in range(5):
        opt.step(closure)

    # Line searches cannot resolve loss changes below float64's precision, so
    # L-BFGS stalls at a relative gradient residual of ~1e-7. Newton steps on
    # the gradient (p = 44: the full Hessian is cheap) reach ~1e-15.
    shapes = [p.shape for p in params]

    def unflatten(flat):
        out, offset = [], 0
        for shape in shapes:
            size = int(torch.tensor(shape).prod().item())
            out.append(flat[offset:offset + size].reshape(shape))
            offset += size
        return out

    def flat_objective(flat):
        w1, b1, w2, b2 = unflatten(flat)
        pred = torch.tanh(x @ w1.T + b1) @ w2.T + b2
        return torch.nn.functional.mse_loss(pred, y) + lam * (flat * flat).sum()

    theta = torch.cat([p.detach().reshape(-1) for p in params])
    for _ in range(4):
        g = torch.autograd.functional.jacobian(flat_objective, theta)
        h = torch.autograd.functional.hessian(flat_objective, theta)
        theta = theta - torch.linalg.solve(h, g)
    with torch.no_grad():
        for p, value in zip(params, unflatten(theta)):
            p.copy_(value)

    loss = torch.nn.functional.mse_loss(model(x), y)
    grad = torch.autograd.grad(loss, params)
    flat_grad = torch.cat([g.reshape(-1) for g in grad])
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    stationarity = (flat_grad + 2 * lam * theta).norm() / flat_grad.norm()
    print(f"relative stationarity residual {stationarity.item():.3e}")
    if stationarity.item() > 1e-10:
        print("not stationary", file=sys.stderr)
        return 1

    torch.jit.script(model).save(f"{out}/model.pt")
    # An untrained 6 -> 3 linear classifier for the IDX-directory path (2 x 3 images).
    torch.jit.script(torch.nn.Linear(6, 3).double()).save(f"{out}/classifier.pt")
    # Frozen hidden layers: the output layer solves a ridge regression on the
    # features Ha = [tanh(x W1^T + b1), 1]: with the MSE's mean over n k,
    #   A = [W2 b2] = Y^T Ha (Ha^T Ha + n k lambda I)^{-1}.
    for replicate in range(2):
        frozen = Net(d, width, k).double()
        for p in frozen.hidden.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            h = torch.tanh(frozen.hidden(x))
            ha = torch.cat([h, torch.ones(n, 1, dtype=torch.float64)], dim=1)
            a = torch.linalg.solve(ha.T @ ha + n * k * lam * torch.eye(width + 1, dtype=torch.float64), ha.T @ y).T
            frozen.out.weight.copy_(a[:, :width])
            frozen.out.bias.copy_(a[:, width])
        torch.jit.script(frozen).save(f"{out}/frozen{replicate}.pt")
    with h5py.File(f"{out}/data.h5", "w") as f:
        f["X"] = x.numpy()
        f["y"] = y.numpy()
        f["pred"] = model(x).detach().numpy()
        f["grad"] = flat_grad.detach().numpy()
        f["lambda"] = [lam]
    return 0


if __name__ == "__main__":
    sys.exit(main())
