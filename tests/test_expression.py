"""The expression toolkit against mpmath at 50 digits: naive, reverse-mode and generated gradients."""


import mpmath
import numpy as np
import pytest
import sympy as sp

from symnet.declare.parse import symbol
from symnet.errors import ExpressionError
from symnet.expression import derive
from tests.references import generated_texts, DIGITS, mp_function, mp_gradient, mp_value, relative_error

# (expression, variables, point): the seeds' activations and losses, and
# expressions that exercise every node type the printer knows.  Points avoid
# kinks, where the numeric reference is undefined.
CASES = [
    ("1/(exp(-(w*x+b))+1)", "w,b", dict(x=1.0, w=0.3, b=-0.2)),
    ("x*tanh(log(1+exp(x)))", "x", dict(x=0.7)),
    ("log(1+exp(x))", "x", dict(x=-1.3)),
    ("x/(1+exp(-beta*x))", "x,beta", dict(x=0.9, beta=1.7)),
    ("x*(1+erf(x/sqrt(2)))/2", "x", dict(x=-0.6)),
    ("max(0, x)", "x", dict(x=0.5)),
    ("max(x, 0.01*x)", "x", dict(x=-0.3)),
    ("max(0,x) + g*min(0, exp(x)-1)", "x,g", dict(x=-0.4, g=1.1)),
    ("max(min(0.25*x+0.5, 1), 0)", "x", dict(x=0.3)),
    ("max(min(x,1),-1)", "x", dict(x=0.2)),
    ("tanh(x)", "x", dict(x=0.8)),
    ("2/(1+exp(-2*x)) - 1", "x", dict(x=0.8)),
    ("sin(x*y)*cos(x)", "x,y", dict(x=0.4, y=2.1)),
    ("exp(-x**2/2)/sqrt(2*pi)", "x", dict(x=1.2)),
    ("atan(x/y)", "x,y", dict(x=0.4, y=-1.5)),
    ("sqrt(x**2+y**2)", "x,y", dict(x=3.0, y=-4.0)),
    ("log(x)*x**y", "x,y", dict(x=1.5, y=0.7)),
    ("x**3 - 3*x*y**2", "x,y", dict(x=1.1, y=0.3)),
    ("(a-y)**2/2", "a", dict(a=0.25, y=1.0)),
    ("-(y*log(a) + (1-y)*log(1-a))", "a", dict(a=0.3, y=1.0)),
    ("log(exp(a)+exp(b)+exp(c)) - a", "a,b,c", dict(a=0.5, b=-1.0, c=2.0)),
    ("abs(x)*y", "x,y", dict(x=-0.5, y=1.5)),
    ("exp(sin(x))*log(2+cos(y))", "x,y", dict(x=0.3, y=1.2)),
    ("1/(1+x**2)", "x", dict(x=0.6)),
    ("x*y*z*w*exp(x)", "x,y,z,w", dict(x=0.5, y=-1.2, z=0.8, w=2.0)),
    ("erf(x)*erfc(y)", "x,y", dict(x=0.3, y=0.9)),
    ("cosh(x)-sinh(x)*x", "x", dict(x=0.75)),
    ("asin(x)+acos(x/2)", "x", dict(x=0.35)),
    ("tan(x)**2", "x", dict(x=0.5)),
    ("(1 + x/y)**y", "x,y", dict(x=0.5, y=3.5)),
    ("4*x*(1-x)*(1-4*x*(1-x))", "x", dict(x=0.3)),
    ("x**0.5 + x**(-1.5)", "x", dict(x=2.5)),
    ("Heaviside(x)*x**2", "x", dict(x=0.5)),
    ("sign(x)*x**2", "x", dict(x=-0.7)),
    ("a*x**2+b*x+c", "a,b,c,x", dict(a=0.5, b=-2.0, c=1.0, x=1.25)),
    ("x1*x2*x3*x4*x5*x6 + x1/x6", "x1,x2,x3,x4,x5,x6", dict(x1=1.1, x2=0.9, x3=-1.3, x4=0.7, x5=1.2, x6=0.8)),
]
IDS = [case[0] for case in CASES]


def _point(expr, values):
    return {s: values[s.name] for s in expr.free_symbols}


def _mp_program(program, point):
    """Run a straight-line program in mpmath, step by step."""
    with mpmath.workdps(DIGITS):
        env = {s: mpmath.mpf(v) for s, v in point.items()}
        for target, rhs in program.assignments:
            env[target] = mp_function(rhs, list(rhs.free_symbols))(*[env[s] for s in rhs.free_symbols])
        return [mp_function(out, list(out.free_symbols))(*[env[s] for s in out.free_symbols]) for out in program.outputs]


@pytest.mark.parametrize("text, wrt, values", CASES, ids=IDS)
def test_naive_and_reverse_gradients_equal_mpmath_to_30_digits(text, wrt, values):
    d = derive(text, wrt)
    point = _point(d.expr, values)
    reference = mp_gradient(d.expr, d.wrt, point)
    for var, naive, ref in zip(d.wrt, d.naive, reference):
        assert relative_error(mp_value(naive, point), ref) < 1e-30, var
    program_values = _mp_program(d.reverse, point)
    assert relative_error(program_values[0], mp_value(d.expr, point)) < 1e-30
    for var, value, ref in zip(d.wrt, program_values[1:], reference):
        assert relative_error(value, ref) < 1e-30, var


@pytest.mark.parametrize("text, wrt, values", CASES, ids=IDS)
def test_generated_code_equals_mpmath_to_1e13(text, wrt, values):
    d = derive(text, wrt)
    point = _point(d.expr, values)
    value, gradient = d.compile()(**values)
    assert relative_error(float(value), mp_value(d.expr, point)) < 1e-13
    for k, ref in enumerate(mp_gradient(d.expr, d.wrt, point)):
        assert relative_error(float(gradient[k]), ref) < 1e-13, d.wrt[k]


def test_generated_code_is_vectorised_and_broadcasts():
    d = derive("x*tanh(log(1+exp(x)))*w", "x,w")
    xs = np.linspace(-3, 3, 7)
    value, gradient = d.compile()(x=xs, w=2.0)
    assert value.shape == (7,) and gradient.shape == (2, 7)
    for i, x in enumerate(xs):
        point = {symbol("x"): x, symbol("w"): 2.0}
        reference = mp_gradient(d.expr, d.wrt, point)
        assert relative_error(gradient[0, i], reference[0]) < 1e-12
        assert relative_error(gradient[1, i], reference[1]) < 1e-12


def test_float32_code_computes_in_float32():
    d = derive("x*exp(-x**2/2) + 0.1*x", "x")
    value, gradient = d.compile(dtype="float32")(x=np.array([0.5, 1.5], dtype=np.float32))
    assert value.dtype == np.float32 and gradient.dtype == np.float32
    reference = [float(mp_gradient(d.expr, d.wrt, {symbol("x"): v})[0]) for v in (0.5, 1.5)]
    np.testing.assert_allclose(gradient[0], reference, rtol=1e-6)


def test_relu_derivative_at_zero_is_zero_by_convention():
    _, gradient = derive("max(0, x)", "x").compile()(x=np.array([-1.0, 0.0, 2.0]))
    assert gradient[0].tolist() == [0.0, 0.0, 1.0]
    _, gradient = derive("Heaviside(x)*x + x", "x").compile()(x=0.0)
    assert float(gradient[0]) == 1.0


def test_reverse_mode_splits_wide_products_with_prefix_and_suffix():
    names = [f"x{i}" for i in range(1, 21)]
    d = derive("*".join(names), ",".join(names))
    # one product of the 19 others per variable would be 20*18 multiplications
    assert d.reverse.ops <= 5 * d.ops["forward_dag"] + 5


def test_the_same_definition_always_prints_the_same_text(tmp_path):
    source = "import symnet.expression as e; print(e.derive('x*tanh(log(1+exp(x)))+y*x**3', 'x,y').compile().path)"
    texts = generated_texts(source, tmp_path)
    assert texts[0] == texts[1]


def test_the_cache_is_reused_not_regenerated(tmp_path):
    d = derive("sin(x)*y", "x,y")
    first = d.compile(directory=tmp_path)
    stamp = first.path.stat().st_mtime_ns
    second = derive("sin(x)*y", "x,y").compile(directory=tmp_path)
    assert first.written and not second.written
    assert second.path == first.path and second.path.stat().st_mtime_ns == stamp
    assert derive("sin(x)*y", "x,y").compile(directory=tmp_path, dtype="float32").path != first.path


def test_generated_module_carries_formulas_and_origin(tmp_path):
    path = derive("1/(exp(-(w*x+b))+1)", "w,b").compile(directory=tmp_path).path
    text = path.read_text(encoding="utf-8")
    assert "Generated by symnet" in text and "@numba.njit(cache=True, error_model=\"numpy\")" in text
    assert "# forward pass: f = 1/(exp(-b - w*x) + 1)" in text
    assert "# ∂f/∂w = " in text and "# ∂f/∂b = " in text


def test_generated_dir_follows_argument_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMNET_GENERATED_DIR", str(tmp_path / "from_env"))
    assert derive("x**2", "x").compile().path.parent == tmp_path / "from_env"
    assert derive("x**2", "x").compile(directory=tmp_path / "arg").path.parent == tmp_path / "arg"


def test_latex_is_the_simplest_form_and_cse_lists_definitions():
    d = derive("1/(exp(-(w*x+b))+1)", "w,b")
    assert sp.count_ops(d.simplified[0]) <= sp.count_ops(d.naive[0])
    assert "\\partial f}{\\partial w}" in d.cse_latex()[-2]
    assert d.cse_latex()[0].startswith("x_{0} = ")


def test_bad_input_is_reported_clearly():
    with pytest.raises(ExpressionError, match="does not occur"):
        derive("x**2", "y")
    with pytest.raises(ExpressionError, match="expected values for x, y"):
        derive("x*y", "x").compile()(x=1.0)
