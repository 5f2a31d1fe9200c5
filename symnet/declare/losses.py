"""Losses: per-sample SymPy expressions over the output row ``o[k]`` and target ``y[k]``.

Every loss is averaged over the batch: ``L = (1/N) Σ_n ℓ(o_n, y_n)``.  A loss
has its declared (textbook) form and, where the textbook form overflows, a
named rewrite that is equal to it (``tests/test_rewrites.py`` checks both at
the same points) and is what symnet differentiates and evaluates.  The gradient ``∂ℓ/∂o[j]`` is
derived by SymPy from that form.
"""

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from symnet.declare.activations import sigmoid_expr
from symnet.errors import ConfigurationError
from symnet.indexed import MaxOver, contract, held_constant, index
from symnet.rewrites import stable

o = sp.IndexedBase("o", real=True)
y = sp.IndexedBase("y", real=True)
k, j = index("k"), index("j")
K = sp.Symbol("K", integer=True, positive=True)


def over_classes(expr):
    """Σ_k expr over the K outputs."""
    return sp.Sum(expr, (k, 0, K - 1))


def max_over_classes(expr):
    """max_k expr over the K outputs (:class:`~symnet.indexed.MaxOver`), for a shift such as the log-sum-exp's m
    (:attr:`Loss.gradient` holds it constant)."""
    return MaxOver(expr, (k, 0, K - 1))


def shift_names(*exprs):
    """``{max: symbol}``: the name of each :class:`~symnet.indexed.MaxOver` in ``exprs`` in text and in the generated
    code, which computes it once per sample: m, then m1, m2, … in SymPy's order."""
    found = sorted(set().union(*(expr.atoms(MaxOver) for expr in exprs)), key=sp.default_sort_key)
    return {shift: sp.Symbol(f"m{number or ''}", real=True) for number, shift in enumerate(found)}


def named(expr):
    """``expr`` with each max written as its name (:func:`shift_names`), as text shows it."""
    return expr.xreplace(shift_names(expr))


@dataclass(frozen=True)
class Loss:
    """A per-sample loss ℓ(o, y): its declared form, the form symnet evaluates, and the rewrite's name."""

    name: str
    declared: sp.Expr
    evaluated: sp.Expr
    rewrite: str = ""

    @cached_property
    def gradient(self):
        """∂ℓ/∂o[j], derived from the evaluated form with each max in it held constant (a shift such as m =
        max_k o[k]: ℓ does not depend on it, so the terms of its derivative cancel)."""
        return held_constant(lambda expr: contract(sp.diff(expr, o[j]), {j: (0, K - 1)}), self.evaluated)

    @cached_property
    def stable_value(self):
        """ℓ with symnet's stability rewrites applied."""
        return stable(self.evaluated)

    @cached_property
    def stable_gradient(self):
        """∂ℓ/∂o[j] with symnet's stability rewrites applied."""
        return stable(self.gradient)


CATALOGUE = {
    "mse": Loss("mse", over_classes((o[k] - y[k]) ** 2 / 2), over_classes((o[k] - y[k]) ** 2 / 2)),
    "binary_cross_entropy": Loss(
        "binary_cross_entropy",
        over_classes(-(y[k] * sp.log(sigmoid_expr(o[k])) + (1 - y[k]) * sp.log(1 - sigmoid_expr(o[k])))),
        over_classes(sp.log(1 + sp.exp(o[k])) - y[k] * o[k]),
        rewrite="logit form: −[y log σ(o) + (1−y) log(1−σ(o))] = log(1 + e^o) − y·o"),
    "cross_entropy": Loss("cross_entropy", over_classes(-y[k] * sp.log(o[k])), over_classes(-y[k] * sp.log(o[k]))),
    "softmax_cross_entropy": Loss(
        "softmax_cross_entropy",
        sp.log(over_classes(sp.exp(o[k]))) - over_classes(y[k] * o[k]),
        max_over_classes(o[k]) + sp.log(over_classes(sp.exp(o[k] - max_over_classes(o[k]))))
        - over_classes(y[k] * o[k]),
        rewrite="log-sum-exp shift: log Σ_k e^(o_k) = m + log Σ_k e^(o_k − m), m = max_k o_k"),
}


def get(spec):
    """Resolve a loss by name (or return a :class:`Loss`)."""
    if isinstance(spec, Loss):
        return spec
    if spec in CATALOGUE:
        return CATALOGUE[spec]
    raise ConfigurationError(f"unknown loss {spec!r}; known: {', '.join(sorted(CATALOGUE))}")
