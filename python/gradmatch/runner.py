"""Running the ``gradmatch`` executable and reading a study's outputs."""
import json
import os
import shutil
import subprocess
import tempfile
import warnings

import h5py
import numpy as np


class GradmatchError(RuntimeError):
    """``gradmatch`` exited with an error; ``returncode`` is its exit status
    (2: bad input) and the message is its stderr."""

    def __init__(self, message, returncode):
        super().__init__(message)
        self.returncode = returncode


class GradmatchWarning(UserWarning):
    """A warning attached to a fit result (e.g. a family explaining little of
    the target, or a rank-deficient design)."""


def find_executable(executable=None):
    """The ``gradmatch`` executable: ``executable`` if given, else the
    environment variable GRADMATCH_EXECUTABLE, else ``gradmatch`` on PATH."""
    candidate = executable or os.environ.get("GRADMATCH_EXECUTABLE") or shutil.which("gradmatch")
    if not candidate:
        raise FileNotFoundError("the gradmatch executable was not found on PATH; pass executable= or set "
                                "GRADMATCH_EXECUTABLE to its path")
    candidate = os.fspath(candidate)
    if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
        found = shutil.which(candidate)
        if not found:
            raise FileNotFoundError(f"{candidate}: not an executable file (the gradmatch executable)")
        candidate = found
    return candidate


#: ``gradmatch fit``'s on/off flags: True gives the bare flag, False or None
#: leaves it out, anything else (0, 1, "no") is a TypeError.
BOOLEAN_FLAGS = ("normalize", "nonneg", "ignore_resource_check", "quiet")


def _option_arguments(options):
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if key in BOOLEAN_FLAGS:
            if value is not None and not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"fit: {key}={value!r} ({type(value).__name__}); {key} is the on/off flag {flag}: "
                                f"pass {key}=True or {key}=False")
            if value and key != "quiet":  # fit() always passes --quiet
                args.append(flag)
            continue
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return args


def fit(path, family, executable=None, **options):
    """Runs ``gradmatch fit PATH --family FAMILY`` and returns its JSON result.

    ``path``: a version-1 equation file. ``family``: "ridge", "diag", "sym",
    "huber:beta=B", "elastic-net:beta=B" or "features". ``executable``: the
    gradmatch executable (default: GRADMATCH_EXECUTABLE, then PATH).
    ``options``: further ``gradmatch fit`` flags by name, underscores for
    dashes: ``method="qr"``, ``normalize=True``, ``nonneg=True``,
    ``rcond=1e-12``. The on/off flags (``normalize``, ``nonneg``,
    ``ignore_resource_check``) take True (the bare flag)
    or False/None (left out); any other value, 0 or 1 included, is a
    TypeError.

    The result is the JSON document as a dict (``lambda``, ``residual_ratio``,
    ``cosine``, ``condition_number``, ...); its ``warnings`` list (empty when
    there are none) is also issued as ``GradmatchWarning``. Raises
    ``GradmatchError`` when gradmatch fails (bad input: exit status 2).
    """
    if not isinstance(family, str) or not family:
        raise ValueError("family must be a non-empty string such as 'ridge' or 'features'")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such equation file")
    for taken in ("output", "family"):
        if taken in options:
            raise TypeError(f"fit(): {taken}= is set by fit() itself (it reads the result gradmatch "
                            "writes); write the returned dict with json.dump to keep it")
    flags = _option_arguments(options)
    exe = find_executable(executable)
    with tempfile.TemporaryDirectory(prefix="gradmatch-fit-") as tmp:
        out = os.path.join(tmp, "fit.json")
        # An absolute path: a file name that starts with "-" is not read as a flag.
        cmd = [exe, "fit", os.path.abspath(path), "--family", family, "--output", out, "--quiet"] + flags
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise GradmatchError(f"gradmatch fit failed (exit {proc.returncode}): {proc.stderr.strip()}",
                                 proc.returncode)
        if not os.path.isfile(out):
            raise GradmatchError(f"{exe} exited 0 but wrote no result; is it gradmatch? "
                                 "(set executable= or GRADMATCH_EXECUTABLE)", proc.returncode)
        with open(out) as f:
            result = json.load(f)
    result.setdefault("warnings", [])
    for message in result["warnings"]:
        warnings.warn(message, GradmatchWarning, stacklevel=2)
    return result


class StudyResults:
    """A study's outputs: ``summary`` (summary.json), ``run_info``
    (run_info.json), each a dict or None when absent, and ``results``:
    results.h5 as a dict {dataset path: numpy array}; ``attributes`` maps
    each object path ("/" for the root) to its HDF5 attributes. Indexing
    (``res["runs/lambda_hat"]``) reads ``results``. ``equation_files``: the
    study's equation files (``equations_*.h5``, sorted), for ``fit()``."""

    def __init__(self, directory, summary, run_info, results, attributes):
        self.directory = directory
        self.equation_files = sorted(os.path.join(directory, n) for n in os.listdir(directory)
                                     if n.startswith("equations") and n.endswith(".h5"))
        self.summary = summary
        self.run_info = run_info
        self.results = results
        self.attributes = attributes

    def __getitem__(self, name):
        return self.results[name]

    def __contains__(self, name):
        return name in self.results

    def keys(self):
        return self.results.keys()

    def __repr__(self):
        return f"StudyResults({self.directory!r}, datasets={sorted(self.results)})"


def read_results(directory):
    """Opens the outputs of ``gradmatch run CONFIG --out DIRECTORY``:
    summary.json, run_info.json and results.h5 (see ``StudyResults``).
    FileNotFoundError when the directory holds none of them; ValueError,
    naming the file, when one of them is unreadable (an interrupted study,
    a truncated copy): delete it and re-run the study, which writes the
    outputs again from its run store."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such study output directory")

    def load_json(name):
        p = os.path.join(directory, name)
        if not os.path.exists(p):
            return None
        with open(p) as f:
            try:
                return json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}: not valid JSON ({e}); was the study interrupted? "
                                 f"{_rewrite_advice(directory)}") from e

    summary, run_info = load_json("summary.json"), load_json("run_info.json")
    results, attributes = {}, {}
    h5 = os.path.join(directory, "results.h5")
    if os.path.exists(h5):
        try:
            with h5py.File(h5, "r") as f:
                attributes["/"] = _attrs(f)

                def visit(name, obj):
                    if isinstance(obj, h5py.Dataset):
                        value = obj[()]
                        if isinstance(value, bytes):
                            value = value.decode()
                        results[name] = value
                    if obj.attrs:
                        attributes[name] = _attrs(obj)
                f.visititems(visit)
        except (OSError, KeyError, RuntimeError) as e:
            raise ValueError(f"{h5}: cannot be read: the HDF5 file is truncated or corrupt ({e}); "
                             f"{_rewrite_advice(directory)}") from e
    if summary is None and run_info is None and not results:
        raise FileNotFoundError(f"{directory}: holds none of summary.json, run_info.json, results.h5")
    return StudyResults(directory, summary, run_info, results, attributes)


def _attrs(obj):
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in obj.attrs.items()}


def _rewrite_advice(directory):
    """How to get a damaged output back: a re-run rewrites only missing outputs."""
    made_by = started_in = None
    try:
        with open(os.path.join(directory, "run_info.json")) as f:
            info = json.load(f)
        made_by, started_in = info.get("created_by"), info.get("working_directory")
    except (OSError, ValueError, AttributeError):
        pass
    if isinstance(made_by, str) and made_by.startswith("gradmatch run "):
        if isinstance(started_in, str) and started_in and started_in != os.getcwd():
            command = f"`cd {started_in} && {made_by} --out {os.path.abspath(directory)}`"
        else:
            command = f"`{made_by} --out {directory}`"
    else:
        command = f"`gradmatch run CONFIG --out {directory}` with the study's config"
    store = (" from the run store store.h5 without recomputing any task"
             if os.path.exists(os.path.join(directory, "store.h5")) else "")
    return f"delete it and re-run {command}, which writes the outputs again{store}"
