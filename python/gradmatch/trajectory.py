"""Trajectory rows (paper Eq. 4-6, appendix C) recorded in your own loop.

With the observed iterates theta-hat_t (your training), a reference
procedure's iterates theta_t and the step eta, each recorded step is one row

    b_t = (theta-hat_t - theta-hat_{t+1}) / eta  -  (theta_t - theta_{t+1}) / eta

(the observed update direction minus the reference's) of the equations
grad R(theta-hat_t; Lambda) = b_t. The observed direction is measured from
your parameters before and after your step; the reference depends on the mode:

  flow     the gradient flow of the full-batch loss L over time eta from
           theta-hat_t (RK4, ``substeps`` substeps): observed = one
           full-batch GD step gives b = (eta/2) H g + O(eta^2).
  sgd      the full-batch GD step from theta-hat_t (Eq. 4): b = observed
           direction - grad L(theta-hat_t, D). For plain SGD this is
           grad L(theta-hat_t, D_t) - grad L(theta-hat_t, D), mean zero given
           the past; a step that descends L + R (weight decay, a penalty)
           gives grad R(theta-hat_t) plus that noise.
  dropout  the same step on the same batch without dropout masks (eval mode)
           from theta-hat_t: b = g_dropout - grad L(theta-hat_t, D_t).
  coupled  a coupled full-batch GD trajectory from the same start with the
           same step (advanced by the recorder at every step, recorded or not;
           appendix C's SGD example): b = grad L(theta-hat_t, D_t)
           - grad L(theta_t, D) for plain SGD. Its predictable part holds the
           drift grad L(theta-hat_t) - grad L(theta_t) between the two paths.

Each row also holds theta-hat_t, the full-batch grad L(theta-hat_t)
(``grad_loss``) and the feature ``gradient_penalty`` = (2/p) H g: the gradient
of R = (lambda/p) ||g||^2 at lambda = 1, so ``gradmatch fit --family
features`` returns lambda-hat itself; the theory for GD is lambda = eta p / 4.
These are the rows of gradmatch's C++ ``trajectory_rows`` (same conventions).
"""
import copy
import math
import numbers

import numpy as np
import torch

from ._candidates import feature_columns, parse_candidate
from ._model import Evaluator, as_float64, selected_names, summed_loss_function
from .equations import EquationWriter

GRADIENT_PENALTY = "gradient_penalty"
MODES = ("flow", "sgd", "dropout", "coupled")


def log_spaced_steps(steps, count):
    """Steps in [0, steps) at log-spaced positions, as gradmatch's C++:
    round(exp(u)) - 1 for ``count`` u evenly spaced in [0, log steps],
    duplicates removed; always holds 0 and steps - 1."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    steps = int(steps)
    if steps == 1:
        return [0]
    count = max(int(count), 2)
    top = math.log(steps)
    out = []
    for i in range(count):
        u = top * i / (count - 1)
        x = math.exp(u)
        t = min(max(int(math.floor(x + 0.5)) - 1, 0), steps - 1)  # llround: halves away from zero
        if not out or t > out[-1]:
            out.append(t)
    if out[-1] != steps - 1:
        out.append(steps - 1)
    return out


def rk4_displacement(field, theta0, duration, substeps, field_at_start=None):
    """phi_T(theta0) - theta0 for d theta/dt = field(theta), classical RK4 with
    ``substeps`` steps of h = duration / substeps (the displacement is the
    integrated state, as in the C++ library)."""
    h = duration / substeps
    d = torch.zeros_like(theta0)
    for s in range(substeps):
        k1 = field_at_start if s == 0 and field_at_start is not None else field(theta0 + d)
        k2 = field(theta0 + (d + (0.5 * h) * k1))
        k3 = field(theta0 + (d + (0.5 * h) * k2))
        k4 = field(theta0 + (d + h * k3))
        d = d + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return d


class TrajectoryRecorder:
    """Records trajectory rows while your loop trains ``model``.

    Wrap each optimizer step in ``with recorder.step(...)``; rows are taken
    at the steps in ``checkpoints``. Your step must be a plain step of size
    ``lr`` (e.g. ``torch.optim.SGD(params, lr=lr)``): the observed direction
    is (theta before - theta after) / lr. Use a float64 model for accurate
    rows (the reference computations run in float64 on a copy)::

        rec = gradmatch.TrajectoryRecorder(model, torch.nn.MSELoss(), x, y, lr=0.01, mode="flow")
        for t in range(100):
            with rec.step():
                opt.zero_grad(); torch.nn.MSELoss()(model(x), y).backward(); opt.step()
        rec.write("rows.h5")
    """

    def __init__(self, model, loss_fn, inputs, targets, lr, mode="flow", params=None, checkpoints=None,
                 substeps=10, batch_size=None, gradient_penalty=True, features=None):
        """``model``: the torch.nn.Module your loop trains.
        ``loss_fn``: "mse", "ce", "bce" or a callable returning the batch
        mean loss (as for ``EquationWriter.add_endpoint``).
        ``inputs``, ``targets``: the FULL training set (the full-batch loss L).
        ``lr``: the step eta of your optimizer.
        ``mode``: "flow", "sgd", "dropout" or "coupled" (see the module documentation).
        ``params``: the parameters theta covers (None: requires_grad ones).
        ``checkpoints``: the steps (counting from 0 at the first ``step()``)
        whose rows are recorded; None: every step.
        ``substeps``: RK4 substeps k of the flow reference (h = lr / k).
        ``batch_size``: examples per batch of the full-batch sums (None: all).
        ``gradient_penalty``: add the feature (2/p) H g.
        ``features``: further feature columns, built-in candidate names
        (``EquationWriter.add_endpoint``), after gradient_penalty.
        """
        if mode not in MODES:
            raise ValueError(f"mode: unknown mode '{mode}'; use flow, sgd, dropout or coupled")
        if isinstance(lr, torch.Tensor) and lr.numel() == 1:
            lr = lr.item()
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a positive finite number, not {lr!r}")
        if isinstance(substeps, bool) or not isinstance(substeps, numbers.Integral) or substeps < 1:
            raise ValueError(f"substeps must be a positive integer, not {substeps!r}")
        substeps = int(substeps)
        if isinstance(features, str):
            features = [features]
        if features is not None and (isinstance(features, dict) or not all(isinstance(f, str) for f in features)):
            raise TypeError("features: the recorder takes built-in candidate names only (the columns change every row)")
        for name in features or []:
            parse_candidate(name)  # an unknown name fails here, not at the first recorded step
        if checkpoints is not None:
            if isinstance(checkpoints, (torch.Tensor, np.ndarray)):
                checkpoints = checkpoints.tolist()
            if any(isinstance(t, bool) or not isinstance(t, numbers.Real) or not float(t).is_integer()
                   for t in checkpoints):
                raise ValueError(f"checkpoints must be whole-number steps, not {list(checkpoints)!r}")
            checkpoints = sorted(set(int(t) for t in checkpoints))
            if checkpoints and checkpoints[0] < 0:
                raise ValueError("checkpoints must be non-negative steps")
        self.model = model
        self.names = selected_names(model, params)
        self.mode, self.lr, self.substeps = mode, float(lr), substeps
        self.checkpoints = None if checkpoints is None else set(checkpoints)
        self.gradient_penalty = gradient_penalty
        self.features = features
        self._summed = summed_loss_function(loss_fn)
        # A float64 working copy for the full-batch and reference evaluations.
        try:
            self._work = copy.deepcopy(model).double()
        except Exception as e:
            raise TypeError("the model cannot be deep-copied; the recorder evaluates references on a copy") from e
        self._full = Evaluator(self._work, self.names, self._summed, as_float64(inputs, "inputs"),
                               as_float64(targets, "targets"), batch_size)
        self._reference = self._full.current() if mode == "coupled" else None
        self._t = 0
        self._writer_rows = []
        self.steps = []  # the step index of each recorded row
        self.loss = []   # full-batch L(theta-hat_t) of each row

    def _sync(self):
        """Loads the user's model state (all parameters and buffers) into the working copy."""
        self._work.load_state_dict(self.model.state_dict())

    def _observed_theta(self):
        lookup = dict(self.model.named_parameters())
        return torch.cat([lookup[n].detach().reshape(-1).to(torch.float64).cpu() for n in self.names])

    def step(self, inputs=None, targets=None):
        """Context manager around one optimizer step of your loop.

        ``inputs``, ``targets``: the mini-batch of this step, needed in
        dropout mode only (the reference is the step on this batch without
        masks). Records a row if this step is a checkpoint; in coupled mode
        it also advances the coupled GD reference (one full-batch gradient).
        """
        return _Step(self, inputs, targets)

    def _before(self, inputs, targets):
        t = self._t
        record = self.checkpoints is None or t in self.checkpoints
        if self.mode == "dropout" and record and (inputs is None or targets is None):
            raise ValueError("dropout mode: pass the step's mini-batch, recorder.step(inputs, targets)")
        state = {"record": record, "theta": self._observed_theta(), "reference": self._reference}
        if self.mode == "coupled":
            # The coupled reference: theta_{t+1} = theta_t - eta grad L(theta_t, D).
            self._full.set(self._reference)
            state["reference_gradient"] = self._full.gradient()
            self._full.restore()
            self._reference = self._reference - self.lr * state["reference_gradient"]
        if not record:
            return state
        self._sync()
        ev = self._full
        g, hg = ev.gradient_and_hvp() if self.gradient_penalty or self.mode == "flow" else (ev.gradient(), None)
        state.update(grad=g, hvp=hg, loss=ev.value(), columns=feature_columns(ev, self.features))
        if self.mode == "flow":
            theta0 = ev.current()

            def field(theta):
                ev.set(theta)
                return -ev.gradient()
            try:
                state["reference_direction"] = -rk4_displacement(field, theta0, self.lr, self.substeps, -g) / self.lr
            finally:
                ev.restore()
        elif self.mode == "dropout":
            batch = Evaluator(self._work, self.names, self._summed, as_float64(inputs, "inputs"),
                              as_float64(targets, "targets"))
            state["reference_direction"] = batch.gradient()
        elif self.mode == "sgd":
            state["reference_direction"] = g  # the full-batch GD step from theta-hat_t
        else:
            state["reference_direction"] = state["reference_gradient"]
        return state

    def _after(self, state):
        self._t += 1
        if not state["record"]:
            return
        observed = (state["theta"] - self._observed_theta()) / self.lr
        target = observed - state["reference_direction"].cpu()
        columns = []
        if self.gradient_penalty:
            hvp = state["hvp"].cpu()
            columns.append((GRADIENT_PENALTY, (hvp * (2.0 / hvp.numel())).numpy()))
        columns.extend(state["columns"])
        self._writer_rows.append((state["theta"].numpy(), state["grad"].cpu().numpy(), target.numpy(), columns))
        self.steps.append(self._t - 1)
        self.loss.append(state["loss"])

    @property
    def rows(self):
        """Number of rows recorded."""
        return len(self._writer_rows)

    def equations(self):
        """The rows as arrays: ``theta``, ``grad_loss``, ``target`` [rows, p]
        and ``features`` {name: [rows, p]}."""
        if not self._writer_rows:
            raise ValueError("no trajectory rows were recorded")
        out = {k: np.stack([r[i] for r in self._writer_rows]) for i, k in enumerate(("theta", "grad_loss", "target"))}
        out["features"] = {name: np.stack([r[3][j][1] for r in self._writer_rows])
                           for j, (name, _) in enumerate(self._writer_rows[0][3])}
        return out

    def write(self, path):
        """Writes the rows as a version-1 equation file (with ``target``)."""
        if not self._writer_rows:
            raise ValueError(f"{path}: no trajectory rows were recorded; nothing to write")
        shapes = self._full.shapes
        with EquationWriter(path) as w:
            for theta, grad, target, columns in self._writer_rows:
                w.add_row(theta, grad, target=target, features=columns, names=self.names, shapes=shapes)


class _Step:
    def __init__(self, recorder, inputs, targets):
        self.recorder, self.inputs, self.targets = recorder, inputs, targets

    def __enter__(self):
        self.state = self.recorder._before(self.inputs, self.targets)
        return self.recorder

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.recorder._after(self.state)
        else:  # the step failed: no row, and the coupled reference stays where it was
            self.recorder._reference = self.state["reference"]
        return False
