#!/usr/bin/python3
"""Draw the synthetic IGR recovery figure from a `gradmatch run` of the
igr_synthetic study.

    python3 scripts/plot_igr_synthetic.py DIR

reads DIR/results.h5 and writes DIR/igr_synthetic.png: (A) lambda-hat
against Barrett & Dherin's eta p / 4 (Figure 6, right, on linear
regression), (B) lambda-hat / (eta p / 4) against eta per p with the
first-order prediction for S = I, (C) the per-checkpoint estimate
lambda-hat(t) / (eta p / 4) along the GD trajectory. Needs Debian's
python3-h5py and python3-matplotlib only.
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: plot_common
from plot_common import directory_argument, open_results  # noqa: E402


def main(out):
    with open_results(out, "igr_synthetic", "plot_igr_synthetic.py") as f:
        p = f["runs/p"][()]
        eta = f["runs/eta"][()]
        lam = f["runs/lambda_hat"][()]
        theory = f["runs/lambda_theory"][()]
        ratio = f["runs/ratio"][()]
        steps = f["checkpoints/step"][()]
        ratio_t = f["runs/ratio_checkpoints"][()]
        integrator = f["reference/integrator"][()]
        substeps = int(f["reference/substeps"][()])
    integrator = integrator.decode() if isinstance(integrator, bytes) else str(integrator)
    dims = sorted(set(p.tolist()))
    etas = sorted(set(eta.tolist()))
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(dims)))

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    for d, c in zip(dims, colors):
        m = p == d
        ax.scatter(theory[m], lam[m], color=c, s=24, label="p = %d" % d, zorder=3)
    lo, hi = theory.min() / 1.5, theory.max() * 1.5
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="$\\hat\\lambda = \\eta p/4$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("$\\eta p / 4$ (Barrett & Dherin)")
    ax.set_ylabel("$\\hat\\lambda$ (Eq. 6, pooled over the trajectory)")
    ax.set_title("A  recovery on linear regression", loc="left")
    ax.legend(fontsize=8)

    ax = axes[1]
    grid = np.geomspace(min(etas) / 1.3, max(etas) * 1.3, 100)
    x = 2 * grid
    ax.plot(grid, 2 * (np.exp(-x) - 1 + x) / x**2, "k:", lw=1, label="exact for $S = I$")
    for d, c in zip(dims, colors):
        m = p == d
        means = [ratio[m & (eta == e)].mean() for e in etas]
        ax.plot(etas, means, "-o", color=c, ms=4, label="p = %d (mean over seeds)" % d)
        ax.scatter(eta[m], ratio[m], color=c, s=8, alpha=0.5)
    ax.axhspan(0.97, 1.01, color="0.9", zorder=0, label="target band [0.97, 1.01]")
    ax.set_xscale("log")
    ax.set_xlabel("step size $\\eta$")
    ax.set_ylabel("$\\hat\\lambda / (\\eta p / 4)$")
    ax.set_title("B  ratio to theory (%s, k = %d)" % (integrator, substeps), loc="left")
    ax.legend(fontsize=8)

    ax = axes[2]
    ecolors = plt.cm.plasma(np.linspace(0.0, 0.8, len(etas)))
    for e, c in zip(etas, ecolors):
        m = eta == e
        ax.plot(steps + 1, ratio_t[m].mean(axis=0), "-o", color=c, ms=3, label="$\\eta$ = %g" % e)
    ax.set_xscale("log")
    ax.set_xlabel("GD step t + 1")
    ax.set_ylabel("$\\hat\\lambda(t) / (\\eta p / 4)$ (one row)")
    ax.set_title("C  time-varying estimate (mean over p, seeds)", loc="left")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "igr_synthetic.png", dpi=130)
    print(f"wrote {out / 'igr_synthetic.png'}")


if __name__ == "__main__":
    main(directory_argument(sys.argv, __doc__))
