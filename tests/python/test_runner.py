"""fit() and read_results(): the gradmatch executable from Python."""
import contextlib
import io
import json
import os
import re
import subprocess
import unittest
import warnings

import numpy as np

import gradmatch
from support import TempDirTest, gradmatch_executable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Fit(TempDirTest):
    def write_ridge_rows(self, lam, noise=0.0):
        """Two rows of grad L = -2 lambda theta (+ noise): the ridge answer is lambda."""
        rng = np.random.default_rng(0)
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            for _ in range(2):
                theta = rng.standard_normal(6)
                w.add_row(theta, -2 * lam * theta + noise * rng.standard_normal(6),
                          names=["w", "b"], shapes=[(2, 2), (2,)])
        return self.path("eq.h5")

    def test_fit_returns_the_json_result_with_options_passed_as_flags(self):
        path = self.write_ridge_rows(0.3)
        result = gradmatch.fit(path, "ridge", executable=gradmatch_executable(), method="normal", normalize=False)
        self.assertAlmostEqual(result["lambda"], 0.3, delta=1e-12)
        self.assertEqual((result["family"], result["method"], result["m"], result["p"]), ("ridge", "normal", 2, 6))
        self.assertIn("warnings", result)

    def test_row_weights_reach_the_fit(self):
        theta = np.array([1.0, -2.0, 0.5])
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            w.add_row(theta, -2 * 0.1 * theta, weight=3.0)
            w.add_row(theta, -2 * 0.5 * theta, weight=1.0)
        # Weighted least squares over two rows with the same theta: the weighted mean.
        result = gradmatch.fit(self.path("eq.h5"), "ridge", executable=gradmatch_executable())
        self.assertAlmostEqual(result["lambda"], (3 * 0.1 + 1 * 0.5) / 4, delta=1e-12)
        np.testing.assert_array_equal(gradmatch.read_equations(self.path("eq.h5"))["weights"], [3.0, 1.0])

    def test_the_executable_comes_from_the_environment_when_not_given(self):
        path = self.write_ridge_rows(0.1)
        old = os.environ.get("GRADMATCH_EXECUTABLE")
        os.environ["GRADMATCH_EXECUTABLE"] = gradmatch_executable()
        try:
            self.assertAlmostEqual(gradmatch.fit(path, "ridge")["lambda"], 0.1, delta=1e-12)
            os.environ["GRADMATCH_EXECUTABLE"] = self.path("no-such-gradmatch")
            self.assertRaisesRegex(FileNotFoundError, "not an executable file", gradmatch.fit, path, "ridge")
        finally:
            if old is None:
                del os.environ["GRADMATCH_EXECUTABLE"]
            else:
                os.environ["GRADMATCH_EXECUTABLE"] = old

    def test_the_fit_warnings_are_issued_as_python_warnings(self):
        # Pure noise: the family explains (almost) nothing of the target.
        path = self.write_ridge_rows(0.0, noise=1.0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = gradmatch.fit(path, "ridge", executable=gradmatch_executable())
        issued = [str(w.message) for w in caught if issubclass(w.category, gradmatch.GradmatchWarning)]
        self.assertEqual(issued, result["warnings"])
        self.assertEqual(sum("explains little" in w for w in issued), 1, issued)
        # The residual ratio is the one-column least squares of b = -grad L on a = 2 theta.
        eq = gradmatch.read_equations(path)
        a, b = 2 * eq["theta"].ravel(), -eq["grad_loss"].ravel()
        lam = a @ b / (a @ a)
        self.assertAlmostEqual(result["lambda"], lam, delta=1e-12)
        self.assertAlmostEqual(result["residual_ratio"], np.linalg.norm(b - lam * a) / np.linalg.norm(b), delta=1e-12)
        self.assertGreater(result["residual_ratio"], 0.9)

    def test_bad_input_raises_gradmatch_error_with_exit_status_two(self):
        path = self.write_ridge_rows(0.1)
        with self.assertRaises(gradmatch.GradmatchError) as e:
            gradmatch.fit(path, "lasso", executable=gradmatch_executable())
        self.assertEqual(e.exception.returncode, 2)
        self.assertIn("lasso", str(e.exception))
        with open(self.path("bad.h5"), "w") as f:
            f.write("not hdf5")
        with self.assertRaises(gradmatch.GradmatchError) as e:
            gradmatch.fit(self.path("bad.h5"), "ridge", executable=gradmatch_executable())
        self.assertEqual(e.exception.returncode, 2)
        self.assertIn("bad.h5", str(e.exception))
        self.assertRaisesRegex(FileNotFoundError, "no such equation file", gradmatch.fit, self.path("none.h5"),
                               "ridge", executable=gradmatch_executable())
        self.assertRaisesRegex(ValueError, "family", gradmatch.fit, path, "", executable=gradmatch_executable())


class ReadResults(TempDirTest):
    def test_a_smoke_study_reads_back_as_json_and_arrays(self):
        out = self.path("study")
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        subprocess.run([gradmatch_executable(), "run", os.path.join(ROOT, "configs/smoke/ols_early_stopping.toml"),
                        "--out", out], check=True, env=env, capture_output=True)
        res = gradmatch.read_results(out)
        with open(os.path.join(out, "summary.json")) as f:
            self.assertEqual(res.summary, json.load(f))
        self.assertEqual(res.summary["study"], "ols_early_stopping")
        self.assertEqual(res.run_info["study"], "ols_early_stopping")
        self.assertEqual(res["canonical/beta"].shape, (5,))
        self.assertIn("canonical/lambda_theory", res)
        self.assertEqual(res.summary["diag_retrain_max_abs_diff"], float(res["canonical/diag_retrain_max_abs_diff"]))
        self.assertIn(os.path.join(out, "equations_canonical.h5"), res.equation_files)
        eq = gradmatch.read_equations(os.path.join(out, "equations_canonical.h5"))
        self.assertEqual(eq["theta"].shape[1], 5)

    def test_a_directory_without_outputs_is_an_error(self):
        self.assertRaisesRegex(FileNotFoundError, "none of summary.json", gradmatch.read_results, self.dir)
        self.assertRaisesRegex(FileNotFoundError, "no such study output", gradmatch.read_results,
                               self.path("missing"))


class DocsExamples(TempDirTest):
    """The python blocks of docs/python.md run as written (in a fresh directory)."""

    def run_block(self, index):
        with open(os.path.join(ROOT, "docs/python.md")) as f:
            blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
        out = io.StringIO()
        cwd = os.getcwd()
        os.chdir(self.dir)
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(blocks[index], f"docs/python.md block {index}", "exec"), {})
        finally:
            os.chdir(cwd)
        return out.getvalue().split()

    def test_the_endpoint_example_prints_the_ridge_lambda(self):
        gradmatch_executable()
        printed = self.run_block(0)
        self.assertAlmostEqual(float(printed[0]) / 0.01, 1.0, delta=1e-6)
        self.assertEqual(printed[-1], "[]")  # no warnings

    def test_the_trajectory_example_prints_a_ratio_near_one(self):
        gradmatch_executable()
        ratio = float(self.run_block(1)[0])
        self.assertGreaterEqual(ratio, 0.97)
        self.assertLessEqual(ratio, 1.01)


if __name__ == "__main__":
    unittest.main()
