"""TrajectoryRecorder: the IGR synthetic known answer (lambda-hat ~ eta p / 4
through `gradmatch fit`), the flow-row target against the exact linear flow,
rows identical to the C++ trajectory_rows in every mode, and bad arguments."""
import os
import subprocess
import unittest

import h5py
import numpy as np
import torch

import gradmatch
from support import (Mlp, TempDirTest, gradmatch_executable, regression_data, save_data,
                     trajectory_reference_executable)


def linear_regression(n, p, seed):
    """x_ij ~ N(0, 1), beta_j ~ N(0, 3^2), y = x beta + N(0, 1) (the igr_synthetic study's data)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, generator=g, dtype=torch.float64)
    beta = 3.0 * torch.randn(p, 1, generator=g, dtype=torch.float64)
    return x, x @ beta + torch.randn(n, 1, generator=g, dtype=torch.float64)


def gd_flow_rows(x, y, eta, steps, substeps=10):
    """Full-batch GD with step eta on a bias-free linear model from 0, a flow row at every step."""
    model = torch.nn.Linear(x.shape[1], 1, bias=False).double()
    torch.nn.init.zeros_(model.weight)
    loss_fn = torch.nn.MSELoss()
    opt = torch.optim.SGD(model.parameters(), lr=eta)
    rec = gradmatch.TrajectoryRecorder(model, loss_fn, x, y, lr=eta, mode="flow", substeps=substeps)
    for _ in range(steps):
        with rec.step():
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    return rec


class IgrSyntheticKnownAnswer(TempDirTest):
    def test_gd_rows_give_lambda_hat_eta_p_over_four_through_gradmatch_fit(self):
        p = 5
        x, y = linear_regression(200, p, seed=605)
        for eta in (1e-3, 1e-2):
            with self.subTest(eta=eta):
                rec = gd_flow_rows(x, y, eta, steps=30)
                self.assertEqual(rec.rows, 30)
                self.assertEqual(rec.steps, list(range(30)))
                path = self.path(f"rows_{eta}.h5")
                rec.write(path)
                result = gradmatch.fit(path, "features", executable=gradmatch_executable())
                ratio = np.atleast_1d(result["lambda"])[0] / (eta * p / 4)
                # The C++ igr_synthetic study's tolerance.
                self.assertGreaterEqual(ratio, 0.97)
                self.assertLessEqual(ratio, 1.01)
                self.assertLess(result["residual_ratio"], 0.01)

    def test_flow_row_target_is_the_exact_linear_flow_deviation(self):
        # L = (1/n)||y - X theta||^2: H = 2 X^T X / n, e = theta - theta*, and
        # b = (exp(-eta H) - I + eta H) e / eta exactly.
        eta = 0.03
        x, y = linear_regression(100, 4, seed=3)
        rec = gd_flow_rows(x, y, eta, steps=5)
        rows = rec.equations()
        xn, yn = x.numpy(), y.numpy()[:, 0]
        h = 2 * xn.T @ xn / len(xn)
        theta_star = np.linalg.solve(xn.T @ xn, xn.T @ yn)
        w, v = np.linalg.eigh(h)
        propagator = v @ np.diag(np.exp(-eta * w) - 1 + eta * w) @ v.T / eta
        for theta, target, gp, grad in zip(rows["theta"], rows["target"], rows["features"]["gradient_penalty"],
                                           rows["grad_loss"]):
            exact = propagator @ (theta - theta_star)
            np.testing.assert_allclose(target, exact, rtol=0, atol=1e-9 * np.abs(exact).max())
            np.testing.assert_allclose(grad, h @ (theta - theta_star), rtol=1e-10)
            np.testing.assert_allclose(gp, (2 / 4) * h @ h @ (theta - theta_star), rtol=1e-10)


class MatchesTheCppTrajectoryRows(TempDirTest):
    """The same TorchScript model, data and steps through training::trajectory_rows
    (tests/python/trajectory_rows_reference.cpp) and through the recorder."""

    eta, steps, batch, seed, substeps = 0.05, 3, 8, 11, 10

    def rows(self, mode):
        torch.manual_seed(21)
        x, y = regression_data(40, 3, 2, seed=22)
        model = Mlp(3, 8, 2, dropout=0.3).double()
        save_data(self.path("data.h5"), x, y)
        torch.jit.script(model).save(self.path("model.pt"))
        subprocess.run([trajectory_reference_executable(), self.path("model.pt"), self.path("data.h5"),
                        self.path("cpp.h5"), mode, repr(self.eta), str(self.steps), str(self.batch),
                        str(self.seed), str(self.substeps)], check=True)
        with h5py.File(self.path("cpp.h5"), "r") as f:
            cpp = {k: f[k][()] for k in f}
        batches = cpp["batches"].reshape(self.steps, self.batch) if mode != "flow" else None

        loss_fn = torch.nn.MSELoss()
        opt = torch.optim.SGD(model.parameters(), lr=self.eta)
        rec = gradmatch.TrajectoryRecorder(model, loss_fn, x, y, lr=self.eta, mode=mode, substeps=self.substeps)
        torch.manual_seed(self.seed)  # the C++ side seeds torch's generator the same way (dropout masks)
        for t in range(self.steps):
            xb, yb = (x, y) if mode == "flow" else (x[batches[t]], y[batches[t]])
            model.train(mode == "dropout")
            with rec.step(xb, yb):
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()
        return cpp, rec.equations(), rec

    def check(self, mode):
        cpp, py, rec = self.rows(mode)
        for name in ("theta", "grad_loss", "target"):
            np.testing.assert_allclose(py[name], cpp[name], rtol=0, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(py["features"]["gradient_penalty"], cpp["gradient_penalty"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(rec.loss, cpp["loss"], rtol=1e-12)
        self.assertGreater(np.abs(cpp["target"]).max(), 1e-4)  # the rows are not trivially zero

    def test_flow_rows_match(self):
        self.check("flow")

    def test_sgd_rows_match(self):
        self.check("sgd")

    def test_dropout_rows_match(self):
        self.check("dropout")

    def test_coupled_rows_match(self):
        self.check("coupled")


def weight_decay_rows(mode, x, y, lam, eta, steps, batch=None, seed=0):
    """SGD with step eta and weight decay 2 lam (the gradient of R = lam ||theta||^2)
    on a bias-free linear model from 0, a row with the ridge column at every step."""
    model = torch.nn.Linear(x.shape[1], 1, bias=False).double()
    torch.nn.init.zeros_(model.weight)
    loss_fn = torch.nn.MSELoss()
    opt = torch.optim.SGD(model.parameters(), lr=eta, weight_decay=2 * lam)
    rec = gradmatch.TrajectoryRecorder(model, loss_fn, x, y, lr=eta, mode=mode, gradient_penalty=False,
                                       features=["ridge"])
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        rows = torch.randperm(len(x), generator=g)[:batch] if batch else torch.arange(len(x))
        with rec.step():
            opt.zero_grad()
            loss_fn(model(x[rows]), y[rows]).backward()
            opt.step()
    return rec


def mse_gradient(x, y, theta):
    """grad of (1/n) ||y - x theta||^2."""
    return 2 * x.T @ (x @ theta - y) / len(x)


class SgdModeIsEquationFour(TempDirTest):
    """sgd mode: b_t = -dtheta-hat_t / eta - grad L(theta-hat_t, D), the full-batch
    step from the observed point (Eq. 4); coupled mode: appendix C's coupled GD run."""

    lam, eta = 0.05, 0.05

    def test_weight_decay_of_full_batch_steps_is_recovered_exactly(self):
        x, y = linear_regression(200, 5, seed=41)
        rec = weight_decay_rows("sgd", x, y, self.lam, self.eta, steps=40)
        rec.write(self.path("rows.h5"))
        result = gradmatch.fit(self.path("rows.h5"), "features", executable=gradmatch_executable())
        self.assertAlmostEqual(np.atleast_1d(result["lambda"])[0] / self.lam, 1.0, delta=1e-9)
        self.assertLess(result["residual_ratio"], 1e-8)

    def test_mini_batch_targets_are_the_weight_decay_plus_the_batch_gradients_deviation(self):
        x, y = linear_regression(200, 5, seed=42)
        rec = weight_decay_rows("sgd", x, y, self.lam, self.eta, steps=15, batch=20, seed=43)
        rows = rec.equations()
        xn, yn = x.numpy(), y.numpy()
        g = torch.Generator().manual_seed(43)
        for theta, target in zip(rows["theta"], rows["target"]):
            batch = torch.randperm(len(x), generator=g)[:20].numpy()
            t = theta.reshape(-1, 1)
            noise = mse_gradient(xn[batch], yn[batch], t) - mse_gradient(xn, yn, t)
            np.testing.assert_allclose(target, (2 * self.lam * t + noise)[:, 0], rtol=0, atol=1e-12)

    def test_coupled_targets_add_the_drift_between_the_observed_and_the_gd_paths(self):
        x, y = linear_regression(200, 5, seed=41)
        rec = weight_decay_rows("coupled", x, y, self.lam, self.eta, steps=40)
        rows = rec.equations()
        xn, yn = x.numpy(), y.numpy()
        reference = np.zeros((5, 1))
        for theta, target in zip(rows["theta"], rows["target"]):
            t = theta.reshape(-1, 1)
            drift = mse_gradient(xn, yn, t) - mse_gradient(xn, yn, reference)
            np.testing.assert_allclose(target, (2 * self.lam * t + drift)[:, 0], rtol=0, atol=1e-12)
            reference = reference - self.eta * mse_gradient(xn, yn, reference)
        # The drift is not a ridge gradient at theta-hat_t: the fit misses lambda by far.
        rec.write(self.path("rows.h5"))
        result = gradmatch.fit(self.path("rows.h5"), "features", executable=gradmatch_executable())
        self.assertLess(np.atleast_1d(result["lambda"])[0] / self.lam, 0.5)


class RecorderBehaviour(TempDirTest):
    def setUp(self):
        super().setUp()
        torch.manual_seed(30)
        self.x, self.y = regression_data(20, 3, 1, seed=31)
        self.model = Mlp(3, 4, 1).double()

    def test_only_checkpoint_steps_are_recorded_and_written_with_names(self):
        loss_fn = torch.nn.MSELoss()
        opt = torch.optim.SGD(self.model.parameters(), lr=0.1)
        checkpoints = gradmatch.log_spaced_steps(20, 5)
        self.assertEqual(checkpoints, [0, 1, 3, 8, 19])
        rec = gradmatch.TrajectoryRecorder(self.model, loss_fn, self.x, self.y, lr=0.1, checkpoints=checkpoints,
                                           features=["ridge"])
        for _ in range(20):
            with rec.step():
                opt.zero_grad()
                loss_fn(self.model(self.x), self.y).backward()
                opt.step()
        self.assertEqual(rec.steps, checkpoints)
        rec.write(self.path("rows.h5"))
        eq = gradmatch.read_equations(self.path("rows.h5"))
        self.assertEqual(eq["target"].shape, (5, 21))
        self.assertEqual(list(eq["features"]), ["gradient_penalty", "ridge"])
        np.testing.assert_allclose(eq["features"]["ridge"], 2 * eq["theta"])
        self.assertEqual(eq["names"], ["hidden.weight", "hidden.bias", "out.weight", "out.bias"])

    def test_bad_arguments_raise(self):
        def make(**kw):
            args = dict(model=self.model, loss_fn="mse", inputs=self.x, targets=self.y, lr=0.1)
            args.update(kw)
            return gradmatch.TrajectoryRecorder(**args)
        self.assertRaisesRegex(ValueError, "unknown mode 'adam'", make, mode="adam")
        self.assertRaisesRegex(ValueError, "lr must be a positive", make, lr=0.0)
        self.assertRaisesRegex(ValueError, "substeps", make, substeps=0)
        self.assertRaisesRegex(TypeError, "built-in candidate names", make, features={"mine": np.zeros(21)})
        self.assertRaisesRegex(ValueError, "non-negative", make, checkpoints=[-1, 2])
        self.assertRaisesRegex(ValueError, "whole-number steps", make, checkpoints=[1.7])
        self.assertRaisesRegex(ValueError, "unknown regularizer 'ridgee'", make, features=["ridgee"])
        self.assertEqual(make(checkpoints=np.array([3, 1]), lr=torch.tensor(0.1), substeps=np.int64(4)).checkpoints,
                         {1, 3})
        rec = make(mode="dropout")
        with self.assertRaisesRegex(ValueError, r"recorder.step\(inputs, targets\)"):
            with rec.step():
                pass
        self.assertRaisesRegex(ValueError, "no trajectory rows", rec.write, self.path("rows.h5"))
        self.assertFalse(os.path.exists(self.path("rows.h5")))


if __name__ == "__main__":
    unittest.main()
