"""scripts/plot_dropout.py: parts of one dropout grid, run separately,
merge into the grid that one run of the whole would have written."""
import importlib.util
import os
import re
import subprocess
import unittest
from pathlib import Path

import numpy as np

from support import TempDirTest, gradmatch_executable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_plot_dropout():
    spec = importlib.util.spec_from_file_location("plot_dropout", os.path.join(ROOT, "scripts", "plot_dropout.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class MergeRuns(TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls.plot = load_plot_dropout()

    def run_widths(self, widths):
        """The smoke dropout study on `widths`; returns its output directory."""
        with open(os.path.join(ROOT, "configs", "smoke", "dropout.toml")) as f:
            text = f.read()
        text, n = re.subn(r"(?m)^widths = \[.*\]", f"widths = [{', '.join(map(str, widths))}]", text)
        self.assertEqual(n, 1)
        name = "w" + "_".join(map(str, widths))
        with open(self.path(name + ".toml"), "w") as f:
            f.write(text)
        subprocess.run([gradmatch_executable(), "run", self.path(name + ".toml"), "--out", self.path(name)],
                       check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        return self.path(name)

    def test_two_parts_of_a_grid_merge_into_the_whole_grids_run(self):
        narrow, wide, whole = self.run_widths([16]), self.run_widths([32]), self.run_widths([16, 32])
        merged = self.plot.merge_runs([self.plot.load_run(wide), self.plot.load_run(narrow)], [wide, narrow])
        reference = self.plot.load_run(whole)
        np.testing.assert_array_equal(merged["grid/widths"], [16, 32])
        keys = [k for k in reference if k.startswith(("cells/", "endpoints/"))]
        self.assertIn("cells/lambda_hat_median", keys)
        self.assertIn("endpoints/lambda_penalty", keys)
        for key in keys:
            # Draws are keyed by (depth, width, rate, seed), not by grid position: equal to the last bit.
            np.testing.assert_array_equal(merged[key], reference[key].astype(float), err_msg=key)
        # So are the trend tests within seeds (their draws are keyed by (depth, width)).
        self.assertEqual(sorted(merged["trends"]), [(2, 16), (2, 32)])
        self.assertEqual(merged["trends"], reference["trends"])
        self.assertIn("p_increasing", merged["trends"][2, 32]["seed_trend"])
        # The smoke config: a constant rate, 2 seeds; the merged grid keeps it.
        self.assertEqual(reference["schedule"], "SGD at a constant learning rate; 2 seeds; float32 training")
        self.assertEqual(merged["schedule"], reference["schedule"])

        # The figures from the merged runs, and from a grid with a cell nobody ran.
        out = self.path("figures")
        self.plot.main([narrow, wide, "--out", out])
        for name in ("figure5.png", "dropout_diagnostics.png"):
            with open(os.path.join(out, name), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        deeper = self.plot.load_run(narrow)
        deeper["grid/depths"] = np.array([3])
        gap = self.plot.merge_runs([self.plot.load_run(wide), deeper], [wide, "deeper"])
        self.assertTrue(np.isnan(gap["cells/lambda_hat_median"][0, 0]).all())   # depth 2, width 16: not run
        self.assertTrue(np.isnan(gap["cells/lambda_hat_median"][1, 1]).all())   # depth 3, width 32: not run
        self.plot.figure5(gap, Path(self.dir))

        # A cell in two runs, or runs that differ in more than depths and widths, are refused.
        with self.assertRaisesRegex(ValueError, "depth 2, width 16 is in both"):
            self.plot.merge_runs([self.plot.load_run(narrow), self.plot.load_run(whole)], [narrow, whole])
        other = self.plot.load_run(wide)
        other["config"] = other["config"].replace("max_epochs = 30", "max_epochs = 31")
        with self.assertRaisesRegex(ValueError, "max_epochs = 31"):
            self.plot.merge_runs([self.plot.load_run(narrow), other], [narrow, "other"])
        # ... but where and in how many tasks the classifiers trained may differ.
        chunked = self.plot.load_run(wide)
        chunked["config"] = re.sub(r"(?m)^replicates_per_task = .*$", "replicates_per_task = 1",
                                   chunked["config"]).replace('device = "auto"', 'device = "cpu"')
        self.assertNotEqual(chunked["config"], self.plot.load_run(wide)["config"])
        merged = self.plot.merge_runs([self.plot.load_run(narrow), chunked], [narrow, "chunked"])
        np.testing.assert_array_equal(merged["grid/widths"], [16, 32])


class ScheduleText(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.plot = load_plot_dropout()

    def test_the_title_names_the_step_schedule_matched_stationarity_and_the_seeds(self):
        text = self.plot.schedule_text
        self.assertEqual(text({"milestones": [], "gamma": 0.1, "matched_stationarity": None, "seeds": 10,
                               "training_precision": "float32"}),
                         "SGD at a constant learning rate; 10 seeds; float32 training")
        self.assertEqual(text({"milestones": [60, 100, 200], "gamma": 0.1, "seeds": 2}),
                         "SGD, learning rate × 0.1 after epochs 60, 100, 200; 2 seeds")
        self.assertEqual(text({"milestones": [], "matched_stationarity": 0.0003}),
                         "SGD at a constant learning rate, then on to ‖g_p‖/‖θ‖ ≤ 0.0003 "
                         "(matched stationarity)")


if __name__ == "__main__":
    unittest.main()
