#!/usr/bin/python3
"""Python baseline for the replicate-batching benchmark (scripts/bench_replicates.sh).

Trains R replicates of the appendix H.2 elastic-net network (10 -> 200 ReLU -> 1,
MSE, smoothed elastic net lambda1 * sum h_beta(theta) + lambda2 * sum theta^2,
SGD lr 1e-3, batch 32, a shuffled 4000-example training split per replicate)
ONE AT A TIME in a plain python3-torch loop, as a study script would, and
prints one JSON line with the per-replicate throughput.

Usage: bench_replicates.py [--replicates R] [--epochs E] [--threads T]
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


def train_one(data, seed: int, epochs: int, n: int, lam1: float, lam2: float, beta: float) -> float:
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
            penalty = sum(lam1 * huber_sum(p, beta) + lam2 * (p * p).sum() for p in params)
            (loss + penalty).backward()
            opt.step()
    return float(loss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=4000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train_one(make_data(0, 256), 0, 1, 256, 1e-3, 1e-3, 1e-3)  # warm-up
    data = [make_data(r + 1, args.n) for r in range(args.replicates)]  # not timed, as in the C++ benchmark
    start = time.perf_counter()
    for r in range(args.replicates):
        train_one(data[r], r + 1, args.epochs, args.n, 1e-3 * (r + 1), 1e-3, 1e-3)
    seconds = time.perf_counter() - start
    steps = args.replicates * args.epochs * ((args.n + 31) // 32)
    print(json.dumps({
        "impl": "python3-torch loop", "torch": torch.__version__, "replicates": args.replicates,
        "epochs": args.epochs, "threads": args.threads, "seconds": seconds,
        "replicate_epochs_per_s": args.replicates * args.epochs / seconds,
        "us_per_replicate_step": 1e6 * seconds / steps,
    }))


if __name__ == "__main__":
    main()
