"""Simplify: common-subexpression elimination and the cheapest equivalent form.

Naive derivatives repeat subexpressions; ``sympy.cse`` names each repeated
one once.  :func:`cse_program` wraps it as a :class:`~symnet.differentiate.Program`
so its size is counted exactly like the reverse-mode program's.
"""

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
    result is deterministic.
    """
    size = count_ops(expr)
    candidates = [expr]
    if size <= FACTOR_MAX_OPS and not expr.has(sp.Piecewise, sp.Max, sp.Min, sp.Heaviside):
        candidates += [sp.factor(expr), sp.cancel(expr)]
    if size <= SIMPLIFY_MAX_OPS:
        candidates.append(sp.simplify(expr))
    return min(candidates, key=count_ops)
