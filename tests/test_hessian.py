"""Second derivatives of expressions: the Hessian and the Jacobian against mpmath at 30 digits (an independent
reference: numerical differentiation in arbitrary precision, not SymPy), symmetric, compiled and printed."""

import json

import mpmath
import numpy as np
import pytest
import sympy as sp

import symnet as sn
from symnet.errors import ExpressionError

POINT = {"x": 0.3, "y": -0.7, "b": 0.2}


def mpmath_hessian(function, names, point):
    """∂²f/∂v_k∂v_l by mpmath.diff at 30 digits."""
    mpmath.mp.dps = 30
    values = [mpmath.mpf(point[name]) for name in names]
    rows = []
    for k in range(len(names)):
        row = []
        for l in range(len(names)):
            order = [0] * len(names)
            order[k] += 1
            order[l] += 1
            row.append(float(mpmath.diff(function, values, tuple(order))))
        rows.append(row)
    return np.array(rows)


def test_hessian_of_a_neuron_matches_mpmath_and_is_symmetric(tmp_path):
    hessian = sn.derive("x*tanh(log(1+exp(x*y + b)))", "x,y,b").hessian()
    reference = mpmath_hessian(lambda x, y, b: x * mpmath.tanh(mpmath.log(1 + mpmath.exp(x * y + b))),
                               ["x", "y", "b"], POINT)
    assert hessian.matrix == hessian.matrix.T
    compiled = hessian.compile(directory=tmp_path)
    gradient, matrix = compiled(**POINT)
    np.testing.assert_allclose(matrix, reference, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hessian.at(POINT), reference, rtol=1e-12, atol=1e-14)
    # the values are the gradient, as sn.derive computes it
    np.testing.assert_allclose(gradient, list(sn.derive("x*tanh(log(1+exp(x*y + b)))", "x,y,b")
                                              .gradient_at(POINT).values()), rtol=1e-14)
    # symbolic entries equal SymPy's own hessian of the same expression
    x, y, b = sp.symbols("x y b", real=True)
    expected = sp.hessian(x * sp.tanh(sp.log(1 + sp.exp(x * y + b))), (x, y, b))
    names = {s.name: s for s in hessian.of.free_symbols}
    for (k, l) in [(0, 0), (0, 1), (2, 2)]:
        difference = hessian.simplified[k, l] - expected[k, l].xreplace({x: names["x"], y: names["y"], b: names["b"]})
        assert abs(float(difference.xreplace({names[n]: v for n, v in POINT.items()}))) < 1e-13
    # over many points at once, vectorised
    _, many = compiled(x=np.linspace(-1, 1, 5), y=-0.7, b=0.2)
    assert many.shape == (3, 3, 5)
    assert "∂²f/∂x² = " in repr(hessian) and r"\nabla^{2} f" in hessian._repr_latex_()


def test_jacobian_of_a_vector_function(tmp_path):
    jacobian = sn.jacobian(["x*y", "sin(x) + y**2", "exp(x - y)"], "x,y")
    values, matrix = jacobian.compile(directory=tmp_path)(x=1.0, y=2.0)
    mpmath.mp.dps = 30
    functions = [lambda x, y: x * y, lambda x, y: mpmath.sin(x) + y ** 2, lambda x, y: mpmath.exp(x - y)]
    reference = [[float(mpmath.diff(f, (1.0, 2.0), order)) for order in ((1, 0), (0, 1))] for f in functions]
    np.testing.assert_allclose(matrix, reference, rtol=1e-14)
    np.testing.assert_allclose(values, [2.0, np.sin(1.0) + 4.0, np.exp(-1.0)], rtol=1e-15)
    assert jacobian.matrix.shape == (3, 2)


def test_bad_input_is_refused_in_one_line():
    with pytest.raises(ExpressionError, match="a list of expressions"):
        sn.jacobian("x*y", "x")
    with pytest.raises(ExpressionError, match="at least one"):
        sn.jacobian([], "x")
    with pytest.raises(ExpressionError):
        sn.jacobian(["x*y"], "z")                      # not a symbol of the functions
    with pytest.raises(ExpressionError, match="missing: y"):
        sn.derive("x*y", "x,y").hessian().compile()(x=1.0)


def test_derive_hessian_on_the_command_line(capsys):
    from symnet.cli import main
    assert main(["derive", "x**2*y + exp(x*y)", "--wrt", "x,y", "--at", "x=0.5,y=-1", "--hessian", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    f = lambda x, y: x ** 2 * y + mpmath.exp(x * y)
    reference = mpmath_hessian(f, ["x", "y"], {"x": 0.5, "y": -1.0})
    np.testing.assert_allclose(result["hessian_at"], reference, rtol=1e-13)
    assert result["hessian"] == {"x,x": "y*(y*exp(x*y) + 2)", "x,y": "x*y*exp(x*y) + 2*x + exp(x*y)",
                                 "y,y": "x**2*exp(x*y)"}
