"""What every example shares: its command line (--quick, --out) and saving a figure when matplotlib is there."""

import argparse
from pathlib import Path

from symnet.plotting import pyplot

__all__ = ["arguments", "plot_curves", "pyplot", "save"]


def arguments(description, argv=None):
    """``--quick`` (small settings, as the tests run them) and ``--out DIR`` (where PNGs go)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small settings: runs in a second or two")
    parser.add_argument("--out", default="examples/output", help="folder for the PNG figures")
    return parser.parse_args(argv)


def save(figure, out, name):
    """Write ``figure`` to ``out/name`` and say where."""
    path = Path(out) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    figure.clf()
    print(f"figure: {path}")
    return path


def plot_curves(out, name, curves, xlabel, ylabel, x=None, log=False, **style):
    """``{label: values}`` as lines on one axes (log y with ``log``), written to ``out/name``; nothing without
    matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(figsize=(6, 4))
    for label, values in curves.items():
        (axes.semilogy if log else axes.plot)(*([] if x is None else [x]), values, label=label, **style)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.legend()
    axes.grid(alpha=0.3)
    return save(figure, out, name)
