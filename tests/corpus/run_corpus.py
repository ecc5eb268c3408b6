#!/usr/bin/python3
"""The bad-input corpus: every row of bad_inputs.tsv runs `gradmatch` on one
hostile input and checks the exit code, the message and that nothing was
left half-written.

Columns (tab-separated; '#' starts a comment line):
  id        unique case name
  exit      the expected exit code (2 bad input, 1 environment failure)
  regex     a Python regex the output (stdout + stderr) must match
  command   gradmatch's arguments, optionally after ENV=VALUE words
            (LIMIT_AS=BYTES: the command's address-space limit);
            {dir} is the case's own folder, {fx} the shared fixtures,
            {smoke} configs/smoke, {cfg} the case's config file;
            {none} alone: no arguments; {empty}: an empty argument
  inputs    files written into {dir} first, ';'-separated NAME=KIND:ARG
            (KIND: text (\\n escapes), toml (the same; NAME cfg is written
            as cfg.toml), eq:VARIANT (an equation file, see EQ below),
            fifo: (a named pipe),
            bigkey:STUDY,N (a config with an N-character key), big:STUDY,N
            (a config whose data.dir has N characters), bigstudy:N
            (a config whose study name has N characters))
  allowed   optional regex of files the command may leave in {dir}
            (default: none beyond the inputs)

After each case the folder must hold exactly the inputs (unchanged) and
the allowed files, and no *.tmp-PID or *.partial file anywhere under it;
the output holds no traceback or crash and at most 8000 characters.

Usage: run_corpus.py GRADMATCH_EXE SOURCE_DIR [TSV] [-k PATTERN] [--part K/N]
  -k PATTERN   only the cases whose id matches the regex
  --part K/N   only every N-th case from the K-th (1-based): ctest runs the
               corpus as N tests side by side where it has the cores
"""
import concurrent.futures
import hashlib
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

EXE, SRC = sys.argv[1], sys.argv[2]
TSV = sys.argv[3] if len(sys.argv) > 3 and not sys.argv[3].startswith("-") else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "bad_inputs.tsv")
ONLY = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
PART = sys.argv[sys.argv.index("--part") + 1] if "--part" in sys.argv else "1/1"


def equation_file(path, m=3, p=4, **mods):
    """A valid version-1 equation file, then `mods` applied (EQ kinds)."""
    rng = np.random.default_rng(m * 100 + p)
    theta = rng.standard_normal((m, p))
    grad = -0.6 * theta
    with h5py.File(path, "w") as f:
        f.attrs["format"] = mods.get("format", "gradmatch.equations")
        if mods.get("version", 1) is not None:
            f.attrs["version"] = mods.get("version", 1)
        if "theta" in mods:
            theta = mods["theta"]
        if "grad" in mods:
            grad = mods["grad"]
        if theta is not None:
            f["theta"] = theta
        if grad is not None:
            f["grad_loss"] = grad
        for key in ("target", "weights"):
            if key in mods:
                f[key] = mods[key]
        for name, value in mods.get("features", {}).items():
            f["features/" + name] = value


def nan_at(shape, i, j, value=np.nan):
    a = np.ones(shape)
    a[i, j] = value
    return a


EQ = {
    "ok": {},
    "no_format": {"format": "something.else"},
    "version2": {"version": 2},
    "no_version": {"version": None},
    "no_theta": {"theta": None},
    "no_grad": {"grad": None},
    "theta_1d": {"theta": np.ones(4)},
    "theta_3d": {"theta": np.ones((3, 4, 1))},
    "shapes_differ": {"grad": np.ones((3, 5))},
    "rows_differ": {"grad": np.ones((2, 4))},
    "m0": {"theta": np.ones((0, 4)), "grad": np.ones((0, 4))},
    "p0": {"theta": np.ones((3, 0)), "grad": np.ones((3, 0))},
    "nan_theta": {"theta": nan_at((3, 4), 1, 2)},
    "inf_grad": {"grad": nan_at((3, 4), 2, 0, np.inf)},
    "neginf_grad": {"grad": nan_at((3, 4), 0, 3, -np.inf)},
    "neg_weight": {"weights": np.array([1.0, -1.0, 1.0])},
    "weights_short": {"weights": np.array([1.0, 1.0])},
    "weights_2d": {"weights": np.ones((3, 1))},
    "nan_weight": {"weights": np.array([1.0, np.nan, 1.0])},
    "target_shape": {"target": np.ones((3, 5))},
    "nan_target": {"target": nan_at((3, 4), 0, 0)},
    "feature_shape": {"features": {"a": np.ones((3, 2))}},
    "nan_feature": {"features": {"a": nan_at((3, 4), 2, 2)}},
    "string_theta": {"theta": np.array([b"abc"] * 3)},
    "int_theta": {"theta": np.ones((3, 4), dtype=np.int32)},
    "wide": {"m": 1, "p": 4000},
    "vech40": {"m": 100, "p": 40},
}


def huge_equations(path):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "gradmatch.equations"
        f.attrs["version"] = 1
        for name in ("theta", "grad_loss"):
            f.create_dataset(name, shape=(10**9, 10**6), dtype="f8", chunks=(1, 1000))


def idx_dir(path, kind):
    """MNIST-format folders (IDX kinds)."""
    os.makedirs(path, exist_ok=True)
    img, lab = os.path.join(path, "train-images-idx3-ubyte"), os.path.join(path, "train-labels-idx1-ubyte")

    def write(name, magic, dims, payload):
        with open(name, "wb") as f:
            f.write(bytes([0, 0, 8, magic]) + struct.pack(">" + "I" * len(dims), *dims) + payload)

    n = 5
    images, labels = (n, 28, 28), bytes(range(n))
    if kind == "one_pixel":
        write(img, 3, (n, 1, 1), bytes(n))
        write(lab, 1, (n,), labels)
    elif kind == "declares_4e9":
        write(img, 3, (4_000_000_000, 28, 28), bytes(100))
        write(lab, 1, (4_000_000_000,), bytes(100))
    elif kind == "overflow":
        write(img, 3, (4294967295, 4294967295, 4294967295), bytes(100))
        write(lab, 1, (3,), bytes(3))
    elif kind == "truncated":
        write(img, 3, images, bytes(28 * 28 * n - 10))
        write(lab, 1, (n,), labels)
    elif kind == "trailing":
        write(img, 3, images, bytes(28 * 28 * n + 3))
        write(lab, 1, (n,), labels)
    elif kind == "bad_magic":
        with open(img, "wb") as f:
            f.write(b"\x00\x00\x09\x03" + struct.pack(">III", *images) + bytes(28 * 28 * n))
        write(lab, 1, (n,), labels)
    elif kind == "count_mismatch":
        write(img, 3, images, bytes(28 * 28 * n))
        write(lab, 1, (n + 1,), bytes(n + 1))
    elif kind == "zero_images":
        write(img, 3, (0, 28, 28), b"")
        write(lab, 1, (0,), b"")
    elif kind == "labels_2d":
        write(img, 3, images, bytes(28 * 28 * n))
        write(lab, 2, (n, 1), labels)
    elif kind == "big_label":
        write(img, 3, images, bytes(28 * 28 * n))
        write(lab, 1, (n,), bytes([0, 1, 2, 200, 3]))
    elif kind == "no_labels":
        write(img, 3, images, bytes(28 * 28 * n))
    elif kind == "gz_corrupt":
        with open(img + ".gz", "wb") as f:
            f.write(b"\x1f\x8b\x08\x00garbage-not-deflate")
        write(lab, 1, (n,), labels)
    elif kind == "short_header":
        with open(img, "wb") as f:
            f.write(bytes([0, 0, 8, 3, 0, 0]))
        write(lab, 1, (n,), labels)
    elif kind in ("test_14x14", "test_ok"):  # both splits; the test images 14 x 14 or, like the training ones, 28 x 28
        write(img, 3, images, bytes(28 * 28 * n))
        write(lab, 1, (n,), labels)
        side = 14 if kind == "test_14x14" else 28
        write(os.path.join(path, "t10k-images-idx3-ubyte"), 3, (n, side, side), bytes(side * side * n))
        write(os.path.join(path, "t10k-labels-idx1-ubyte"), 1, (n,), labels)
    else:
        raise ValueError(kind)


def make_fixtures(fx):
    """Shared inputs: a valid equation file, TorchScript models, data sets."""
    equation_file(os.path.join(fx, "eq.h5"))
    huge_equations(os.path.join(fx, "huge.h5"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 5))
    y = rng.standard_normal(20)

    def data(name, xv, yv):
        with h5py.File(os.path.join(fx, name), "w") as f:
            if xv is not None:
                f["X"] = xv
            if yv is not None:
                f["y"] = yv

    data("d5.h5", x, y)
    x_nan = x.copy()
    x_nan[7, 2] = np.nan
    data("d5_nan.h5", x_nan, y)
    y_inf = y.copy()
    y_inf[3] = np.inf
    data("d5_inf_y.h5", x, y_inf)
    data("d5_labels.h5", x, np.array([0, 1, 2, 3] * 4 + [200, 1, 2, 3], dtype="f8"))
    data("d5_neg_label.h5", x, np.array([0, 1, -1] + [0] * 17, dtype="f8"))
    data("d5_frac_label.h5", x, np.array([0.5] + [0] * 19, dtype="f8"))
    data("d5_y2col.h5", x, np.ones((20, 2)))
    data("d5_yrows.h5", x, np.ones(19))
    data("d5_x1d.h5", np.ones(20), y)
    data("d5_noX.h5", None, y)
    data("d5_noy.h5", x, None)
    data("d0.h5", np.zeros((0, 5)), np.zeros(0))
    for name, value in (("pen_nan.h5", np.nan), ("pen_neg.h5", -1.0)):  # bootstrap penalty files (dataset lambda)
        with h5py.File(os.path.join(fx, name), "w") as f:
            f["lambda"] = np.array([value])
    with open(os.path.join(fx, "notes.txt"), "w") as f:
        f.write("not a model\n")
    script = os.path.join(fx, "models.py")
    with open(script, "w") as f:
        f.write(
            "import sys, torch\n"
            "class M(torch.nn.Module):\n"
            "    def __init__(self, i: int, h: int, o: int):\n"
            "        super().__init__()\n"
            "        self.fc1 = torch.nn.Linear(i, h)\n"
            "        self.fc2 = torch.nn.Linear(h, o)\n"
            "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
            "        return self.fc2(torch.relu(self.fc1(x)))\n"
            "torch.manual_seed(0)\n"
            "for name, i, h, o in [('m784', 784, 8, 10), ('m5', 5, 8, 1), ('m5h4', 5, 4, 1), ('m5x3', 5, 8, 3),\n"
            "                      ('m5x10', 5, 8, 10)]:\n"
            "    torch.jit.script(M(i, h, o)).save(sys.argv[1] + '/' + name + '.pt')\n")
    subprocess.run([sys.executable, script, fx], check=True)
    for kind in ("one_pixel", "declares_4e9", "overflow", "truncated", "trailing", "bad_magic", "count_mismatch",
                 "zero_images", "labels_2d", "big_label", "no_labels", "gz_corrupt", "short_header", "test_14x14",
                 "test_ok"):
        idx_dir(os.path.join(fx, "idx_" + kind), kind)


def unescape(text):
    return text.replace("\\t", "\t").replace("\\n", "\n")


def write_inputs(case_dir, spec):
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        name, _, rest = item.partition("=")
        kind, _, arg = rest.partition(":")
        path = os.path.join(case_dir, "cfg.toml" if name == "cfg" else name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if kind in ("text", "toml"):
            with open(path, "w") as f:
                f.write(unescape(arg))
        elif kind == "big":  # study = "<study>" plus a key whose string value is N bytes
            study, _, size = arg.partition(",")
            with open(path, "w") as f:
                f.write(f'study = "{study}"\n[data]\ndir = "' + "x" * int(size) + '"\n')
        elif kind == "bigkey":
            study, _, size = arg.partition(",")
            with open(path, "w") as f:
                f.write(f'study = "{study}"\n' + "k" * int(size) + " = 1\n")
        elif kind == "bigstudy":  # study = "zzz..." (ARG characters)
            with open(path, "w") as f:
                f.write('study = "' + "z" * int(arg) + '"\n')
        elif kind == "eq":
            equation_file(path, **EQ[arg])
        elif kind == "fifo":  # a named pipe no one writes: a reader that opens it waits for ever
            os.mkfifo(path)
        else:
            raise ValueError(f"unknown input kind {kind}")


def snapshot(case_dir):
    out = {}
    for root, _, files in os.walk(case_dir):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.isfile(p):  # a pipe (fifo inputs): opening it would wait for a writer
                out[os.path.relpath(p, case_dir)] = "not a regular file"
                continue
            with open(p, "rb") as f:
                out[os.path.relpath(p, case_dir)] = hashlib.sha1(f.read()).hexdigest()
    return out


def run_case(row, work, fx):
    cid, code, regex, command = row[:4]
    inputs = row[4] if len(row) > 4 else ""
    allowed = row[5] if len(row) > 5 and row[5] else None
    case_dir = os.path.join(work, cid)
    os.makedirs(case_dir)
    write_inputs(case_dir, inputs.replace("{fx}", fx))
    before = snapshot(case_dir)
    command = (command.replace("{dir}", case_dir).replace("{fx}", fx).replace("{cfg}", os.path.join(case_dir, "cfg.toml"))
               .replace("{smoke}", os.path.join(SRC, "configs", "smoke")))
    words = command.split(" ")
    env = dict(os.environ)
    limit = None
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        key, _, value = words.pop(0).partition("=")
        if key == "LIMIT_AS":  # not a variable: the address-space limit (bytes) of the command
            limit = int(value)
        else:
            env[key] = value
    t0 = time.monotonic()
    def limit_memory():
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    argv = [EXE] + ["" if w == "{empty}" else w for w in words if w not in ("", "{none}")]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                          cwd=case_dir, timeout=120, preexec_fn=limit_memory)
    seconds = time.monotonic() - t0
    output = proc.stdout + proc.stderr
    problems = []
    if proc.returncode != int(code):
        problems.append(f"exit code {proc.returncode}, expected {code}")
    if not re.search(regex, output, re.S):
        problems.append(f"output does not match /{regex}/")
    if "Traceback" in output or "terminate called" in output or "Signal:" in output:
        problems.append("a traceback or a crash in the output")
    if len(output) > 8000:
        problems.append(f"{len(output)} characters of output: an input echoed whole?")
    after = snapshot(case_dir)
    for name, digest in before.items():
        if after.get(name) != digest:
            problems.append(f"input {name} was changed or removed")
    for name in after:
        if name in before:
            continue
        if re.search(r"\.tmp-\d+$|\.partial$", name):
            problems.append(f"half-written file left behind: {name}")
        elif not (allowed and re.fullmatch(allowed, name)):
            problems.append(f"unexpected file written: {name}")
    return cid, problems, output, seconds


def main():
    rows = []
    with open(TSV) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            row = line.split("\t")
            if len(row) < 4:
                sys.exit(f"{TSV}: malformed row: {line!r}")
            rows.append(row)
    ids = [r[0] for r in rows]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        sys.exit(f"{TSV}: duplicate ids: {sorted(dup)}")
    if ONLY:
        rows = [r for r in rows if re.search(ONLY, r[0])]
    part = re.fullmatch(r"([1-9][0-9]*)/([1-9][0-9]*)", PART)
    if not part or int(part.group(1)) > int(part.group(2)):
        sys.exit(f"--part {PART!r}: expected K/N with 1 <= K <= N, e.g. 2/3")
    rows = rows[int(part.group(1)) - 1::int(part.group(2))]
    work = tempfile.mkdtemp(prefix="gradmatch_corpus_")
    try:
        return run_all(rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(rows, work):
    fx = os.path.join(work, "_fixtures")
    os.makedirs(fx)
    t0 = time.monotonic()
    make_fixtures(fx)
    failures = 0
    slow = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=int(os.environ.get("GRADMATCH_CORPUS_JOBS", "2"))) as pool:
        for cid, problems, output, seconds in pool.map(lambda r: run_case(r, work, fx), rows):
            slow.append((seconds, cid))
            if problems:
                failures += 1
                print(f"FAIL {cid}: " + "; ".join(problems))
                print("  output: " + output.strip().replace("\n", "\n          ")[:2000])
    slow.sort(reverse=True)
    print(f"{len(rows) - failures}/{len(rows)} bad-input cases passed in {time.monotonic() - t0:.1f} s "
          f"(slowest: {', '.join(f'{c} {s:.2f} s' for s, c in slow[:3])})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
