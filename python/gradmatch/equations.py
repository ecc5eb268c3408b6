"""Version-1 equation files, the input of ``gradmatch fit``.

HDF5, float64, row-major; root attributes ``format = "gradmatch.equations"``
and ``version = 1``; datasets ``theta`` [m, p], ``grad_loss`` [m, p] (the
full-batch mean loss gradient; the target is b = -grad_loss), optionally
``target`` [m, p] (an explicit target b, trajectory rows), ``features/<name>``
[m, p] (candidate regularizer gradients) and ``weights`` [m]; and the
parameter names and shapes (see ``PARAMETER_NAMES``).
"""
import math
import operator
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
        """Adds one row (one point) from arrays: ``theta`` and ``grad_loss``
        [p], ``target`` [p] or None, ``features`` a list of (name, column [p])
        or a dict, ``weight`` >= 0 or None; ``names``/``shapes`` describe the
        parameter tensors (default: one tensor "theta" of shape [p]).

        Every array is one-dimensional with the same length p >= 1 (numpy
        arrays, lists or tensors); anything else, a [1, p] or [m, p] array
        included, is a ValueError rather than flattened: call ``add_row``
        once per point. ``names`` are unique non-empty strings, one per
        tensor; ``shapes`` tuples of non-negative integers (``()`` for a
        scalar) whose sizes sum to p.
        """
        theta = _vector(theta, "theta")
        p = theta.shape[0]
        if p == 0:
            raise ValueError("add_row: theta is empty (p = 0); a row needs at least one parameter")
        if names is None and shapes is None:
            names, shapes = ["theta"], [(p,)]
        names, shapes = _check_layout(names, shapes, p)
        grad_loss = _vector(grad_loss, "grad_loss", p)
        target = None if target is None else _vector(target, "target", p)
        if isinstance(features, dict):
            items = list(features.items())
        else:
            items = list(features or [])
            for item in items:
                if not (isinstance(item, (tuple, list)) and len(item) == 2):
                    raise ValueError(f"add_row: features must be a dict {{name: column}} or a list of (name, column) "
                                     f"pairs, not an item {type(item).__name__}")
        columns = [(n, _vector(c, f"feature '{n}'", p)) for n, c in items]
        self._add(names, shapes, theta, grad_loss, target, columns, weight)

    def _add(self, names, shapes, theta, grad, target, columns, weight):
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        if theta.shape[0] == 0:
            raise ValueError(f"{self.path}: the selected parameters hold no values (p = 0); "
                             "select at least one non-empty parameter")
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
            if isinstance(weight, (str, bytes, bool)) or np.ndim(weight) != 0:
                raise TypeError(f"weight must be one number (this row's weight) or None, not {weight!r}")
            try:
                weight = float(weight)
            except (TypeError, ValueError) as e:
                raise TypeError(f"weight must be one number (this row's weight) or None, not {weight!r}") from e
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
    ``names`` and ``shapes`` (or None when the file does not record them).

    The file is checked as ``gradmatch fit`` checks it (docs/equation-format.md):
    FileNotFoundError when ``path`` does not exist, ValueError naming the file,
    the problem and what to change for anything ``gradmatch fit`` would refuse
    (not HDF5 or truncated, wrong attributes, unknown or misshapen datasets,
    non-float64 data, non-finite values, an inconsistent ``parameters`` group).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such equation file; check the path")
    if os.path.isdir(path):
        _bad(path, "is a directory, not an equation file")
    if os.path.getsize(path) == 0:
        _bad(path, "is empty (0 bytes), not an HDF5 equation file; was its writer interrupted? write it again")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as e:
        _bad(path, f"cannot be opened for reading ({e}); check its permissions")
    if not is_hdf5:
        _bad(path, f"is not an HDF5 file (no HDF5 signature); equation files are HDF5 {_WHERE}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        _bad(path, f"cannot be opened: the HDF5 file is truncated or corrupt ({e}); write it again")
    with f:
        try:
            return _EquationReader(path, f).read()
        except (OSError, KeyError, RuntimeError, TypeError) as e:
            _bad(path, f"cannot be read as an equation file ({type(e).__name__}: {e}); "
                       "check that it is complete and write it again")


_WHERE = "(docs/equation-format.md)"
_ROOT_MEMBERS = ("theta", "grad_loss", "target", "features", "weights", "parameters")


def _bad(path, what):
    raise ValueError(f"{path}: {what}")


def _type_name(t):
    """The HDF5 element type as the C++ reader names it (int64, float32, string, ...)."""
    cls, bits = t.get_class(), 8 * t.get_size()
    if cls == h5py.h5t.INTEGER:
        return f"{'uint' if t.get_sign() == h5py.h5t.SGN_NONE else 'int'}{bits}"
    if cls == h5py.h5t.FLOAT:
        return f"float{bits}"
    return {h5py.h5t.STRING: "string", h5py.h5t.ENUM: "enum (boolean?)",
            h5py.h5t.COMPOUND: "compound"}.get(cls, "non-numeric")


def _shape(d):
    return tuple(d.shape) if d.shape is not None else ()


def _shape_str(shape):
    return "[" + ", ".join(str(n) for n in shape) + "]"


def _single_value(v):
    v = np.asarray(v).reshape(-1)[0] if isinstance(v, np.ndarray) else v
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


class _EquationReader:
    """The checks of src/io/equation_file.cpp, in its order, on an open file."""

    def __init__(self, path, f):
        self.path, self.f = path, f
        self.members = set(f.keys())

    def bad(self, what):
        _bad(self.path, what)

    def read(self):
        self.check_attributes()
        self.check_members()
        theta = self.dataset("theta", 2)
        self.m, self.p = _shape(theta)
        if self.m == 0 or self.p == 0:
            self.bad(f"dataset 'theta' has shape {_shape_str(_shape(theta))}; at least one point (m >= 1) and "
                     "one parameter (p >= 1) are needed")
        grad = self.matrix("grad_loss")
        target = self.matrix("target") if "target" in self.members else None
        features = self.features() if "features" in self.members else {}
        names = shapes = None
        if "parameters" in self.members:
            names, shapes = self.parameters()
        weights = None
        if "weights" in self.members:
            weights = self.dataset("weights", 1)
            if _shape(weights)[0] != self.m:
                self.bad(f"dataset 'weights' has {_shape(weights)[0]} entries but 'theta' has m = {self.m} points; "
                         "give exactly one weight per point")
        out = {"theta": self.values(theta, "theta"), "grad_loss": self.values(grad, "grad_loss"),
               "target": None if target is None else self.values(target, "target"),
               "features": {n: self.values(d, "features/" + n) for n, d in features.items()},
               "weights": None, "names": names, "shapes": shapes}
        if weights is not None:
            w = self.values(weights, "weights")
            negative = np.flatnonzero(w < 0.0)
            if negative.size:
                k = int(negative[0])
                self.bad(f"dataset 'weights' has the negative value {w[k]} at point {k}; weights must be non-negative")
            out["weights"] = w
        return out

    def attribute(self, name):
        """(HDF5 type, number of elements) of a root attribute."""
        attr = self.f.attrs.get_id(name)
        return attr.get_type(), attr.get_space().get_simple_extent_npoints()

    def check_attributes(self):
        attrs = self.f.attrs
        if "format" not in attrs:
            self.bad(f"has no root attribute 'format'; an equation file needs format = \"{FORMAT}\" {_WHERE}")
        t, n = self.attribute("format")
        if t.get_class() != h5py.h5t.STRING or n != 1:
            self.bad(f"root attribute 'format' is not a single string ({_type_name(t)}); set format = \"{FORMAT}\"")
        fmt = _single_value(attrs["format"])
        if fmt in ("gradmatch.results", "gradmatch.run_store"):
            kind = "results file" if fmt == "gradmatch.results" else "run store"
            self.bad(f"is a study's {kind} (format = \"{fmt}\"), not an equation file: read the study's directory "
                     "with read_results(DIR); its equation files are DIR/equations_*.h5")
        if fmt != FORMAT:
            self.bad(f"has format = \"{fmt}\", not \"{FORMAT}\": it is not a gradmatch equation file; "
                     f"write one as described in {_WHERE}")
        if "version" not in attrs:
            self.bad(f"has no root attribute 'version'; set version = {VERSION} (an integer) {_WHERE}")
        t, n = self.attribute("version")
        if t.get_class() != h5py.h5t.INTEGER or n != 1:
            self.bad(f"root attribute 'version' is not a single integer ({_type_name(t)}); "
                     f"set version = {VERSION} as an integer")
        version = int(_single_value(attrs["version"]))
        if version != VERSION:
            self.bad(f"has version = {version} but this gradmatch reads version {VERSION} only; "
                     f"write the file in version {VERSION} {_WHERE}")

    def check_members(self):
        # Unknown names are refused, not ignored: a misspelt optional dataset
        # ("targets", "weight") would otherwise silently change the fit.
        for name in sorted(self.members):
            if name not in _ROOT_MEMBERS:
                self.bad(f"has an unexpected object '{name}' at the root; version 1 allows only theta, grad_loss, "
                         "target, features/<name>, weights and parameters/{names,shapes,offsets} "
                         "(keep metadata in attributes)")
        if "theta" not in self.members:
            self.bad("is missing the required dataset 'theta' ([m, p], the parameters at each point)")
        if "grad_loss" not in self.members:
            self.bad("is missing the required dataset 'grad_loss' ([m, p], the mean loss gradient at each point)")

    def dataset(self, name, rank):
        """The float64 dataset ``name`` of the given rank."""
        d = self.f[name]
        if not isinstance(d, h5py.Dataset):
            self.bad(f"'{name}' is not a dataset; it must be a float64 dataset")
        t = d.id.get_type()
        if t.get_class() != h5py.h5t.FLOAT or t.get_size() != 8:
            self.bad(f"dataset '{name}' has element type {_type_name(t)}; version 1 requires float64 "
                     "(e.g. numpy: array.astype('float64'))")
        shape = _shape(d)
        if len(shape) != rank:
            self.bad(f"dataset '{name}' has {len(shape)} dimension(s) {_shape_str(shape)}; it must have {rank} "
                     + ("dimensions [m, p]" if rank == 2 else "dimension [m]"))
        return d

    def matrix(self, name):
        d = self.dataset(name, 2)
        if _shape(d) != (self.m, self.p):
            self.bad(f"dataset '{name}' has shape {_shape_str(_shape(d))} but 'theta' has shape [{self.m}, {self.p}]; "
                     "every [m, p] dataset must match 'theta'")
        return d

    def features(self):
        group = self.f["features"]
        if not isinstance(group, h5py.Group):
            self.bad("'features' is not a group; it must be a group holding one [m, p] float64 dataset per feature")
        return {name: self.matrix("features/" + name) for name in sorted(group.keys())}

    def vector(self, name, cls):
        full = "parameters/" + name
        if name not in self.f["parameters"]:
            self.bad(f"has a 'parameters' group without the dataset '{full}'; it needs names [k] (strings), "
                     f"shapes (int64, every dimension) and offsets [k + 1] (int64) {_WHERE}")
        d = self.f[full]
        if not isinstance(d, h5py.Dataset):
            self.bad(f"'{full}' is not a dataset")
        t = d.id.get_type()
        if t.get_class() != cls:
            self.bad(f"dataset '{full}' has element type {_type_name(t)}; it must hold "
                     + ("strings (the parameter names)" if cls == h5py.h5t.STRING else "integers (int64)"))
        if len(_shape(d)) != 1:
            self.bad(f"dataset '{full}' must be one-dimensional")
        return d[()]

    def parameters(self):
        group = self.f["parameters"]
        if not isinstance(group, h5py.Group):
            self.bad(f"'parameters' is not a group; it must hold names, shapes and offsets {_WHERE}")
        for name in sorted(group.keys()):
            if name not in ("names", "shapes", "offsets"):
                self.bad(f"has an unexpected object 'parameters/{name}'; the group holds only names, shapes "
                         "and offsets")
        names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
                 for n in self.vector("names", h5py.h5t.STRING)]
        dims = np.asarray(self.vector("shapes", h5py.h5t.INTEGER)).astype(np.int64)
        offsets = np.asarray(self.vector("offsets", h5py.h5t.INTEGER)).astype(np.int64)
        k = len(names)
        if len(offsets) != k + 1:
            self.bad(f"dataset 'parameters/offsets' has {len(offsets)} entries but 'parameters/names' has {k}; "
                     f"offsets needs k + 1 = {k + 1} entries (parameter i has the dimensions "
                     "shapes[offsets[i]:offsets[i+1]])")
        if offsets[0] != 0 or offsets[-1] != len(dims):
            self.bad(f"dataset 'parameters/offsets' must start at 0 and end at the length of 'parameters/shapes' "
                     f"({len(dims)}); it runs from {offsets[0]} to {offsets[-1]}")
        seen, shapes, total = set(), [], 0
        for i, name in enumerate(names):
            if offsets[i + 1] < offsets[i]:
                self.bad(f"dataset 'parameters/offsets' decreases at entry {i + 1}")
            if not name or name in seen:
                self.bad(f"parameter name '{name}' (entry {i} of 'parameters/names') is empty or repeats")
            seen.add(name)
            shape = tuple(int(d) for d in dims[offsets[i]:offsets[i + 1]])
            for d in shape:
                if d < 0:
                    self.bad(f"parameter '{name}' has the negative dimension {d} in 'parameters/shapes'")
            shapes.append(shape)
            total += math.prod(shape)
        if total != self.p:
            self.bad(f"the parameters recorded under 'parameters' hold {total} scalars but 'theta' has "
                     f"p = {self.p} columns; their sizes must sum to p")
        return names, shapes

    def values(self, d, name):
        """The dataset's values as native float64, refusing NaN and infinities."""
        v = np.asarray(d[()], dtype=np.float64)
        bad = ~np.isfinite(v)
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            where = f"point {at[0]}" + (f", parameter {at[1]}" if v.ndim == 2 else "")
            self.bad(f"dataset '{name}' holds a non-finite value ({v[at]}) at {where}; drop that point "
                     "(a diverged run?) or fix the writer")
        return v


def _check_layout(names, shapes, p):
    """(names, shapes) as lists of str and int tuples, or ValueError: the
    rules the C++ reader applies to the ``parameters`` group."""
    if names is None or shapes is None or isinstance(names, (str, bytes)):
        raise ValueError("add_row: give both names and shapes, one per parameter tensor "
                         "(names a list of strings, shapes a list of tuples)")
    names, shapes = list(names), list(shapes)
    if len(names) != len(shapes):
        raise ValueError(f"add_row: give both names and shapes, one per parameter tensor "
                         f"({len(names)} names but {len(shapes)} shapes)")
    seen = set()
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f"add_row: names[{i}] is {name!r}; every parameter name must be a non-empty string")
        if name in seen:
            raise ValueError(f"add_row: the parameter name '{name}' is given twice (names[{i}]); "
                             "give each parameter tensor a unique name")
        seen.add(name)
    out = []
    for name, shape in zip(names, shapes):
        if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
            raise ValueError(f"add_row: the shape of '{name}' is {shape!r}, not a shape; give each tensor's "
                             "dimensions as a tuple, e.g. (3, 2), or () for a scalar")
        dims = []
        for d in shape:
            try:
                d = operator.index(d)
            except TypeError:
                raise ValueError(f"add_row: the shape of '{name}' is {tuple(shape)!r}; "
                                 "dimensions must be integers") from None
            if d < 0:
                raise ValueError(f"add_row: the shape of '{name}' {tuple(shape)!r} has the negative dimension {d}")
            dims.append(int(d))
        out.append(tuple(dims))
    if sum(math.prod(s) for s in out) != p:
        raise ValueError(f"add_row: the shapes {out} do not add up to p = {p} (their sizes sum to "
                         f"{sum(math.prod(s) for s in out)}); give one shape per tensor in theta")
    return names, out


def _vector(value, what, p=None):
    """One point's values as a float64 vector [p], or ValueError: 2-D (or 0-D)
    input is refused, never flattened."""
    import torch
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise ValueError(f"add_row: {what} is complex; gradmatch equations are real (float64)")
        value = value.detach().cpu().to(torch.float64).numpy()
    if np.iscomplexobj(value):
        raise ValueError(f"add_row: {what} is complex; gradmatch equations are real (float64)")
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"add_row: {what} must be a numeric array [p], not {type(value).__name__} ({e})") from None
    if v.ndim != 1:
        if v.ndim == 0:
            hint = "give a one-dimensional array, e.g. [x] for p = 1"
        elif sum(d != 1 for d in v.shape) <= 1:
            hint = "if it is one point's values, pass value.reshape(-1)"
        else:
            hint = ("add_row takes one point and does not flatten: call add_row once per point, "
                    "e.g. for t, g in zip(theta, grad_loss): writer.add_row(t, g)")
        raise ValueError(f"add_row: {what} has shape {tuple(v.shape)}; it must be one-dimensional [p] "
                         f"(one point's values); {hint}")
    if p is not None and v.shape[0] != p:
        raise ValueError(f"add_row: {what} has {v.shape[0]} entries but theta has p = {p}; every array of a row "
                         "has theta's length")
    return v
