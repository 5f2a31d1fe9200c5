"""Compare symbolic, numeric and automatic differentiation on one expression: accuracy and cost.

Four ways to get ∂f/∂v, all on the same expression:

* **symbolic**: SymPy's derivative (the naive tree, and symnet's reverse-mode
  program on the DAG), evaluated in float64;
* **numeric**: forward (f(x+h) − f(x))/h, backward (f(x) − f(x−h))/h,
  central (f(x+h) − f(x−h))/(2h), Richardson (4·C(h/2) − C(h))/3 and the
  complex step Im f(x + ih)/h (analytic expressions only);
* **forward-mode AD**: dual numbers pushed through the DAG, one pass per input;
* **reverse-mode AD**: one forward pass that records the DAG's local partial
  derivatives (the tape), one backward pass that accumulates adjoints.

The AD evaluators walk :class:`Graph`, the expression's DAG split into
elementary steps ``h1 … hk``, with NumPy arrays (so a batch of points is one
pass); their derivative rules are the table :data:`RULES`, written by hand
and independent of ``sympy.diff``, so they cross-check it.  The reference is
``mpmath.diff`` of the expression at 50 digits.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import mpmath
import numpy as np
import scipy.special
import sympy as sp

from symnet.calculus import normalize
from symnet.declare.parse import as_expression, parse_expression
from symnet.differentiate import count_ops
from symnet.errors import ExpressionError, SymnetError, quoted
from symnet.expression import as_symbols, derive
from symnet.files import writable_folder
from symnet.plotting import pyplot
from symnet.text import format_markdown_table, format_table
from symnet.timing import median_seconds

EPSILON = float(np.finfo(np.float64).eps)
REFERENCE_DIGITS = 50
DEFAULT_STEPS = tuple(f"1e-{k}" for k in range(1, 14))
NUMERIC_METHODS = ("forward", "backward", "central", "richardson", "complex")
TIMING_BUDGET = 0.05      # seconds of repeats per timed method


def _heaviside(xp, a, at_zero):
    return xp.where(a > 0, 1.0, xp.where(a < 0, 0.0, at_zero))


def _special(xp, name):
    """erf and erfc for the array namespace: SciPy's for NumPy, ``torch.special``, ``jax.scipy.special``."""
    if xp is np:
        return getattr(scipy.special, name)
    module = getattr(xp, "special", None)
    if module is None:
        import jax.scipy.special as module
    return getattr(module, name)


class CorrectlyRounded:
    """Elementary functions of one float64 (or complex128) value, for the tables of :func:`compare`.

    Each is evaluated by mpmath with :data:`ROUNDING_BITS` bits and rounded once to float64, so the result is the
    correctly rounded value (but for astronomically rare ties) on every CPU.  NumPy's SIMD loops and libm may
    differ by an ulp between machines (e^-0.01 does on AVX-512), which shows in the last digits of a difference
    quotient.  Outside a function's real domain the result is NaN, as in NumPy.  Arithmetic (+ − × ÷) stays
    NumPy's: IEEE rounding is the same everywhere.
    """

    _FUNCTIONS = {"exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "tan": "tan", "arcsin": "asin",
                  "arccos": "acos", "arctan": "atan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "sqrt": "sqrt",
                  "erf": "erf", "erfc": "erfc"}
    def __init__(self):
        for name in ("abs", "sign", "where", "maximum", "minimum"):   # exact operations: NumPy's
            setattr(self, name, getattr(np, name))
        for name, mpmath_name in self._FUNCTIONS.items():
            setattr(self, name, self._rounded(getattr(mpmath, mpmath_name)))
        self.special = self   # erf and erfc, found where _special looks for them

    @staticmethod
    def _rounded(function):
        def rounded(argument):
            with mpmath.workprec(ROUNDING_BITS):
                if np.iscomplexobj(argument):
                    return np.complex128(complex(function(mpmath.mpc(complex(argument)))))
                try:
                    result = function(mpmath.mpf(float(argument)))
                except (ValueError, ZeroDivisionError):
                    return np.float64(math.nan)
            return np.float64(math.nan if isinstance(result, mpmath.mpc) else float(result))
        return rounded


ROUNDING_BITS = 128
ROUNDED = CorrectlyRounded()


@dataclass(frozen=True)
class Rule:
    """One elementary operation: its value, its local partial derivatives (given the output), its text."""

    value: object
    partials: object
    text: str
    analytic: bool = True


RULES = {
    "add": Rule(lambda xp, a, b, c: a + b, lambda xp, out, a, b, c: (1.0, 1.0), "{0} + {1}"),
    "mul": Rule(lambda xp, a, b, c: a * b, lambda xp, out, a, b, c: (b, a), "{0}·{1}"),
    "neg": Rule(lambda xp, a, c: -a, lambda xp, out, a, c: (-1.0,), "−{0}"),
    "reciprocal": Rule(lambda xp, a, c: 1.0 / a, lambda xp, out, a, c: (-out * out,), "1/{0}"),
    "powc": Rule(lambda xp, a, c: a**c, lambda xp, out, a, c: (c * a ** (c - 1),), "{0}^{c}"),
    "pow": Rule(lambda xp, a, b, c: a**b, lambda xp, out, a, b, c: (b * a ** (b - 1), out * xp.log(a)), "{0}^{1}"),
    "exp": Rule(lambda xp, a, c: xp.exp(a), lambda xp, out, a, c: (out,), "exp({0})"),
    "log": Rule(lambda xp, a, c: xp.log(a), lambda xp, out, a, c: (1.0 / a,), "log({0})"),
    "sin": Rule(lambda xp, a, c: xp.sin(a), lambda xp, out, a, c: (xp.cos(a),), "sin({0})"),
    "cos": Rule(lambda xp, a, c: xp.cos(a), lambda xp, out, a, c: (-xp.sin(a),), "cos({0})"),
    "tan": Rule(lambda xp, a, c: xp.tan(a), lambda xp, out, a, c: (1.0 + out * out,), "tan({0})"),
    "asin": Rule(lambda xp, a, c: xp.arcsin(a), lambda xp, out, a, c: (1.0 / xp.sqrt(1.0 - a * a),), "asin({0})"),
    "acos": Rule(lambda xp, a, c: xp.arccos(a), lambda xp, out, a, c: (-1.0 / xp.sqrt(1.0 - a * a),), "acos({0})"),
    "atan": Rule(lambda xp, a, c: xp.arctan(a), lambda xp, out, a, c: (1.0 / (1.0 + a * a),), "atan({0})"),
    "sinh": Rule(lambda xp, a, c: xp.sinh(a), lambda xp, out, a, c: (xp.cosh(a),), "sinh({0})"),
    "cosh": Rule(lambda xp, a, c: xp.cosh(a), lambda xp, out, a, c: (xp.sinh(a),), "cosh({0})"),
    "tanh": Rule(lambda xp, a, c: xp.tanh(a), lambda xp, out, a, c: (1.0 - out * out,), "tanh({0})"),
    "erf": Rule(lambda xp, a, c: _special(xp, "erf")(a),
                lambda xp, out, a, c: (2.0 / math.sqrt(math.pi) * xp.exp(-a * a),), "erf({0})"),
    "erfc": Rule(lambda xp, a, c: _special(xp, "erfc")(a),
                 lambda xp, out, a, c: (-2.0 / math.sqrt(math.pi) * xp.exp(-a * a),), "erfc({0})"),
    "abs": Rule(lambda xp, a, c: xp.abs(a), lambda xp, out, a, c: (xp.sign(a),), "|{0}|", analytic=False),
    "sign": Rule(lambda xp, a, c: xp.sign(a), lambda xp, out, a, c: (0.0 * a,), "sign({0})", analytic=False),
    "heaviside": Rule(lambda xp, a, c: _heaviside(xp, a, c), lambda xp, out, a, c: (0.0 * a,), "H({0})",
                      analytic=False),
    # kinks follow symnet's convention H(0) = 0: at a tie neither argument gets the derivative
    "max": Rule(lambda xp, a, b, c: xp.maximum(a, b),
                lambda xp, out, a, b, c: (_heaviside(xp, a - b, 0.0), _heaviside(xp, b - a, 0.0)), "max({0}, {1})",
                analytic=False),
    "min": Rule(lambda xp, a, b, c: xp.minimum(a, b),
                lambda xp, out, a, b, c: (_heaviside(xp, b - a, 0.0), _heaviside(xp, a - b, 0.0)), "min({0}, {1})",
                analytic=False),
}
"""Elementary operations: value(xp, *args, c), partials(xp, out, *args, c) → ∂out/∂arg_i; c is the node's
constant (the exponent of ``powc``, H(0) of ``heaviside``)."""

_UNARY = {sp.exp: "exp", sp.log: "log", sp.sin: "sin", sp.cos: "cos", sp.tan: "tan", sp.asin: "asin",
          sp.acos: "acos", sp.atan: "atan", sp.sinh: "sinh", sp.cosh: "cosh", sp.tanh: "tanh", sp.erf: "erf",
          sp.erfc: "erfc", sp.Abs: "abs", sp.sign: "sign"}
_FOLDED = {sp.Add: "add", sp.Mul: "mul", sp.Max: "max", sp.Min: "min"}


@dataclass(frozen=True)
class Node:
    """One elementary step ``h_k = op(args)``; args are references ("input", i), ("const", v) or ("node", k)."""

    op: str
    args: tuple
    constant: float = 0.0


class Graph:
    """The DAG of an expression as elementary steps ``h1 … hk`` (shared subexpressions appear once).

    Evaluated with NumPy (or complex) arrays, so one pass handles a batch of points.
    """

    def __init__(self, expr, inputs):
        self.inputs = list(inputs)
        self.nodes = []
        self._seen = {}
        self.output = self._visit(expr)
        if self.output[0] != "node":              # f = x or f = constant: one identity-like step
            self.output = self._add("add", (self.output, ("const", 0.0)))

    @property
    def analytic(self):
        """False when a step is not complex-differentiable (|x|, max, H, ...): no complex step then."""
        return all(RULES[node.op].analytic for node in self.nodes)

    def _add(self, op, args, constant=0.0):
        self.nodes.append(Node(op, tuple(args), float(constant)))
        return ("node", len(self.nodes) - 1)

    def _visit(self, expr):
        if expr in self._seen:
            return self._seen[expr]
        reference = self._make(expr)
        self._seen[expr] = reference
        return reference

    def _make(self, expr):
        if isinstance(expr, sp.Symbol):
            if expr not in self.inputs:
                raise ExpressionError(f"{expr} has no value; give it in the point")
            return ("input", self.inputs.index(expr))
        if expr.is_number and not expr.free_symbols:
            value = complex(expr)
            if value.imag:
                raise ExpressionError(f"the constant {expr} is not real")
            return ("const", value.real)
        if isinstance(expr, sp.Mul) and len(expr.args) == 2 and expr.args[0] == -1:
            return self._add("neg", [self._visit(expr.args[1])])
        if type(expr) in _FOLDED:
            op = _FOLDED[type(expr)]
            result = self._visit(expr.args[0])
            for argument in expr.args[1:]:
                result = self._add(op, [result, self._visit(argument)])
            return result
        if isinstance(expr, sp.Pow):
            base, exponent = expr.args
            if base == sp.E:
                return self._add("exp", [self._visit(exponent)])
            if exponent == -1:
                return self._add("reciprocal", [self._visit(base)])
            if exponent.is_number:
                return self._add("powc", [self._visit(base)], float(exponent))
            return self._add("pow", [self._visit(base), self._visit(exponent)])
        if isinstance(expr, sp.Heaviside):
            at_zero = float(expr.args[1]) if len(expr.args) > 1 else 0.0
            return self._add("heaviside", [self._visit(expr.args[0])], at_zero)
        if type(expr) in _UNARY and len(expr.args) == 1:
            return self._add(_UNARY[type(expr)], [self._visit(expr.args[0])])
        raise ExpressionError(f"symnet compare has no differentiation rule for {type(expr).__name__} in {expr}")

    # --- evaluation -------------------------------------------------------------

    def _resolve(self, reference, point, values):
        kind, payload = reference
        if kind == "input":
            return point[payload]
        if kind == "const":
            return payload
        return values[payload]

    def evaluate(self, point, xp=np):
        """Every step's value at ``point`` (one array per input)."""
        values = []
        for node in self.nodes:
            values.append(RULES[node.op].value(xp, *(self._resolve(a, point, values) for a in node.args),
                                               node.constant))
        return values

    def value(self, point, xp=np):
        return self.evaluate(point, xp)[self.output[1]]

    def forward_pass(self, point, direction, xp=np):
        """Dual numbers: each step's value and its derivative along input ``direction`` (one pass)."""
        values, tangents = [], []
        for node in self.nodes:
            args = [self._resolve(a, point, values) for a in node.args]
            rule = RULES[node.op]
            out = rule.value(xp, *args, node.constant)
            partials = rule.partials(xp, out, *args, node.constant)
            tangent = 0.0
            for (kind, payload), partial in zip(node.args, partials):
                if kind == "node":
                    tangent = tangent + partial * tangents[payload]
                elif kind == "input" and payload == direction:
                    tangent = tangent + partial
            values.append(out)
            tangents.append(tangent)
        return values, tangents

    def reverse_pass(self, point, xp=np):
        """One forward pass recording local partials (the tape), one backward pass; returns
        ``(values, adjoints of the steps, gradient by input)``."""
        values, tape = [], []
        for node in self.nodes:
            args = [self._resolve(a, point, values) for a in node.args]
            rule = RULES[node.op]
            out = rule.value(xp, *args, node.constant)
            values.append(out)
            tape.append(rule.partials(xp, out, *args, node.constant))
        adjoints = [0.0] * len(self.nodes)
        gradient = [0.0] * len(self.inputs)
        adjoints[self.output[1]] = 1.0
        for k in range(len(self.nodes) - 1, -1, -1):
            for (kind, payload), partial in zip(self.nodes[k].args, tape[k]):
                if kind == "node":
                    adjoints[payload] = adjoints[payload] + adjoints[k] * partial
                elif kind == "input":
                    gradient[payload] = gradient[payload] + adjoints[k] * partial
        return values, adjoints, gradient

    def describe(self, k):
        """``h_k``'s definition in terms of inputs, constants and earlier steps."""
        node = self.nodes[k]
        names = [self._name(a) for a in node.args]
        return RULES[node.op].text.format(*names, c=_number(node.constant))

    def _name(self, reference):
        kind, payload = reference
        if kind == "input":
            return self.inputs[payload].name
        if kind == "const":
            return _number(payload)
        return f"h{payload + 1}"


def _number(value):
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --- the comparison ----------------------------------------------------------------


@dataclass
class Comparison:
    """Everything ``symnet compare`` reports; :meth:`as_dict` is its ``--json`` form."""

    expression: str
    wrt: list
    at: dict
    steps: list
    reference: dict
    symbolic: dict
    symbolic_reverse: dict
    forward_ad: dict
    reverse_ad: dict
    numeric: dict
    complex_step: str
    errors: dict
    timings: dict
    evaluations: dict
    ops: dict
    best_step: dict
    optimal_step_estimate: dict
    graph: Graph = field(repr=False)
    point: list = field(repr=False)

    def as_dict(self):
        single = len(self.wrt) == 1

        def per_step(table):   # {h: value} for one variable, {h: {var: value}} for several
            return {h: (values[self.wrt[0]] if single else values) for h, values in table.items()}

        return {
            "expression": self.expression, "wrt": self.wrt, "at": self.at, "steps": self.steps,
            "reference": self.reference, "symbolic": self.symbolic, "symbolic_reverse": self.symbolic_reverse,
            "forward_ad": self.forward_ad, "reverse_ad": self.reverse_ad,
            "numeric": {method: per_step(table) for method, table in self.numeric.items()},
            "complex_step": self.complex_step, "errors": self.errors, "timings": self.timings,
            "evaluations": self.evaluations, "ops": self.ops, "best_step": self.best_step,
            "optimal_step_estimate": self.optimal_step_estimate,
        }

    def row(self, method, step, values, errors, seconds):
        """One row of :meth:`rows`: ``values`` of each ∂f/∂v, their relative ``errors`` against the reference
        (None: "-"), and ``seconds`` per gradient (None: "-")."""
        row = {"method": method, "h": step}
        for name in self.wrt:
            row[f"∂f/∂{name}"] = values[name]
            row[f"error {name}"] = "-" if errors is None else f"{errors[name]['relative']:.1e}"
        row["µs/gradient"] = "-" if seconds is None else f"{seconds * 1e6:.1f}"
        return row

    def rows(self):
        """The table ``symnet compare`` prints, one row per method (and step): the value of each ∂f/∂v, its
        relative error against the reference, and µs per gradient ("-" where it does not apply)."""
        rows = [self.row("reference", "-", self.reference, None, None)]
        for key, label in (("symbolic", "symbolic (naive)"), ("symbolic_reverse", "symbolic (reverse, DAG)"),
                           ("forward_ad", "forward AD"), ("reverse_ad", "reverse AD")):
            rows.append(self.row(label, "-", getattr(self, key), self.errors[key], self.timings.get(key)))
        for method, table in self.numeric.items():
            for step, values in table.items():
                rows.append(self.row(method, step, values, self.errors["numeric"][method][step],
                                     self.timings.get(method)))
        return rows

    def _point(self):
        return ", ".join(f"{name}={value!r}" for name, value in self.at.items())

    def __repr__(self):
        """The comparison as the aligned table ``symnet compare`` prints, under a line naming f and the point."""
        rows = self.rows()
        return (f"f = {self.expression} at {self._point()}; relative errors against mpmath.diff at "
                f"{REFERENCE_DIGITS} digits\n{format_table(rows, list(rows[0]))}")

    def _repr_markdown_(self):
        """The table in Markdown, for Jupyter (f in code style, so its ``*`` stay as they are)."""
        rows = self.rows()
        return (f"`f = {self.expression}` at `{self._point()}`; relative errors against `mpmath.diff` at "
                f"{REFERENCE_DIGITS} digits\n\n{format_markdown_table(rows, list(rows[0]))}\n")

    def forward_trace(self):
        """Rows (step, definition, value, ∂/∂v for each v) of forward mode."""
        graph, rows = self.graph, []
        names = [s.name for s in graph.inputs]
        indices = [names.index(v) for v in self.wrt]
        passes = [graph.forward_pass(self.point, d, ROUNDED) for d in indices]
        for k in range(len(graph.nodes)):
            rows.append({"step": f"h{k + 1}", "definition": graph.describe(k), "value": float(passes[0][0][k]),
                         **{f"∂/∂{v}": float(tangents[k]) for v, (_, tangents) in zip(self.wrt, passes)}})
        return rows

    def reverse_trace(self):
        """Rows (step, definition, value, adjoint ∂f/∂h_k), from the output back, then each input's adjoint."""
        graph = self.graph
        values, adjoints, gradient = graph.reverse_pass(self.point, ROUNDED)
        rows = [{"step": f"h{k + 1}", "definition": graph.describe(k), "value": float(values[k]),
                 "adjoint": float(adjoints[k])} for k in range(len(graph.nodes) - 1, -1, -1)]
        rows += [{"step": s.name, "definition": "input", "value": float(self.point[i]), "adjoint": float(gradient[i])}
                 for i, s in enumerate(graph.inputs) if s.name in self.wrt]
        return rows


def _reference(expr, symbols, wrt, point):
    """∂expr/∂v by ``mpmath.diff`` at 50 digits (H(0) = 0, symnet's convention)."""
    smooth = expr.replace(lambda e: isinstance(e, sp.Heaviside),
                          lambda e: sp.Piecewise((1, e.args[0] > 0), (e.args[1] if len(e.args) > 1 else 0,
                                                                        sp.Eq(e.args[0], 0)), (0, True)))
    function = sp.lambdify(symbols, smooth, modules="mpmath")
    where = ", ".join(f"{s.name}={float(v)!r}" for s, v in zip(symbols, point))
    with mpmath.workdps(REFERENCE_DIGITS):
        at = [mpmath.mpf(v) for v in point]
        values = {"f": _or_nan(lambda: function(*at))}
        if _is_real_number(values["f"]):
            values.update((f"∂f/∂{v.name}", _or_nan(lambda v=v: mpmath.diff(function, at,
                                                                           [1 if s == v else 0 for s in symbols])))
                          for v in wrt)
    for name, value in values.items():
        if not _is_real_number(value):
            raise ExpressionError(f"{name} is not a finite real number at {quoted(where)} (it is {quoted(str(value))});"
                                  " compare at a point inside the function's domain, away from its singularities")
    return {v.name: float(values[f"∂f/∂{v.name}"]) for v in wrt}


def _or_nan(evaluate):
    """``evaluate()``, or NaN where mpmath finds no value (a division by zero, a domain error)."""
    try:
        return evaluate()
    except (ZeroDivisionError, ValueError, OverflowError):
        return mpmath.nan


def _is_real_number(value):
    """True for a finite real mpmath number (a complex one with a zero imaginary part counts)."""
    if isinstance(value, mpmath.mpc):
        if value.imag != 0:
            return False
        value = value.real
    return isinstance(value, (mpmath.mpf, int, float)) and mpmath.isfinite(value)


def errors_against(values, reference):
    """``{var: {"absolute": …, "relative": …}}`` of ``values`` against ``reference`` (absolute where it is 0)."""
    result = {}
    for name, value in values.items():
        absolute = abs(value - reference[name])
        relative = absolute / abs(reference[name]) if reference[name] != 0 else absolute
        result[name] = {"absolute": absolute, "relative": relative}
    return result


def _median_seconds(function, budget=TIMING_BUDGET):
    """Median wall time of ``function()``: at least 5 calls, more while ``budget`` seconds last (200 at most)."""
    return median_seconds(function, budget, least=5, most=200)


def _step(text):
    try:
        h = float(text)
    except ValueError:
        raise ExpressionError(f"step {text!r} is not a number") from None
    if not (math.isfinite(h) and h > 0):
        raise ExpressionError(f"steps must be positive numbers, got {text!r}")
    return h


def compare(expression, wrt, at, steps=None, timings=True):
    """Compare every way of differentiating ``expression`` with respect to ``wrt`` at the point ``at``.

    ``expression`` is text (kept in its written structure for the AD traces)
    or a SymPy expression; ``wrt`` as in :func:`symnet.derive`; ``at`` maps
    every symbol to a number; ``steps`` are the finite-difference step sizes
    as strings (the keys of the numeric results) or numbers.
    """
    written = parse_expression(expression, evaluate=False) if isinstance(expression, str) else as_expression(expression)
    expr = normalize(parse_expression(expression) if isinstance(expression, str) else written)
    variables = as_symbols(wrt)
    point_by_name = {(k.name if isinstance(k, sp.Symbol) else str(k)): float(v) for k, v in at.items()}
    symbols = sorted(written.free_symbols | expr.free_symbols, key=lambda s: s.name)
    missing = [s.name for s in symbols if s.name not in point_by_name]
    if missing:
        raise ExpressionError(f"the point gives no value for {', '.join(missing)}; every symbol needs one")
    steps = [str(h) for h in (steps or DEFAULT_STEPS)]
    step_values = {h: _step(h) for h in steps}
    derivation = derive(expr, variables)
    graph = Graph(written, symbols)
    point = [np.float64(point_by_name[s.name]) for s in symbols]
    position = {v: symbols.index(v) for v in variables}
    names = [v.name for v in variables]

    reference = _reference(expr, symbols, variables, point)
    naive = sp.lambdify(symbols, derivation.naive, modules="numpy")
    reverse_program = _program_function(derivation.reverse, symbols)
    symbolic = dict(zip(names, (float(g) for g in naive(*point))))
    symbolic_reverse = dict(zip(names, (float(g) for g in reverse_program(*point)[1:])))

    def forward_ad(xp=ROUNDED):
        return [graph.forward_pass(point, position[v], xp)[1][graph.output[1]] for v in variables]

    def reverse_ad(xp=ROUNDED):
        return [graph.reverse_pass(point, xp)[2][position[v]] for v in variables]

    def shifted(v, delta, xp):
        moved = list(point)
        moved[position[v]] = moved[position[v]] + delta
        return graph.value(moved, xp)

    f0 = {ROUNDED: graph.value(point, ROUNDED), np: graph.value(point)}
    formulas = {
        "forward": lambda v, h, xp=ROUNDED: (shifted(v, h, xp) - f0[xp]) / h,
        "backward": lambda v, h, xp=ROUNDED: (f0[xp] - shifted(v, -h, xp)) / h,
        "central": lambda v, h, xp=ROUNDED: (shifted(v, h, xp) - shifted(v, -h, xp)) / (2 * h),
        "richardson": lambda v, h, xp=ROUNDED: (4 * formulas["central"](v, h / 2, xp) - formulas["central"](v, h, xp)) / 3,
        "complex": lambda v, h, xp=ROUNDED: float(np.imag(shifted(v, 1j * h, xp)) / h),
    }
    complex_step = "available" if graph.analytic else \
        "not available: the expression has a step that is not complex-differentiable (|x|, max, min, sign, H)"
    methods = [m for m in NUMERIC_METHODS if m != "complex" or graph.analytic]
    with np.errstate(all="ignore"):
        numeric = {m: {h: {v.name: float(formulas[m](v, step_values[h])) for v in variables} for h in steps}
                   for m in methods}
        ad_forward, ad_reverse = forward_ad(), reverse_ad()
    forward_values = dict(zip(names, (float(g) for g in ad_forward)))
    reverse_values = dict(zip(names, (float(g) for g in ad_reverse)))

    errors = {"symbolic": errors_against(symbolic, reference),
              "symbolic_reverse": errors_against(symbolic_reverse, reference),
              "forward_ad": errors_against(forward_values, reference),
              "reverse_ad": errors_against(reverse_values, reference),
              "numeric": {m: {h: errors_against(values, reference) for h, values in table.items()}
                          for m, table in numeric.items()}}
    best_step = {m: min(steps, key=lambda h: max(e["relative"] for e in errors["numeric"][m][h].values()))
                 for m in methods}
    scale = max([1.0] + [abs(point[position[v]]) for v in variables])
    n = len(variables)
    evaluations = {"symbolic": "the derived gradient, once",
                   "forward_ad": f"{n} dual-number pass{'es' if n > 1 else ''} of the DAG (one per input)",
                   "reverse_ad": "1 forward and 1 backward pass of the DAG",
                   "forward": f"{n + 1} values of f", "backward": f"{n + 1} values of f",
                   "central": f"{2 * n} values of f", "richardson": f"{4 * n} values of f"}
    if graph.analytic:
        evaluations["complex"] = f"{n} complex value{'s' if n > 1 else ''} of f"
    result_timings = {}
    if timings:
        h = step_values[steps[len(steps) // 2]]
        with np.errstate(all="ignore"):
            result_timings = {
                "symbolic": _median_seconds(lambda: naive(*point)),
                "symbolic_reverse": _median_seconds(lambda: reverse_program(*point)),
                "forward_ad": _median_seconds(lambda: forward_ad(np)), "reverse_ad": _median_seconds(lambda: reverse_ad(np)),
                "function": _median_seconds(lambda: graph.value(point)),
                **{m: _median_seconds(lambda m=m: [formulas[m](v, h, np) for v in variables]) for m in methods}}
    return Comparison(
        expression=str(expr), wrt=names, at=point_by_name, steps=steps, reference=reference, symbolic=symbolic,
        symbolic_reverse=symbolic_reverse, forward_ad=forward_values, reverse_ad=reverse_values, numeric=numeric,
        complex_step=complex_step, errors=errors, timings=result_timings, evaluations=evaluations,
        ops={"dag_steps": len(graph.nodes), "naive": derivation.ops["naive"], "cse": derivation.ops["cse"],
             "reverse": derivation.ops["reverse"], "forward": count_ops(expr)},
        best_step=best_step,
        optimal_step_estimate={"one_sided": math.sqrt(EPSILON) * scale, "central": EPSILON ** (1 / 3) * scale,
                               "note": "classic estimates: √ε·max(1, |x|) one-sided, ε^(1/3)·max(1, |x|) central"},
        graph=graph, point=point)


def _program_function(program, symbols):
    """A NumPy function evaluating a straight-line :class:`~symnet.differentiate.Program`; returns its outputs."""
    steps = [(target, sp.lambdify([*symbols, *[t for t, _ in program.assignments[:k]]], rhs, modules="numpy"))
             for k, (target, rhs) in enumerate(program.assignments)]
    outputs = sp.lambdify([*symbols, *[t for t, _ in program.assignments]], list(program.outputs), modules="numpy")

    def run(*inputs):
        values = list(inputs)
        for _, function in steps:
            values.append(function(*values))
        return outputs(*values)

    return run


def cost_scaling(expr, variables, point, budget=TIMING_BUDGET):
    """Cost of a whole gradient relative to one function evaluation, on the same DAG evaluator.

    Returns ``{"inputs": n, "function": s, "forward_ad": ratio, "central": ratio, "reverse_ad": ratio}``:
    forward mode and central differences grow with n, reverse mode stays a small constant.
    """
    symbols = list(variables)
    graph = Graph(expr, symbols)
    values = [np.float64(point[s]) for s in symbols]
    n = len(symbols)

    def central():
        for k in range(n):
            for delta in (1e-6, -1e-6):
                moved = list(values)
                moved[k] += delta
                graph.value(moved)

    function = _median_seconds(lambda: graph.value(values), budget)
    return {"inputs": n, "dag_steps": len(graph.nodes), "function_seconds": function,
            "forward_ad": _median_seconds(lambda: [graph.forward_pass(values, k) for k in range(n)], budget) / function,
            "central": _median_seconds(central, budget) / function,
            "reverse_ad": _median_seconds(lambda: graph.reverse_pass(values), budget) / function}


def peer_gradients(comparison):
    """The gradient by PyTorch's and JAX's autograd, where installed, on the same DAG evaluated with their arrays.

    Returns ``{peer: {var: value} or "not installed"}``.
    """
    graph, names = comparison.graph, [s.name for s in comparison.graph.inputs]
    positions = [names.index(v) for v in comparison.wrt]
    point = [float(v) for v in comparison.point]
    results = {}
    try:
        import torch
    except ImportError:
        results["torch"] = "not installed"
    else:
        inputs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in point]
        graph.evaluate(inputs, xp=torch)[graph.output[1]].backward()
        results["torch"] = {v: float(inputs[k].grad) if inputs[k].grad is not None else 0.0
                            for v, k in zip(comparison.wrt, positions)}
    try:
        import jax
    except ImportError:
        results["jax"] = "not installed"
    else:
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        gradient = jax.grad(lambda *args: graph.evaluate(list(args), xp=jnp)[graph.output[1]],
                            argnums=tuple(positions))(*[jnp.float64(v) for v in point])
        results["jax"] = {v: float(g) for v, g in zip(comparison.wrt, gradient)}
    return results


def plot_path(path):
    """``path`` checked for :func:`plot_errors`, before any work: matplotlib is installed, the extension names a
    format it writes (png, pdf, svg, ...) and the folder exists or can be made, and takes files."""
    plt = pyplot()
    if plt is None:
        raise ExpressionError("--plot needs matplotlib, which is not installed: pip install 'symnet[plot]' "
                              "(or pip install matplotlib)")
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(path)
    formats = sorted(set(FigureCanvasBase.get_supported_filetypes()) - {"pgf"})  # pgf needs LaTeX installed
    if path.suffix[1:].lower() not in formats:
        found = f"extension {quoted(path.suffix)} is not" if path.suffix else "no extension names"
        raise SymnetError(f"plot file {quoted(str(path))}: {found} a format matplotlib writes; end the name in one "
                          f"of .{', .'.join(formats)}, e.g. errors.png")
    if path.is_dir():
        raise SymnetError(f"plot file {quoted(str(path))} is a folder; give a file name such as errors.png")
    writable_folder(path.parent, "plot folder", make=True)
    return path


def plot_errors(comparison, path):
    """Relative error against step size on log axes, one line per numeric method, with the classic optimal-step
    estimates marked; written to ``path`` (needs matplotlib: the ``plot`` extra; see :func:`plot_path`)."""
    path = plot_path(path)
    plt = pyplot()
    steps = [float(h) for h in comparison.steps]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for method, table in comparison.errors["numeric"].items():
        worst = [max(max(e["relative"] for e in table[h].values()), 1e-17) for h in comparison.steps]
        axes.loglog(steps, worst, marker="o", label=method)
    for label, key, style in (("√ε", "one_sided", "--"), ("ε^(1/3)", "central", ":")):
        axes.axvline(comparison.optimal_step_estimate[key], color="grey", linestyle=style, label=f"h ≈ {label}")
    axes.set_xlabel("step h")
    axes.set_ylabel("relative error (worst over variables; 0 drawn at 1e-17)")
    axes.set_title(f"∂f/∂({', '.join(comparison.wrt)}) of {comparison.expression}"[:80])
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
