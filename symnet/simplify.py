"""Simplify: common-subexpression elimination and the cheapest equivalent form.

(The numerically stable rewrites are in :mod:`symnet.rewrites`: the loss declarations apply them.)

Naive derivatives repeat subexpressions; ``sympy.cse`` names each repeated
one once.  :func:`cse_program` wraps it as a :class:`~symnet.differentiate.Program`
so its size is counted exactly like the reverse-mode program's.
"""

import signal
import threading
from contextlib import contextmanager

import sympy as sp

from symnet.differentiate import Program, count_ops, fresh_symbols

# sympy.simplify is worth its time only on small expressions; beyond this
# many operations it can take minutes, so symnet keeps cheaper candidates.
SIMPLIFY_MAX_OPS = 60
FACTOR_MAX_OPS = 400


def cse_program(exprs, prefix="x"):
    """``sympy.cse`` of ``exprs`` together, as a program whose outputs are the reduced expressions."""
    exprs = list(exprs)
    taken = {s.name for e in exprs for s in e.free_symbols}
    replacements, reduced = sp.cse(exprs, symbols=fresh_symbols(prefix, taken))
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
