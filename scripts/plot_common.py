"""What the plot scripts share: opening a run's results.h5 with a message
that says what to give instead of a traceback."""
import sys
from pathlib import Path

import h5py


def directory_argument(argv, doc):
    """The one argument of a plot script, the --out directory: its usage
    (`doc`) for -h/--help (exit 0) or any other number of arguments (exit 2)."""
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(doc)
        sys.exit(0)
    if len(argv) != 2:
        print(doc, file=sys.stderr)
        sys.exit(2)
    return Path(argv[1])


def open_results(directory, study, script):
    """DIR/results.h5 of a finished `gradmatch run` of `study`, open for
    reading; otherwise a message naming the file and exit code 2."""
    path = Path(directory) / "results.h5"

    def refuse(why):
        print(f"{script}: {why}", file=sys.stderr)
        sys.exit(2)

    if not path.is_file():
        refuse(f"{path} not found: give the --out directory of a finished `gradmatch run` (study = \"{study}\")")
    try:
        h = h5py.File(path, "r")
    except OSError as error:
        refuse(f"{path} cannot be read as HDF5 ({error}); run the study again into a new --out")
    found = h.attrs.get("study")
    if isinstance(found, bytes):
        found = found.decode()
    if found != study:
        h.close()
        refuse(f"{path} holds the results of study {found!r}, not {study!r}"
               + (f": use scripts/plot_{found}.py" if found else ""))
    return h
