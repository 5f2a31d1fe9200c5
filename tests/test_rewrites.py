"""The stability rewrites and the losses' evaluated forms are equal to what they replace, and stay finite where the
textbook forms overflow (checked in mpmath at 50 digits, an independent evaluation of both sides)."""

import numpy as np
import pytest
import sympy as sp

from symnet.declare import losses
from symnet.rewrites import STABLE_REWRITES

u = sp.Symbol("u", real=True)
FORMS = {"softplus": sp.log(1 + sp.exp(u)), "logistic": sp.exp(u) / (1 + sp.exp(u)),
         "logistic derivative": sp.exp(u) / (1 + sp.exp(u)) ** 2}


def at(expr, value):
    return sp.N(expr.xreplace({u: sp.Float(value, 60)}), 50)


@pytest.mark.parametrize("name", FORMS)
def test_stable_rewrites_equal_the_forms_they_replace_and_stay_finite(name):
    expr = FORMS[name]
    rewritten = expr
    for rewrite in STABLE_REWRITES.values():
        rewritten = rewrite(rewritten)
    assert rewritten != expr, f"no rewrite applies to {expr}"
    for value in (-3.5, -0.25, 0.0, 0.7, 4.0):
        assert abs(at(rewritten, value) - at(expr, value)) < 1e-40
    numeric = sp.lambdify(u, rewritten, modules="numpy")   # float64, e^1000 = inf as in generated code
    for value in (-1000.0, 1000.0):
        with np.errstate(over="ignore"):
            result = numeric(np.float64(value))
        assert np.isfinite(result)
        assert result == pytest.approx(float(at(expr, value)), rel=1e-12, abs=1e-300)


SIZE = 3


def loss_at_point(name, expr, entry=None):
    """``expr`` (in o[k], y[k], K and, with ``entry``, j = entry) at three outputs and a one-hot target, in mpmath
    at 50 digits; its sums and maxes expanded first."""
    outputs = [sp.Rational(3, 10), sp.Rational(-12, 10), sp.Rational(7, 10)]
    if name == "cross_entropy":
        outputs = [sp.Rational(2, 10), sp.Rational(5, 10), sp.Rational(3, 10)]       # probabilities
    targets = [sp.Integer(0), sp.Integer(1), sp.Integer(0)]
    values = {losses.o[k]: outputs[k] for k in range(SIZE)}
    values.update({losses.y[k]: targets[k] for k in range(SIZE)})
    if entry is not None:
        expr = expr.xreplace({losses.j: entry})
    return sp.N(expr.xreplace({losses.K: SIZE}).doit().xreplace(values), 50)


@pytest.mark.parametrize("name", sorted(losses.CATALOGUE))
def test_each_loss_evaluates_a_form_equal_to_its_declared_one(name):
    loss = losses.CATALOGUE[name]
    assert abs(loss_at_point(name, loss.evaluated) - loss_at_point(name, loss.declared)) < 1e-40


@pytest.mark.parametrize("name", sorted(losses.CATALOGUE))
def test_each_loss_gradient_is_the_derivative_of_its_declared_form(name):
    """∂ℓ/∂o_j is derived from the evaluated form with its shift (softmax cross-entropy's m = max_k o_k) held
    constant: equal to the derivative of the declared form, where there is no shift."""
    loss = losses.CATALOGUE[name]
    declared = loss.declared.xreplace({losses.K: SIZE}).doit()
    for entry in range(SIZE):
        expected = loss_at_point(name, sp.diff(declared, losses.o[entry]))
        assert abs(loss_at_point(name, loss.gradient, entry) - expected) < 1e-40
