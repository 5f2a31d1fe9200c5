"""The command line: documented JSON keys, the seeds' example, one-line errors with status 2."""

import json

import pytest

from symnet.cli import main


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_derive_reproduces_the_seeds_logistic_neuron(capsys):
    status, out, _ = run(capsys, "derive", "1/(exp(-(w*x+b))+1)", "--wrt", "w,b", "--at", "x=1,w=0,b=0", "--json")
    result = json.loads(out)
    assert status == 0
    assert result["gradient"] == {"w": 0.25, "b": 0.25}
    assert set(result["latex"]) == {"w", "b"} and set(result["expressions"]) == {"w", "b"}
    assert set(result["ops"]) >= {"naive", "cse", "reverse"}


def test_derive_human_form_and_latex(capsys):
    status, out, _ = run(capsys, "derive", "x*tanh(log(1+exp(x)))", "--wrt", "x", "--latex")
    assert status == 0 and "∂f/∂x =" in out and "\\frac{\\partial f}{\\partial x}" in out and "x_{0} =" in out


def test_swell_json_has_the_documented_columns(capsys):
    status, out, _ = run(capsys, "swell", "--logistic-map", "10", "--json")
    rows = json.loads(out)["rows"]
    assert status == 0 and [r["n"] for r in rows] == list(range(1, 11))
    assert set(rows[0]) == {"n", "forward_ops", "forward_dag_ops", "naive_ops", "cse_ops", "reverse_ops", "simplified"}


def test_swell_of_a_user_expression(capsys):
    status, out, _ = run(capsys, "swell", "x*tanh(log(1+exp(x)))", "--wrt", "x")
    assert status == 0 and "naive_ops" in out and out.count("\n") == 3


@pytest.mark.parametrize("argv, fragment", [
    (["derive", "x**", "--wrt", "x"], "cannot parse"),
    (["derive", "x**2", "--wrt", "y"], "does not occur"),
    (["derive", "x**2", "--wrt", "x", "--at", "x"], "expected name=value"),
    (["derive", "x*y", "--wrt", "x", "--at", "x=1"], "no value for y"),
    (["derive", "x**2"], "required: --wrt"),
    (["swell"], "give one of: an EXPRESSION"),
    (["swell", "--logistic-map", "0"], "from 1 to 11"),
    (["swell", "--logistic-map", "12"], "from 1 to 11"),
    (["nonsense"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, fragment):
    status, out, err = run(capsys, *argv)   # usage errors too: main returns 2 rather than raising SystemExit
    assert status == 2 and out == ""
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_latex_prints_the_model_equations(capsys, tmp_path):
    status, out, _ = run(capsys, "latex", "digits", "--summary")
    assert status == 0 and "Network 64-32-10" in out
    # the δ recursion through the derived VJP of Dense, with σ' = a(1 − a) in the form the code evaluates
    assert (r"{\delta_{1}}_{r,q} = \left(\sum_{i=0}^{9} {W_{2}}_{i,q} {\delta_{2}}_{r,i}\right) \cdot "
            r"\left(- {a_{1}}_{r,q}^{2} + {a_{1}}_{r,q}\right)") in out.splitlines()
    source = tmp_path / "model.py"
    source.write_text("import symnet as sn\nmodel = sn.Sequential([sn.Dense(2, 3, sn.activations.prelu()), "
                      "sn.Dense(3, 1)], loss='mse')\n")
    status, out, _ = run(capsys, "latex", str(source))
    # PReLU's ∂f/∂γ: 0 for z > 0, else z (a user model file goes through the same derivation)
    assert status == 0 and (r"\frac{\partial L}{\partial {\gamma_{1}}_{i}} = \sum_{n} \frac{\partial L}{\partial "
                            r"{a_{1}}_{n,i}} \left(\begin{cases} 0 & \text{for}\: {z_{1}}_{n,i} > 0 \\{z_{1}}_{n,i} & "
                            r"\text{otherwise} \end{cases}\right)") in out.splitlines()
    status, _, err = run(capsys, "latex", "nosuch")
    assert status == 2 and "unknown model" in err


def test_report_writes_markdown_with_formulas_swell_module_and_training(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    status, out, _ = run(capsys, "report", "xor", "--train", "--epochs", "50", "--out", str(tmp_path))
    assert status == 0
    text = (tmp_path / "xor.md").read_text()
    for part in ("# xor: 2-2-1", "$${\\delta_{1}}_{r,q} = ", "f'(t) = H\\left(t\\right)", "| network | samples |",
                 "## Generated module", "def loss_and_gradient", "| epochs | train loss |", "![training curves]"):
        assert part in text, part
    assert (tmp_path / "training.png").exists() and (tmp_path / "activation_relu.png").exists()
    status, _, err = run(capsys, "report", "nosuch", "--out", str(tmp_path))
    assert status == 2 and "unknown model" in err
