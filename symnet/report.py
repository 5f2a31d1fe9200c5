"""Report: aligned text tables and number formatting for the command line, and ``symnet report``."""

import tempfile
from pathlib import Path

import numpy as np
import scipy.special
import sympy as sp
from sympy.printing.latex import LatexPrinter

from symnet.errors import SymnetError, quoted


class _Latex(LatexPrinter):
    """SymPy's LaTeX, with the step written H(x) (symnet's H(0) = 0) instead of θ(x, 0)."""

    def _print_Heaviside(self, expr, exp=None):
        text = rf"H\left({self._print(expr.args[0])}\right)"
        return rf"{text}^{{{exp}}}" if exp else text


def latex(expr):
    """LaTeX of a SymPy expression as symnet prints it."""
    return _Latex().doprint(expr)


def format_number(value):
    """Integers as they are, floats with 17 significant digits (round-trip exact)."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_table(rows, columns, headers=None):
    """An aligned plain-text table; numbers right-aligned, text left-aligned."""
    headers = headers or columns
    cells = [[format_number(row[c]) for c in columns] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[c], (int, float)) for row in rows) for c in columns]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


EXCERPT_LINES = 40


def write_report(spec, out="report", train=False, seed=0, epochs=None):
    """``symnet report``: one Markdown file (formulas in $$…$$) plus PNGs for a built-in model, a model file or a
    :class:`~symnet.models.Recipe`, written to the folder ``out`` (checked before any work).

    Holds the back-propagation equations, each activation with its derived derivative, the swell numbers,
    the generated module's path and an excerpt, and with ``train`` the loss and accuracy curves and the final
    metrics.  Returns the Markdown file's path.
    """
    from symnet import models
    from symnet.expression import derive, layered_ops, network_swell
    from symnet.network import UNROLLED_LIMIT
    from symnet.train.loop import accuracy, fit, is_classification

    recipe = spec if isinstance(spec, models.Recipe) else models.recipe(spec)
    model = recipe.model
    out = writable_folder(out, "report folder")
    plt = pyplot()
    lines = [f"# {recipe.name}: {model.describe()}", "", "```", model.summary(), "```", "",
             "## Back-propagation", ""]
    lines += [f"$${line}$$" for line in model.latex().splitlines()]
    lines += ["", "## Activations and their derived derivatives", ""]
    seen = {}
    for layer in model.layers:
        seen.setdefault(layer.activation.name, layer.activation)
    for name, f in seen.items():
        lines += [f"### {name}", "", f"$$f(t) = {latex(f.expr)}$$", f"$$f'(t) = {latex(f.derivative)}$$", "",
                  "CSE'd:", ""]
        lines += [f"$${line}$$" for line in derive(f.expr.xreplace(f.initial_values), f.variable).cse_latex()]
        if plt and f.expr != f.variable:
            lines += ["", f"![{name}]({_plot_activation(plt, f, out)})"]
        lines.append("")
    lines += ["## Expression swell", ""]
    if model.parameter_count <= UNROLLED_LIMIT:
        X, Y, *_ = recipe.prepared_data(seed=seed)
        row = network_swell(model, X[:4], Y[:4])
        lines += ["The whole loss on 4 samples unrolled into one expression in every parameter, against the "
                  "layer-level derivation:", "", format_markdown_table([row], list(row))]
    else:
        lines += [f"{model.parameter_count} parameters: too many to unroll (limit {UNROLLED_LIMIT}). "
                  "The layer-level derivation "
                  f"has {layered_ops(model)} operations, whatever the sizes."]
    net = model.compile(optimizer=recipe.make_optimizer())
    text = Path(net.path).read_text(encoding="utf-8").splitlines()
    start = next(k for k, line in enumerate(text) if line.startswith("def loss_and_gradient"))
    lines += ["", "## Generated module", "", f"`{net.path}` — `loss_and_gradient`, first {EXCERPT_LINES} lines:", "",
              "```python", *text[start:start + EXCERPT_LINES], "```", ""]
    if train:
        X_train, Y_train, X_test, Y_test, note = recipe.prepared_data(seed=seed)
        params = net.init(seed=seed)
        history = fit(net, params, X_train, Y_train, epochs=epochs or recipe.epochs, batch_size=recipe.batch_size,
                      seed=seed, validation=(X_test, Y_test), verbose=False)
        metrics = {"epochs": len(history), "train loss": net.loss(params, X_train, Y_train),
                   "test loss": net.loss(params, X_test, Y_test)}
        if is_classification(net, Y_train):
            metrics["train accuracy"] = accuracy(net, params, X_train, Y_train)
            metrics["test accuracy"] = accuracy(net, params, X_test, Y_test)
        lines += ["## Training", "", f"{net.optimizer!r}, batch {recipe.batch_size}, seed {seed}. {note}", "",
                  format_markdown_table([metrics], list(metrics)), ""]
        if plt:
            lines += [f"![training curves]({_plot_history(plt, history, out)})", ""]
        if history.stopped:
            lines += [f"Stopped: {history.stopped}", ""]
    path = out / f"{recipe.name}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def writable_folder(path, what):
    """``path`` as a folder that exists (made, with its parents, if missing) and takes new files.

    Output paths are checked with this before any work, so that a bad one fails at once, in one line, rather than
    with a traceback after minutes of work; ``what`` names the folder in the message.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise SymnetError(f"{what} {quoted(str(path))} is a file, not a folder; give a folder that exists or can be "
                          "created")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise SymnetError(f"{what} {quoted(str(path))} cannot be written to ({error.strerror}); give a folder that "
                          "exists or can be created, and that you can write to") from None
    return folder


def format_markdown_table(rows, columns):
    """A Markdown table (numbers formatted like :func:`format_number`)."""
    body = ["| " + " | ".join(format_number(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *body])


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def numpy_function(expr, variable):
    """``expr`` as a NumPy function of ``variable``, with H(0) = 0 and erf from SciPy (for plots and tables)."""
    return sp.lambdify(variable, expr, modules=[{"Heaviside": lambda x, h=0: np.heaviside(x, h),
                                                 "erf": scipy.special.erf}, "numpy"])


def _plot_activation(plt, f, out):
    x = np.linspace(-4, 4, 401)
    figure, axes = plt.subplots(figsize=(5, 3))
    for expr, label in ((f.expr, "f"), (f.derivative, "f' (derived)")):
        values = numpy_function(expr.xreplace(f.initial_values), f.variable)(x)
        axes.plot(x, np.broadcast_to(values, x.shape), label=label)
    axes.legend()
    axes.grid(alpha=0.3)
    name = "activation_" + "".join(c if c.isalnum() else "_" for c in f.name) + ".png"
    figure.tight_layout()
    figure.savefig(out / name, dpi=100)
    plt.close(figure)
    return name


def _plot_history(plt, history, out):
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].plot(history.epoch, history.loss, label="training")
    if history.val_loss[-1] is not None:
        axes[0].plot(history.epoch, history.val_loss, label="test")
    axes[0].set_title("loss")
    if history.accuracy[-1] is not None:
        axes[1].plot(history.epoch, history.accuracy, label="training")
        axes[1].plot(history.epoch, history.val_accuracy, label="test")
        axes[1].set_title("accuracy")
    for a in axes:
        a.set_xlabel("epoch")
        a.legend()
        a.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "training.png", dpi=100)
    plt.close(figure)
    return "training.png"
