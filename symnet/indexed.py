"""Index notation: reduce derived index expressions and read them as contractions.

SymPy differentiates index expressions such as ``z[n,i] = Σ_j W[i,j] a[n,j] + b[i]``
into sums of ``KroneckerDelta`` products.  :func:`contract` removes each delta
against a summation index whose coefficient in it is ±1 (``Σ_u δ(q, s·y + u − p) e(u)
= e(q − s·y + p) [0 ≤ q − s·y + p < KH]``, the bracket an :class:`InRange` guard for
the index's range), and :func:`settle` drops the guards the ranges of the indices
decide, leaving terms like ``Σ_n δ[n,p] a[n,q]`` that :func:`terms` reads as
contractions for the code generator.
"""

from dataclasses import dataclass

import sympy as sp
from sympy.concrete.expr_with_intlimits import ExprWithIntLimits


def index(name):
    """An integer index symbol."""
    return sp.Symbol(name, integer=True)


class InRange(sp.Function):
    """``[lo ≤ e ≤ hi]`` (an Iverson bracket): 1 when the integer index expression ``e`` lies in ``[lo, hi]``, else 0.

    A read of an input at an affine index (a convolution's ``a[n, d, s·y + u − p, …]``) is multiplied by one for
    each axis, so the input is zero outside its extent (zero padding); eliminating a Kronecker delta against a
    summation index leaves one for that index's range.  Constant in every array entry, so its derivative is 0."""

    nargs = 3

    @classmethod
    def eval(cls, e, lo, hi):
        if (e - lo).is_nonnegative and (hi - e).is_nonnegative:
            return sp.Integer(1)
        if (e - lo).is_negative or (hi - e).is_negative:
            return sp.Integer(0)
        return None

    def _eval_derivative(self, symbol):
        return sp.Integer(0)

    def _sympystr(self, printer):
        e, lo, hi = (printer._print(argument) for argument in self.args)
        return f"[{lo} <= {e} <= {hi}]"

    def _latex(self, printer):
        e, lo, hi = (printer._print(argument) for argument in self.args)
        return rf"\left[{lo} \le {e} \le {hi}\right]"


class MaxOver(ExprWithIntLimits):
    """``max_j f(j)`` over integer limits, like ``Sum`` (a reduction the generated code computes into an array)."""

    __slots__ = ()

    def _sympystr(self, printer):
        return f"MaxOver({printer._print(self.function)}, {', '.join(map(printer._print, self.limits))})"

    def _latex(self, printer):
        indices = ", ".join(printer._print(limit[0]) for limit in self.limits)
        return rf"\max_{{{indices}}} {printer._print(self.function)}"

    def doit(self, **hints):
        """``Max`` of the terms when the limits are numbers (a form evaluated at a point, as ``Sum.doit`` adds its
        terms), else itself."""
        if not all(end.is_Integer for _, *ends in self.limits for end in ends):
            return self
        terms = [self.function]
        for bound, low, high in self.limits:
            terms = [term.xreplace({bound: value}) for term in terms for value in range(low, high + 1)]
        return sp.Max(*terms).doit(**hints)


REDUCTIONS = (sp.Sum, MaxOver)


def held_constant(derive, expr):
    """``derive(expr)`` (a derivative of ``expr``) with each :class:`MaxOver` in it held constant, a symbol in its
    place while derived: for a shift the value of ``expr`` does not depend on, such as the m of a log-sum-exp
    m + log Σ_k e^(o_k − m), m = max_k o_k (its terms in the derivative would cancel)."""
    held = {shift: sp.Dummy("m", real=True) for shift in expr.atoms(MaxOver)}
    return derive(expr.xreplace(held)).xreplace({symbol: shift for shift, symbol in held.items()})


def shift_exponentials(expr):
    """``expr`` with every family of exponentials that a sum ``Σ_j exp(g(j))`` in it normalises evaluated as
    ``exp(g(x) − m)``, ``m = max_j g(j)`` (:class:`MaxOver`), so none overflows: softmax's exp(a_i)/Σ_j exp(a_j),
    and what its derivatives make of it.  Only where ``expr`` does not change: when scaling the whole family by
    e^(−m) leaves it as it is (every term has as many of the family's factors above the line as below)."""
    for total in sorted(expr.atoms(sp.Sum), key=sp.default_sort_key):
        factors = sp.Mul.make_args(total.function)
        exponentials = [f for f in factors if isinstance(f, sp.exp)]
        guards = [f for f in factors if isinstance(f, InRange)]
        if len(total.limits) != 1 or len(exponentials) != 1 or len(exponentials) + len(guards) != len(factors):
            continue
        (bound, low, high), power = total.limits[0], exponentials[0].args[0]
        if not power.has(bound) or power.has(MaxOver):
            continue
        kept = _guarded_limits(bound, low, high, guards)
        if kept is None:
            continue
        free = sorted((symbol for symbol in power.free_symbols if isinstance(symbol, sp.Symbol) and symbol.is_integer
                       and symbol != bound), key=sp.default_sort_key)
        wilds = {symbol: sp.Wild(f"w_{symbol}") for symbol in (*free, bound)}
        pattern = power.xreplace(wilds)
        family = {}
        for e in expr.atoms(sp.exp):
            match = e.args[0].match(pattern)
            if match is not None and all(match.get(w, symbol) is not None for symbol, w in wilds.items()):
                family[e] = match
        if not family or _degree(expr, set(family)) != 0:
            continue
        shifted = {}
        for e, match in family.items():
            at = {symbol: match[wilds[symbol]] for symbol in free}
            shifted[e] = sp.exp(e.args[0] - MaxOver(power.xreplace(at), (bound, *(end.xreplace(at) for end in kept))))
        expr = expr.xreplace(shifted)
    return expr


def _guarded_limits(bound, low, high, guards):
    """``(low, high)`` of ``bound`` where every guard ``[lo ≤ ±bound + rest ≤ hi]`` holds (a causal mask's
    ``[0 ≤ s ≤ t]`` gives ``(0, min(T − 1, t))``), so a max over the sum's terms sees only those it adds; None when a
    guard reads ``bound`` with a coefficient other than ±1.  Guards without ``bound`` leave the limits as they are."""
    for guard in guards:
        e, lo, hi = guard.args
        if not e.has(bound):
            continue
        coefficient = sp.expand(e).coeff(bound)
        rest = sp.expand(e - coefficient * bound)
        if coefficient not in (1, -1) or rest.has(bound):
            return None
        first, last = (lo - rest, hi - rest) if coefficient == 1 else (rest - hi, rest - lo)
        low, high = sp.Max(low, first), sp.Min(high, last)
    return low, high


def _degree(expr, family):
    """How many factors of ``family`` each term of ``expr`` has (above the line minus below), or None when it is not
    the same for every term or a function other than a product, power or sum holds one."""
    if expr in family:
        return 1
    if not expr.has(*family):
        return 0
    if isinstance(expr, sp.Mul):
        degrees = [_degree(factor, family) for factor in expr.args]
        return None if None in degrees else sum(degrees)
    if isinstance(expr, sp.Pow) and expr.exp.is_number:
        degree = _degree(expr.base, family)
        return None if degree is None else degree * expr.exp
    if isinstance(expr, sp.Add):
        degrees = {_degree(term, family) for term in expr.args}
        return degrees.pop() if len(degrees) == 1 and None not in degrees else None
    if isinstance(expr, sp.Sum):
        return _degree(expr.function, family)
    return None


def distribute(expr):
    """Multiply out products over sums only: exp(a − b) and log(a·b) stay as they are."""
    return sp.expand(expr, power_exp=False, power_base=False, log=False, multinomial=False)


def contract(expr, ranges=None):
    """Eliminate Kronecker deltas against summation indices, then :func:`settle` the guards this leaves.

    ``ranges``: ``{index: (low, high)}`` of the free indices (the entry a VJP is taken at), which decide guards
    such as ``[0 ≤ q ≤ J − 1]`` for an index ``q`` that runs over ``0 … J − 1``."""
    expr = expr.replace(lambda e: isinstance(e, sp.Derivative), lambda e: e.doit())
    return settle(distribute(expr.replace(lambda e: isinstance(e, sp.Sum), _contract_sum)), ranges or {})


def _unit_solution(difference, variable):
    """``variable`` solved from ``difference = 0`` when ``difference`` is affine in it with coefficient ±1, else
    None: only then is every integer value of the other indices hit by exactly one integer ``variable``."""
    coefficient = difference.coeff(variable)
    rest = sp.expand(difference - coefficient * variable)
    if coefficient not in (1, -1) or rest.has(variable):
        return None
    return -rest / coefficient


def _contract_sum(total):
    limits = list(total.limits)
    out = []
    for term in sp.Add.make_args(distribute(total.function)):
        term_limits = list(limits)
        reduced = True
        while reduced:
            reduced = False
            for delta in sorted(term.atoms(sp.KroneckerDelta), key=sp.default_sort_key):
                difference = sp.expand(delta.args[0] - delta.args[1])
                for position, (var, low, high) in enumerate(term_limits):
                    solution = _unit_solution(difference, var)
                    if solution is None:
                        continue
                    term = term.xreplace({delta: sp.Integer(1)}).xreplace({var: solution})
                    if solution != var:
                        term = term * InRange(solution, low, high)
                    del term_limits[position]
                    reduced = True
                    break
                if reduced:
                    break
        out.append(sp.Sum(term, *term_limits) if term_limits else term)
    return sp.Add(*out)


def affine_interval(expr, ranges):
    """``(lowest, highest)`` value of the affine index expression ``expr`` over ``ranges``, or None when it is not
    affine in indices of known range or a coefficient's sign is unknown."""
    low = high = expr
    for symbol in expr.free_symbols:
        if symbol not in ranges:
            continue
        coefficient = expr.coeff(symbol)
        if coefficient.has(*ranges) or coefficient == 0:
            return None
        first, last = ranges[symbol]
        if coefficient.is_nonnegative:
            low, high = low.xreplace({symbol: first}), high.xreplace({symbol: last})
        elif coefficient.is_nonpositive:
            low, high = low.xreplace({symbol: last}), high.xreplace({symbol: first})
        else:
            return None
    low, high = sp.expand(low), sp.expand(high)
    if low.free_symbols & set(ranges) or high.free_symbols & set(ranges):
        return None
    return low, high


def settle(expr, ranges):
    """``expr`` with every :class:`InRange` guard that the index ranges decide replaced by 1 or 0.

    ``ranges``: ``{index: (low, high)}`` of the free indices; a Sum's own limits are added inside it."""
    if isinstance(expr, InRange):
        e, low, high = expr.args
        interval = affine_interval(sp.expand(e), ranges)
        if interval is not None:
            if (interval[0] - low).is_nonnegative and (high - interval[1]).is_nonnegative:
                return sp.Integer(1)
            if (interval[0] - high).is_positive or (low - interval[1]).is_positive:
                return sp.Integer(0)
        return expr
    if isinstance(expr, sp.Sum):
        inner = {**ranges, **{var: (low, high) for var, low, high in expr.limits}}
        function = settle(expr.function, inner)
        return expr if function == expr.function else sp.Sum(function, *expr.limits)
    if not expr.args or isinstance(expr, sp.Indexed):
        return expr
    args = [settle(argument, ranges) for argument in expr.args]
    return expr if args == list(expr.args) else expr.func(*args)


def _free_indices(expr):
    """The symbols ``expr``'s value is indexed by: those in the indices of its Indexed objects, except the
    indices its sums bind."""
    return {symbol for element in expr.atoms(sp.Indexed) for index in element.indices
            for symbol in index.free_symbols} & expr.free_symbols


def tidy(expr):
    """``expr`` with fewer and smaller sums, the same value: a sum of a summand without its index becomes a
    product (Σ_k c = K c), factors without the summed indices move out (Σ_i c·f = c Σ_i f), and sums over the same
    limits added together become one (Σ_i f + Σ_i g = Σ_i (f + g)) when that gives the sum no new free index
    (c[q]·Σ_i f[r, i] stays apart: merged, Σ_i would be evaluated for every q as well as every r)."""
    def outward(total):
        bound = {index_ for index_, _, _ in total.limits}
        inner = total.function
        if not inner.has(*bound):
            return sp.Mul(*(high - low + 1 for _, low, high in total.limits)) * inner
        factors = sp.Mul.make_args(inner)
        fixed = [f for f in factors if not f.has(*bound)]
        if not fixed:
            return total
        return sp.Mul(*fixed) * sp.Sum(sp.Mul(*(f for f in factors if f.has(*bound))), *total.limits)

    expr = expr.replace(lambda e: isinstance(e, sp.Sum), outward)
    groups, rest = {}, []
    for part in sp.Add.make_args(expr):
        sums = [f for f in sp.Mul.make_args(part) if isinstance(f, sp.Sum)]
        coefficient = part / sums[0] if len(sums) == 1 else None
        if coefficient is not None and not coefficient.has(*(index_ for index_, _, _ in sums[0].limits)) \
                and _free_indices(coefficient) <= _free_indices(sums[0]):
            groups.setdefault(sums[0].limits, []).append((part, coefficient * sums[0].function))
        else:
            rest.append(part)
    for limits, parts in groups.items():
        if len(parts) == 1:
            rest.append(parts[0][0])
        else:
            rest.append(sp.Sum(sp.Add(*(summand for _, summand in parts)), *limits))
    return sp.Add(*rest)


@dataclass(frozen=True)
class Term:
    """``coefficient * rest * Π factors``, taken where every guard holds, summed over ``summed`` indices."""

    coefficient: sp.Expr
    factors: tuple      # Indexed objects
    summed: tuple       # index symbols
    limits: tuple       # (index, low, high) of each summed index
    rest: sp.Expr       # non-indexed remaining factor (1 for pure contractions)
    guards: tuple       # InRange factors: the summand is 0 where one is 0

    @property
    def summand(self):
        """``coefficient · rest · Π factors``: what is summed over ``summed`` where the guards hold."""
        return self.coefficient * self.rest * sp.Mul(*self.factors)


def terms(expr):
    """Read a contracted index expression as a list of :class:`Term`."""
    found = []
    for part in sp.Add.make_args(distribute(expr)):
        limits = ()
        while True:          # Σ_i f·(Σ_j g) is read as Σ_i Σ_j f·g (the indices are distinct symbols)
            inner = part if isinstance(part, sp.Sum) else next(
                (f for f in sp.Mul.make_args(part) if isinstance(f, sp.Sum)), None)
            if inner is None:
                break
            limits = limits + tuple(inner.limits)
            part = part.function if inner is part else part.xreplace({inner: inner.function})
        coefficient, factors = part.as_coeff_mul()
        indexed = tuple(f for f in factors if isinstance(f, sp.Indexed))
        guards = tuple(f for f in factors if isinstance(f, InRange))
        rest = sp.Mul(*[f for f in factors if not isinstance(f, (sp.Indexed, InRange))])
        found.append(Term(coefficient, indexed, tuple(v for v, _, _ in limits), limits, rest, guards))
    return found
