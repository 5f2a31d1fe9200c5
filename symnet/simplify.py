"""Simplify: common-subexpression elimination and the cheapest equivalent form.

Naive derivatives repeat subexpressions; ``sympy.cse`` names each repeated
one once.  :func:`cse_program` wraps it as a :class:`~symnet.differentiate.Program`
so its size is counted exactly like the reverse-mode program's.
"""

import signal
import threading
from contextlib import contextmanager

import sympy as sp

from symnet.differentiate import Program, count_ops

# sympy.simplify is worth its time only on small expressions; beyond this
# many operations it can take minutes, so symnet keeps cheaper candidates.
SIMPLIFY_MAX_OPS = 60
FACTOR_MAX_OPS = 400


def cse_program(exprs, prefix="x"):
    """``sympy.cse`` of ``exprs`` together, as a program whose outputs are the reduced expressions."""
    exprs = list(exprs)
    taken = set().union(*(e.free_symbols for e in exprs))
    names = (sp.Symbol(f"{prefix}{i}", real=True) for i in range(10**9) if f"{prefix}{i}" not in {s.name for s in taken})
    replacements, reduced = sp.cse(exprs, symbols=names)
    return Program(tuple(replacements), tuple(reduced))


def simplest(expr):
    """The cheapest (fewest ``count_ops``) of a few equivalent forms of ``expr``.

    Candidates: the expression itself, ``factor``, ``cancel`` and, for small
    expressions, ``sympy.simplify``.  Ties keep the earlier candidate, so the
    result is deterministic.  The search has a budget: none when a function's
    argument or an exponent holds a number larger than :data:`MAX_COEFFICIENT`
    (SymPy's polynomial code reads ``exp(10**9*x)`` as ``exp(x)**(10**9)``), and
    :data:`SIMPLIFY_SECONDS` of time otherwise; what was found by then is kept.
    """
    size = count_ops(expr)
    candidates = [expr]
    if _has_large_coefficient(expr):
        return expr
    with _time_limit(SIMPLIFY_SECONDS):
        if size <= FACTOR_MAX_OPS and not expr.has(sp.Piecewise, sp.Max, sp.Min, sp.Heaviside):
            candidates += [sp.factor(expr), sp.cancel(expr)]
        if size <= SIMPLIFY_MAX_OPS:
            candidates.append(sp.simplify(expr))
    return min(candidates, key=count_ops)


MAX_COEFFICIENT = 100
SIMPLIFY_SECONDS = 2.0


def _has_large_coefficient(expr):
    """True when a number of magnitude above :data:`MAX_COEFFICIENT` (or a fraction with such a denominator)
    stands inside a function's argument or an exponent."""
    for part in sp.preorder_traversal(expr):
        if isinstance(part, (sp.Function, sp.Pow)):
            for number in part.atoms(sp.Rational):
                if max(abs(number.p), number.q) > MAX_COEFFICIENT:
                    return True
    return False


class _OutOfTime(Exception):
    pass


@contextmanager
def _time_limit(seconds):
    """Stop the work inside after ``seconds`` (SIGALRM; in the main thread only, and only when nobody else uses
    the timer), keeping what the caller collected before it."""
    usable = (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
              and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable:
        yield
        return

    def out_of_time(signum, frame):
        raise _OutOfTime

    signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _OutOfTime:
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


# --- numerically stable forms -------------------------------------------------
# Each rewrite is applied to values and derivatives *after* differentiation
# (so derivatives at kinks are never affected) and is checked against mpmath
# at ordinary and extreme inputs in tests/test_stability.py.

def _softplus_rewrite(expr):
    """log(1 + e^u) → max(u, 0) + log1p(e^(−|u|)): no overflow for large u."""
    from sympy.codegen.cfunctions import log1p

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


# --- the cheapest form of an activation's derivative ---------------------------

_SAMPLE_POINTS = (sp.Rational(3, 10), sp.Rational(-7, 10), sp.Rational(11, 10))
_GRID = [sp.Rational(k, 4) for k in range(-24, 25)]


def derivative_from_output(function, derivative, variable, output):
    """f'(z) written in the stored output ``a = f(z)``, or None when no such form is found.

    Tries, in order: a polynomial of degree ≤ 2 in ``a`` (σ' = a − a²,
    tanh' = 1 − a², exp' = a), proven by ``simplify(f' − p(f)) == 0``; and
    f' evaluated at ``a`` (ReLU' = H(a), hard-tanh), checked on a grid that
    includes the kinks.
    """
    if function.has(sp.Max, sp.Min, sp.Heaviside, sp.Piecewise):
        candidate = derivative.xreplace({variable: output})
        same = all(sp.N(derivative.subs(variable, z) - candidate.subs(output, function.subs(variable, z))) == 0
                   for z in _GRID)
        return candidate if same else None
    values = [function.subs(variable, z) for z in _SAMPLE_POINTS]
    slopes = [derivative.subs(variable, z) for z in _SAMPLE_POINTS]
    matrix = sp.Matrix([[1, v, v**2] for v in values]).evalf(50)
    try:
        coefficients = matrix.solve(sp.Matrix(slopes).evalf(50))
    except (ValueError, ZeroDivisionError):
        return None
    coefficients = [sp.nsimplify(c, tolerance=1e-25, rational=True) for c in coefficients]
    polynomial = coefficients[0] + coefficients[1] * output + coefficients[2] * output**2
    # cheap numeric rejection at two more points before the (slow) symbolic proof
    for z in (sp.Rational(-13, 10), sp.Rational(17, 10)):
        if abs(sp.N(derivative.subs(variable, z) - polynomial.subs(output, function.subs(variable, z)), 30)) > 1e-20:
            return None
    if sp.simplify(derivative - polynomial.xreplace({output: function})) != 0:
        return None
    return polynomial
