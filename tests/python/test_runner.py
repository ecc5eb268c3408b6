"""fit() and read_results(): the gradmatch executable from Python; and the
Python helper scripts of the study tests."""
import contextlib
import io
import json
import os
import re
import subprocess
import sys
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
        self.assertRaisesRegex(TypeError, "output= is set by fit", gradmatch.fit, path, "ridge",
                               executable=gradmatch_executable(), output=self.path("fit.json"))
        with self.assertRaisesRegex(gradmatch.GradmatchError, "exited 0 but wrote no result; is it gradmatch"):
            gradmatch.fit(path, "ridge", executable="/bin/true")

    def test_a_file_name_starting_with_a_dash_is_read_as_a_file(self):
        os.rename(self.write_ridge_rows(0.1), self.path("-rows.h5"))
        cwd = os.getcwd()
        os.chdir(self.dir)
        try:
            result = gradmatch.fit("-rows.h5", "ridge", executable=gradmatch_executable())
        finally:
            os.chdir(cwd)
        self.assertAlmostEqual(result["lambda"], 0.1, delta=1e-12)

    def test_on_off_flags_take_true_or_false_and_refuse_other_values(self):
        path = self.write_ridge_rows(0.1)
        for key in ("nonneg", "normalize", "ignore_resource_check", "quiet"):
            for value in (0, 1, "no", 1.0):
                with self.subTest(key=key, value=value):
                    with self.assertRaisesRegex(TypeError, f"{key}={value!r}.*on/off flag --{key.replace('_', '-')}"
                                                           f": pass {key}=True or {key}=False"):
                        gradmatch.fit(path, "ridge", executable=self.path("never-run"), **{key: value})
        exe = gradmatch_executable()
        for value in (True, np.True_):
            self.assertEqual(gradmatch.fit(path, "ridge", executable=exe, nonneg=value, normalize=value)["nonneg"], True)
        for value in (False, np.False_, None):
            self.assertEqual(gradmatch.fit(path, "ridge", executable=exe, nonneg=value)["nonneg"], False)


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

    def test_a_truncated_results_file_raises_naming_it_and_deleting_it_and_re_running_rewrites_it(self):
        out = self.path("study")
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        command = [gradmatch_executable(), "run", os.path.join(ROOT, "configs/smoke/ols_early_stopping.toml"), "--out", out]
        subprocess.run(command, check=True, env=env, capture_output=True)
        results = os.path.join(out, "results.h5")
        with open(results, "rb") as f:
            whole = f.read()
        with open(results, "wb") as f:
            f.write(whole[:len(whole) // 2])
        with self.assertRaises(ValueError) as e:
            gradmatch.read_results(out)
        message = str(e.exception)
        self.assertTrue(message.startswith(results + ": cannot be read"), message)
        self.assertIn("truncated or corrupt", message)
        self.assertIn(f"delete it and re-run `gradmatch run {command[2]} --out {out}`", message)
        self.assertIn("from the run store store.h5 without recomputing any task", message)
        # The advice works: the re-run writes the same file again.
        os.remove(results)
        subprocess.run(command, check=True, env=env, capture_output=True)
        self.assertEqual(gradmatch.read_results(out)["canonical/beta"].shape, (5,))
        with open(results, "rb") as f:
            self.assertEqual(f.read(), whole)

    def test_the_re_run_advice_for_a_run_started_elsewhere_with_a_relative_config_says_where_to_run_it(self):
        out = self.path("elsewhere")
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        subprocess.run([gradmatch_executable(), "run", "configs/smoke/ols_early_stopping.toml", "--out", out],
                       check=True, env=env, capture_output=True, cwd=ROOT)
        self.assertNotEqual(os.getcwd(), ROOT)
        results = os.path.join(out, "results.h5")
        with open(results, "wb") as f:
            f.write(b"not HDF5")
        with self.assertRaises(ValueError) as e:
            gradmatch.read_results(out)
        advice = f"`cd {ROOT} && gradmatch run configs/smoke/ols_early_stopping.toml --out {out}`"
        self.assertIn("delete it and re-run " + advice, str(e.exception))
        # Typed as given (with the built executable for `gradmatch`), it writes the file again.
        os.remove(results)
        subprocess.run(advice.strip("`").replace("gradmatch run", gradmatch_executable() + " run"), shell=True,
                       check=True, env=env, capture_output=True)
        self.assertEqual(gradmatch.read_results(out)["canonical/beta"].shape, (5,))

    def test_a_half_written_summary_raises_naming_it_and_saying_to_delete_it_and_re_run(self):
        with open(self.path("summary.json"), "w") as f:
            f.write('{"study": "ols_early')
        with self.assertRaisesRegex(ValueError, re.escape(self.path("summary.json")) + ": not valid JSON .*"
                                    "delete it and re-run `gradmatch run CONFIG --out " + re.escape(self.dir) + "`"):
            gradmatch.read_results(self.dir)

    def test_a_directory_without_outputs_is_an_error(self):
        self.assertRaisesRegex(FileNotFoundError, "none of summary.json", gradmatch.read_results, self.dir)
        self.assertRaisesRegex(FileNotFoundError, "no such study output", gradmatch.read_results,
                               self.path("missing"))


class StudyInputScripts(TempDirTest):
    def test_make_bootstrap_inputs_creates_a_missing_output_directory(self):
        out = self.path("runs/bs")  # as the README runs it in a fresh checkout
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/studies/make_bootstrap_inputs.py"), out],
                       check=True, capture_output=True)
        self.assertEqual(sorted(os.listdir(out)), sorted(["linear.pt", "linear.h5", "sym.h5", "mlp.pt", "ridge.h5",
                                                          "zero.pt"] + [f"fresh{k}.h5" for k in range(6)]))


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
