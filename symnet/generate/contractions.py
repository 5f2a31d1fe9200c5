"""How an index expression becomes code: a contraction becomes ``np.dot`` (two 2-D factors, one summed index;
transposes are views) or explicit loops whose guards bound the summed loops; sums standing inside other functions (a
normalisation) are evaluated into arrays first.  The arrays written are views of the flat parameters or buffers cut
from one ``scratch`` array.  Nothing here knows layers, losses or optimizers."""

import itertools
import math
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from symnet.generate.writer import INDENT
from symnet.indexed import REDUCTIONS, InRange, affine_interval, shift_exponentials, terms

SMALL_PRODUCT = 64
ROW_MIN_EXTENT = 4
"""Loops that fill a target of rank > 2 whose last extent is at least this long add row by row
(:meth:`Contractions._row_loops`)."""
KERNEL_MIN_EXTENT = 8
"""Loops whose innermost extent is shorter call libm instead of the kernels: LLVM's vector loop never runs there,
and the kernels' scalar code is slower than libm (docs/performance.md)."""
VIEW = "np.lib.stride_tricks.as_strided"
"""How a flat array with short rows (< KERNEL_MIN_EXTENT) becomes a matrix in a function without BLAS calls: a view
with the strides written in the code, cheaper than Numba's reshape. Its layout is unknown to Numba, which costs
vector loops over longer rows (with older LLVMs); ``np.dot`` needs C order: those use ``reshape``
(docs/performance.md)."""


def _extent(low, high):
    """How many values a sum's index takes from ``low`` to ``high``: "batch" for the batch index (up to N − 1); at
    most, for limits narrowed by a guard (a causal mask's ``min(T − 1, t)``)."""
    low = min(low.args, key=lambda e: (not e.is_number, e)) if isinstance(low, sp.Max) else low
    high = max(high.args, key=lambda e: (e.is_number, e)) if isinstance(high, sp.Min) else high
    return "batch" if high.free_symbols else int(high - low) + 1


def _canonical(total, depth=0):
    """``total`` (a sum or max) with its bound indices renamed by nesting depth, so reductions that differ only in
    those names match."""
    renamed = {}
    for index_, _, _ in total.limits:
        renamed[index_] = sp.Symbol(f"_s{depth}_{len(renamed)}", integer=True)
    function = total.function.replace(lambda e: isinstance(e, REDUCTIONS), lambda inner: _canonical(inner, depth + 1))
    return type(total)(function.xreplace(renamed), *((renamed[i], low, high) for i, low, high in total.limits))


def _nonlinear(term_list):
    """True when a sum stands inside another function (a normalisation), not only in products: not a contraction."""
    return any(t.rest.has(sp.Sum) for t in term_list)


def _interval_of(bound, known):
    """(lowest, highest) of an integer bound ``ceiling(e/c)``, ``floor(e/c) + k`` or affine ``e`` over ``known``."""
    offset, parts = bound.as_coeff_Add()
    rounding = type(parts) if isinstance(parts, (sp.ceiling, sp.floor)) else None
    inner = parts.args[0] if rounding else parts
    interval = affine_interval(sp.expand(inner), known)
    if interval is None:
        return None
    if rounding:
        interval = tuple(rounding(end) for end in interval)
    return tuple(end + offset for end in interval)


CALLS = (sp.exp, sp.log, sp.tanh)
"""Functions a sum's summand evaluates into an array first when a loop of the sum does not change them
(:meth:`Contractions._tabulated`)."""


def _invariant_call(e, bound, loops, ranges):
    """True when ``e`` is a call (:data:`CALLS`) that reads one of the ``bound`` indices of the sum it
    stands in but not every index of its ``loops``: evaluated in place, it would be evaluated again for each value
    of the others (LLVM hoists a call out of the inner loops it does not depend on, not out of outer ones)."""
    if not isinstance(e, CALLS) or e.has(*REDUCTIONS):
        return False
    indices = {symbol for symbol in e.free_symbols if symbol in ranges}
    return bool(indices & bound) and not loops <= indices


NOMINAL_BATCH = 32
"""The batch size :func:`reordered` assumes when it compares orders of evaluation."""
REORDER_GAIN = 1.25
"""How many times cheaper an order of evaluation must be than the declared one for :func:`reordered` to take it."""


@lru_cache(maxsize=None)
def _free_symbols(expr):
    """``expr.free_symbols``, remembered: a sum's are computed afresh, through every nested sum, on each request, and
    :func:`reordered` asks for those of the same factors many times over."""
    return expr.free_symbols


def _cost(expr, ranges):
    """Multiply-adds of evaluating ``expr``'s reductions into arrays, each distinct one once: for each, the number of
    its cells times the values its indices take (the batch counted as :data:`NOMINAL_BATCH`)."""
    def extent(index_):
        value = ranges.get(index_, 1)
        return NOMINAL_BATCH if value == "batch" else value
    total = 0
    for reduction in expr.atoms(*REDUCTIONS):
        cells = math.prod(extent(symbol) for symbol in _free_symbols(reduction) if symbol in ranges)
        total += cells * math.prod(extent(index_) for index_, _, _ in reduction.limits)
    return total


def _product(function, limits, ranges, taken):
    """``(factors, limits)`` of Σ_limits ``function`` with the sums that are factors of it (of products, with fixed
    limits; not plain contractions of arrays such as Q = Σ_d Wq a, which stay whole and are computed once) pulled out, their indices renamed where they clash (the new names' extents go into ``ranges``); None
    when ``function`` is not a product."""
    factors, limits = [], list(limits)
    pending = list(sp.Mul.make_args(function))
    while pending:
        factor = pending.pop()
        if isinstance(factor, sp.Add):
            return None
        if not (isinstance(factor, sp.Sum) and not isinstance(factor.function, sp.Add)
                and not all(isinstance(f, sp.Indexed) or f.is_number for f in sp.Mul.make_args(factor.function))
                and all(not (high.free_symbols - {s for s in high.free_symbols if ranges.get(s) is None})
                        for _, _, high in factor.limits)):
            factors.append(factor)
            continue
        renamed = {}
        for index_, low, high in factor.limits:
            name, number = index_, 0
            while name in taken:
                number += 1
                name = sp.Symbol(f"{index_.name}_{number}", integer=True)
            taken.add(name)
            renamed[index_] = name
            ranges[name] = ranges[index_]
            limits.append((name, low, high))
        pending.extend(sp.Mul.make_args(factor.function.xreplace(renamed)))
    return factors, limits


def _eliminated(factors, limits, ranges):
    """``Σ_limits Π factors`` as nested sums, summing over one group of indices at a time (variable elimination):
    each step sums the factors that hold an index over it (and over the other summed indices only they hold), picking
    the step of fewest multiply-adds, then the one whose result has the fewest cells."""
    def extent(index_):
        value = ranges[index_]
        return NOMINAL_BATCH if value == "batch" else value

    def indices(factor):
        return {symbol for symbol in _free_symbols(factor) if symbol in ranges}

    factors, remaining = list(factors), list(limits)
    while remaining:
        best = None
        for index_, _, _ in remaining:
            involved = [f for f in factors if index_ in indices(f)]
            if not involved:
                best = (0, 0, [], [limit for limit in remaining if limit[0] == index_])
                break
            group = [limit for limit in remaining
                     if all(f in involved for f in factors if limit[0] in indices(f))
                     and any(limit[0] in indices(f) for f in involved)]
            kept = set().union(*map(indices, involved)) - {limit[0] for limit in group}
            cells = math.prod(map(extent, kept))
            key = (cells * math.prod(extent(limit[0]) for limit in group), cells)
            if best is None or key < best[:2]:
                best = (*key, involved, group)
        _, _, involved, group = best
        factors = [f for f in factors if f not in involved]
        if involved:
            factors.append(sp.Sum(sp.Mul(*involved), *group))
        else:
            factors.append(sp.Mul(*(high - low + 1 for _, low, high in group)))
        remaining = [limit for limit in remaining if limit not in group]
    return sp.Mul(*factors)


def reordered(expr, ranges):
    """``expr`` with each sum of products (of arrays, calls, guards and sums of products) evaluated in the order
    :func:`_eliminated` picks when that costs :data:`REORDER_GAIN` times fewer multiply-adds (:func:`_cost`) than the
    nesting as declared.  A derived VJP nests the upstream δ outermost, Σ_{n,t,i} δ[n,t,i] Σ_{h,k} Wo[i,h·d+k] …,
    so every inner array carries i as well; summing i with δ and Wo first is the order reverse mode takes.
    ``ranges`` gains the extents of renamed indices."""
    def rewrite(total):
        if not isinstance(total, sp.Sum):
            return total
        taken = set(_free_symbols(total)) | {index_ for index_, _, _ in total.limits}
        parts = []
        for term in sp.Add.make_args(total.function):
            coefficient, rest = term.as_coeff_Mul()
            found = _product(rest, total.limits, ranges, taken)
            if found is None:
                return total
            parts.append(coefficient * _eliminated(*found, ranges))
        candidate = sp.Add(*parts)
        return candidate if REORDER_GAIN * _cost(candidate, ranges) <= _cost(total, ranges) else total

    def visit(e):       # outermost sums first: an inner sum reordered on its own would hide the better order
        if isinstance(e, sp.Sum):
            e = rewrite(e)
        if not e.args or isinstance(e, sp.Indexed):
            return e
        args = [visit(argument) for argument in e.args]
        return e if args == list(e.args) else e.func(*args)
    return visit(expr)


def _select(guard):
    """``guard`` ([lo ≤ e ≤ hi]) as a Piecewise the printer writes as a select."""
    e, low, high = guard.args
    return sp.Piecewise((sp.Integer(1), sp.And(sp.Le(low, e), sp.Le(e, high))), (sp.Integer(0), True))


def _split_guards(function, summed):
    """``(rest, {index: guards bounding its loop}, conditions)``: the guard factors of ``function`` (a product) on
    the ``summed`` indices go to the innermost of them they read (a loop bound) when it stands in the guarded expression
    (not its bounds), those on no summed index are conditions on the outer indices, the others (``selects``)
    conditions in the innermost loop; ``rest`` is the product of the other factors.  Returns
    ``(rest, bounds, conditions, selects)``."""
    factors = sp.Mul.make_args(function)
    bounds, conditions, selects = {index_: [] for index_ in summed}, [], []
    for guard in (f for f in factors if isinstance(f, InRange)):
        e, low, high = guard.args
        inner = [index_ for index_ in summed if guard.has(index_)]
        if not inner:
            conditions.append(guard)
        elif e.has(inner[-1]) and not (low.has(inner[-1]) or high.has(inner[-1])):
            bounds[inner[-1]].append(guard)
        else:       # [0 ≤ s ≤ t] in a sum over t inside the loop over s: a select in the summand
            selects.append(guard)
    rest = sp.Mul(*(f for f in factors if not isinstance(f, InRange)))
    return rest, bounds, conditions, selects


def _is_matmul(term, target):
    if term.guards or len(term.factors) != 2 or len(term.summed) != 1 or len(target) != 2 or term.coefficient != 1 or term.rest != 1:
        return False
    (s,) = term.summed
    return all(len(f.indices) == 2 and s in f.indices and len(set(f.indices) & set(target)) == 1
               for f in term.factors) and set(target) <= set().union(*(f.indices for f in term.factors))


def _matmul(term, target):
    """``np.dot`` operands for out[u, v] = Σ_s F1 F2 (transposes are free views)."""
    u, v = target
    (s,) = term.summed
    left = next(f for f in term.factors if u in f.indices)
    right = next(f for f in term.factors if f is not left)
    left_text = str(left.base) + ("" if left.indices == (u, s) else ".T")
    right_text = str(right.base) + ("" if right.indices == (s, v) else ".T")
    return left_text, right_text


@dataclass(frozen=True)
class _Correlation:
    """How out[target] = Σ_summed [guards] P[affine indices] · Q[plain indices] becomes one matrix product (a
    convolution, its weight gradient, its input gradient): the patch matrix ``cols[rows, columns]`` holds P (0 where a
    guard fails) for every combination of P's indices, ``columns`` those of its group that holds the batch index (the
    positions), ``rows`` the others (the window), and the product Q · cols (or Q · colsᵀ) contracts it with Q over
    the ``summed`` group.  Rows of the batch's length make the inner gather loop long and contiguous, and the product
    (kept × summed) · (summed × long) is the faster way round for OpenBLAS (docs/performance.md)."""

    patches: sp.Indexed     # P
    operand: sp.Indexed     # Q
    guards: tuple
    rows: tuple             # P's indices without the batch index's group, in order of first appearance
    columns: tuple          # P's other indices (the batch index first)
    summed: str             # "rows" or "columns": the group the product contracts over
    kept: tuple             # Q's indices that are not summed, in Q's order
    extents: dict           # {index: extent} ("batch" for the batch index)

    @property
    def contracted(self):
        return self.rows if self.summed == "rows" else self.columns

    @property
    def other(self):
        return self.columns if self.summed == "rows" else self.rows


def _ordered_symbols(indexed):
    """The index symbols of ``indexed`` in order of first appearance (within one index, by name)."""
    found = []
    for index_ in indexed.indices:
        for symbol in sorted(index_.free_symbols, key=sp.default_sort_key):
            if symbol not in found:
                found.append(symbol)
    return found


class Contractions:
    """Emits contractions and evaluations of index expressions, and the arrays they fill: a mixin of
    :class:`~symnet.generate.network.NetworkModule`, whose ``__init__`` sets the state used here (``printer``,
    ``shapes``, ``dtype``, ``itemsize``; and, per function being written, ``scratch_width``, ``views_pending``,
    ``uses_blas``, ``sum_count``, ``hoisted``, ``flat``)."""

    def p(self, expr):
        """``expr`` as code; a guard left where no loop bound can take it is printed as a select (1 where it holds,
        else 0)."""
        return self.printer.doprint(expr.replace(lambda e: isinstance(e, InRange), _select) if expr.has(InRange)
                                    else expr)

    @contextmanager
    def innermost(self, extent):
        """Code printed inside calls libm rather than the kernels when the innermost loop runs ``extent`` <
        :data:`KERNEL_MIN_EXTENT` times."""
        kernels = self.printer.kernels
        if isinstance(extent, int) and extent < KERNEL_MIN_EXTENT:
            self.printer.kernels = set()
        try:
            yield
        finally:
            self.printer.kernels = kernels

    def _size(self, index, factors):
        """The extent of ``index`` from the first factor that has it as a plain index (a rows array read as
        ``a[n, i]`` has ``i`` over all its entries)."""
        for factor in factors:
            if index in factor.indices:
                shape = self.shapes[str(factor.base)]
                if len(factor.indices) == 2 and len(shape) > 2:
                    shape = (shape[0], math.prod(shape[1:]))
                return shape[factor.indices.index(index)]
        raise ValueError(f"index {index} has no size")

    def _loops(self, w, term_list, target, target_indices, accumulate=False, bound=()):
        """Explicit loops: target[idx] (+)= Σ_summed Σ_terms coefficient * rest * Π factors, where the guards hold.

        A single term summed over several indices keeps one partial sum per value of the innermost (``lanes``,
        when it runs at least :data:`ROW_MIN_EXTENT` times): the additions along it are independent, so LLVM
        vectorises them, where one running total is a chain it may not reorder; the partial sums are added at the
        end, in order (a fixed order, so the same bits every run).

        A guard on a summed index bounds that index's loop (:meth:`_bounded`), so a convolution's loops never
        visit the padding; a guard on the target's indices only is an ``if``.  A single sum over the batch index
        (∂L/∂b = Σ_n δ[n, p]) puts the batch loop outside, so rows are read in memory order
        (docs/performance.md); each cell still adds in batch order from 0: the same bits.

        ``bound``: target indices a loop around this code sets (a recurrent layer's step), not looped here."""
        cell = self.p(sp.IndexedBase(target, real=True)[target_indices])
        extents = dict(zip(target_indices, self._extents(target, target_indices)))
        ranges = [(index_, extent) for index_, extent in extents.items() if index_ not in bound]
        if (not accumulate and len(term_list) == 1 and len(term_list[0].summed) == 1 and not term_list[0].guards
                and self._size(term_list[0].summed[0], term_list[0].factors) == "batch"):
            t = term_list[0]
            with w.loops(*ranges):
                w(f"{cell} = {self.p(sp.Float(0))}")
            with w.loops((t.summed[0], "batch"), *ranges):
                w(f"{cell} += {self.p(t.summand)}")
            return
        if (len(term_list) == 1 and term_list[0].summed and len(ranges) > 2 and isinstance(ranges[-1][1], int)
                and ranges[-1][1] >= ROW_MIN_EXTENT):
            self._row_loops(w, term_list[0], target, ranges, accumulate)
            return
        lanes = None
        if len(term_list) == 1 and len(term_list[0].summed) > 1:
            _, low, high = term_list[0].limits[-1]
            if not high.free_symbols and high - low + 1 >= ROW_MIN_EXTENT:
                lanes, extent = f"lanes{self.sum_count}", int(high - low) + 1
                self.sum_count += 1
                self.buffer(w, lanes, ("batch", extent))
        with w.loops(*ranges):
            w(f"total = {self.p(sp.Float(0))}")
            if lanes:
                w(f"# one partial sum per {term_list[0].summed[-1]}: independent additions, which LLVM vectorises")
                with w.loops(("lane", extent)):
                    w(f"{lanes}[0, lane] = {self.p(sp.Float(0))}")
            for t in term_list:
                known = {index_: (0, extent - 1) for index_, extent in extents.items() if extent != "batch"}
                conditions, bounds = [], {index_: [] for index_ in t.summed}
                for guard in t.guards:
                    inner = [index_ for index_ in t.summed if guard.args[0].has(index_)]
                    if inner:
                        bounds[inner[-1]].append(guard)
                    else:
                        conditions.append(self._condition(guard))
                if conditions:
                    w(f"if {' and '.join(conditions)}:")
                    w.depth += 1
                depth = w.depth
                for index_, low, high in t.limits:
                    size = _extent(low, high)
                    w(f"for {index_} in range({self._range(index_, size, bounds[index_], known)}):")
                    w.depth += 1
                    if size != "batch":
                        known[index_] = (0, size - 1)
                if lanes:
                    w(f"{lanes}[0, {t.summed[-1]}] += {self.p(t.summand)}")
                else:
                    w(f"total += {self.p(t.summand)}")
                w.depth = depth - bool(conditions)
            if lanes:
                with w.loops(("lane", extent)):
                    w(f"total += {lanes}[0, lane]")
            w(f"{cell} {'+=' if accumulate else '='} total")

    def _row_loops(self, w, t, target, ranges, accumulate):
        """target[…, x] (+)= Σ_summed summand with the target's last index x innermost: each step adds one
        product to a row of cells, a loop LLVM vectorises (a sum into one cell is not vectorised without
        reassociation).  Every cell still adds its terms in the order of the summed loops."""
        cell = self.p(sp.IndexedBase(target, real=True)[tuple(index_ for index_, _ in ranges)])
        if not accumulate:
            w(f"{target}[:] = {self.p(sp.Float(0))}")
        order = [index_ for index_, _ in ranges[:-1]] + list(t.summed) + [ranges[-1][0]]
        bounds = {index_: [] for index_ in order}
        conditions = []
        for guard in t.guards:
            inner = [index_ for index_ in order if guard.args[0].has(index_)]
            if inner and inner[-1] in bounds and inner[-1] not in dict(ranges[:-1]):
                bounds[inner[-1]].append(guard)
            else:
                conditions.append(guard)
        extents = {**dict(ranges), **{index_: _extent(low, high) for index_, low, high in t.limits}}
        depth, known = w.depth, {}
        for index_ in order:
            if conditions and index_ == t.summed[0]:
                w(f"if {' and '.join(self._condition(guard) for guard in conditions)}:")
                w.depth += 1
            w(f"for {index_} in range({self._range(index_, extents[index_], bounds[index_], known)}):")
            w.depth += 1
            if extents[index_] != "batch":
                known[index_] = (0, extents[index_] - 1)
        w(f"{cell} += {self.p(t.summand)}")
        w.depth = depth

    def _condition(self, guard):
        e, low, high = guard.args
        return f"{self.index_text(low)} <= {self.index_text(e)} <= {self.index_text(high)}"

    def index_text(self, expr):
        return self.printer.index_text(expr)

    def _bounded(self, index_, extent, guards, known):
        """The (lower, upper) bounds as text of ``index_`` over ``0 … extent − 1`` where every guard
        ``[low ≤ c·index_ + rest ≤ high]`` holds (c a nonzero integer, rest in the outer loops' indices, whose ranges
        ``known`` gives: a bound those ranges always satisfy is left out)."""
        lower, upper = [sp.Integer(0)], [extent if extent == "batch" else sp.Integer(extent)]
        for guard in guards:
            e, low, high = guard.args
            coefficient = e.coeff(index_)
            rest = sp.expand(e - coefficient * index_)
            if not coefficient.is_Integer or coefficient == 0 or rest.has(index_):
                raise ValueError(f"guard {guard} is not affine in {index_}")
            if coefficient < 0:
                coefficient, rest, low, high = -coefficient, -rest, -high, -low
            lower.append(sp.ceiling((low - rest) / coefficient))
            upper.append(sp.floor((high - rest) / coefficient) + 1)
        return self._extreme(max, lower, known), self._extreme(min, upper, known)

    def _extreme(self, pick, bounds, known):
        """``max(…)``/``min(…)`` of the bounds as text, leaving out those the others always dominate over the
        ``known`` ranges (the loop's own extent is the first bound)."""
        first, kept = bounds[0], []
        for bound in bounds[1:]:
            interval = _interval_of(bound, known)
            if interval is not None and first != "batch" and (
                    (pick is max and interval[1] <= first) or (pick is min and interval[0] >= first)):
                continue
            kept.append(bound)
        texts = [str(first) if first == "batch" else self.index_text(first)] + [self._floor_text(b) for b in kept]
        return texts[0] if len(texts) == 1 else f"{pick.__name__}({', '.join(texts)})"

    def _range(self, index_, extent, guards, known):
        """``range(…)``'s arguments (``lower, upper``, or ``upper`` alone when the lower bound is 0)."""
        lower, upper = self._bounded(index_, extent, guards, known)
        return upper if lower == "0" else f"{lower}, {upper}"

    def _floor_text(self, bound):
        """A bound ``ceiling(e/c)`` or ``floor(e/c) + k`` printed in integer arithmetic (``//`` floors)."""
        offset, parts = bound.as_coeff_Add()
        if isinstance(parts, sp.ceiling):
            numerator, denominator = sp.fraction(sp.together(parts.args[0]))
            text = f"-(({self.index_text(sp.expand(-numerator))}) // {denominator})"
        elif isinstance(parts, sp.floor):
            numerator, denominator = sp.fraction(sp.together(parts.args[0]))
            text = f"({self.index_text(sp.expand(numerator))}) // {denominator}"
        else:
            return self.index_text(bound)
        return text if offset == 0 else f"{text} + {self.index_text(offset)}"

    def _small(self, term):
        """True when the fixed (non-batch) extents of a product multiply to at most SMALL_PRODUCT: plain loops
        then beat a BLAS call's overhead (docs/performance.md)."""
        extents = {index: self._size(index, term.factors) for f in term.factors for index in f.indices
                   if isinstance(index, sp.Symbol)}
        fixed = 1
        for extent in extents.values():
            if extent != "batch":
                fixed *= extent
        return fixed <= SMALL_PRODUCT

    def evaluate(self, w, expr, target, target_indices, allocate):
        """target[target_indices] = expr, an index expression with sums inside other functions (a normalisation's
        √(Σ_j (a[n,j] − μ[n])² / J + ε)).  Each distinct sum (up to the names of its indices) is computed first,
        innermost first, into an array over its free indices (``sigma<k>[n]``); then one loop over the target's cells
        evaluates the rest.  Exponentials normalised by a sum are evaluated shifted by their max
        (:func:`~symnet.indexed.shift_exponentials`).  Sums of products are evaluated in the order
        :func:`reordered` picks."""
        expr = shift_exponentials(expr)
        ranges = dict(zip(target_indices, self._extents(target, target_indices)))
        for total in expr.atoms(*REDUCTIONS):
            ranges.update({index_: _extent(low, high) for index_, low, high in total.limits})
        expr = reordered(expr, ranges)
        body = expr.replace(lambda e: isinstance(e, REDUCTIONS), lambda total: self._hoisted(w, total, ranges))
        if allocate:
            self.buffer(w, target, self.shapes[target])
        cell = self.p(sp.IndexedBase(target, real=True)[target_indices])
        with w.loops(*((index_, ranges[index_]) for index_ in target_indices)), \
                self.innermost(ranges[target_indices[-1]]):
            w(f"{cell} = {self.p(body)}")

    def _hoisted(self, w, total, ranges):
        """The array cell that holds ``total``, a sum or a max: ``sigma<k>[free indices]`` or
        ``maximum<k>[free indices]``, computed here unless this function has computed the same reduction before (up
        to the names of its indices: μ[n] of the forward pass serves the backward's μ[r]; the arrays it reads are
        not written in between)."""
        free = sorted((symbol for symbol in total.free_symbols if symbol in ranges),
                      key=lambda symbol: (ranges[symbol] != "batch", symbol.name))
        found = self._computed(total, free, ranges, _canonical)
        if found is not None:
            return found
        key = _canonical(total.xreplace({index_: sp.Symbol(f"_f{k}", integer=True) for k, index_ in enumerate(free)}))
        if isinstance(total, sp.Sum):
            bound = {index_ for index_, _, _ in total.limits}
            loops = bound | set(free)
            function = total.function.replace(
                lambda e: _invariant_call(e, bound, loops, ranges), lambda e: self._tabulated(w, e, ranges))
            total = sp.Sum(function, *total.limits)
        name = f"{'sigma' if isinstance(total, sp.Sum) else 'maximum'}{self.sum_count}"
        self.sum_count += 1
        shape = tuple(ranges[index_] for index_ in free)
        w(f"# {name}{list(free)} = {total}")
        if shape and shape[0] == "batch":
            self.buffer(w, name, shape)
        else:
            w(f"{name} = np.empty(({', '.join(map(str, shape or (1,)))},), dtype=np.{self.dtype})")
        base = self.hoisted[key] = sp.IndexedBase(name, real=True)
        cell = base[tuple(free)] if free else base[0]
        with w.loops(*((index_, ranges[index_]) for index_ in free)):
            if isinstance(total, sp.Sum):
                w(f"total = {self.p(sp.Float(0))}")
                summed = [index_ for index_, _, _ in total.limits]
                function, bounds, conditions, selects = _split_guards(total.function, summed)
                depth = w.depth
                if conditions:
                    w(f"if {' and '.join(map(self._condition, conditions))}:")
                    w.depth += 1
                known = {index_: (0, ranges[index_] - 1) for index_ in free if ranges[index_] != "batch"}
                for index_ in summed:      # a guard on a summed index bounds its loop: a masked key is not visited
                    w(f"for {index_} in range({self._range(index_, ranges[index_], bounds[index_], known)}):")
                    w.depth += 1
                    if ranges[index_] != "batch":
                        known[index_] = (0, ranges[index_] - 1)
                if selects:     # a condition, not a factor: a masked entry may hold an overflowed exp (0·∞)
                    w(f"if {' and '.join(map(self._condition, selects))}:")
                    w.depth += 1
                with self.innermost(ranges[summed[-1]]):
                    w(f"total += {self.p(function)}")
                w.depth = depth
            else:
                (index_, low, high), = total.limits
                w(f"total = {self.p(total.function.xreplace({index_: low}))}")
                w(f"for {index_} in range({self.index_text(low + 1)}, {self.index_text(high + 1)}):")
                with w.block(), self.innermost(ranges[index_]):
                    w(f"total = max(total, {self.p(total.function)})")
            w(f"{self.p(cell)} = total")
        return cell

    def _computed(self, expr, free, ranges, canonical):
        """The array cell that holds ``expr`` when this function has computed it before, under any names of its free
        indices (the scores Σ_c Q[n,c,h,t] K[n,c,h,s] serve Σ_c Q[n,c,h,s] K[n,c,h,u] read the other way round), else
        None.  The batch index stays first; up to 5 others are tried in every order."""
        batch = [index_ for index_ in free if ranges[index_] == "batch"]
        others = [index_ for index_ in free if ranges[index_] != "batch"]
        for order in (itertools.permutations(others) if len(others) <= 5 else [others]):
            names = (*batch, *order)
            key = canonical(expr.xreplace({index_: sp.Symbol(f"_f{k}", integer=True) for k, index_ in enumerate(names)}))
            if key in self.hoisted:
                base = self.hoisted[key]
                return base[names] if names else base[0]
        return None

    def _tabulated(self, w, call, ranges):
        """The array cell that holds ``call`` (an exp, log or tanh that a sum reads in a loop it does not depend on:
        softmax's e^(s − m)[n,h,t,s] in Σ_s P[n,h,t,s] V[n,h,k,s] would be evaluated once per k), computed once into
        ``value<k>[its indices]`` unless this function has computed it before."""
        free = sorted((symbol for symbol in call.free_symbols if symbol in ranges),
                      key=lambda symbol: (ranges[symbol] != "batch", symbol.name))

        def key(expr):
            return ("value", expr)
        found = self._computed(call, free, ranges, key)
        if found is not None:
            return found
        name = f"value{self.sum_count}"
        self.sum_count += 1
        shape = tuple(ranges[index_] for index_ in free)
        w(f"# {name}{list(free)} = {call}: once, not in every loop of the sums that read it")
        if shape[0] == "batch":
            self.buffer(w, name, shape)
        else:
            w(f"{name} = np.empty(({', '.join(map(str, shape))},), dtype=np.{self.dtype})")
        base = self.hoisted[key(call.xreplace({index_: sp.Symbol(f"_f{k}", integer=True)
                                                for k, index_ in enumerate(free)}))] = sp.IndexedBase(name, real=True)
        cell = base[tuple(free)]
        with w.loops(*((index_, ranges[index_]) for index_ in free)), self.innermost(ranges[free[-1]]):
            w(f"{self.p(cell)} = {self.p(call)}")
        return cell

    def _extents(self, target, indices):
        """The extents of ``target``'s indices (a rows array indexed [n, i] runs over all its entries)."""
        shape = self.shapes[target]
        if len(indices) == 2 and len(shape) > 2:
            shape = (shape[0], math.prod(shape[1:]))
        return shape

    def _assign(self, w, expr, target, target_indices, allocate):
        """target[target_indices] = expr: as a contraction (np.dot or loops), or by :meth:`evaluate` when a sum
        stands inside another function."""
        term_list = terms(expr)
        if _nonlinear(term_list):
            self.evaluate(w, expr, target, target_indices, allocate)
        else:
            self.contraction(w, term_list, target, target_indices, allocate)

    def contraction(self, w, term_list, target, target_indices, allocate):
        """Emit code for target[target_indices] = Σ terms (read from a contracted index expression): ``np.dot`` for
        plain matrix products, a patch matrix and ``np.dot`` for correlations (:meth:`_correlation_plan`), loops for
        the rest (added to what the products wrote)."""
        matmuls = [t for t in term_list if _is_matmul(t, target_indices) and not self._small(t)]
        others = [t for t in term_list if t not in matmuls]
        plans = [(t, self._correlation_plan(t, target, target_indices)) for t in others]
        correlations = [(t, plan) for t, plan in plans if plan is not None]
        others = [t for t, plan in plans if plan is None]
        if allocate:
            self.buffer(w, target, self.shapes[target])
        for number, t in enumerate(matmuls):
            left, right = _matmul(t, target_indices)
            self.uses_blas = True
            if number == 0:
                w(f"np.dot({left}, {right}, {target})")
            else:
                w(f"{target} += np.dot({left}, {right})")
        for number, (t, plan) in enumerate(correlations):
            self._correlate(w, plan, target, target_indices, accumulate=bool(matmuls) or number > 0)
        if others:
            self._loops(w, others, target, target_indices, accumulate=bool(matmuls or correlations))

    # --- correlations: a patch matrix (im2col) and one matrix product ----------------------------------------

    def _correlation_plan(self, t, target, target_indices):
        """A :class:`_Correlation` for the term ``t`` of target[target_indices], or None when it is not one or is
        small.  The shape: two factors, P read at index expressions (a convolution's a[n, d, s·y + u − p, …]) and Q
        at distinct plain indices; every summed index in both; each target index in exactly one of them; the guards
        in P's indices; the batch index in P, first of its group (so the patch matrix's rows are the batch's length); and the
        fixed extents of all indices multiplying to more than :data:`SMALL_PRODUCT` (below, loops are cheaper)."""
        if len(t.factors) != 2 or t.coefficient != 1 or t.rest != 1 or not t.summed:
            return None
        plain = [f for f in t.factors
                 if all(isinstance(i, sp.Symbol) for i in f.indices) and len(set(f.indices)) == len(f.indices)]
        if len(plain) != 1:
            return None
        operand = plain[0]
        patches = next(f for f in t.factors if f is not operand)
        summed, order = set(t.summed), _ordered_symbols(patches)
        kept = tuple(i for i in operand.indices if i not in summed)
        other = tuple(i for i in order if i not in summed)
        if (len(summed) != len(t.summed) or not summed <= set(order) or not summed <= set(operand.indices)
                or not kept or not other or set(kept) & set(other)
                or set(kept) | set(other) != set(target_indices) or len(set(target_indices)) != len(target_indices)
                or any(not g.free_symbols <= set(order) for g in t.guards) or any(low != 0 for _, low, _ in t.limits)):
            return None
        extents = dict(zip(target_indices, self._extents(target, target_indices)))
        if len(extents) != len(target_indices):
            return None
        extents.update({index_: _extent(low, high) for index_, low, high in t.limits})
        batch = [index_ for index_, extent in extents.items() if extent == "batch"]
        if len(batch) != 1 or batch[0] not in order:
            return None
        contracted = tuple(i for i in order if i in summed)
        rows, columns = (other, contracted) if batch[0] in summed else (contracted, other)
        if columns[0] != batch[0] or math.prod(e for e in extents.values() if e != "batch") <= SMALL_PRODUCT:
            return None
        return _Correlation(patches, operand, tuple(t.guards), rows, columns,
                            "columns" if batch[0] in summed else "rows", kept, extents)

    def _flat_index(self, indices, extents):
        """The row-major position of ``indices`` (the batch index, if there, first) as a SymPy expression."""
        position, stride = sp.Integer(0), 1
        for index_ in reversed(indices):
            position += stride * index_
            if extents[index_] != "batch":
                stride *= extents[index_]
        return position

    @staticmethod
    def _length(indices, extents):
        """The number of positions of ``indices`` as text ("batch * 64" when the batch index is among them)."""
        fixed = math.prod(extents[i] for i in indices if extents[i] != "batch")
        if any(extents[i] == "batch" for i in indices):
            return "batch" if fixed == 1 else f"batch * {fixed}"
        return str(fixed)

    def _matrix(self, w, name, rows, columns, extents):
        """``name`` = a (rows × columns) matrix cut from ``scratch``.  One with the batch index takes its cells per
        batch row; a fixed one takes as many cells per batch row as it has, so it fits any batch ≥ 1 (scratch
        offsets stay multiples of ``batch``)."""
        width = math.prod(extents[i] for i in (*rows, *columns) if extents[i] != "batch")
        start, self.scratch_width = self.scratch_width, self.scratch_width + width
        self.flat[name] = f"scratch[{f'{start} * batch' if start else ''}:{start + width} * batch]"
        w(f"{name} = {self.flat[name]}"
          f"{'' if any(extents[i] == 'batch' for i in (*rows, *columns)) else f'[:{width}]'}"
          f".reshape(({self._length(rows, extents)}, {self._length(columns, extents)}))")

    def _gather(self, w, name, value, rows, columns, extents, guards=()):
        """Loops that fill the matrix ``name[rows, columns]`` with ``value``; with ``guards``, the matrix is zeroed
        first and each guard bounds the loop of its innermost index (the padding is never read)."""
        order = (*rows, *columns)
        if guards:
            w(f"{name}[:] = {self.p(sp.Float(0))}")
        bounds = {index_: [] for index_ in order}
        for guard in guards:
            bounds[[index_ for index_ in order if guard.args[0].has(index_)][-1]].append(guard)
        depth, known = w.depth, {}
        for index_ in order:
            w(f"for {index_} in range({self._range(index_, extents[index_], bounds[index_], known)}):")
            w.depth += 1
            if extents[index_] != "batch":
                known[index_] = (0, extents[index_] - 1)
        cell = sp.IndexedBase(name, real=True)[self._flat_index(rows, extents), self._flat_index(columns, extents)]
        w(f"{self.p(cell)} = {self.p(value)}")
        w.depth = depth

    def _patches(self, w, plan):
        """The patch matrix of ``plan`` (im2col), written here unless this function has written the same one
        (up to the names of its indices: a convolution's forward pass and its weight gradient share it; the array
        it reads is not written in between)."""
        renamed = {**{index_: sp.Symbol(f"_r{k}", integer=True) for k, index_ in enumerate(plan.rows)},
                   **{index_: sp.Symbol(f"_c{k}", integer=True) for k, index_ in enumerate(plan.columns)}}
        key = ("patches", plan.patches.xreplace(renamed),
               tuple(sorted((g.xreplace(renamed) for g in plan.guards), key=sp.default_sort_key)),
               tuple(plan.extents[i] for i in plan.rows), tuple(plan.extents[i] for i in plan.columns))
        if key in self.hoisted:
            return self.hoisted[key]
        name = self.hoisted[key] = f"cols{self.sum_count}"
        self.sum_count += 1
        guarded = sp.Mul(*plan.guards) * plan.patches
        w(f"# {name}[({', '.join(map(str, plan.rows))}), ({', '.join(map(str, plan.columns))})] = {guarded}: "
          f"the patches (im2col){', 0 where a guard fails' if plan.guards else ''}")
        self._matrix(w, name, plan.rows, plan.columns, plan.extents)
        self._gather(w, name, plan.patches, plan.rows, plan.columns, plan.extents, plan.guards)
        return name

    def _operand(self, w, plan):
        """Q as a (kept × summed) matrix, as text: a view when its indices are (kept, summed) or (summed, kept) in
        the patch matrix's order, else gathered into a scratch matrix in that order."""
        kept, summed, extents = plan.kept, plan.contracted, plan.extents
        base = str(plan.operand.base)
        kept_length, summed_length = self._length(kept, extents), self._length(summed, extents)
        if plan.operand.indices == (*kept, *summed):
            return f"{base}.reshape(({kept_length}, {summed_length}))"
        if plan.operand.indices == (*summed, *kept):
            return f"{base}.reshape(({summed_length}, {kept_length})).T"
        name = f"operand{self.sum_count}"
        self.sum_count += 1
        w(f"# {name}[({', '.join(map(str, kept))}), ({', '.join(map(str, summed))})] = {plan.operand}")
        self._matrix(w, name, kept, summed, extents)
        self._gather(w, name, plan.operand, kept, summed, extents)
        return name

    def _correlate(self, w, plan, target, target_indices, accumulate):
        """target (+)= the product of Q and the patch matrix: Q · cols when the sum runs over the patches' rows (a
        convolution), Q · colsᵀ when it runs over their columns (its weight gradient); straight into the target when
        its indices are in the product's order (kept, others), else through a product matrix."""
        cols = self._patches(w, plan)
        left = self._operand(w, plan)
        self.uses_blas = True
        if plan.summed == "rows":
            right, out_rows, out_columns = cols, plan.kept, plan.columns
        else:
            right, out_rows, out_columns = f"{cols}.T", plan.kept, plan.rows
        summed = ", ".join(map(str, plan.contracted))
        w(f"# {target}[({', '.join(map(str, out_rows))}), ({', '.join(map(str, out_columns))})] "
          f"{'+' if accumulate else ''}= Σ_({summed}) {cols}[({', '.join(map(str, plan.rows))}), "
          f"({', '.join(map(str, plan.columns))})] · {plan.operand}")
        extents = plan.extents
        shape = (self._length(out_rows, extents), self._length(out_columns, extents))
        if tuple(target_indices) == (*out_rows, *out_columns) and not accumulate:
            w(f"np.dot({left}, {right}, {target}.reshape(({', '.join(shape)})))")
            return
        name = f"product{self.sum_count}"
        self.sum_count += 1
        self._matrix(w, name, out_rows, out_columns, extents)
        w(f"np.dot({left}, {right}, {name})")
        cell = self.p(sp.IndexedBase(target, real=True)[tuple(target_indices)])
        value = self.p(sp.IndexedBase(name, real=True)[self._flat_index(out_rows, extents),
                                                        self._flat_index(out_columns, extents)])
        with w.loops(*((index_, extents[index_]) for index_ in target_indices)):
            w(f"{cell} {'+=' if accumulate else '='} {value}")

    def view(self, w, name, flat, shape):
        """``name = flat`` (a 1-D slice, C order) seen with ``shape``; the line is printed by :meth:`resolve_views`
        once the function is written, when it is known whether it calls BLAS."""
        if len(shape) == 1:
            w(f"{name} = {flat}")
            return
        self.views_pending.append((len(w.lines), w.depth, name, flat, shape))
        w(f"{name} = ...")

    def resolve_views(self, w):
        """Print the pending views of one function: :data:`VIEW` with the strides the shape gives (its axes after
        the first are fixed numbers) for short rows in a function without BLAS calls, else ``reshape``."""
        for at, depth, name, flat, shape in self.views_pending:
            shape_text = ", ".join(map(str, shape))
            if self.uses_blas or shape[-1] >= KERNEL_MIN_EXTENT:
                view = f"{flat}.reshape(({shape_text}))"
            else:
                strides = ", ".join(str(self.itemsize * math.prod(shape[axis + 1:])) for axis in range(len(shape)))
                view = f"{VIEW}({flat}, ({shape_text}), ({strides}))"
            w.lines[at] = INDENT * depth + f"{name} = {view}"

    def buffer(self, w, name, shape, zero=False):
        """``name`` = the next cells of ``scratch``, shaped ``shape`` = (batch, …), zero-filled if ``zero``.
        Offsets are multiples of ``batch``, so a shorter last batch fits the scratch of a full one."""
        assert shape[0] == "batch", shape
        width = math.prod(shape[1:])
        start, self.scratch_width = self.scratch_width, self.scratch_width + width
        self.flat[name] = f"scratch[{f'{start} * batch' if start else ''}:{start + width} * batch]"
        self.view(w, name, self.flat[name], ("batch", width) if name in self.printer.flat_rows else shape)
        if zero:
            w(f"{name}[:] = {self.p(sp.Float(0))}")
