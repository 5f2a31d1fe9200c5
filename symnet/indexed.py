"""Index notation: reduce derived index expressions and read them as contractions.

SymPy differentiates index expressions such as ``z[n,i] = Σ_j W[i,j] a[n,j] + b[i]``
into sums of ``KroneckerDelta`` products with range conditions.  :func:`contract`
removes the deltas (``Σ_i δ(i,p) e(i) = e(p)``) and the range conditions
(every index symnet substitutes is in range), leaving terms like
``Σ_n δ[n,p] a[n,q]`` that :func:`terms` reads as contractions for the code
generator.
"""

from dataclasses import dataclass

import sympy as sp


def index(name):
    """An integer index symbol."""
    return sp.Symbol(name, integer=True)


def distribute(expr):
    """Multiply out products over sums only: exp(a − b) and log(a·b) stay as they are."""
    return sp.expand(expr, power_exp=False, power_base=False, log=False, multinomial=False)


def contract(expr):
    """Eliminate Kronecker deltas against summation indices and drop range conditions.

    A ``Piecewise`` whose conditions are all index ranges becomes its first
    branch: every index symnet substitutes is in range, and a layer whose map
    reads ``a[n, i]`` (input column = output unit) has as many inputs as
    outputs (the layer checks that).
    """
    expr = expr.doit()
    expr = expr.replace(lambda e: isinstance(e, sp.Piecewise) and e.args[-1].cond == sp.true
                        and all(_is_range_condition(branch.cond) for branch in e.args[:-1]),
                        lambda e: e.args[0].expr)
    return distribute(expr.replace(lambda e: isinstance(e, sp.Sum), _contract_sum))


def _is_range_condition(cond):
    atoms = cond.atoms(sp.core.relational.Relational)
    return bool(atoms) and all(all(s.is_integer for s in a.free_symbols) for a in atoms)


def _contract_sum(total):
    limits = list(total.limits)
    out = []
    for term in sp.Add.make_args(distribute(total.function)):
        term_limits = list(limits)
        reduced = True
        while reduced:
            reduced = False
            for delta in sorted(term.atoms(sp.KroneckerDelta), key=sp.default_sort_key):
                for position, (var, _, _) in enumerate(term_limits):
                    if var in delta.args:
                        other = delta.args[1] if delta.args[0] == var else delta.args[0]
                        term = term.xreplace({delta: sp.Integer(1)}).xreplace({var: other})
                        del term_limits[position]
                        reduced = True
                        break
                if reduced:
                    break
        out.append(sp.Sum(term, *term_limits) if term_limits else term)
    return sp.Add(*out)


@dataclass(frozen=True)
class Term:
    """``coefficient * Π factors`` summed over ``summed`` indices."""

    coefficient: sp.Expr
    factors: tuple      # Indexed objects
    summed: tuple       # index symbols
    rest: sp.Expr       # non-indexed remaining factor (1 for pure contractions)

    @property
    def summand(self):
        """``coefficient · rest · Π factors``: what is summed over ``summed``."""
        return self.coefficient * self.rest * sp.Mul(*self.factors)


def terms(expr):
    """Read a contracted index expression as a list of :class:`Term`."""
    found = []
    for part in sp.Add.make_args(distribute(expr)):
        summed = ()
        while True:          # Σ_i f·(Σ_j g) is read as Σ_i Σ_j f·g (the indices are distinct symbols)
            inner = part if isinstance(part, sp.Sum) else next(
                (f for f in sp.Mul.make_args(part) if isinstance(f, sp.Sum)), None)
            if inner is None:
                break
            summed = summed + tuple(v for v, _, _ in inner.limits)
            part = part.function if inner is part else part.xreplace({inner: inner.function})
        coefficient, factors = part.as_coeff_mul()
        indexed = tuple(f for f in factors if isinstance(f, sp.Indexed))
        rest = sp.Mul(*[f for f in factors if not isinstance(f, sp.Indexed)])
        found.append(Term(coefficient, indexed, summed, rest))
    return found
