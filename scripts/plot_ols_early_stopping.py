#!/usr/bin/python3
"""Draw Figures 4 and 7 of the paper from a `gradmatch run` of the OLS
early-stopping study.

    python3 scripts/plot_ols_early_stopping.py DIR

reads DIR/results.h5 and writes DIR/figure4.png (panels A-E) and
DIR/figure7.png (panels A-F). Needs Debian's python3-h5py and
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


def heatmap(fig, ax, matrix, title, vmax=None):
    vmax = vmax if vmax is not None else np.max(np.abs(matrix))
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, extend="both")


def band(ax, m, mean, low, high, color, label, floor=1e-17):
    """Mean line and interval on a log axis; the interval is cut at `floor`
    (distances of 1e-16 are exact recovery in double precision)."""
    ax.plot(m, np.maximum(mean, floor), color=color, label=label)
    ax.fill_between(m, np.maximum(low, floor), np.maximum(high, floor), color=color, alpha=0.25, linewidth=0)


def label(ax, letter):
    ax.text(-0.12, 1.06, letter, transform=ax.transAxes, fontsize=13, fontweight="bold", va="bottom")


def figure4(h, out):
    t = int(h["canonical/stop_step"][()])
    lam = h["canonical/lambda_theory"][()]
    show_m = int(h["fixed_iterate/show_m"][()])
    fig = plt.figure(figsize=(16, 8.5))
    grid = fig.add_gridspec(2, 4, height_ratios=[1, 1.1], hspace=0.35, wspace=0.35)

    ax = fig.add_subplot(grid[0, 0])
    heatmap(fig, ax, lam, f"Theory $\\Lambda^{{(t)}}$, t = {t}")
    label(ax, "A")
    ax = fig.add_subplot(grid[0, 1])
    heatmap(fig, ax, h["fixed_iterate/lambda_hat_show"][()],
            f"$\\hat\\Lambda_m^{{(t)}}$, m = {show_m} endpoints", vmax=np.max(np.abs(lam)))
    label(ax, "B")
    ax = fig.add_subplot(grid[0, 2])
    q = h["canonical/q_hat"][()]
    heatmap(fig, ax, np.diag(q), "diag$(\\hat\\Lambda^{(t)})$, one endpoint")
    label(ax, "C")
    ax = fig.add_subplot(grid[0, 3])
    theta_hat = h["canonical/theta_hat"][()]
    retrained = h["canonical/theta_retrained"][()]
    beta = h["canonical/beta"][()]
    j = np.arange(len(theta_hat))
    ax.plot(j, beta, "s", color="0.6", markersize=9, label="ground truth $\\theta$")
    ax.plot(j, theta_hat, "o", color="C0", markersize=7, label="early-stopped $\\hat\\theta$")
    ax.plot(j, retrained, "x", color="C3", markersize=7, mew=2, label="retrained $\\hat\\theta^{\\Lambda}$")
    diff = float(h["canonical/diag_retrain_max_abs_diff"][()])
    ax.set_title(f"weights; max $|\\hat\\theta^{{\\Lambda}}-\\hat\\theta|$ = {diff:.1e}", fontsize=10)
    ax.set_xlabel("coefficient j")
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[1, 0:2])
    m = h["variable_stop/m"][()]
    band(ax, m, h["variable_stop/mean"][()], h["variable_stop/ci_low"][()], h["variable_stop/ci_high"][()], "C0",
         "variable stop: $\\|\\hat\\Lambda_m^{(t_k)} - \\bar\\Lambda\\|_F$")
    band(ax, h["fixed_iterate/m"][()], h["fixed_iterate/mean"][()], h["fixed_iterate/ci_low"][()],
         h["fixed_iterate/ci_high"][()], "C1", "fixed iterate: $\\|\\hat\\Lambda_m^{(t)} - \\Lambda^{(t)}\\|_F$")
    steps = h["variable_stop/stop_steps"][()]
    ax.set_yscale("log")
    ax.set_xlabel("endpoints m")
    ax.set_ylabel("Frobenius distance")
    ax.set_title(f"Convergence (mean, 95% CI over {steps.shape[0]} pools); stop steps $t_k$ in "
                 f"[{int(steps.min())}, {int(steps.max())}]", fontsize=10)
    ax.legend(fontsize=9)
    label(ax, "D")

    ax = fig.add_subplot(grid[1, 2:4])
    ts = h["lambda_trace/t"][()]
    ax.plot(ts, h["lambda_trace/theory"][()], "-", color="k", label="theory tr$(\\Lambda_t)/p$")
    ax.plot(ts, h["lambda_trace/closed"][()], "o", color="C0", mfc="none", markersize=11, mew=1.5,
            label="$\\hat\\lambda_t$ closed form")
    ax.plot(ts, h["lambda_trace/iterative"][()], "x", color="C3", mew=2, label="$\\hat\\lambda_t$ Adam on log $\\lambda$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gradient descent step t")
    ax.set_ylabel("$\\lambda$")
    ax.set_title("Scalar ridge estimate along one trajectory", fontsize=10)
    ax.legend(fontsize=9)
    label(ax, "E")
    fig.suptitle("Implicit regularization due to early stopping (Figure 4)")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def figure7(h, out):
    lam = h["bootstrap/lambda_theory"][()]
    t = int(h["bootstrap/steps"][()])
    sigma = float(h["bootstrap/noise_sd"][()])
    show_m = h["bootstrap/show_m"][()]
    shown = h["bootstrap/lambda_hat_show"][()]
    vmax = np.max(np.abs(lam))
    fig = plt.figure(figsize=(17, 8))
    grid = fig.add_gridspec(2, 4, height_ratios=[1, 1.1], hspace=0.35, wspace=0.35)
    ax = fig.add_subplot(grid[0, 0])
    heatmap(fig, ax, lam, f"Theory $\\Lambda^{{(t)}}$, t = {t}", vmax)
    label(ax, "A")
    for i, (m, letter) in enumerate(zip(show_m[:3], "BCD")):
        ax = fig.add_subplot(grid[0, i + 1])
        what = "minimum norm, canonical endpoint" if m == 1 else "1 canonical + %d bootstrap" % (m - 1)
        heatmap(fig, ax, shown[i], f"$\\hat\\Lambda_m^{{(t)}}$, m = {m}\n({what})", vmax)
        label(ax, letter)

    ax = fig.add_subplot(grid[1, 0:2])
    m = h["bootstrap/m"][()]
    mean = h["bootstrap/mean"][()]
    band(ax, m, mean, h["bootstrap/ci_low"][()], h["bootstrap/ci_high"][()], "C0",
         "$\\|\\hat\\Lambda_m^{(t)} - \\Lambda^{(t)}\\|_F$")
    ax.plot(show_m, mean[show_m - 1], "o", color="C3", zorder=3, label="m of panels B-D")
    ax.axhline(float(h["bootstrap/zero_baseline"][()]), ls="--", color="0.5",
               label="$\\|\\Lambda^{(t)}\\|_F$ (zero baseline)")
    ax.set_yscale("log")
    ax.set_xlabel("endpoints m")
    ax.set_ylabel("distance to theory")
    pools = h["bootstrap/distance"].shape[0]
    ax.set_title(f"Bootstrap recovery at $\\sigma$ = {sigma:g} (mean, 95% CI over {pools} pools)", fontsize=10)
    ax.legend(fontsize=9)
    label(ax, "E")

    ax = fig.add_subplot(grid[1, 2:4])
    s = h["sigma_sweep/sigma"][()]
    mean = h["sigma_sweep/mean"][()]
    err = np.vstack([mean - h["sigma_sweep/ci_low"][()], h["sigma_sweep/ci_high"][()] - mean])
    ax.errorbar(s, mean, yerr=err, fmt="o-", color="C0", capsize=3, label="distance at m = endpoints")
    ax.plot(s, h["sigma_sweep/zero_baseline"][()], "--", color="0.5", label="zero baseline")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise $\\sigma$")
    ax.set_ylabel("distance to theory")
    steps = int(h["sigma_sweep/steps"][()])
    pools = h["sigma_sweep/distance"].shape[1]
    ax.set_title(f"Noise sweep at t = {steps} (mean, 95% CI over {pools} pools)", fontsize=10)
    ax.legend(fontsize=9)
    label(ax, "F")
    fig.suptitle("Bootstrap recovery of the early-stopped GD regularizer (Figure 7)")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    run = Path(argv[1])
    with open_results(run, "ols_early_stopping", "plot_ols_early_stopping.py") as h:
        figure4(h, run / "figure4.png")
        figure7(h, run / "figure7.png")
    print(f"wrote {run / 'figure4.png'} and {run / 'figure7.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
