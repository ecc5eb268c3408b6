"""Version-1 equation files, the input of ``gradmatch fit``.

HDF5, float64, row-major; root attributes ``format = "gradmatch.equations"``
and ``version = 1``; datasets ``theta`` [m, p], ``grad_loss`` [m, p] (the
full-batch mean loss gradient; the target is b = -grad_loss), optionally
``target`` [m, p] (an explicit target b, trajectory rows), ``features/<name>``
[m, p] (candidate regularizer gradients) and ``weights`` [m]; and the
parameter names and shapes (see ``PARAMETER_NAMES``).
"""
import os

import h5py
import numpy as np

from ._candidates import check_feature_names, feature_columns
from ._model import Evaluator, as_float64, float64_model, selected_names, summed_loss_function

FORMAT = "gradmatch.equations"
VERSION = 1
#: Optional datasets recording what theta's columns are: the parameter
#: tensors' names ([k] UTF-8 strings, in column order), all their dimensions
#: concatenated (int64) and offsets ([k + 1] int64): tensor i has the
#: dimensions shapes[offsets[i]:offsets[i + 1]] (none for a scalar) and
#: covers the next prod(shape) columns.
PARAMETER_NAMES = "parameters/names"
PARAMETER_SHAPES = "parameters/shapes"
PARAMETER_OFFSETS = "parameters/offsets"


class EquationWriter:
    """Collects rows of gradient equations and writes them as one version-1
    equation file when the ``with`` block ends (or at ``close()``).

    The file is written to a temporary file beside ``path`` and renamed, so
    it is complete or absent; if the block ends with an exception nothing is
    written. Every row must have the same parameters (names and shapes) and
    the same feature columns in the same order.

    Example::

        with gradmatch.EquationWriter("eq.h5") as w:
            w.add_endpoint(model, torch.nn.MSELoss(), x, y, features=["ridge"])
    """

    def __init__(self, path, parameter_info=True):
        """``path``: the equation file to write (its directory must exist).
        ``parameter_info``: record parameter names and shapes in the file."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a file path, not {type(path).__name__}")
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"{self.path}: the directory {directory} does not exist")
        self.parameter_info = parameter_info
        self._theta, self._grad, self._target, self._weights = [], [], [], []
        self._features = None  # names, fixed by the first row
        self._feature_rows = []
        self._layout = None  # (names, shapes)
        self._closed = False

    # -- rows -------------------------------------------------------------
    def add_endpoint(self, model, loss_fn, inputs, targets, params=None, batch_size=None, features=None,
                     weight=None):
        """Adds one row: the model at its current parameters.

        ``model``: a torch.nn.Module (left unchanged: a float32 model is
        evaluated on a float64 copy; training flags are restored).
        ``loss_fn``: "mse", "ce" or "bce", or a callable ``loss_fn(output,
        targets)`` returning the batch mean (``torch.nn.MSELoss()`` etc.).
        ``inputs``: the whole training set's inputs [N, ...]; ``targets``: its
        targets [N] or [N, k] (class indices stay integers).
        ``params``: None (every parameter with requires_grad) or parameter
        names or tensors of the model: theta is these, in registration order.
        ``batch_size``: examples per batch of the full-batch sums (None: all).
        ``features``: candidate gradient columns: built-in names ("ridge",
        "huber:beta=B", "elastic-net:beta=B", "layerwise-ridge",
        "activation-quadratic", "nuclear") and/or (name, column [p]) pairs,
        or a dict {name: column [p]}.
        ``weight``: this row's non-negative weight (None: 1).

        Returns a dict with this row's ``theta``, ``grad_loss``, ``loss``
        (the full-batch mean loss) and ``relative_gradient_norm`` (||grad L|| /
        ||theta||, a stationarity diagnostic).
        """
        names = selected_names(model, params)
        work = float64_model(model)
        ev = Evaluator(work, names, summed_loss_function(loss_fn), as_float64(inputs, "inputs"),
                       as_float64(targets, "targets"), batch_size)
        theta = ev.current().cpu().numpy()
        grad = ev.gradient().cpu().numpy()
        columns = feature_columns(ev, features)
        self._add(names, ev.shapes, theta, grad, None, columns, weight)
        gnorm, tnorm = np.linalg.norm(grad), np.linalg.norm(theta)
        return {"theta": theta, "grad_loss": grad, "loss": ev.value(),
                "relative_gradient_norm": gnorm / tnorm if tnorm > 0 else float("inf")}

    def add_row(self, theta, grad_loss, target=None, features=None, weight=None, names=None, shapes=None):
        """Adds one row from arrays: ``theta`` and ``grad_loss`` [p],
        ``target`` [p] or None, ``features`` a list of (name, column [p]) or
        a dict, ``weight`` >= 0 or None; ``names``/``shapes`` describe the
        parameter tensors (default: one tensor "theta" of shape [p])."""
        theta = _vector(theta, "theta")
        p = theta.shape[0]
        if names is None and shapes is None:
            names, shapes = ["theta"], [(p,)]
        if names is None or shapes is None or len(names) != len(shapes):
            raise ValueError("add_row: give both names and shapes, one per parameter tensor")
        shapes = [tuple(int(d) for d in s) for s in shapes]
        if sum(int(np.prod(s)) for s in shapes) != p:
            raise ValueError(f"add_row: the shapes {shapes} do not add up to p = {p}")
        items = list(features.items()) if isinstance(features, dict) else list(features or [])
        columns = [(n, _vector(c, f"feature '{n}'", p)) for n, c in items]
        self._add(list(names), shapes, theta, _vector(grad_loss, "grad_loss", p),
                  None if target is None else _vector(target, "target", p), columns, weight)

    def _add(self, names, shapes, theta, grad, target, columns, weight):
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        layout = (list(names), [tuple(s) for s in shapes])
        if self._layout is None:
            self._layout = layout
        elif layout != self._layout:
            raise ValueError(f"{self.path}: this row's parameters {list(zip(*layout))} differ from the first "
                             f"row's {list(zip(*self._layout))}; every row needs the same parameters")
        feature_names = [n for n, _ in columns]
        check_feature_names(feature_names)
        if self._features is None:
            self._features = feature_names
        elif feature_names != self._features:
            raise ValueError(f"{self.path}: this row's feature columns {feature_names} differ from the first "
                             f"row's {self._features}")
        if self._theta and (target is None) != (self._target[0] is None):
            raise ValueError(f"{self.path}: either every row has an explicit target or none has")
        for what, v in [("theta", theta), ("grad_loss", grad)] + ([("target", target)] if target is not None else []) \
                + [(f"feature '{n}'", c) for n, c in columns]:
            if not np.all(np.isfinite(v)):
                raise ValueError(f"{self.path}: {what} holds non-finite values (a diverged run?)")
        if weight is not None:
            weight = float(weight)
            if not weight >= 0.0 or not np.isfinite(weight):
                raise ValueError(f"weight must be a finite non-negative number, not {weight}")
        self._theta.append(theta)
        self._grad.append(grad)
        self._target.append(target)
        self._feature_rows.append([c for _, c in columns])
        self._weights.append(weight)

    @property
    def rows(self):
        """Number of rows added so far."""
        return len(self._theta)

    # -- writing ------------------------------------------------------------
    def close(self):
        """Writes the file (atomically). ValueError if no row was added."""
        if self._closed:
            return
        if not self._theta:
            raise ValueError(f"{self.path}: no rows were added; nothing to write")
        self._closed = True
        tmp = f"{self.path}.tmp-{os.getpid()}"
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = FORMAT
                f.attrs.create("version", VERSION, dtype=np.int64)
                f.create_dataset("theta", data=np.stack(self._theta))
                f.create_dataset("grad_loss", data=np.stack(self._grad))
                if self._target[0] is not None:
                    f.create_dataset("target", data=np.stack(self._target))
                if self._features:
                    group = f.create_group("features")
                    for j, name in enumerate(self._features):
                        group.create_dataset(name, data=np.stack([row[j] for row in self._feature_rows]))
                if any(w is not None for w in self._weights):
                    f.create_dataset("weights", data=np.array([1.0 if w is None else w for w in self._weights]))
                if self.parameter_info:
                    write_parameter_info(f, *self._layout)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self._closed = True
        return False


def write_parameter_info(f, names, shapes):
    """Writes the parameter names and shapes into an open h5py file."""
    f.create_dataset(PARAMETER_NAMES, data=list(names), dtype=h5py.string_dtype("utf-8"))
    f.create_dataset(PARAMETER_SHAPES, data=np.array([d for s in shapes for d in s], dtype=np.int64))
    f.create_dataset(PARAMETER_OFFSETS, data=np.cumsum([0] + [len(s) for s in shapes]).astype(np.int64))


def read_equations(path):
    """Reads an equation file into a dict: ``theta``, ``grad_loss``,
    ``target`` (or None), ``features`` {name: [m, p]}, ``weights`` (or None),
    ``names`` and ``shapes`` (or None when the file does not record them)."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") not in (FORMAT, FORMAT.encode()):
            raise ValueError(f"{path}: not a gradmatch equation file (root attribute format != '{FORMAT}')")
        if int(f.attrs.get("version", -1)) != VERSION:
            raise ValueError(f"{path}: version {f.attrs.get('version')} is not {VERSION}")
        out = {"theta": f["theta"][()], "grad_loss": f["grad_loss"][()],
               "target": f["target"][()] if "target" in f else None,
               "features": {n: d[()] for n, d in f["features"].items()} if "features" in f else {},
               "weights": f["weights"][()] if "weights" in f else None, "names": None, "shapes": None}
        if PARAMETER_NAMES in f:
            out["names"] = [n.decode() if isinstance(n, bytes) else n for n in f[PARAMETER_NAMES][()]]
            dims, offsets = f[PARAMETER_SHAPES][()], f[PARAMETER_OFFSETS][()]
            out["shapes"] = [tuple(int(d) for d in dims[offsets[i]:offsets[i + 1]]) for i in range(len(offsets) - 1)]
    return out


def _vector(value, what, p=None):
    import torch
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().to(torch.float64).numpy()
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if p is not None and v.shape[0] != p:
        raise ValueError(f"{what} has {v.shape[0]} entries but theta has p = {p}")
    return v
