"""Numerically stable rewrites: named identities applied to values and derivatives after differentiation.

Applied after differentiation, so derivatives at kinks are never affected.  tests/test_rewrites.py checks each
against the form it replaces in mpmath, and finite at ±1000.  Pure SymPy: it sits below the declarations because a
loss declares its stable form.
"""

import sympy as sp
from sympy.codegen.cfunctions import log1p


def _softplus_rewrite(expr):
    """log(1 + e^u) → max(u, 0) + log1p(e^(−|u|)): no overflow for large u."""
    def is_softplus(e):
        if not isinstance(e, sp.log) or not e.args[0].is_Add:
            return False
        terms = e.args[0].args
        return len(terms) == 2 and sp.Integer(1) in terms and any(isinstance(a, sp.exp) for a in terms)

    def stable(e):
        (u,) = [a for a in e.args[0].args if isinstance(a, sp.exp)][0].args
        return sp.Max(u, 0) + log1p(sp.exp(-sp.Abs(u)))

    return expr.replace(is_softplus, stable)


def _logistic_rewrite(expr):
    """e^v / (1 + e^v)^k → 1/(1 + e^(−v)) · 1/(1 + e^v)^(k−1): no inf/inf for large |v|.

    k = 1 is the logistic function, k = 2 its derivative e^v/(1 + e^v)².
    """
    def fix(mul):
        factors = list(mul.args)
        for factor in factors:
            if not (factor.is_Pow and factor.exp.is_Integer and factor.exp < 0 and factor.base.is_Add
                    and len(factor.base.args) == 2 and sp.Integer(1) in factor.base.args):
                continue
            (growth,) = [arg for arg in factor.base.args if arg != 1]
            if isinstance(growth, sp.exp) and growth in factors:
                factors.remove(growth)
                factors.remove(factor)
                power = -factor.exp
                return sp.Mul(*factors) / ((1 + sp.exp(-growth.args[0])) * factor.base ** (power - 1))
        return mul

    return expr.replace(lambda e: e.is_Mul, fix)


STABLE_REWRITES = {"softplus": _softplus_rewrite, "logistic": _logistic_rewrite}


def stable(expr):
    """Apply every rewrite of :data:`STABLE_REWRITES` to ``expr``."""
    for rewrite in STABLE_REWRITES.values():
        expr = rewrite(expr)
    return expr
