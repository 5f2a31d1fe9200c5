"""examples/tour.ipynb runs top to bottom in a Jupyter kernel and shows what it says: formulas, a trained network,
a comparison table.

The kernel is this interpreter (a kernel spec written for the test, not whatever ``python`` is first on PATH) with
the test cache of generated modules (conftest.py), so the notebook reuses the modules the other tests compile.
The notebook is stored without outputs; the test reads the outputs of its own run.
"""

import json
import os
import re
import sys
from pathlib import Path

import pytest

from symnet.generate import modules

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TOUR = Path(__file__).resolve().parent.parent / "examples" / "tour.ipynb"
KERNEL = "symnet-tests"
CELL_SECONDS = 300        # a cold cache compiles the digits network's module (about a minute on a busy machine)


@pytest.fixture(scope="module")
def tour(tmp_path_factory, test_cache):
    """The tour, executed: ``{tag: outputs}`` of its tagged cells."""
    generated, records = test_cache
    data = tmp_path_factory.mktemp("jupyter")
    spec = data / "kernels" / KERNEL
    spec.mkdir(parents=True)
    environment = {modules.ENVIRONMENT_VARIABLE: str(generated), modules.RECORD_VARIABLE: str(records)}
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "symnet tests", "language": "python", "env": environment}))
    saved = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(data)            # where the kernel spec is found
    try:
        notebook = nbformat.read(TOUR, as_version=4)
        work = tmp_path_factory.mktemp("tour")
        nbclient.NotebookClient(notebook, kernel_name=KERNEL, timeout=CELL_SECONDS,
                                resources={"metadata": {"path": str(work)}}).execute()
    finally:
        if saved is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = saved
    return {tag: cell.outputs for cell in notebook.cells for tag in cell.metadata.get("tags", [])}


def data_of(outputs, kind):
    """The ``kind`` (e.g. text/latex) of a cell's result."""
    (result,) = [output for output in outputs if output.output_type == "execute_result"]
    return result.data[kind]


def printed(outputs):
    return "".join(output.text for output in outputs if output.output_type == "stream" and output.name == "stdout")


def test_the_stored_tour_has_no_outputs():
    """The file stays the same whoever runs it: outputs are made by running it, here and in Jupyter."""
    notebook = nbformat.read(TOUR, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert notebook.metadata.kernelspec.name == "python3"


def test_the_derivation_renders_as_formulas(tour):
    latex = data_of(tour["derive"], "text/latex")
    assert latex.startswith("$$") and latex.endswith("$$")
    assert r"\frac{\partial f}{\partial w} &=" in latex and r"\frac{\partial f}{\partial b} &=" in latex
    assert "after common-subexpression elimination" in latex
    assert data_of(tour["derive"], "text/plain").startswith("Derivation of f = 1/(exp(-b - w*x) + 1)")
    # σ'(0) = 1/4 at x = 1: the seeds' logistic neuron
    assert data_of(tour["gradient"], "text/plain") == "{'w': 0.25, 'b': 0.25}"


def test_the_network_trains_and_its_optimizer_renders(tour):
    assert printed(tour["model"]).startswith("Network 64-32-10 (sigmoid, identity; softmax_cross_entropy)")
    rule = data_of(tour["optimizer"], "text/latex")
    assert r"\frac{s}{1 - \rho_{1}^{t}}" in rule and r"\frac{r}{1 - \rho_{2}^{t}}" in rule and r"\eta = 0.01" in rule
    assert data_of(tour["optimizer"], "text/plain") == "Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-07)"
    (accuracy,) = re.findall(r"test accuracy after 5 epochs: (\d\.\d+)", printed(tour["fit"]))
    assert float(accuracy) > 0.9


def test_the_rewrite_and_the_comparison_render(tour):
    rewrite = data_of(tour["rewrite"], "text/latex")
    assert r"\log{\left(e^{u} + 1 \right)}" in rewrite and "equal at" in rewrite and r"\infty" in rewrite
    table = data_of(tour["compare"], "text/markdown")
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0] == "| method | h | ∂f/∂w | error w | ∂f/∂b | error b | µs/gradient |"
    assert [row.split(" | ")[0] for row in rows[1:6]] == ["| reference", "| symbolic (naive)",
                                                          "| symbolic (reverse, DAG)", "| forward AD", "| reverse AD"]
    assert len(rows) == 6 + 5 * 3                      # five numeric methods at three steps
