"""Numerically stable rewrites: named identities applied to values and derivatives after differentiation.

Applied after differentiation, so derivatives at kinks are never affected.  tests/test_rewrites.py checks each
against the form it replaces in mpmath, and finite at ±1000.  SymPy (and NumPy for the float64 check): it sits
below the declarations because a loss declares its stable form.

A :class:`Rewrite` shows one rewrite as used: the form before and after, checked equal in mpmath at the points it
names and evaluated in float64 where the form before overflows; it renders in Jupyter (``_repr_latex_``).
"""

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import log1p

from symnet.latex import aligned, display, latex, text

CHECK_DIGITS = 50
TOLERANCE = 1e-40
"""A rewrite is shown as checked when it differs from the form it replaces by less than this at every point."""
CHECK_POINTS = (-3.5, -0.25, 0.0, 0.7, 4.0)
"""Where a rewrite of one variable is checked equal to the form it replaces (mpmath, :data:`CHECK_DIGITS`)."""
EXTREMES = (-1000.0, 1000.0)
"""Where it is evaluated in float64: e^1000 overflows there."""
LOSS_OUTPUTS = ((0.3, -1.2, 0.7), (-2.5, 0.4, 1.9))
LOSS_TARGETS = ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0))
LOSS_EXTREMES = ((1000.0, -1000.0, 0.0),)
"""Where a loss's rewrite is checked: three outputs o and one-hot targets y, and outputs that overflow e^o."""


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


def _number(value):
    return f"{float(value):g}"


def _latex_number(value):
    value = float(value)
    if math.isnan(value):
        return r"\text{NaN}"
    if math.isinf(value):
        return r"\infty" if value > 0 else r"-\infty"
    return _number(value)


def _is_size(atom):
    """Sizes and indices (K, j): integer symbols, substituted before sums are expanded."""
    return isinstance(atom, sp.Symbol) and bool(atom.is_integer)


def _describe(point):
    """``[(name, value text)]`` of a point, an IndexedBase's entries together as ``(0.3, -1.2, 0.7)``."""
    grouped = {}
    for atom, value in point.items():
        if isinstance(atom, sp.Indexed):
            grouped.setdefault(str(atom.base), {})[atom.indices] = value
        else:
            grouped[str(atom)] = value
    return [(name, "(" + ", ".join(_number(v) for _, v in sorted(value.items())) + ")" if isinstance(value, dict)
             else _number(value)) for name, value in grouped.items()]


def _point_text(point):
    return ", ".join(f"{name} = {value}" for name, value in _describe(point))


@dataclass(frozen=True, eq=False)
class Rewrite:
    """One stable rewrite as used: the form ``before`` and the form evaluated ``after``.

    ``points`` are where the two are compared in mpmath at :data:`CHECK_DIGITS` digits, ``extremes`` where both are
    evaluated in float64 (where the form before overflows); each maps the symbols of the expressions (symbols,
    ``Indexed`` entries, and sizes and indices such as K and j, substituted first and their sums expanded) to
    numbers.  :attr:`check` holds the results; ``repr`` and ``_repr_latex_`` show them.
    """

    name: str
    before: sp.Expr
    after: sp.Expr
    points: tuple
    extremes: tuple = ()

    @staticmethod
    def _expanded(expr, point):
        sizes = {atom: sp.Integer(int(value)) for atom, value in point.items() if _is_size(atom)}
        return expr.xreplace(sizes).doit()

    def exact(self, expr, point):
        """``expr`` at ``point`` in mpmath with :data:`CHECK_DIGITS` digits."""
        values = {atom: sp.Float(value, CHECK_DIGITS + 10) for atom, value in point.items() if not _is_size(atom)}
        return sp.N(self._expanded(expr, point).xreplace(values), CHECK_DIGITS)

    def float64(self, expr, point):
        """``expr`` at ``point`` in float64 with NumPy (e^1000 is inf, as in the generated code)."""
        atoms = [atom for atom in point if not _is_size(atom)]
        dummies = [sp.Dummy() for _ in atoms]
        function = sp.lambdify(dummies, self._expanded(expr, point).xreplace(dict(zip(atoms, dummies))),
                               modules="numpy")
        with np.errstate(all="ignore"):
            return float(function(*[np.float64(point[atom]) for atom in atoms]))

    @cached_property
    def check(self):
        """``{"difference": largest |after − before| over the points (mpmath), "equal": difference < TOLERANCE,
        "extremes": [(point, before, after) in float64], "finite": after finite at every extreme}``."""
        differences = [abs(self.exact(self.after, point) - self.exact(self.before, point)) for point in self.points]
        difference = float(max(differences)) if differences else math.nan
        extremes = [(point, self.float64(self.before, point), self.float64(self.after, point))
                    for point in self.extremes]
        return {"difference": difference, "equal": difference < TOLERANCE, "extremes": extremes,
                "finite": all(math.isfinite(after) for _, _, after in extremes)}

    def __repr__(self):
        check = self.check
        lines = [f"Rewrite {self.name}:", f"  before: {self.before}", f"  after:  {self.after}",
                 f"  {'equal' if check['equal'] else 'NOT EQUAL'} at " + "; ".join(map(_point_text, self.points))
                 + f" (mpmath, {CHECK_DIGITS} digits: largest difference {check['difference']:.1e})"]
        lines += [f"  in float64 at {_point_text(point)}: before {before!r}, after {after!r}"
                  for point, before, after in check["extremes"]]
        return "\n".join(lines)

    def _repr_latex_(self):
        check = self.check
        points = r";\ ".join(", ".join(f"{name} = {value}" for name, value in _describe(point))
                             for point in self.points)
        rows = [("", "", text(f"{self.name}:")), ("", "", latex(self.before)),
                (r"\longrightarrow", r"\ ", latex(self.after)),
                ("", r"\quad", text("equal at " if check["equal"] else "NOT EQUAL at ") + points
                 + text(f" ({CHECK_DIGITS} digits: largest difference {check['difference']:.1e})"))]
        rows += [("", r"\quad", text("float64 at ") + _point_text(point) + text(": before ") + _latex_number(before)
                  + text(", after ") + _latex_number(after)) for point, before, after in check["extremes"]]
        return display(aligned(rows))


def rewrite(name, before, after, points, extremes=()):
    """A :class:`Rewrite` when ``after`` differs from ``before``, else None (no rewrite applied)."""
    return None if after == before else Rewrite(name, before, after, tuple(points), tuple(extremes))


def of_one_variable(name, before, variable, fixed=None):
    """The rewrite :func:`stable` makes of ``before``, an expression in ``variable`` (an activation or its
    derivative; ``fixed`` gives its other symbols, e.g. trainable parameters at their initial values), checked at
    :data:`CHECK_POINTS` and :data:`EXTREMES`; None when nothing is rewritten."""
    fixed = dict(fixed or {})
    return rewrite(name, before, stable(before), [{variable: value, **fixed} for value in CHECK_POINTS],
                   [{variable: value, **fixed} for value in EXTREMES])


def loss_points(outputs, targets, classes, index=None):
    """``(points, extremes)`` for checking a loss's rewrite: :data:`LOSS_OUTPUTS` and :data:`LOSS_TARGETS` as the
    entries of the IndexedBases ``outputs`` and ``targets``, the size ``classes`` = 3, and every entry ``index`` =
    0, 1, 2 for a gradient ∂ℓ/∂o[index] (a max over the entries, the log-sum-exp's m, is evaluated from them)."""

    def point(o, y, j):
        values = {classes: len(o), **{outputs[k]: value for k, value in enumerate(o)},
                  **{targets[k]: value for k, value in enumerate(y)}}
        if index is not None:
            values[index] = j
        return values

    entries = range(len(LOSS_OUTPUTS[0])) if index is not None else [None]
    points = [point(o, y, j) for o, y in zip(LOSS_OUTPUTS, LOSS_TARGETS) for j in entries]
    extremes = [point(o, LOSS_TARGETS[0], j) for o in LOSS_EXTREMES for j in entries]
    return points, extremes


_u = sp.Symbol("u", real=True)
IDENTITIES = {name: Rewrite(name, before, STABLE_REWRITES[rule](before),
                            tuple({_u: value} for value in CHECK_POINTS), tuple({_u: value} for value in EXTREMES))
              for name, rule, before in (("softplus", "softplus", sp.log(1 + sp.exp(_u))),
                                         ("logistic", "logistic", sp.exp(_u) / (1 + sp.exp(_u))),
                                         ("logistic derivative", "logistic", sp.exp(_u) / (1 + sp.exp(_u)) ** 2))}
"""The rewrites of :data:`STABLE_REWRITES` on the forms they replace, in one variable u (render in Jupyter)."""
