"""``symnet report``: one Markdown file with a model's formulas, swell numbers, generated code and training curves.

The pieces it is made of are leaves other modules use too: :mod:`symnet.latex`, :mod:`symnet.text` (tables),
:mod:`symnet.plotting`; their names are also importable from here.
"""

from pathlib import Path

import numpy as np

from symnet import models
from symnet.expression import derive
from symnet.files import writable_folder, write_atomic
from symnet.latex import latex
from symnet.network import UNROLLED_LIMIT
from symnet.plotting import numpy_function, pyplot
from symnet.swell import layered_ops, network_swell
from symnet.text import format_markdown_table, format_number, format_table
from symnet.train.loop import accuracy, fit, is_classification

__all__ = ["write_report", "latex", "format_number", "format_table", "format_markdown_table", "pyplot",
           "numpy_function", "writable_folder"]

EXCERPT_LINES = 40


def write_report(spec, out="report", train=False, seed=0, epochs=None):
    """``symnet report``: one Markdown file (formulas in $$…$$) plus PNGs for a built-in model, a model file or a
    :class:`~symnet.models.Recipe`, written to the folder ``out`` (checked before any work).

    Holds the back-propagation equations, each activation with its derived derivative, the swell numbers,
    the generated module's path and an excerpt, and with ``train`` the loss and accuracy curves and the final
    metrics.  Returns the Markdown file's path.
    """
    recipe = spec if isinstance(spec, models.Recipe) else models.recipe(spec)
    model = recipe.model
    out = writable_folder(out, "report folder", make=True)
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
    write_atomic(path, "\n".join(lines) + "\n")
    return path


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
