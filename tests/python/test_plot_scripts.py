"""scripts/plot_<study>.py: each draws its figures from what the current
gradmatch writes (the smoke run of its study), so a change of results.h5 or
summary.json that a script no longer reads fails here, not in a user's hands.
(scripts/plot_dropout.py has its own test, test_plot_dropout.py.)"""
import os
import struct
import subprocess
import sys
import unittest

from support import TempDirTest, gradmatch_executable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# study -> the figures its script writes into the run's directory
FIGURES = {
    "ols_early_stopping": ["figure4.png", "figure7.png"],
    "elastic_net": ["figure3.png", "elastic_net_diagnostics.png"],
    "igr_synthetic": ["igr_synthetic.png"],
    "long_horizon": ["long_horizon.png"],
    "igr_calibration": ["igr_calibration.png"],
}


def png_size(path):
    """(width, height) from a PNG's IHDR chunk; fails on anything else."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise AssertionError(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


class PlotScripts(TempDirTest):
    def test_each_studys_script_draws_its_figures_from_the_smoke_run(self):
        env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
        for study, figures in FIGURES.items():
            with self.subTest(study=study):
                out = self.path(study)
                subprocess.run([gradmatch_executable(), "run", os.path.join(ROOT, "configs", "smoke", study + ".toml"),
                                "--out", out], check=True, capture_output=True, env=env)
                done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", f"plot_{study}.py"), out],
                                      capture_output=True, text=True, env=env)
                self.assertEqual(done.returncode, 0, done.stderr)
                for name in figures:
                    width, height = png_size(os.path.join(out, name))
                    self.assertGreaterEqual(width, 600, name)
                    self.assertGreaterEqual(height, 300, name)

    def test_a_directory_without_results_or_of_another_study_is_refused_with_exit_code_2(self):
        os.makedirs(self.path("empty"))
        other = self.path("other")
        subprocess.run([gradmatch_executable(), "run", os.path.join(ROOT, "configs", "smoke", "long_horizon.toml"),
                        "--out", other], check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        for study in list(FIGURES) + ["dropout"]:
            with self.subTest(study=study):
                script = os.path.join(ROOT, "scripts", f"plot_{study}.py")
                done = subprocess.run([sys.executable, script, self.path("empty")], capture_output=True, text=True)
                self.assertEqual(done.returncode, 2, done.stderr)
                self.assertIn(os.path.join(self.path("empty"), "results.h5") + " not found", done.stderr)
                self.assertNotIn("Traceback", done.stderr)
                if study == "long_horizon":
                    continue
                done = subprocess.run([sys.executable, script, other], capture_output=True, text=True)
                self.assertEqual(done.returncode, 2, done.stderr)
                self.assertIn("holds the results of study 'long_horizon', not '%s': use scripts/plot_long_horizon.py"
                              % study, done.stderr)

class IgrCalibrationFigure(unittest.TestCase):
    def test_the_finite_step_panel_leaves_out_runs_whose_fit_explains_nothing(self):
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        import numpy as np
        from plot_igr_calibration import finite_step_panel
        # Two fitted runs, one that did not train (residual ratio 0.94, its
        # spectral factor 1.45e43 as measured at width 1600, eta 0.5), one
        # left out by the train-accuracy threshold.
        kept = np.array([True, True, True, False])
        ratio = np.array([0.638, 0.938, 0.002, 0.7])
        residual = np.array([0.12, 0.029, 0.94, 0.1])
        factor = np.array([0.673, 0.931, 4.74e22, 0.7])
        spectral = np.array([0.651, 0.938, 1.45e43, 0.7])
        fits, (lo, hi) = finite_step_panel(kept, ratio, residual, factor, spectral)
        self.assertEqual(fits.tolist(), [True, True, False, False])
        self.assertAlmostEqual(lo, 0.638 - 0.03)
        self.assertAlmostEqual(hi, 0.938 + 0.03)
        fits, (lo, hi) = finite_step_panel(kept & False, ratio, residual, factor)
        self.assertFalse(fits.any())
        self.assertEqual((lo, hi), (0.0, 1.05))


if __name__ == "__main__":
    unittest.main()
