#!/usr/bin/python3
"""Draw Figure 3 of the paper from a `gradmatch run` of the elastic-net study.

    python3 scripts/plot_elastic_net.py DIR

reads DIR/results.h5 and writes
  DIR/figure3.png                 lambda_i-hat against the true lambda_i on
                                  log-log axes: mean over seeds, +-1 standard
                                  error, one line per value of the other true
                                  penalty, dashed diagonal = perfect recovery;
  DIR/elastic_net_diagnostics.png the grid as heat maps: log10(mean
                                  lambda_i-hat / lambda_i), the median
                                  residual ratio ||b - grad R|| / ||b|| and
                                  the median condition number of the p x 2
                                  design (identifiability: large when most
                                  |theta_j| < beta, where h' and 2 theta are
                                  parallel).
A mean estimate <= 0 has no place on a log axis: it is drawn as an open
triangle on the lower edge of the panel. Needs Debian's python3-h5py and
python3-matplotlib only.
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: plot_common
from plot_common import open_results  # noqa: E402


def recovery_panel(ax, truth, mean, se, other, other_name, name):
    """mean, se: [len(truth), len(other)]; one line per column."""
    positive = mean[np.isfinite(mean) & (mean > 0)]
    lo = min(truth.min(), positive.min() if positive.size else truth.min()) / 10
    hi = max(truth.max(), positive.max() if positive.size else truth.max()) * 10
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(other)))
    for j, value in enumerate(other):
        m, s = mean[:, j], se[:, j]
        ok = np.isfinite(m) & (m > 0)
        lower = np.where(ok, np.minimum(s, m - lo * 1.01), 0)  # keep the bar on the axis
        ax.errorbar(truth[ok], m[ok], yerr=[lower[ok], np.nan_to_num(s[ok])], color=colors[j], marker="o",
                    markersize=4, capsize=3, linewidth=1.3, label=f"{other_name} = {value:g}")
        bad = np.isfinite(m) & (m <= 0)
        if bad.any():
            ax.plot(truth[bad], np.full(bad.sum(), lo * 1.5), linestyle="none", marker="v", markersize=7,
                    markerfacecolor="none", color=colors[j])
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=1, label="perfect recovery")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(truth.min() / 3, truth.max() * 3)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"true ${name}$")
    ax.set_ylabel(f"estimated $\\hat{{{name}}}$ (mean $\\pm$ 1 SE)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")


def figure3(h, out):
    l1, l2 = h["grid/lambda1"][()], h["grid/lambda2"][()]
    beta = float(h["grid/beta"][()])
    seeds = int(h["grid/seeds"][()])
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    recovery_panel(axes[0], l1, h["cells/lambda1_hat_mean"][()], h["cells/lambda1_hat_se"][()], l2,
                   "$\\lambda_2$", "\\lambda_1")
    axes[0].set_title("$\\hat\\lambda_1$ vs true $\\lambda_1$, one line per true $\\lambda_2$", fontsize=10)
    # lambda2-hat against lambda2: transpose so that rows follow lambda2.
    recovery_panel(axes[1], l2, h["cells/lambda2_hat_mean"][()].T, h["cells/lambda2_hat_se"][()].T, l1,
                   "$\\lambda_1$", "\\lambda_2")
    axes[1].set_title("$\\hat\\lambda_2$ vs true $\\lambda_2$, one line per true $\\lambda_1$", fontsize=10)
    fig.suptitle(f"Elastic-net recovery, $\\beta$ = {beta:g}, {seeds} seeds per cell "
                 "(open triangles: mean estimate $\\leq$ 0)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out / "figure3.png", dpi=130)
    plt.close(fig)


def diagnostics(h, out):
    l1, l2 = h["grid/lambda1"][()], h["grid/lambda2"][()]
    panels = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, (key, truth) in enumerate([("lambda1_hat_mean", l1[:, None]), ("lambda2_hat_mean", l2[None, :])]):
            ratio = h["cells/" + key][()] / truth
            panels.append((np.where(ratio > 0, np.log10(ratio), np.nan),
                           f"log10($\\hat\\lambda_{i + 1}$ / $\\lambda_{i + 1}$) (grey: $\\leq$ 0)", "RdBu_r", -2, 2))
    panels.append((h["cells/residual_ratio_median"][()], "median residual ratio", "magma_r", 0, 1))
    cond = h["cells/condition_number_median"][()]  # inf where the median design was rank deficient
    with np.errstate(divide="ignore", invalid="ignore"):
        panels.append((np.where(np.isfinite(cond), np.log10(cond), np.nan), r"log10 median condition number of [h$'(\theta)$, 2$\theta$]"
                       "\n(grey: rank deficient)", "cividis", 0, 4))
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.8))
    for ax, (values, title, cmap, vmin, vmax) in zip(axes, panels):
        ax.set_facecolor("#d9d9d9")
        im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, origin="lower")
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if np.isfinite(values[i, j]):
                    r, g, b, _ = im.cmap(im.norm(values[i, j]))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
        ax.set_xticks(range(len(l2)), [f"{v:g}" for v in l2], fontsize=8)
        ax.set_yticks(range(len(l1)), [f"{v:g}" for v in l1], fontsize=8)
        ax.set_xlabel("true $\\lambda_2$")
        ax.set_ylabel("true $\\lambda_1$")
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(out / "elastic_net_diagnostics.png", dpi=120)
    plt.close(fig)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: plot_elastic_net.py DIR  (a finished `gradmatch run` of configs/elastic_net.toml)")
    out = Path(sys.argv[1])
    with open_results(out, "elastic_net", "plot_elastic_net.py") as h:
        figure3(h, out)
        diagnostics(h, out)
    print(f"wrote {out / 'figure3.png'} and {out / 'elastic_net_diagnostics.png'}")


if __name__ == "__main__":
    main()
