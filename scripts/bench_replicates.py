#!/usr/bin/python3
"""Python baseline for the replicate-batching benchmark (scripts/bench_replicates.sh).

Trains R replicates of the appendix H.2 elastic-net network (10 -> 200 ReLU -> 1,
MSE, smoothed elastic net lambda1 * sum h_beta(theta) + lambda2 * sum theta^2,
SGD lr 1e-3, batch 32, a shuffled 4000-example training split per replicate)
ONE AT A TIME in a plain python3-torch loop, as a study script would, and
prints one JSON line with the per-replicate throughput.

--closed-form-penalty adds the penalty's gradient by hand after backward()
(2 lambda2 theta + lambda1 clamp(theta / beta, -1, 1)), as gradmatch does,
instead of differentiating the penalty term. --batched trains the R
replicates as one model in PyTorch (parameters [R, ...], baddbmm, each
replicate its own shuffled batches, plain SGD written out, the closed-form
penalty): the strongest PyTorch alternative to gradmatch's batching.

Usage: bench_replicates.py [--replicates R] [--epochs E] [--threads T] [--closed-form-penalty] [--batched]
"""
import argparse
import json
import time

import torch


def huber_sum(x: torch.Tensor, beta: float) -> torch.Tensor:
    a = x.abs()
    return torch.where(a < beta, x * x / (2 * beta), a - beta / 2).sum()


def make_data(seed: int, n: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    theta = 5 * torch.randn(10, 1, generator=g)
    y = x @ theta + 0.5 * torch.randn(n, 1, generator=g)
    return x, y, g


def add_penalty_gradient(params, lam1, lam2, beta: float) -> None:
    """p.grad += 2 lam2 p + lam1 clamp(p / beta, -1, 1) (lam1, lam2: numbers or [R, 1, 1] tensors)."""
    with torch.no_grad():
        for p in params:
            p.grad += p * (2 * lam2) + (p / beta).clamp(-1, 1) * lam1


def train_one(data, seed: int, epochs: int, n: int, lam1: float, lam2: float, beta: float,
              closed_form: bool = False) -> float:
    x, y, g = data
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(10, 200), torch.nn.ReLU(), torch.nn.Linear(200, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    params = list(model.parameters())
    loss = torch.zeros(())
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for start in range(0, n, 32):
            idx = perm[start:start + 32]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
            if closed_form:
                loss.backward()
                add_penalty_gradient(params, lam1, lam2, beta)
            else:
                penalty = sum(lam1 * huber_sum(p, beta) + lam2 * (p * p).sum() for p in params)
                (loss + penalty).backward()
            opt.step()
    return float(loss)


def train_batched(data, epochs: int, n: int, lam1s, lam2: float, beta: float) -> float:
    """All replicates as one model: [R, ...] parameters, baddbmm, SGD written out."""
    r = len(data)
    torch.manual_seed(1)
    layers = [(torch.nn.Linear(10, 200), torch.nn.Linear(200, 1)) for _ in range(r)]
    w1 = torch.stack([a.weight.detach().t() for a, _ in layers]).requires_grad_()           # [R, 10, 200]
    b1 = torch.stack([a.bias.detach()[None] for a, _ in layers]).requires_grad_()          # [R, 1, 200]
    w2 = torch.stack([b.weight.detach().t() for _, b in layers]).requires_grad_()           # [R, 200, 1]
    b2 = torch.stack([b.bias.detach()[None] for _, b in layers]).requires_grad_()          # [R, 1, 1]
    params = [w1, b1, w2, b2]
    x = torch.stack([d[0] for d in data])                                                   # [R, n, 10]
    y = torch.stack([d[1] for d in data])                                                   # [R, n, 1]
    lam1 = torch.tensor(lam1s, dtype=x.dtype)[:, None, None]
    loss = torch.zeros(())
    for _ in range(epochs):
        perms = torch.stack([torch.randperm(n, generator=d[2]) for d in data])              # [R, n]
        for start in range(0, n, 32):
            idx = perms[:, start:start + 32, None]
            xb, yb = x.gather(1, idx.expand(-1, -1, 10)), y.gather(1, idx)
            out = torch.baddbmm(b2, torch.baddbmm(b1, xb, w1).relu(), w2)
            loss = ((out - yb) ** 2).mean(dim=(1, 2)).sum()  # each replicate's mean loss
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p -= 1e-3 * (g + p * (2 * lam2) + (p / beta).clamp(-1, 1) * lam1)
    return float(loss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--closed-form-penalty", action="store_true")
    ap.add_argument("--batched", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train_one(make_data(0, 256), 0, 1, 256, 1e-3, 1e-3, 1e-3)  # warm-up
    data = [make_data(r + 1, args.n) for r in range(args.replicates)]  # not timed, as in the C++ benchmark
    lam1s = [1e-3 * (r + 1) for r in range(args.replicates)]
    start = time.perf_counter()
    if args.batched:
        impl = "python3-torch batched (baddbmm, closed-form penalty)"
        train_batched(data, args.epochs, args.n, lam1s, 1e-3, 1e-3)
    else:
        impl = "python3-torch loop" + (", closed-form penalty" if args.closed_form_penalty else "")
        for r in range(args.replicates):
            train_one(data[r], r + 1, args.epochs, args.n, lam1s[r], 1e-3, 1e-3, args.closed_form_penalty)
    seconds = time.perf_counter() - start
    steps = args.replicates * args.epochs * ((args.n + 31) // 32)
    print(json.dumps({
        "impl": impl, "torch": torch.__version__, "replicates": args.replicates,
        "epochs": args.epochs, "threads": args.threads, "seconds": seconds,
        "replicate_epochs_per_s": args.replicates * args.epochs / seconds,
        "us_per_replicate_step": 1e6 * seconds / steps,
    }))


if __name__ == "__main__":
    main()
