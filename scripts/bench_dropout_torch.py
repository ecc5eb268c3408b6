#!/usr/bin/env python3
"""Plain PyTorch baselines of scripts/bench_dropout_gpu.sh.

Appendix H.4's dropout classifiers (784 -> depth x width ReLU -> 10, dropout
after every hidden block but the last, SGD momentum 0.9, lr 0.05, batch
2048, cross-entropy), dropout rates 0, 0.05, ..., 0.5 cycling over the
models, each model on all training images in its own order:

  --mode single   one nn.Sequential at a time, the usual PyTorch loop
                  (--models of them, each for --epochs epochs);
  --mode batched  all --models in one model: weights [R, out, in], baddbmm,
                  per-model dropout masks, one torch.optim.SGD.

One warm-up epoch first (untimed). Prints one JSON line with ms per
model-epoch, wall and process CPU time. Data: the Fashion-MNIST IDX files of --data, else random
pixels and labels of the same shapes.

--runs RUN1,RUN2,... times several runs in one process, one line each, sharing
the import of torch and the images (on a GPU host importing a CUDA PyTorch
costs seconds): "single" (--single-models models one at a time), "batched",
"batched-tf32" and "batched-rates0" (every rate 0: no masks), each with the
other flags as given.
"""
import argparse
import gzip
import json
import os
import time

import torch

RATES = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5]


def load(data_dir, images):
    path = os.path.join(data_dir, "train-images-idx3-ubyte.gz")
    labels = os.path.join(data_dir, "train-labels-idx1-ubyte.gz")
    if os.path.exists(path) and os.path.exists(labels):
        with gzip.open(path) as f:
            x = torch.frombuffer(bytearray(f.read()[16:]), dtype=torch.uint8).view(-1, 784)
        with gzip.open(labels) as f:
            y = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8).long()
        return x[:images].float() / 255.0, y[:images], data_dir
    return torch.rand(images, 784), torch.randint(0, 10, (images,)), "synthetic"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def single(args, x, y, device, dtype):
    def make(rate):
        layers, width_in = [], 784
        for l in range(args.depth):
            layers += [torch.nn.Linear(width_in, args.width), torch.nn.ReLU()]
            if l + 1 < args.depth and rate > 0:
                layers.append(torch.nn.Dropout(rate))
            width_in = args.width
        layers.append(torch.nn.Linear(args.width, 10))
        return torch.nn.Sequential(*layers).to(device, dtype)

    def epoch(model, opt):
        order = torch.randperm(x.shape[0], device=device)
        for begin in range(0, x.shape[0], args.batch):
            idx = order[begin:begin + args.batch]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()

    warm = make(0.3)
    epoch(warm, torch.optim.SGD(warm.parameters(), lr=0.05, momentum=0.9))
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for m in range(args.models):
        model = make(args.rates[m % len(args.rates)])
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for _ in range(args.epochs):
            epoch(model, opt)
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def batched(args, x, y, device, dtype):
    r = args.models
    dims = [784] + [args.width] * args.depth + [10]
    params = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        bound = fan_in ** -0.5
        params.append((torch.rand(r, fan_out, fan_in, device=device, dtype=dtype) * 2 - 1) * bound)
        params.append((torch.rand(r, 1, fan_out, device=device, dtype=dtype) * 2 - 1) * bound)
    params = [p.requires_grad_() for p in params]
    rate = torch.tensor([args.rates[m % len(args.rates)] for m in range(r)], device=device, dtype=dtype).view(r, 1, 1)
    masks = any(v > 0 for v in args.rates)
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    n = x.shape[0]

    def forward(h):
        for l in range(len(dims) - 1):
            h = torch.baddbmm(params[2 * l + 1], h, params[2 * l].transpose(1, 2))
            if l + 1 < len(dims) - 1:
                h = torch.relu(h)
                if masks and l + 2 < len(dims) - 1:  # dropout after every hidden block but the last
                    keep = torch.rand_like(h) >= rate
                    h = h * keep / (1 - rate)
        return h

    def epoch():
        order = torch.argsort(torch.rand(r, n, device=device), dim=1)
        for begin in range(0, n, args.batch):
            idx = order[:, begin:begin + args.batch]
            xb, yb = x[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            out = forward(xb)
            loss = torch.nn.functional.cross_entropy(out.reshape(-1, 10), yb.reshape(-1), reduction="none")
            loss.view(r, -1).mean(1).sum().backward()
            opt.step()

    epoch()
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.epochs):
        epoch()
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["single", "batched"], default="batched")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--models", type=int, default=80)
    p.add_argument("--images", type=int, default=54000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--batch", type=int, default=2048,
                   help="mini-batch size (a tiny model with a small batch times the host's work per step)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls (CUDA)")
    p.add_argument("--rates", default=",".join(str(v) for v in RATES),
                   help="dropout rates cycled over the models (0: no dropout, the masks' cost left out)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default=None,
                   help="several runs in one process: single, batched, batched-tf32, batched-rates0 (comma-separated)")
    p.add_argument("--single-models", type=int, default=None,
                   help="models of a 'single' run (default: --models)")
    args = p.parse_args()
    base_rates = [float(v) for v in args.rates.split(",") if v.strip()] or [0.0]
    # (mode, tf32, rates text, rates, models) of each run
    runs = []
    for run in (args.runs.split(",") if args.runs else [args.mode]):
        if run == "single":
            runs.append(("single", args.tf32, args.rates, base_rates, args.single_models or args.models))
        elif run in ("batched", "batched-tf32"):
            runs.append(("batched", args.tf32 or run == "batched-tf32", args.rates, base_rates, args.models))
        elif run == "batched-rates0":
            runs.append(("batched", args.tf32, "0", [0.0], args.models))
        else:
            p.error("--runs: unknown run %r (single, batched, batched-tf32, batched-rates0)" % run)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.float32
    x, y, source = load(args.data, args.images)
    x, y = x.to(device, dtype), y.to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (%d thread%s)" % (
        args.threads, "" if args.threads == 1 else "s")
    for mode, tf32, rates_text, rates, models in runs:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        args.rates, args.models = rates, models
        seconds, cpu_seconds = (single if mode == "single" else batched)(args, x, y, device, dtype)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(json.dumps({"tool": "pytorch", "mode": mode + (" tf32" if tf32 else ""), "device": name,
                          "torch": torch.__version__, "depth": args.depth, "width": args.width,
                          "replicates": models, "images": x.shape[0], "data": source, "epochs": args.epochs, "batch": args.batch,
                          "rates": "grid" if rates == RATES else rates_text,
                          "seconds": round(seconds, 4),
                          "ms_per_model_epoch": round(1e3 * seconds / (models * args.epochs), 4),
                          "cpu_ms_per_model_epoch": round(1e3 * cpu_seconds / (models * args.epochs), 4)}),
              flush=True)


if __name__ == "__main__":
    main()
