#!/usr/bin/python3
"""Draw Figure 5 of the paper from a `gradmatch run` of the dropout study.

    python3 scripts/plot_dropout.py DIR
    python3 scripts/plot_dropout.py DIR1 DIR2 ... --out OUTDIR

reads DIR/results.h5 and writes
  DIR/figure5.png          the estimated ridge strength lambda-hat against the
                           dropout rate, one panel per (depth, width): one
                           point per seed, coloured by the cosine between
                           -grad L and theta (how ridge-shaped the endpoint
                           gradient is), the median over seeds as a line; a
                           panel whose cells fail the trust rule (the dropout
                           objective's unbiased ||g_p|| / ||theta|| too large)
                           is shaded and says which rates are untrusted; the
                           trend test within seeds from DIR/summary.json
                           (mean within-seed Spearman with the rate and its
                           permutation p-value for a rise) is written in
                           each panel's top corner; a
                           last column per depth splits the medians into
                           lambda_R (dropout's own penalty, solid) and
                           lambda_ns (non-stationarity, dashed);
  DIR/dropout_diagnostics.png  per rate: median cosine, median unbiased
                           ||g_p|| / ||theta||, median test accuracy, and
                           the authors' Adam fit (parity column) against the
                           closed form.
Several runs (parts of one grid run on different allocations: other
depths or widths, the same rates, seeds and everything else) are merged
into one grid first; a (depth, width) that none of them ran is drawn as
"not run", one that two of them ran is an error, and so is a difference in
any other config line. The figures then go to OUTDIR.
Needs Debian's python3-h5py and python3-matplotlib only.
"""
import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: plot_common
from plot_common import open_results  # noqa: E402


def figure5(h, out):
    depths, widths, rates = h["grid/depths"], h["grid/widths"], h["grid/rates"]
    lam = h["endpoints/lambda_hat"]           # [depth, width, rate, seed]
    cosine = h["endpoints/cosine"]
    median = h["cells/lambda_hat_median"]     # [depth, width, rate]
    penalty = h["cells/lambda_penalty_median"]
    nonstationary = h["cells/lambda_nonstationary_median"]
    trusted = h["cells/trusted"]
    finite = lam[np.isfinite(lam)]
    span = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    pad = 0.08 * (span[1] - span[0] or 1.0)
    columns = len(widths) + 1
    width_in, height_in = 3.6 * columns + 2.4, 3.0 * len(depths) + 1.0
    fig, axes = plt.subplots(len(depths), columns, figsize=(width_in, height_in), squeeze=False, sharex=True)
    fc = cosine[np.isfinite(cosine)]
    norm = matplotlib.colors.Normalize(vmin=0.0, vmax=max(fc.max(), 1e-3) if fc.size else 1.0)
    scatter = None
    for i, depth in enumerate(depths):
        for j, width in enumerate(widths):
            ax = axes[i, j]
            ax.set_title(f"depth {depth}, width {width}", fontsize=10)
            if not np.isfinite(median[i, j]).any() and not np.isfinite(lam[i, j]).any():
                ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", color="gray")
                ax.set_ylim(span[0] - pad, span[1] + pad)
                continue
            for k, rate in enumerate(rates):
                jitter = (np.arange(lam.shape[3]) - (lam.shape[3] - 1) / 2) * 0.004
                scatter = ax.scatter(rate + jitter, lam[i, j, k], c=cosine[i, j, k], cmap="viridis", norm=norm,
                                     s=22, edgecolors="black", linewidths=0.3, zorder=3)
            ax.plot(rates, median[i, j], color="tab:red", linewidth=1.2, label="median over seeds", zorder=2)
            trend = h.get("trends", {}).get((int(depth), int(width)), {}).get("seed_trend")
            if trend and trend.get("statistic") is not None:
                ax.text(0.02, 0.90, f"within seeds: Spearman {trend['statistic']:.2f}, "
                        f"p(rise) {trend['p_increasing']:.2g}", transform=ax.transAxes, fontsize=7, va="top")
            ax.axhline(0.0, color="gray", linewidth=0.8, linestyle=":")
            untrusted = [f"{r:g}" for r, t in zip(rates, trusted[i, j]) if t == 0]
            if untrusted:
                ax.set_facecolor("#f3f0e6")
                ax.text(0.02, 0.97, "untrusted (not dropout-stationary): " +
                        ("all rates" if len(untrusted) == len(rates) else ", ".join(untrusted)),
                        transform=ax.transAxes, fontsize=7, va="top", color="tab:brown")
            ax.set_ylim(span[0] - pad, span[1] + pad)
            if i == len(depths) - 1:
                ax.set_xlabel("dropout rate")
            if j == 0:
                ax.set_ylabel("$\\hat\\lambda$ (ridge, closed form)")
            ax.grid(True, alpha=0.3)
        ax = axes[i, -1]
        for j, width in enumerate(widths):
            if not np.isfinite(penalty[i, j]).any():
                continue
            color = f"C{j}"
            ax.plot(rates, penalty[i, j], color=color, marker="o", markersize=3, label=f"$\\lambda_R$, width {width}")
            ax.plot(rates, nonstationary[i, j], color=color, linestyle="--", marker="x", markersize=3,
                    label=f"$\\lambda_{{ns}}$, width {width}")
        ax.axhline(0.0, color="gray", linewidth=0.8, linestyle=":")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))  # "1e-5" above the axis, short tick labels
        ax.set_title(f"depth {depth}: $\\hat\\lambda = \\lambda_R + \\lambda_{{ns}}$ (medians)", fontsize=10)
        if i == len(depths) - 1:
            ax.set_xlabel("dropout rate")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    drawn = [ax for ax in axes[:, :-1].flat if ax.get_legend_handles_labels()[0]]
    if drawn:
        drawn[0].legend(fontsize=7, loc="lower right")
    fig.subplots_adjust(left=1.0 / width_in, right=1 - 1.45 / width_in, bottom=0.6 / height_in,
                        top=1 - 0.75 / height_in, hspace=0.3, wspace=0.25)
    cax = fig.add_axes([1 - 1.25 / width_in, 0.15, 0.15 / width_in, 0.7])
    fig.colorbar(scatter, cax=cax, label="cosine(-grad L, theta) (how ridge-shaped)", format="%.3g")
    title = "Effective ridge penalty of dropout (one point per seed)"
    if h.get("schedule"):
        title += "\n" + h["schedule"]
    fig.suptitle(title, fontsize=11)
    fig.savefig(out / "figure5.png", dpi=130)
    plt.close(fig)


def diagnostics(h, out):
    depths, widths, rates = h["grid/depths"], h["grid/widths"], h["grid/rates"]
    cells = {key: h["cells/" + key] for key in
             ("cosine_median", "dropout_grad_norm_median", "test_accuracy_median", "lambda_hat_median",
              "adam_lambda_median")}
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    for i, depth in enumerate(depths):
        for j, width in enumerate(widths):
            if not np.isfinite(cells["lambda_hat_median"][i, j]).any():
                continue
            label = f"d{depth} w{width}"
            axes[0].plot(rates, cells["cosine_median"][i, j], marker="o", label=label)
            axes[1].plot(rates, cells["dropout_grad_norm_median"][i, j], marker="o", label=label)
            axes[2].plot(rates, cells["test_accuracy_median"][i, j], marker="o", label=label)
            axes[3].scatter(np.abs(cells["lambda_hat_median"][i, j]), cells["adam_lambda_median"][i, j], label=label)
    axes[0].set_title("median cosine(b, 2$\\hat\\lambda\\theta$)", fontsize=10)
    axes[1].set_title("median unbiased $\\|g_p\\| / \\|\\theta\\|$ (dropout stationarity)", fontsize=10)
    axes[1].set_yscale("log")
    axes[2].set_title("median test accuracy", fontsize=10)
    axes[3].set_title("the authors' Adam fit (parity) vs closed form", fontsize=10)
    axes[3].set_xscale("log")
    axes[3].set_yscale("log")
    lim = [1e-6, 1.0]
    axes[3].plot(lim, lim, "k--", linewidth=1, label="equal")
    axes[3].set_xlabel("|closed-form $\\hat\\lambda$| (median)")
    axes[3].set_ylabel("Adam $\\hat\\lambda$ (median)")
    for ax in axes[:3]:
        ax.set_xlabel("dropout rate")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "dropout_diagnostics.png", dpi=120)
    plt.close(fig)


def schedule_text(summary):
    """How the networks were trained, for the figure's title, from a dropout
    run's summary.json: the step schedule, matched stationarity, the seeds."""
    milestones = summary.get("milestones") or []
    if milestones:
        text = (f"SGD, learning rate × {summary.get('gamma', 0.1):g} after epochs "
                + ", ".join(str(int(m)) for m in milestones))
    else:
        text = "SGD at a constant learning rate"
    target = summary.get("matched_stationarity")
    if target is not None:
        text += f", then on to ‖g_p‖/‖θ‖ ≤ {target:g} (matched stationarity)"
    if summary.get("seeds"):
        text += f"; {int(summary['seeds'])} seeds"
    if summary.get("training_precision"):
        text += f"; {summary['training_precision']} training"
    return text


def load_run(directory):
    """Every dataset of DIR/results.h5 as numpy arrays, its config text, and
    (`trends`, keyed by (depth, width)) the trends of DIR/summary.json."""
    run = {}
    with open_results(directory, "dropout", "plot_dropout.py") as h:
        for group in ("grid", "cells", "endpoints"):
            for key, dataset in h[group].items():
                run[f"{group}/{key}"] = dataset[()]
        config = h["config"][()]
        run["config"] = config.decode() if isinstance(config, bytes) else str(config)
    summary_path = Path(directory) / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    run["trends"] = {(int(t["depth"]), int(t["width"])): t for t in summary.get("trends", [])}
    run["schedule"] = schedule_text(summary) if summary else ""
    return run


# Keys that say how a run was executed, not what was trained: runs may differ in them.
EXECUTION_KEYS = ("device", "replicates_per_task")


def config_lines(text):
    """The config lines that must agree between merged runs: all but the grid's
    depths and widths and the execution keys (where the classifiers trained, and
    how many to a task)."""
    lines = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        key = line.split("=", 1)[0].strip()
        if line and key not in ("depths", "widths") + EXECUTION_KEYS:
            lines.add(line)
    return lines


def merge_runs(runs, names):
    """One grid from runs of other (depth, width) cells; missing cells are NaN.

    Raises ValueError when the runs differ in anything but depths, widths and
    the execution keys, or when two runs hold the same (depth, width)."""
    first, first_name = runs[0], names[0]
    for run, name in zip(runs[1:], names[1:]):
        if not np.array_equal(run["grid/rates"], first["grid/rates"]):
            raise ValueError(f"{name} has rates {list(run['grid/rates'])}, {first_name} {list(first['grid/rates'])}")
        differ = config_lines(run["config"]) ^ config_lines(first["config"])
        if differ:
            raise ValueError(f"{name} and {first_name} differ in more than depths and widths: " +
                             "; ".join(sorted(differ)))
    depths = sorted({int(d) for run in runs for d in run["grid/depths"]})
    widths = sorted({int(w) for run in runs for w in run["grid/widths"]})
    merged = {"grid/depths": np.array(depths), "grid/widths": np.array(widths),
              "grid/rates": first["grid/rates"], "config": first["config"],
              "schedule": first.get("schedule", ""),
              "trends": {cell: trend for run in runs for cell, trend in run.get("trends", {}).items()}}
    owner = {}
    for run, name in zip(runs, names):
        for d in run["grid/depths"]:
            for w in run["grid/widths"]:
                if (int(d), int(w)) in owner:
                    raise ValueError(f"depth {d}, width {w} is in both {owner[int(d), int(w)]} and {name}")
                owner[int(d), int(w)] = name
    for key in first:
        if not key.startswith(("cells/", "endpoints/")):
            continue
        shape = (len(depths), len(widths)) + first[key].shape[2:]
        out = np.full(shape, np.nan)
        for run in runs:
            for i, d in enumerate(run["grid/depths"]):
                for j, w in enumerate(run["grid/widths"]):
                    out[depths.index(int(d)), widths.index(int(w))] = run[key][i, j]
        merged[key] = out
    return merged


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Figure 5 and the dropout diagnostics from one or more finished dropout runs.")
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="a finished `gradmatch run` of the dropout study")
    parser.add_argument("--out", help="where the figures go (required with several DIRs; default: the one DIR)")
    args = parser.parse_args(argv)
    if len(args.dirs) > 1 and not args.out:
        parser.error("give --out OUTDIR when merging several runs")
    out = Path(args.out or args.dirs[0])
    runs = [load_run(d) for d in args.dirs]
    try:
        h = runs[0] if len(runs) == 1 else merge_runs(runs, args.dirs)
    except ValueError as error:
        sys.exit(f"plot_dropout.py: cannot merge: {error}")
    out.mkdir(parents=True, exist_ok=True)
    figure5(h, out)
    diagnostics(h, out)
    print(f"wrote {out / 'figure5.png'} and {out / 'dropout_diagnostics.png'}")


if __name__ == "__main__":
    main()
