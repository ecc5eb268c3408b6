"""EquationWriter: known answers through the C++ `gradmatch fit`, the
endpoint conventions against the C++ endpoint extraction, parameter names
and shapes, and bad arguments."""
import os
import subprocess
import unittest

import h5py
import numpy as np
import torch

import gradmatch
from support import Mlp, TempDirTest, gradmatch_executable, regression_data, save_data


def train_with_weight_decay(model, x, y, lam, steps=2000):
    """Full-batch SGD with momentum and weight_decay = 2 lambda on the MSE:
    the stationary point of MSE + lambda * sum(theta^2)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=2 * lam)
    loss_fn = torch.nn.MSELoss()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()


class EndpointKnownAnswers(TempDirTest):
    def test_mlp_trained_with_weight_decay_two_lambda_gives_lambda_through_gradmatch_fit(self):
        torch.manual_seed(0)
        x, y = regression_data(64, 3, 2, seed=1)
        lam = 0.01
        model = Mlp(3, 8, 2).double()
        train_with_weight_decay(model, x, y, lam)
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            row = w.add_endpoint(model, torch.nn.MSELoss(), x, y)
        # Stationary for MSE + lambda ||theta||^2: grad L = -2 lambda theta.
        residual = np.linalg.norm(row["grad_loss"] + 2 * lam * row["theta"]) / np.linalg.norm(row["grad_loss"])
        self.assertLess(residual, 1e-9)
        result = gradmatch.fit(self.path("eq.h5"), "ridge", executable=gradmatch_executable())
        self.assertAlmostEqual(result["lambda"] / lam, 1.0, delta=1e-6)
        self.assertEqual(result["p"], sum(p.numel() for p in model.parameters()))
        self.assertEqual(result["warnings"], [])

    def test_two_replicates_pool_into_one_file_and_features_family_returns_each_coefficient(self):
        x, y = regression_data(48, 3, 1, seed=2)
        lam = 0.02
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            for seed in (3, 4):
                torch.manual_seed(seed)
                model = Mlp(3, 5, 1).double()
                train_with_weight_decay(model, x, y, lam, steps=1500)
                w.add_endpoint(model, "mse", x, y, features=["elastic-net:beta=0.1"])
            self.assertEqual(w.rows, 2)
        eq = gradmatch.read_equations(self.path("eq.h5"))
        self.assertEqual(eq["theta"].shape, (2, 26))
        self.assertEqual(list(eq["features"]), ["huber", "ridge"])
        result = gradmatch.fit(self.path("eq.h5"), "features", executable=gradmatch_executable())
        coefficients = dict(zip(result["names"], np.atleast_1d(result["lambda"])))
        self.assertAlmostEqual(coefficients["ridge"] / lam, 1.0, delta=1e-6)
        self.assertAlmostEqual(coefficients["huber"] / lam, 0.0, delta=1e-6)


class EndpointConventions(TempDirTest):
    """The same model and data through gradmatch's C++ endpoint extraction
    (`gradmatch fit --model --save-equations`) and through the writer."""

    def test_theta_gradient_and_candidate_columns_match_the_cpp_endpoint(self):
        torch.manual_seed(5)
        x, y = regression_data(40, 4, 3, seed=6)
        model = Mlp(4, 6, 3).double()
        save_data(self.path("data.h5"), x, y)
        torch.jit.script(model).save(self.path("model.pt"))
        candidates = ["ridge", "huber:beta=0.2", "layerwise-ridge", "nuclear"]
        subprocess.run([gradmatch_executable(), "fit", "--model", self.path("model.pt"), "--data",
                        self.path("data.h5"), "--loss", "mse", "--family", "features", "--candidates",
                        ",".join(candidates), "--save-equations", self.path("cpp.h5"), "--output",
                        self.path("fit.json"), "--quiet"], check=True)
        with gradmatch.EquationWriter(self.path("py.h5")) as w:
            w.add_endpoint(model, torch.nn.MSELoss(), x, y, batch_size=7, features=candidates)
        cpp, py = gradmatch.read_equations(self.path("cpp.h5")), gradmatch.read_equations(self.path("py.h5"))
        np.testing.assert_allclose(py["theta"], cpp["theta"], rtol=0, atol=1e-15)
        scale = np.abs(cpp["grad_loss"]).max()
        np.testing.assert_allclose(py["grad_loss"], cpp["grad_loss"], rtol=0, atol=1e-13 * scale)
        self.assertEqual(sorted(py["features"]), sorted(cpp["features"]))
        for name, column in cpp["features"].items():
            np.testing.assert_allclose(py["features"][name], column, rtol=0, atol=1e-12, err_msg=name)

    def test_activation_quadratic_weights_each_linear_weight_by_its_mean_squared_input(self):
        torch.manual_seed(15)
        x, y = regression_data(30, 3, 2, seed=16)
        model = Mlp(3, 5, 2, dropout=0.5).double()
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            w.add_endpoint(model, "mse", x, y, features=["activation-quadratic"], batch_size=8)
        column = gradmatch.read_equations(self.path("eq.h5"))["features"]["activation_quadratic"][0]
        with torch.no_grad():  # eval mode: the hidden layer's output without dropout
            a = torch.tanh(model.hidden(x))
            expected = torch.cat([(2 * model.hidden.weight * x.square().mean(0)).reshape(-1), torch.zeros(5),
                                  (2 * model.out.weight * a.square().mean(0)).reshape(-1), torch.zeros(2)])
        np.testing.assert_allclose(column, expected.numpy(), rtol=1e-13, atol=1e-15)

    def test_float32_model_is_evaluated_in_float64_and_left_unchanged(self):
        torch.manual_seed(7)
        x, y = regression_data(30, 3, 2, seed=8)
        model = Mlp(3, 4, 2, dropout=0.5).float().train()
        before = [p.detach().clone() for p in model.parameters()]
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            row = w.add_endpoint(model, torch.nn.MSELoss(), x.float(), y.float())
        self.assertTrue(model.training)
        for p, b in zip(model.parameters(), before):
            self.assertEqual(p.dtype, torch.float32)
            self.assertTrue(torch.equal(p.detach(), b))
        # Reference: the float64 copy in eval mode (no dropout), by hand.
        ref = Mlp(3, 4, 2).double()
        ref.load_state_dict(model.state_dict())
        loss = torch.nn.functional.mse_loss(ref(x.float().double()), y.float().double())
        grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(ref.parameters()))])
        np.testing.assert_allclose(row["grad_loss"], grad.numpy(), rtol=0, atol=1e-15)
        self.assertEqual(row["grad_loss"].dtype, np.float64)

    def test_cross_entropy_by_name_equals_torch_cross_entropy_loss(self):
        torch.manual_seed(9)
        x = torch.randn(25, 3, dtype=torch.float64)
        labels = torch.randint(0, 4, (25,))
        model = torch.nn.Linear(3, 4).double()
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            a = w.add_endpoint(model, "ce", x, labels)
            b = w.add_endpoint(model, torch.nn.CrossEntropyLoss(), x, labels, batch_size=4)
        np.testing.assert_allclose(a["grad_loss"], b["grad_loss"], rtol=0, atol=1e-15)
        self.assertAlmostEqual(a["loss"], float(torch.nn.functional.cross_entropy(model(x), labels)), delta=1e-14)

    def test_cross_entropy_refuses_class_indices_that_are_not_integers_below_the_class_count(self):
        x = torch.randn(6, 3, dtype=torch.float64)
        model = torch.nn.Linear(3, 4).double()
        good = torch.tensor([0.0, 1.0, 2.0, 3.0, 1.0, 0.0])
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            a = w.add_endpoint(model, "ce", x, good)
            b = w.add_endpoint(model, "ce", x, good.long())
        np.testing.assert_array_equal(a["grad_loss"], b["grad_loss"])
        for labels, shown in ((good + 0.5, "0.5"), (good - 1, "-1"), (good + 1, "4")):
            with self.subTest(labels=labels.tolist()):
                with self.assertRaisesRegex(ValueError, rf"targets\[\d\] = {shown}: class indices must be "
                                                        r"integers in \[0, 4\)"):
                    with gradmatch.EquationWriter(self.path("bad.h5")) as w:
                        w.add_endpoint(model, "ce", x, labels)
                self.assertFalse(os.path.exists(self.path("bad.h5")))

    def test_a_callable_loss_reads_targets_n_for_outputs_n_by_1_as_the_built_in_mse_does(self):
        # torch.nn.MSELoss alone would broadcast [n, 1] against [n] to [n, n].
        torch.manual_seed(21)
        x, y = regression_data(20, 3, 1, seed=22)
        model = Mlp(3, 4, 1).double()
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            a = w.add_endpoint(model, "mse", x, y.reshape(-1))
            b = w.add_endpoint(model, torch.nn.MSELoss(), x, y.reshape(-1), batch_size=7)
            c = w.add_endpoint(model, torch.nn.MSELoss(), x, y)
        np.testing.assert_allclose(b["grad_loss"], a["grad_loss"], rtol=0, atol=1e-15)
        np.testing.assert_allclose(c["grad_loss"], a["grad_loss"], rtol=0, atol=1e-15)

    def test_selected_parameters_are_theta_in_registration_order(self):
        torch.manual_seed(10)
        x, y = regression_data(20, 3, 1, seed=11)
        model = Mlp(3, 4, 1).double()
        model.hidden.bias.requires_grad_(False)
        with gradmatch.EquationWriter(self.path("default.h5")) as w:
            default = w.add_endpoint(model, "mse", x, y)
            self.assertRaisesRegex(ValueError, "differ from the first", w.add_endpoint, model, "mse", x, y,
                                   params=[model.out.weight])
        with gradmatch.EquationWriter(self.path("chosen.h5")) as w:
            chosen = w.add_endpoint(model, "mse", x, y,
                                    params=["out.weight", "hidden.weight", "hidden.bias", "out.bias"])
        self.assertFalse(model.hidden.bias.requires_grad)
        self.assertEqual(gradmatch.read_equations(self.path("default.h5"))["names"],
                         ["hidden.weight", "out.weight", "out.bias"])
        self.assertEqual(gradmatch.read_equations(self.path("chosen.h5"))["names"],
                         ["hidden.weight", "hidden.bias", "out.weight", "out.bias"])
        # The frozen bias's gradient sits between hidden.weight's and out's.
        np.testing.assert_array_equal(np.delete(chosen["grad_loss"], range(12, 16)), default["grad_loss"])
        self.assertGreater(np.abs(chosen["grad_loss"][12:16]).max(), 0.0)


class ParameterNamesAndShapes(TempDirTest):
    def test_names_and_shapes_round_trip_and_gradmatch_reads_the_file(self):
        class Odd(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = torch.nn.Parameter(torch.tensor(1.5, dtype=torch.float64))
                self.conv = torch.nn.Conv1d(2, 3, 2).double()
                self.head = torch.nn.Linear(3, 1).double()

            def forward(self, x):
                return self.head(torch.tanh(self.scale * self.conv(x)).mean(2))

        torch.manual_seed(12)
        model = Odd()
        x, y = torch.randn(10, 2, 5, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64)
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            w.add_endpoint(model, "mse", x, y, features=["ridge"])
        eq = gradmatch.read_equations(self.path("eq.h5"))
        self.assertEqual(eq["names"], [n for n, _ in model.named_parameters()])
        self.assertEqual(eq["shapes"], [tuple(p.shape) for p in model.parameters()])
        self.assertEqual(eq["shapes"][0], ())
        with h5py.File(self.path("eq.h5"), "r") as f:
            self.assertEqual(list(f["parameters/offsets"][()]), [0, 0, 3, 4, 6, 7])
            self.assertEqual(f["parameters/shapes"].dtype, np.int64)
        result = gradmatch.fit(self.path("eq.h5"), "features", executable=gradmatch_executable())
        self.assertEqual(result["p"], 1 + 12 + 3 + 3 + 1)
        report = subprocess.run([gradmatch_executable(), "report", self.path("eq.h5")], check=True,
                                capture_output=True, text=True).stdout
        self.assertIn("points m = 1, parameters p = 20", report)
        self.assertIn("features: ridge", report)


class WriterErrors(TempDirTest):
    def setUp(self):
        super().setUp()
        torch.manual_seed(13)
        self.x, self.y = regression_data(10, 3, 1, seed=14)
        self.model = Mlp(3, 2, 1).double()

    def add(self, **kw):
        args = dict(model=self.model, loss_fn="mse", inputs=self.x, targets=self.y)
        args.update(kw)
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            w.add_endpoint(**args)

    def test_bad_arguments_raise_naming_what_to_change_and_write_nothing(self):
        cases = [
            (dict(loss_fn="hinge"), ValueError, "unknown loss 'hinge'"),
            (dict(loss_fn=torch.nn.MSELoss(reduction="sum")), ValueError, "reduction='sum'"),
            (dict(params=["nope"]), ValueError, "no parameter named 'nope'"),
            (dict(params=[torch.zeros(2)]), ValueError, "not a parameter of the model"),
            (dict(features=["ridge", "lasso"]), ValueError, "unknown regularizer 'lasso'"),
            (dict(features=["huber:beta=-1"]), ValueError, "beta must be a positive number"),
            (dict(features=["elastic-net:beta=1", "ridge"]), ValueError, "repeats"),
            (dict(features={"mine": np.zeros(3)}), ValueError, "p = 11"),
            # p = 11 entries, but as a [11, 1] array: refused, never flattened.
            (dict(features={"mine": np.zeros((11, 1))}), ValueError, r"feature 'mine' has shape \[11, 1\]; give one column"),
            (dict(targets=self.y[:5]), ValueError, "targets have 5 rows"),
            (dict(batch_size=0), ValueError, "batch_size"),
            (dict(batch_size=2.5), ValueError, "batch_size"),
            (dict(model="not a model"), TypeError, "torch.nn.Module"),
            # [n] targets against [n, 1] outputs are read as [n, 1], as "mse" reads them;
            # [n, 1] targets against [n] outputs would pair every output with every target.
            (dict(model=torch.nn.Sequential(self.model, torch.nn.Flatten(0)), loss_fn=torch.nn.MSELoss(),
                  targets=self.y.reshape(-1, 1)), ValueError, r"broadcasts .* to \(10, 10\)"),
            (dict(loss_fn=torch.nn.CrossEntropyLoss(weight=torch.ones(1, dtype=torch.float64))),
             ValueError, r"CrossEntropyLoss\(weight=...\) averages with the class weights"),
            (dict(loss_fn=torch.nn.CrossEntropyLoss(ignore_index=0), targets=torch.zeros(10, dtype=torch.long)),
             ValueError, "targets hold ignore_index = 0"),
        ]
        for kw, error, message in cases:
            with self.subTest(kw=list(kw)):
                self.assertRaisesRegex(error, message, self.add, **kw)
                self.assertEqual(os.listdir(self.dir), [])

    def test_bad_rows_from_arrays_raise_and_write_nothing(self):
        theta = np.ones(4)
        cases = [
            (dict(grad_loss=np.ones(3)), "grad_loss has 3 entries but theta has p = 4"),
            (dict(features=[("a", theta), ("a", theta)]), "repeats"),
            (dict(features={"a/b": theta}), "contains '/'"),
            (dict(names=["w"], shapes=[(3,)]), "do not add up to p = 4"),
            (dict(names=["w"]), "give both names and shapes"),
            (dict(target=np.array([1.0, np.nan, 0.0, 0.0])), "non-finite"),
            (dict(weight=-1.0), "non-negative"),
            (dict(weight=np.ones(2)), "weight must be one number"),
            (dict(weight="abc"), "weight must be one number"),
        ]
        for kw, message in cases:
            with self.subTest(kw=list(kw)):
                args = dict(theta=theta, grad_loss=theta)
                args.update(kw)
                with self.assertRaisesRegex((ValueError, TypeError), message):
                    with gradmatch.EquationWriter(self.path("eq.h5")) as w:
                        w.add_row(**args)
                self.assertEqual(os.listdir(self.dir), [])

    def test_a_two_dimensional_theta_or_gradient_is_refused_rather_than_flattened(self):
        theta, grad = np.arange(6.0).reshape(2, 3), -np.arange(6.0).reshape(2, 3)
        cases = [
            (dict(theta=theta, grad_loss=grad), r"theta has shape \(2, 3\).*once per point"),
            (dict(theta=torch.tensor(theta), grad_loss=grad), r"theta has shape \(2, 3\).*once per point"),
            (dict(theta=theta.tolist(), grad_loss=grad.tolist()), r"theta has shape \(2, 3\)"),
            (dict(theta=theta[0], grad_loss=grad.T[:3, :1]), r"grad_loss has shape \(3, 1\).*reshape\(-1\)"),
            (dict(theta=theta[:1], grad_loss=grad[:1]), r"theta has shape \(1, 3\).*one-dimensional \[p\]"),
            (dict(theta=theta[0], grad_loss=grad[0], target=grad[:, :1]), r"target has shape \(2, 1\)"),
            (dict(theta=theta[0], grad_loss=grad[0], features={"mine": theta}), r"feature 'mine' has shape \(2, 3\)"),
            (dict(theta=1.0, grad_loss=-1.0), r"theta has shape \(\); it must be one-dimensional"),
            (dict(theta=theta[0], grad_loss=grad[0], target=np.ones(2)), "target has 2 entries but theta has p = 3"),
        ]
        for kw, message in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(ValueError, "add_row: " + message):
                    with gradmatch.EquationWriter(self.path("eq.h5")) as w:
                        w.add_row(**kw)
                self.assertEqual(os.listdir(self.dir), [])

    def test_one_dimensional_arrays_lists_and_tensors_give_the_same_row(self):
        theta, grad = np.array([1.0, -2.0, 0.5]), np.array([0.25, 0.0, -1.0])
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            w.add_row(theta, grad, features={"ridge": 2 * theta})
            w.add_row(theta.tolist(), grad.tolist(), features=[("ridge", (2 * theta).tolist())])
            w.add_row(torch.tensor(theta, dtype=torch.float32), torch.tensor(grad), features={"ridge": torch.tensor(2 * theta)})
        eq = gradmatch.read_equations(self.path("eq.h5"))
        np.testing.assert_array_equal(eq["theta"], np.stack([theta] * 3))
        np.testing.assert_array_equal(eq["grad_loss"], np.stack([grad] * 3))
        np.testing.assert_array_equal(eq["features"]["ridge"], np.stack([2 * theta] * 3))

    def test_parameters_gradmatch_fit_would_refuse_are_refused_before_writing(self):
        one = np.ones(1)
        cases = [
            (dict(names=["a", "a"], shapes=[(1,), (1,)], theta=np.ones(2), grad_loss=np.ones(2)),
             "parameter name 'a' is given twice"),
            (dict(theta=[], grad_loss=[]), r"theta is empty \(p = 0\)"),
            (dict(theta=np.ones((0,)), grad_loss=np.ones((0,)), names=["w"], shapes=[(0,)]), r"p = 0"),
            (dict(names=[""], shapes=[(1,)]), "non-empty string"),
            (dict(names=[3], shapes=[(1,)]), "non-empty string"),
            (dict(names="w", shapes=[(1,)]), "give both names and shapes"),
            (dict(names=["w", "b"], shapes=[(1,)]), r"2 names but 1 shapes"),
            (dict(names=["w"], shapes=[1]), "not a shape"),
            (dict(names=["w"], shapes=[(1.5,)]), "dimensions must be integers"),
            (dict(names=["w", "b"], shapes=[(-1,), (2,)]), "negative dimension -1"),
        ]
        for kw, message in cases:
            with self.subTest(message=message):
                args = dict(theta=one, grad_loss=one)
                args.update(kw)
                with self.assertRaisesRegex((ValueError, TypeError), message):
                    with gradmatch.EquationWriter(self.path("eq.h5")) as w:
                        w.add_row(**args)
                self.assertEqual(os.listdir(self.dir), [])
        # What add_row accepts gradmatch fit reads: a scalar, an empty and a matrix tensor.
        theta = np.array([0.5, 1.0, -1.0, 2.0, 0.25])
        with gradmatch.EquationWriter(self.path("eq.h5")) as w:
            w.add_row(theta, -0.2 * theta, names=["scale", "empty", "w"], shapes=[(), (0, 3), torch.Size([2, 2])])
        self.assertEqual(gradmatch.read_equations(self.path("eq.h5"))["shapes"], [(), (0, 3), (2, 2)])
        result = gradmatch.fit(self.path("eq.h5"), "ridge", executable=gradmatch_executable())
        self.assertAlmostEqual(result["lambda"], 0.1, delta=1e-12)

    def test_an_empty_writer_or_missing_directory_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "no rows were added"):
            with gradmatch.EquationWriter(self.path("eq.h5")):
                pass
        self.assertRaisesRegex(FileNotFoundError, "does not exist", gradmatch.EquationWriter,
                               self.path("missing/eq.h5"))
        self.assertEqual(os.listdir(self.dir), [])

    def test_an_exception_inside_the_block_leaves_an_existing_file_untouched(self):
        self.add()
        with open(self.path("eq.h5"), "rb") as f:
            before = f.read()
        with self.assertRaises(RuntimeError):
            with gradmatch.EquationWriter(self.path("eq.h5")) as w:
                w.add_endpoint(self.model, "mse", self.x, self.y, features=["ridge"])
                raise RuntimeError("training diverged")
        with open(self.path("eq.h5"), "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(os.listdir(self.dir), ["eq.h5"])


class ReaderErrors(TempDirTest):
    """read_equations refuses exactly what `gradmatch fit` refuses, with one
    exception type (ValueError) whose message names the file and the fix."""

    def write(self, name, change=None, m=2, p=3):
        """A valid file (with parameters, features, target and weights), then ``change(f)``."""
        path = self.path(name)
        rng = np.random.default_rng(0)
        with h5py.File(path, "w") as f:
            f.attrs["format"] = "gradmatch.equations"
            f.attrs.create("version", 1, dtype=np.int64)
            for key in ("theta", "grad_loss", "target", "features/ridge"):
                f[key] = rng.standard_normal((m, p))
            f["weights"] = np.ones(m)
            f["parameters/names"] = np.array(["w", "b"], dtype=h5py.string_dtype())
            f["parameters/shapes"] = np.array([2, 1], dtype=np.int64)
            f["parameters/offsets"] = np.array([0, 1, 2], dtype=np.int64)
            if change:
                change(f)
        return path

    @staticmethod
    def replace(key, value, **kw):
        def change(f):
            del f[key]
            f.create_dataset(key, data=value, **kw)
        return change

    @staticmethod
    def set_value(key, index, value):
        def change(f):
            f[key][index] = value
        return change

    def cases(self):
        def attr(name, value, **kw):
            return lambda f: f.attrs.create(name, value, **kw) if kw else f.attrs.__setitem__(name, value)

        def group_instead(key):
            def change(f):
                del f[key]
                f.create_group(key).create_dataset("x", data=np.zeros((2, 3)))
            return change

        def dataset_instead(key, value):
            def change(f):
                del f[key]
                f[key] = value
            return change

        def no_points(f):
            for key in ("theta", "grad_loss", "target", "features", "weights"):
                del f[key]
            f["theta"] = f["grad_loss"] = np.zeros((0, 3))

        return [
            ("no_format", lambda f: f.attrs.__delitem__("format"), "no root attribute 'format'"),
            ("other_format", attr("format", "hdf5.table"), "has format = \"hdf5.table\""),
            ("results_file", attr("format", "gradmatch.results"),
             r"is a study's results file \(format = \"gradmatch.results\"\), not an equation file: read the study's "
             r"directory with read_results\(DIR\)"),
            ("no_version", lambda f: f.attrs.__delitem__("version"), "no root attribute 'version'"),
            ("string_version", attr("version", "1"), r"'version' is not a single integer \(string\)"),
            ("array_version", attr("version", np.array([1, 1], dtype=np.int64)), "'version' is not a single integer"),
            ("float_version", attr("version", 1.0), r"'version' is not a single integer \(float64\)"),
            ("version_two", attr("version", 2, dtype=np.int64), "has version = 2 but this gradmatch reads version 1"),
            ("unknown_root", lambda f: f.create_dataset("targets", data=np.zeros((2, 3))),
             "unexpected object 'targets' at the root"),
            ("no_grad_loss", lambda f: f.__delitem__("grad_loss"), "missing the required dataset 'grad_loss'"),
            ("no_theta", lambda f: f.__delitem__("theta"), "missing the required dataset 'theta'"),
            ("float32_theta", self.replace("theta", np.zeros((2, 3), dtype=np.float32)),
             "dataset 'theta' has element type float32; version 1 requires float64"),
            ("int_grad", self.replace("grad_loss", np.zeros((2, 3), dtype=np.int64)), "'grad_loss' has element type int64"),
            ("theta_group", group_instead("theta"), "'theta' is not a dataset"),
            ("theta_1d", self.replace("theta", np.zeros(3)), r"'theta' has 1 dimension\(s\) \[3\]"),
            ("no_points", no_points, r"'theta' has shape \[0, 3\]; at least one point"),
            ("target_shape", self.replace("target", np.zeros((3, 2))), r"'target' has shape \[3, 2\] but 'theta'"),
            ("features_dataset", dataset_instead("features", np.zeros((2, 3))), "'features' is not a group"),
            ("feature_shape", self.replace("features/ridge", np.zeros((2, 4))), "'features/ridge' has shape"),
            ("weights_length", self.replace("weights", np.ones(3)), "'weights' has 3 entries but 'theta' has m = 2"),
            ("negative_weight", self.set_value("weights", 1, -0.5), "'weights' has the negative value -0.5 at point 1"),
            ("nan_theta", self.set_value("theta", (1, 2), np.nan), r"'theta' holds a non-finite value \(nan\) at point "
             "1, parameter 2"),
            ("inf_feature", self.set_value("features/ridge", (0, 0), np.inf), "'features/ridge' holds a non-finite"),
            ("nan_weight", self.set_value("weights", 0, np.nan), "'weights' holds a non-finite value"),
            ("parameters_dataset", dataset_instead("parameters", np.zeros(2)), "'parameters' is not a group"),
            ("parameters_extra", lambda f: f.create_dataset("parameters/sizes", data=np.ones(2)),
             "unexpected object 'parameters/sizes'"),
            ("no_offsets", lambda f: f.__delitem__("parameters/offsets"), "without the dataset 'parameters/offsets'"),
            ("float_shapes", self.replace("parameters/shapes", np.array([2.0, 1.0])),
             "'parameters/shapes' has element type float64"),
            ("int_names", self.replace("parameters/names", np.array([1, 2])), "'parameters/names' has element type int64"),
            ("sizes_not_p", self.replace("parameters/shapes", np.array([2, 2], dtype=np.int64)),
             "hold 4 scalars but 'theta' has p = 3"),
            ("duplicate_names", self.replace("parameters/names", np.array(["w", "w"], dtype=h5py.string_dtype())),
             "parameter name 'w' .* is empty or repeats"),
            ("offsets_length", self.replace("parameters/offsets", np.array([0, 2], dtype=np.int64)),
             "'parameters/offsets' has 2 entries but 'parameters/names' has 2"),
            ("offsets_end", self.replace("parameters/offsets", np.array([0, 1, 3], dtype=np.int64)),
             "must start at 0 and end at the length"),
            ("negative_dim", self.replace("parameters/shapes", np.array([-1, 4], dtype=np.int64)),
             "negative dimension -1"),  # sizes -1 + 4 = p
        ]

    def test_a_file_gradmatch_fit_refuses_raises_value_error_naming_the_file_and_the_problem(self):
        for name, change, message in self.cases():
            with self.subTest(name):
                path = self.write(name + ".h5", change)
                with self.assertRaisesRegex(ValueError, message) as e:
                    gradmatch.read_equations(path)
                self.assertTrue(str(e.exception).startswith(path + ": "), str(e.exception))

    def test_read_equations_and_gradmatch_fit_agree_on_every_bad_file(self):
        exe = gradmatch_executable()
        for name, change, _ in self.cases():
            with self.subTest(name):
                path = self.write(name + ".h5", change)
                proc = subprocess.run([exe, "fit", path, "--family", "ridge", "--quiet"], capture_output=True, text=True)
                self.assertEqual(proc.returncode, 2, proc.stderr)
        ok = self.write("ok.h5")
        self.assertEqual(gradmatch.read_equations(ok)["names"], ["w", "b"])
        subprocess.run([exe, "fit", ok, "--family", "ridge", "--quiet"], check=True, capture_output=True)

    def test_a_file_that_is_not_a_complete_hdf5_file_raises_value_error_saying_to_write_it_again(self):
        good = self.write("good.h5")
        with open(good, "rb") as f:
            data = f.read()
        cases = [("empty.h5", b"", "is empty"), ("text.h5", b"theta,grad_loss\n", "is not an HDF5 file"),
                 ("truncated.h5", data[:len(data) // 2], "write it again")]
        for name, content, message in cases:
            with self.subTest(name):
                with open(self.path(name), "wb") as f:
                    f.write(content)
                with self.assertRaisesRegex(ValueError, message) as e:
                    gradmatch.read_equations(self.path(name))
                self.assertIn(self.path(name), str(e.exception))
        self.assertRaisesRegex(ValueError, "is a directory", gradmatch.read_equations, self.dir)
        self.assertRaisesRegex(FileNotFoundError, "no such equation file", gradmatch.read_equations,
                               self.path("missing.h5"))

    def test_files_gradmatch_fit_accepts_read_back_as_float64_arrays(self):
        def variants(f):
            del f["theta"]
            f.create_dataset("theta", data=np.arange(6.0).reshape(2, 3), dtype=">f8")  # big-endian float64
            f.attrs.create("version", np.array([1], dtype=np.int32))  # one integer, any width
            f.attrs["format"] = np.bytes_("gradmatch.equations")  # fixed-length string
        eq = gradmatch.read_equations(self.write("variants.h5", variants))
        self.assertEqual(eq["theta"].dtype, np.float64)
        np.testing.assert_array_equal(eq["theta"], np.arange(6.0).reshape(2, 3))
        self.assertEqual((eq["names"], eq["shapes"]), (["w", "b"], [(2,), (1,)]))
        subprocess.run([gradmatch_executable(), "fit", self.path("variants.h5"), "--family", "ridge", "--quiet"],
                       check=True, capture_output=True)


if __name__ == "__main__":
    unittest.main()
