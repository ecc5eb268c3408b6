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
            (dict(targets=self.y[:5]), ValueError, "targets have 5 rows"),
            (dict(batch_size=0), ValueError, "batch_size"),
            (dict(model="not a model"), TypeError, "torch.nn.Module"),
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
        ]
        for kw, message in cases:
            with self.subTest(kw=list(kw)):
                args = dict(theta=theta, grad_loss=theta)
                args.update(kw)
                with self.assertRaisesRegex(ValueError, message):
                    with gradmatch.EquationWriter(self.path("eq.h5")) as w:
                        w.add_row(**args)
                self.assertEqual(os.listdir(self.dir), [])

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


if __name__ == "__main__":
    unittest.main()
