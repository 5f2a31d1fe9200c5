"""`symnet compare`: the seeds' worked examples, AD against symbolic and mpmath, the V-curve, the CLI."""

import json
import random

import mpmath
import numpy as np
import pytest

import symnet as sn
from symnet.cli import main
from symnet.compare import Graph, compare, cost_scaling, peer_gradients, plot_errors
from symnet.errors import ExpressionError
from tests.test_expression import CASES, IDS


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_the_seeds_e_to_the_x_table_digit_for_digit(capsys):
    status, out, _ = run(capsys, "compare", "exp(x)", "--wrt", "x", "--at", "x=0", "--steps", "0.1,0.01,0.001",
                         "--json")
    numeric = json.loads(out)["numeric"]
    assert status == 0
    # the table of note 001, as printed by Python there, digit for digit on every CPU: symnet evaluates e^x
    # correctly rounded (mpmath, then one rounding); NumPy's SIMD exp on AVX-512 would end backward h = 0.01 in
    # …2004 instead of …1893
    seeds = {"forward": {"0.1": 1.0517091807564771, "0.01": 1.005016708416795, "0.001": 1.0005001667083846},
             "backward": {"0.1": 0.9516258196404048, "0.01": 0.9950166250831893, "0.001": 0.9995001666249781},
             "central": {"0.1": 1.001667500198441, "0.01": 1.0000166667499921, "0.001": 1.0000001666666813}}
    for method, table in seeds.items():
        assert numeric[method] == table, method
    assert "0.9950166250831893" in run(capsys, "compare", "exp(x)", "--wrt", "x", "--at", "x=0", "--steps",
                                       "0.1,0.01,0.001")[1]


def test_scalar_functions_are_correctly_rounded():
    """The compare tables' elementary functions against mpmath at 60 digits, rounded once (an independent
    evaluation): equal to the last bit, which NumPy's and libm's are not promised to be."""
    import mpmath

    from symnet.compare import ROUNDED
    rng = np.random.default_rng(3)
    for name, reference in (("exp", mpmath.exp), ("log", mpmath.log), ("sin", mpmath.sin), ("tanh", mpmath.tanh),
                            ("erf", mpmath.erf), ("arctan", mpmath.atan)):
        for x in rng.uniform(0.01, 5.0, 200):
            with mpmath.workdps(60):
                assert getattr(ROUNDED, name)(x) == float(reference(mpmath.mpf(x))), (name, x)
    assert np.isnan(ROUNDED.log(-1.0)) and np.isnan(ROUNDED.sqrt(-1.0)) and ROUNDED.exp(1000.0) == np.inf


def test_logistic_neuron_traces_follow_the_seeds_six_steps():
    comparison = compare("1/(exp(-(w*x+b))+1)", "w,b", {"x": 1, "w": 0, "b": 0}, timings=False)
    forward = comparison.forward_trace()
    assert [row["definition"] for row in forward] == ["w·x", "h1 + b", "−h2", "exp(h3)", "h4 + 1", "1/h5"]
    assert [row["value"] for row in forward] == [0.0, 0.0, 0.0, 1.0, 2.0, 0.5]
    assert [row["∂/∂w"] for row in forward] == [1.0, 1.0, -1.0, -1.0, -1.0, 0.25]
    reverse = {row["step"]: row["adjoint"] for row in comparison.reverse_trace()}
    assert reverse == {"h6": 1.0, "h5": -0.25, "h4": -0.25, "h3": -0.25, "h2": 0.25, "h1": 0.25, "w": 0.25, "b": 0.25}
    for method in (comparison.symbolic, comparison.forward_ad, comparison.reverse_ad, comparison.reference):
        assert method == {"w": 0.25, "b": 0.25}


def test_pytorch_autograd_example_of_the_notes():
    # o = mean(3 (x + 2)²) over a 2×2 x of ones: ∂o/∂x_i = 1.5 (x_i + 2) = 4.5
    text = "(3*(x11+2)**2 + 3*(x12+2)**2 + 3*(x21+2)**2 + 3*(x22+2)**2)/4"
    comparison = compare(text, "x11,x12,x21,x22", {name: 1.0 for name in ("x11", "x12", "x21", "x22")}, timings=False)
    for method in (comparison.symbolic, comparison.symbolic_reverse, comparison.forward_ad, comparison.reverse_ad):
        assert method == {name: 4.5 for name in ("x11", "x12", "x21", "x22")}


# the CASES' functions for Python's own parser and evaluator, in mpmath: neither symnet's parser nor SymPy is involved
MPMATH_NAMES = {"exp": mpmath.exp, "log": mpmath.log, "sqrt": mpmath.sqrt, "sin": mpmath.sin, "cos": mpmath.cos,
                "tan": mpmath.tan, "asin": mpmath.asin, "acos": mpmath.acos, "atan": mpmath.atan,
                "sinh": mpmath.sinh, "cosh": mpmath.cosh, "tanh": mpmath.tanh, "erf": mpmath.erf,
                "erfc": mpmath.erfc, "sign": mpmath.sign, "abs": abs, "max": max, "min": min,
                "Heaviside": lambda x: mpmath.mpf(x > 0)}


def textbook_gradient(text, wrt, point):
    """∂f/∂v by a central difference (f(v + h) − f(v − h)) / 2h with h = 10^-25, computed at 70 digits, where f
    is ``text`` evaluated by Python in mpmath: error ~h² ≈ 10^-50, far below float64's 10^-16.  Independent of
    symnet's parser, of SymPy and of ``mpmath.diff``, which symnet's reference uses."""
    code = compile(text, "<case>", "eval")
    with mpmath.workdps(70):
        namespace = {**MPMATH_NAMES, "pi": +mpmath.pi}
        at = {name: mpmath.mpf(value) for name, value in point.items()}
        h = mpmath.mpf(10) ** -25
        gradient = {}
        for name in wrt.split(","):
            plus = eval(code, {"__builtins__": {}}, {**namespace, **at, name: at[name] + h})     # noqa: S307
            minus = eval(code, {"__builtins__": {}}, {**namespace, **at, name: at[name] - h})    # noqa: S307
            gradient[name] = float((plus - minus) / (2 * h))
        return gradient


@pytest.mark.parametrize("text, wrt, point", CASES, ids=IDS)
def test_forward_ad_equals_reverse_ad_equals_symbolic_and_mpmath(text, wrt, point):
    comparison = compare(text, wrt, point, steps=["1e-6"], timings=False)
    exact = textbook_gradient(text, wrt, point)
    for name in wrt.split(","):
        scale = max(abs(exact[name]), 1e-300)
        for method in ("symbolic", "symbolic_reverse", "forward_ad", "reverse_ad"):
            value = getattr(comparison, method)[name]
            assert abs(value - exact[name]) <= 1e-13 * scale, (method, name, value, exact[name])
        # symnet's reference, mpmath.diff at 50 digits rounded once, is the correctly rounded derivative
        assert abs(comparison.reference[name] - exact[name]) <= 2.3e-16 * scale, (name, comparison.reference[name])


V_CURVE_EXPRESSIONS = ["exp(x)*sin(3*x)", "log(1+x**2)", "tanh(x)/(1+x)", "x**3 - 2*x", "atan(x) + sqrt(2+x)",
                       "1/(exp(-x)+1)", "cos(x)**2", "exp(-x**2/2)"]


@pytest.mark.parametrize("draw", range(4))
def test_central_differences_have_the_v_shaped_error_curve(draw):
    text = random.Random(draw).choice(V_CURVE_EXPRESSIONS)
    x = random.Random(100 + draw).uniform(0.2, 1.5)
    comparison = compare(text, "x", {"x": x}, steps=["1e-1", "1e-5", "1e-11"], timings=False)
    error = {h: comparison.errors["numeric"]["central"][h]["x"]["relative"] for h in ("1e-1", "1e-5", "1e-11")}
    assert error["1e-5"] < error["1e-1"] and error["1e-5"] < error["1e-11"], (text, x, error)
    assert comparison.best_step["complex"] == "1e-11"      # no subtraction: the complex step keeps improving


def test_complex_step_is_skipped_where_the_expression_is_not_analytic_and_bad_input_is_reported():
    comparison = compare("max(0, x)*y", "x,y", {"x": 0.5, "y": 2.0}, steps=["1e-3"], timings=False)
    assert "complex" not in comparison.numeric and comparison.complex_step.startswith("not available")
    assert comparison.forward_ad == comparison.reverse_ad == {"x": 2.0, "y": 0.5}
    with pytest.raises(ExpressionError, match="no value for y"):
        compare("x*y", "x", {"x": 1.0})
    with pytest.raises(ExpressionError, match="positive"):
        compare("x", "x", {"x": 1.0}, steps=["-0.1"])


def test_cli_compare_human_form_trace_and_errors(capsys, tmp_path):
    status, out, _ = run(capsys, "compare", "1/(exp(-(w*x+b))+1)", "--wrt", "w,b", "--at", "x=1,w=0,b=0", "--trace")
    assert status == 0 and "reverse AD" in out and "h6    1/h5" in out and "best step:" in out
    status, _, err = run(capsys, "compare", "exp(x)", "--wrt", "x")
    assert status == 2 and "--at" in err and len(err.splitlines()) == 1


def test_peers_agree_with_the_reference_where_installed():
    comparison = compare("x*erf(y) + tanh(x*y)", "x,y", {"x": 0.3, "y": -0.7}, timings=False)
    peers = peer_gradients(comparison)
    installed = {name: values for name, values in peers.items() if isinstance(values, dict)}
    if not installed:
        pytest.skip("neither PyTorch nor JAX is installed")
    for values in installed.values():
        for name, value in values.items():
            assert abs(value - comparison.reference[name]) <= 1e-14 * abs(comparison.reference[name])


def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    comparison = compare("exp(x)", "x", {"x": 0.0}, timings=False)
    path = plot_errors(comparison, tmp_path / "v.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ad_of_an_unrolled_network_loss_equals_the_compiled_layered_gradient():
    model = sn.Sequential([sn.Dense(2, 3, "tanh"), sn.Dense(3, 1)], loss="mse")    # test_trust_training's module
    data = sn.datasets.xor()
    net = model.compile()
    params = net.init(seed=4)
    expr, symbols = sn.unrolled_loss(model, data.X, data.Y)
    row = cost_scaling(expr, symbols, dict(zip(symbols, params.flat)), budget=0.0)
    assert row["inputs"] == 13 and row["dag_steps"] > 13
    graph = Graph(expr, symbols)
    point = [np.float64(v) for v in params.flat]
    _, _, reverse = graph.reverse_pass(point)
    forward = [graph.forward_pass(point, k)[1][graph.output[1]] for k in range(len(symbols))]
    _, grads = net.loss_and_grad(params, data.X, data.Y)
    np.testing.assert_allclose(reverse, grads.flat, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(forward, grads.flat, rtol=1e-12, atol=1e-15)
