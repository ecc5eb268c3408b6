#!/usr/bin/python3
"""Draw the long-horizon modified-flow figure from a `gradmatch run` of the
long_horizon study.

    python3 scripts/plot_long_horizon.py DIR

reads DIR/results.h5 and writes DIR/long_horizon.png: per step size, the
distance of the GD iterates to the gradient flow of L and to the modified
flow of L + (eta/4) ||grad L||^2 (left), and their ratio (right). Needs
Debian's python3-h5py and python3-matplotlib only.
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
    with open_results(out, "long_horizon", "plot_long_horizon.py") as f:
        step = f["step"][()]
        etas = f["eta"][()]
        flow = f["dist_flow"][()]
        modified = f["dist_modified"][()]
    colors = plt.cm.plasma(np.linspace(0.0, 0.7, len(etas)))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (e, c) in enumerate(zip(etas, colors)):
        axes[0].plot(step[1:], flow[i, 1:], "-", color=c, label="$\\|\\theta_{GD} - \\theta_{flow}\\|$, $\\eta$ = %g" % e)
        axes[0].plot(step[1:], modified[i, 1:], "--", color=c,
                     label="$\\|\\theta_{GD} - \\theta_{modified}\\|$, $\\eta$ = %g" % e)
        axes[1].plot(step[1:], modified[i, 1:] / flow[i, 1:], "-", color=c,
                     label="$\\eta$ = %g (final %.3f)" % (e, modified[i, -1] / flow[i, -1]))
        axes[1].axhline(4 * e / 3, color=c, ls=":", lw=1)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("GD step t")
    axes[0].set_ylabel("distance at time t$\\eta$")
    axes[0].set_title("A  GD against the two flows", loc="left")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("GD step t")
    axes[1].set_ylabel("modified / original distance")
    axes[1].set_title("B  ratio (dotted: 4$\\eta$/3, the S = I prediction)", loc="left")
    axes[1].set_ylim(bottom=0)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "long_horizon.png", dpi=130)
    print(f"wrote {out / 'long_horizon.png'}")


if __name__ == "__main__":
    main(directory_argument(sys.argv, __doc__))
