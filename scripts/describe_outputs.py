#!/usr/bin/python3
"""Print the datasets of study output directories as Markdown tables.

Every results.h5 that gradmatch writes describes itself: each dataset has the
attributes `description`, `units` and `dims` (its axis names). This script
reads them back, so the "Outputs" reference (docs/outputs.md) is generated
from the files rather than written by hand:

    /usr/bin/python3 scripts/describe_outputs.py OUT_DIR [OUT_DIR ...]

Each OUT_DIR is a finished `gradmatch run` directory; its run_info.json lists
the files the run wrote.
"""
import json
import sys
from pathlib import Path

import h5py


def kind(d):
    if d.dtype.kind in "iu":
        return "int64"
    if d.dtype.kind == "f":
        return "float64"
    return "string"


def text(value):
    s = value.decode() if isinstance(value, bytes) else str(value)
    return s.replace("|", "\\|")  # a Markdown table cell


def describe(out):
    out = Path(out)
    info = json.loads((out / "run_info.json").read_text())
    lines = ["### `%s`" % info["study"], ""]
    files = ", ".join("`%s`" % f for f in info["outputs"])
    lines += ["Files a finished run holds (besides `run_info.json` and `store.h5`): %s." % files, ""]
    rows = []
    with h5py.File(out / "results.h5", "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                dims = [text(x) for x in obj.attrs.get("dims", [])]
                rows.append("| `%s` | %s | %s | %s | %s |" % (
                    name, kind(obj), "[" + ", ".join(dims) + "]" if dims else "scalar",
                    text(obj.attrs.get("units", "")), text(obj.attrs.get("description", ""))))

        f.visititems(visit)
    lines += ["| dataset | type | axes | units | description |", "|---|---|---|---|---|"]
    lines += rows
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) < 1 or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    tables = []
    for d in argv:
        for name in ("run_info.json", "results.h5"):
            if not (Path(d) / name).is_file():
                print(f"describe_outputs.py: {d}: no {name}; give the --out directory of a finished "
                      "`gradmatch run`", file=sys.stderr)
                return 2
        tables.append(describe(d))
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
