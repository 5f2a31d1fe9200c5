"""What users look at in Jupyter and a terminal: a derivation, an optimizer's rule, a comparison, a stability rewrite
(``_repr_latex_``, ``_repr_markdown_``, ``repr``), ``symnet latex --optimizer`` and the training progress.

The LaTeX is checked against ``sympy.latex`` of expressions built here, independently of symnet's own; the
optimizers' rules as the notes write them are proven equal to the rules the generated code runs.
"""

import fcntl
import json
import math
import os
import struct
import sys
import termios
import threading

import mpmath
import pytest
import sympy as sp
from sympy.codegen.cfunctions import log1p

import symnet as sn
from symnet import models, rewrites
from symnet.cli import main
from symnet.compare import compare
from symnet.declare import losses
from symnet.declare import optimizers as rules
from symnet.train.loop import Progress

w, x, b = sp.symbols("w x b", real=True)
u = sp.Symbol("u", real=True)


def displayed(text):
    """The body of a ``$$…$$`` display, after checking its environments are balanced."""
    assert text.startswith("$$") and text.endswith("$$")
    body = text[2:-2]
    assert body.count(r"\begin{aligned}") == body.count(r"\end{aligned}") == 1
    braces = body.replace(r"\{", "").replace(r"\}", "")
    assert braces.count("{") == braces.count("}")
    return body


# --- a derivation ---------------------------------------------------------------------------------------------

def test_a_derivation_shows_f_and_its_gradient():
    derivation = sn.derive("w**2*x + sin(b)", wrt="w,b")
    body = displayed(derivation._repr_latex_())
    assert rf"f &= {sp.latex(w**2 * x + sp.sin(b))}" in body
    assert rf"\frac{{\partial f}}{{\partial w}} &= {sp.latex(2 * w * x)}" in body
    assert rf"\frac{{\partial f}}{{\partial b}} &= {sp.latex(sp.cos(b))}" in body
    text = repr(derivation)
    assert f"∂f/∂w = {2 * w * x}" in text and f"∂f/∂b = {sp.cos(b)}" in text
    assert text.startswith(f"Derivation of f = {w**2 * x + sp.sin(b)} with respect to w, b")


def test_the_cse_form_is_sympys_cse_of_the_naive_gradient():
    f = sp.exp(w * x) * w
    replacements, (reduced,) = sp.cse([sp.diff(f, w)])      # SymPy's own, on an expression built here
    body = displayed(sn.derive("exp(w*x)*w", wrt="w")._repr_latex_())
    heading = body.index("after common-subexpression elimination")
    for name, value in replacements:
        assert rf"{sp.latex(name)} &= {sp.latex(value)}" in body[heading:]
    assert rf"\frac{{\partial f}}{{\partial w}} &= {sp.latex(reduced)}" in body[heading:]
    text = repr(sn.derive("exp(w*x)*w", wrt="w"))
    assert all(f"{name} = {value}" in text for name, value in replacements)


# --- optimizers ------------------------------------------------------------------------------------------------

def run_assignments(assignments, shown=rules.SHOWN_ONLY):
    """Each target's value after the assignments run in order, in terms of the values before."""
    values = {}
    for target, value in assignments:
        values[target] = sp.sympify(value).xreplace(shown).xreplace(values)
    return values


@pytest.mark.parametrize("name", sorted(rules.OPTIMIZERS))
def test_the_rule_as_the_notes_write_it_is_the_rule_the_code_runs(name):
    optimizer = rules.OPTIMIZERS[name]()
    runs, shown = run_assignments(optimizer.rule()), run_assignments(optimizer.notes())
    assert set(runs) <= set(shown) and rules.theta in runs
    for target, value in runs.items():
        assert sp.simplify(shown[target] - value) == 0, (name, target)
    lines = optimizer.latex()
    assert lines[0].startswith(r"g \leftarrow \nabla_{\theta} L\left(")
    assert (r"t \leftarrow t + 1" in lines) == optimizer.counts_steps
    body = displayed(optimizer._repr_latex_())
    assert all(line.replace(r" \leftarrow ", r" &\leftarrow ", 1) in body for line in lines)


def test_adam_shows_the_bias_correction_at_step_t():
    """The notes' Adam, with 1 − ρᵗ (the notes' erratum divides by 1 − ρ): pieces built here with the notes' letters."""
    rho1, rho2, eta, epsilon = (sp.Symbol(name) for name in (r"\rho_{1}", r"\rho_{2}", r"\eta", r"\epsilon"))
    s, r, t, g = sp.symbols("s r t g")
    s_hat, r_hat = sp.Symbol(r"\hat{s}"), sp.Symbol(r"\hat{r}")
    lines = sn.optim.Adam().latex()
    assert lines[1] == r"t \leftarrow t + 1"
    assert lines[4] == rf"\hat{{s}} \leftarrow {sp.latex(s / (1 - rho1**t))}"
    assert lines[5] == rf"\hat{{r}} \leftarrow {sp.latex(r / (1 - rho2**t))}"
    assert lines[2] == rf"s \leftarrow {sp.latex(rho1 * s)} + \left({sp.latex(1 - rho1)}\right) {sp.latex(g)}"
    assert lines[3] == rf"r \leftarrow {sp.latex(rho2 * r)} + \left({sp.latex(1 - rho2)}\right) g \odot g"
    assert lines[6] == rf"\theta \leftarrow \theta - {sp.latex(eta)} {sp.latex(s_hat / (epsilon + sp.sqrt(r_hat)))}"
    body = displayed(sn.optim.Adam(lr=0.002, eps=1e-8)._repr_latex_())
    assert r"\eta = 0.002" in body and r"\epsilon = 10^{-8}" in body and r"\rho_{2} = 0.999" in body
    assert repr(sn.optim.Adam()) == "Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-07)"


def test_adam_as_shown_takes_the_same_step_as_a_hand_written_adam():
    """Numbers, not symbols: the rule of the notes, evaluated, against Adam written out here in NumPy."""
    optimizer = sn.optim.Adam(lr=0.01)
    theta, g, s, r, t = 0.3, -0.7, 0.05, 0.2, 3.0
    expected_s, expected_r = 0.9 * s + 0.1 * g, 0.999 * r + 0.001 * g * g
    expected = theta - 0.01 * (expected_s / (1 - 0.9**t)) / (1e-7 + math.sqrt(expected_r / (1 - 0.999**t)))
    values = run_assignments(optimizer.notes())
    at = {rules.theta: theta, rules.g: g, rules.s: s, rules.r: r, rules.t: t, rules.lr: 0.01, rules.beta1: 0.9,
          rules.beta2: 0.999, rules.eps: 1e-7}
    assert float(values[rules.theta].xreplace(at)) == pytest.approx(expected, rel=1e-14)


# --- symnet latex --optimizer --------------------------------------------------------------------------------

def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("name", [*rules.OPTIMIZERS, "adam", "rmspropnesterov"])
def test_latex_prints_each_optimizers_rule(capsys, name):
    optimizer = rules.get(name)
    status, out, err = run(capsys, "latex", "--optimizer", name)
    assert status == 0 and err == ""
    header, *lines = out.splitlines()
    assert header.startswith(f"% {optimizer!r}") and lines == optimizer.latex()
    status, out, _ = run(capsys, "latex", "--optimizer", name, "--json")
    result = json.loads(out)["optimizer"]
    assert status == 0 and result["name"] == type(optimizer).__name__ and result["rule"] == optimizer.latex()
    assert result["hyperparameters"] == {h.name: getattr(optimizer, h.name) for h in optimizer.hyperparameters}


def test_latex_optimizer_with_a_model_and_bad_input(capsys):
    status, out, _ = run(capsys, "latex", "xor", "--optimizer", "adam", "--json")
    result = json.loads(out)
    assert status == 0 and result["model"] == "xor" and result["optimizer"]["name"] == "Adam"
    assert result["equations"] and all(isinstance(line, str) for line in result["equations"])
    for argv, fragment in [(["latex", "--optimizer", "adamw"], "unknown optimizer 'adamw'"),
                           (["latex"], "needs a MODEL"), (["latex", "--summary", "--optimizer", "sgd"], "--summary")]:
        status, out, err = run(capsys, *argv)
        assert status == 2 and out == "" and fragment in err and err.count("\n") == 1
        status, out, err = run(capsys, *argv, "--json")
        assert status == 2 and err == "" and fragment in json.loads(out)["error"]


# --- compare -------------------------------------------------------------------------------------------------

def test_a_comparison_is_a_table_in_markdown_and_text():
    comparison = compare("exp(2*x)", "x", {"x": 0.5}, steps=["1e-3", "1e-6"], timings=False)
    exact = float(2 * mpmath.e)                          # d/dx e^(2x) at 0.5, computed here
    rows = comparison.rows()
    assert [row["method"] for row in rows[:5]] == ["reference", "symbolic (naive)", "symbolic (reverse, DAG)",
                                                   "forward AD", "reverse AD"]
    assert len(rows) == 5 + 2 * len(comparison.numeric)
    assert rows[0]["∂f/∂x"] == exact and rows[1]["∂f/∂x"] == pytest.approx(exact, rel=1e-15)
    central = next(row for row in rows if row["method"] == "central" and row["h"] == "1e-3")
    assert central["∂f/∂x"] == pytest.approx(exact, rel=1e-5) and central["∂f/∂x"] != exact
    assert float(central["error x"]) == pytest.approx(abs(central["∂f/∂x"] - exact) / exact, rel=0.05)
    markdown = comparison._repr_markdown_()
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert table[0] == "| method | h | ∂f/∂x | error x | µs/gradient |" and table[1] == "|---|---|---|---|---|"
    assert len(table) == 2 + len(rows) and f"| reference | - | {exact!r} | - | - |" in table
    assert markdown.startswith("`f = exp(2*x)` at `x=0.5`")
    text = repr(comparison)
    assert text.splitlines()[0].startswith("f = exp(2*x) at x=0.5") and len(text.splitlines()) == 3 + len(rows)


# --- stability rewrites --------------------------------------------------------------------------------------

def test_the_softplus_rewrite_shows_both_forms_and_where_it_was_checked():
    rewrite = rewrites.IDENTITIES["softplus"]
    body = displayed(rewrite._repr_latex_())
    assert sp.latex(sp.log(1 + sp.exp(u))) in body
    assert sp.latex(log1p(sp.exp(-sp.Abs(u))) + sp.Max(0, u)) in body
    assert all(f"u = {value:g}" in body for value in rewrites.CHECK_POINTS)
    check = rewrite.check
    assert check["equal"] and check["difference"] < rewrites.TOLERANCE and check["finite"]
    (low, before_low, after_low), (high, before_high, after_high) = check["extremes"]
    assert high == {u: 1000.0} and before_high == math.inf and after_high == 1000.0   # log(1 + e^1000) = 1000
    assert before_low == after_low == 0.0
    text = repr(rewrite)
    assert "equal at u = -3.5; u = -0.25; u = 0; u = 0.7; u = 4" in text
    assert "in float64 at u = 1000: before inf, after 1000.0" in text


def test_a_wrong_rewrite_is_shown_as_not_equal():
    """The check is not vacuous: a form that is not equal to the one it replaces is reported."""
    wrong = rewrites.Rewrite("wrong", sp.log(1 + sp.exp(u)), sp.Max(0, u), tuple({u: v} for v in (-1.0, 2.0)))
    assert not wrong.check["equal"] and wrong.check["difference"] == pytest.approx(math.log1p(math.exp(-1)))
    assert "NOT EQUAL" in repr(wrong) and "NOT EQUAL" in wrong._repr_latex_()


def test_the_log_sum_exp_shift_of_softmax_cross_entropy():
    loss = losses.get("softmax_cross_entropy")
    points, extremes = rewrites.loss_points(losses.o, losses.y, losses.K)
    rewrite = rewrites.rewrite("log-sum-exp shift", loss.declared, loss.stable_value, points, extremes)
    o, y, k, K = sp.IndexedBase("o", real=True), sp.IndexedBase("y", real=True), sp.Idx("k"), sp.Symbol("K")
    targets = sp.Sum(o[k] * y[k], (k, 0, K - 1))
    declared = sp.log(sp.Sum(sp.exp(o[k]), (k, 0, K - 1))) - targets
    m = r"\max_{k} {o}_{k}"        # the shift m = max_k o_k, shown as what it is
    shifted = rf"\log{{\left(\sum_{{k=0}}^{{K - 1}} e^{{{{o}}_{{k}} - {m}}} \right)}} + {m} - {sp.latex(targets)}"
    body = displayed(rewrite._repr_latex_())
    assert rf"& {sp.latex(declared)} \\ \longrightarrow &\  {shifted} \\" in body
    assert "o = (0.3, -1.2, 0.7), y = (0, 1, 0);" in body
    assert rewrite.check["equal"]
    ((point, before, after),) = rewrite.check["extremes"]
    # o = (1000, −1000, 0), y picks o_1: ℓ = log Σ e^o − o_1 = 1000 + log(1 + e^−1000 + e^−2000) + 1000
    assert before == math.inf and after == 2000.0
    assert rewrites.rewrite("mse", losses.get("mse").declared, losses.get("mse").stable_value, points) is None


def test_activation_rewrites_only_where_the_stable_form_differs():
    t = sn.activations.t
    softplus = rewrites.of_one_variable("softplus", sp.log(1 + sp.exp(t)), t)
    assert softplus.check["equal"] and softplus.check["finite"] and softplus.after == sp.Max(0, t) + log1p(
        sp.exp(-sp.Abs(t)))
    assert rewrites.of_one_variable("tanh", sp.tanh(t), t) is None
    gradient = losses.get("binary_cross_entropy")
    points, extremes = rewrites.loss_points(losses.o, losses.y, losses.K, index=losses.j)
    logistic = rewrites.rewrite("logistic", gradient.gradient, gradient.stable_gradient, points, extremes)
    assert logistic.check["equal"] and logistic.check["finite"]
    point, before, after = logistic.check["extremes"][0]          # ∂ℓ/∂o_0 at o_0 = 1000, y_0 = 0: σ(1000) = 1
    assert point[losses.j] == 0 and math.isnan(before) and after == 1.0   # e^1000/(e^1000 + 1) is inf/inf


# --- training progress ---------------------------------------------------------------------------------------

def pseudo_terminal(columns=100):
    """A pseudo-terminal (writable text file, its output so far as a function)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    chunks = []

    def drain():
        while True:
            try:
                chunks.append(os.read(master, 65536))
            except OSError:
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stream = os.fdopen(slave, "w", buffering=1)

    def output():
        stream.close()            # the reader sees the end
        reader.join(timeout=5)
        os.close(master)
        return b"".join(chunks).decode()

    return stream, output


def xor_net():
    """The built-in xor model, whose module `symnet report xor --train` also uses (tests/test_cli.py)."""
    recipe = models.builtin("xor")
    return recipe.model.compile(optimizer=recipe.make_optimizer())


def test_progress_on_a_terminal_is_a_tqdm_bar_under_one_line_per_epoch(monkeypatch):
    data = sn.datasets.load("xor")
    net = xor_net()
    stream, output = pseudo_terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    sn.fit(net, net.init(seed=0), data.X, data.Y, epochs=3, batch_size=1, seed=0)       # verbose=None: a terminal
    monkeypatch.undo()
    text = output()
    assert "epoch 1/3   0%|" in text and "| ? left" in text                               # tqdm's bar, drawn at once
    where = [text.index(f"\r\033[Kepoch {k}/3: loss ") for k in (1, 2, 3)]      # each line clears the bar's line
    assert where == sorted(where) and text.count(": loss ") == 3
    assert text.endswith("\r")                                                            # the bar is cleared at the end


def test_progress_is_quiet_off_a_terminal_unless_asked(capsys):
    data = sn.datasets.load("xor")
    net = xor_net()
    sn.fit(net, net.init(seed=0), data.X, data.Y, epochs=2, seed=0)
    assert capsys.readouterr().err == ""
    sn.fit(net, net.init(seed=0), data.X, data.Y, epochs=2, seed=0, verbose=True)
    err = capsys.readouterr().err
    assert err.startswith("epoch 1/2: loss ") and err.count("\n") == 2 and "\r" not in err and "%|" not in err
    progress = Progress(True, 2, stream=sys.stdout)
    assert progress.bar is None                                                           # lines only


def test_the_bar_counts_the_steps_of_the_epochs_to_run():
    """45 steps per epoch: after 10 steps of epoch 2 of 3, 55 of 135 steps have run (41 %); resumed after epoch 1,
    10 of 90 (11 %)."""
    for start, shown in ((0, "epoch 2/3  41%|"), (1, "epoch 2/3  11%|")):
        stream, output = pseudo_terminal()
        with Progress(None, 3, stream=stream, start=start, steps=45) as progress:
            progress.last_draw = 0.0                      # a draw is due
            progress.update(2, 10, 45, 0.25)
        text = output()
        assert shown in text and "left, loss 0.25" in text, text


def test_models_and_compiled_networks_render_their_equations(tmp_path):
    model = sn.Sequential([sn.Dense(2, 4, "softplus"), sn.Dense(4, 1)], loss="binary_cross_entropy")
    assert repr(model) == ("Sequential([Dense(2, 4, activation='softplus'), Dense(4, 1, activation='identity')], "
                           "loss='binary_cross_entropy')")
    shown = model._repr_latex_()
    assert shown.startswith("$$\\begin{aligned}") and "{a_{1}}_{n,i} & =" in shown
    rewrites = model.stability_rewrites()
    assert [r.name for r in rewrites] == ["layer 1: softplus", "layer 1: softplus'",
                                          "binary_cross_entropy: logit form", "binary_cross_entropy: ∂ℓ/∂o_j"]
    assert all(r.check["equal"] and r.check["finite"] for r in rewrites)
    digits = sn.Sequential([sn.Dense(64, 32, "sigmoid"), sn.Dense(32, 10)], loss="softmax_cross_entropy")
    assert [r.name for r in digits.stability_rewrites()] == ["softmax_cross_entropy: log-sum-exp shift"]
    net = model.compile(optimizer=sn.optim.Adam(lr=0.01), directory=tmp_path)
    assert repr(net).splitlines()[:3] == [
        "CompiledNetwork 2-4-1 (softplus, identity; binary_cross_entropy), float64",
        "  parameters: 17 (W1 (4, 2), b1 (4,), W2 (1, 4), b2 (1,))",
        "  optimizer: Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-07)"]
    assert r"\leftarrow" in net._repr_latex_() and r"1 - \rho_{1}^{t}" in net._repr_latex_()
