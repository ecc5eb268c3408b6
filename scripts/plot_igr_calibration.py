#!/usr/bin/python3
"""Draw Figure 6 of the paper from a `gradmatch run` of the igr_calibration
study.

    python3 scripts/plot_igr_calibration.py DIR

reads DIR/results.h5 and writes DIR/igr_calibration.png: (left) R_IG, the
averaged squared gradient at the selected checkpoint, against lambda-hat;
(middle) test accuracy against lambda-hat; (right) lambda-hat against
Barrett & Dherin's eta p / 4; (fourth) the ratio lambda-hat / (eta p / 4)
against the finite-step factor the curvature predicts, for the runs whose
gradient-penalty fit explains the target (residual ratio <= 0.5, the rule
`gradmatch report` marks; a run that did not train has a factor that means
nothing, up to 1e43). Runs excluded by the train-accuracy threshold are left
out. Needs Debian's python3-h5py and python3-matplotlib only.
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: plot_common
from plot_common import directory_argument, open_results  # noqa: E402


def finite_step_panel(kept, ratio, residual, factor, spectral=None):
    """The runs the fourth panel shows and its axis range: the kept runs whose
    gradient-penalty fit explains the target (residual ratio <= 0.5, the rule
    `gradmatch report` marks), zoomed to their ratios and predicted factors
    (about [0.5, 1]); a run that did not train fits nothing and its factor
    can be anything (1e43 was seen)."""
    fits = kept & np.isfinite(ratio) & (residual <= 0.5)
    shown = [a[fits] for a in (ratio, factor) + ((spectral,) if spectral is not None else ())]
    values = np.concatenate(shown) if fits.any() else np.array([])
    values = values[np.isfinite(values)]
    return fits, ((values.min() - 0.03, values.max() + 0.03) if values.size else (0.0, 1.05))


def main(out):
    with open_results(out, "igr_calibration", "plot_igr_calibration.py") as f:
        width = f["runs/width"][()]
        eta = f["runs/eta"][()]
        status = f["runs/status"][()]
        lam = f["runs/lambda_hat"][()]
        theory = f["runs/lambda_theory"][()]
        r_ig = f["runs/r_ig"][()]
        test = f["runs/test_accuracy"][()]
        ratio = f["runs/ratio"][()]
        residual = f["runs/residual_ratio"][()]
        factor = f["runs/finite_step_factor"][()]
        # Runs made before the spectral factor existed lack it.
        key = "runs/finite_step_factor_spectral"
        spectral = f[key][()] if key in f else None
    ok = status == 0
    fits, (lo3, hi3) = finite_step_panel(ok, ratio, residual, factor, spectral)
    widths = sorted(set(width.tolist()))
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(widths)))
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
    for w, c in zip(widths, colors):
        m = ok & (width == w)
        axes[0].scatter(lam[m], r_ig[m], color=c, s=26, label="width %d" % w)
        axes[1].scatter(lam[m], test[m], color=c, s=26, label="width %d" % w)
        axes[2].scatter(theory[m], lam[m], color=c, s=26, label="width %d" % w)
        f3 = fits & (width == w)
        axes[3].scatter(factor[f3], ratio[f3], color=c, s=26, label="width %d" % w)
        if spectral is not None:
            axes[3].scatter(spectral[f3], ratio[f3], facecolors="none", edgecolors=[c], marker="s", s=34)
    if ok.any():
        lo, hi = min(theory[ok].min(), lam[ok].min()) / 1.5, max(theory[ok].max(), lam[ok].max()) * 1.5
        axes[2].plot([lo, hi], [lo, hi], "k--", lw=1, label="$\\hat\\lambda = \\eta p / 4$")
    lo, hi = lo3, hi3
    axes[3].plot([lo, hi], [lo, hi], "k--", lw=1, label="ratio = $r(\\eta s_{eff})$")
    axes[3].set_xlim(lo, hi)
    axes[3].set_ylim(lo, hi)
    if spectral is not None:
        axes[3].scatter([], [], facecolors="none", edgecolors="k", marker="s", s=34,
                        label="open: spectral factor (r over H's spectrum)")
    for ax in axes[:3]:
        ax.set_xscale("log")
    axes[0].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].set_xlabel("$\\hat\\lambda$")
    axes[0].set_ylabel("$R_{IG} = \\|\\nabla L\\|^2 / p$")
    axes[1].set_xlabel("$\\hat\\lambda$")
    axes[1].set_ylabel("test accuracy")
    axes[2].set_xlabel("$\\eta p / 4$")
    axes[2].set_ylabel("$\\hat\\lambda$")
    axes[0].set_title("Left: $R_{IG}$", loc="left")
    axes[1].set_title("Middle: test accuracy", loc="left")
    axes[2].set_title("Right: recovery (%d of %d runs kept)" % (ok.sum(), ok.size), loc="left")
    axes[2].legend(fontsize=8)
    axes[3].set_xlabel("predicted: $r(\\eta s_{eff})$, $r(x) = 2(e^{-x} - 1 + x)/x^2$ (filled);\nspectral (open)")
    axes[3].set_ylabel("$\\hat\\lambda / (\\eta p / 4)$")
    left_out = int(ok.sum() - fits.sum())
    axes[3].set_title("Finite-step factor from curvature" +
                      ("\n(%d run%s fitting nothing left out)" % (left_out, "s" if left_out > 1 else "") if left_out else ""),
                      loc="left")
    axes[3].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "igr_calibration.png", dpi=130)
    print(f"wrote {out / 'igr_calibration.png'}")


if __name__ == "__main__":
    main(directory_argument(sys.argv, __doc__))
