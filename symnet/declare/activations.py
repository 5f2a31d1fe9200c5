"""Activations: expressions in one input symbol, declared once; derivatives are derived.

The catalogue holds the activations of the source notes.  Any SymPy
expression in one free symbol is an activation too::

    t = sn.activations.t
    mish = sn.Activation("mish", t * sp.tanh(sp.log(1 + sp.exp(t))))
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from symnet.calculus import local_derivative
from symnet.declare.parse import as_expression, exact_number, is_name, parse_expression, symbol
from symnet.errors import ConfigurationError, DifferentiationError, ExpressionError, quoted

t = symbol("t")
"""The input symbol of the catalogue's activations."""
GENERATED_VARIABLES = frozenset({
    "theta", "gradient", "lookahead", "work", "scalars", "scratch", "X", "Y", "batch", "inv_batch", "loss", "total",
    "length", "noise_seed", "noise_seeds", "lane", "best", "choice", "choice_k", "m", "z", "weight", "upstream",
    "size", "low", "order", "source", "rows", "row", "column", "first", "last", "losses", "batch_size", "Xb", "Yb",
    "Xk", "Yk"})
"""Variables of the generated functions that are not loop indices (a layer index must not be one of them)."""
GENERATED_NAMES = GENERATED_VARIABLES | frozenset({
    "W", "b", "a", "c", "dz", "delta", "term", "piece", "mask", "sum", "fprime", "k", "n", "i", "j", "p", "q", "r",
    "s", "v", "x", "y", "e", "g", "P", "Q", "step"})
"""Names the network generator gives its own arrays and variables (a trainable parameter γ of layer l is held in
arrays ``γl`` and ``grad_γl``, which must not be one of them)."""


@dataclass(frozen=True)
class Trainable:
    """An activation parameter that is learned: its initial value, one per neuron or one ``shared`` by the layer."""

    initial: float
    shared: bool = False


def trainable(initial, shared=False):
    """Mark an activation parameter as trainable, e.g. ``parameters={gamma: sn.activations.trainable(0.25)}``."""
    if isinstance(initial, bool) or not isinstance(initial, (int, float)) or not math.isfinite(initial):
        raise ConfigurationError(f"a trainable parameter's initial value must be a finite number, got {quoted(initial)}")
    return Trainable(float(initial), bool(shared))


@dataclass(frozen=True)
class Activation:
    """An elementwise activation ``a = f(z)`` declared as a SymPy expression in its input symbol.

    ``parameters`` maps each other symbol of the expression to a number (fixed:
    substituted at once) or to :func:`trainable` (learned by gradient descent,
    per neuron or shared; ∂f/∂parameter is derived like f').
    """

    name: str
    expr: sp.Expr
    variable: sp.Symbol = t
    parameters: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip() or not self.name.isprintable():
            raise ConfigurationError(f"an activation's name must be one line of printable text, got {quoted(self.name)}")
        expr = as_expression(self.expr)
        if not isinstance(self.variable, sp.Symbol):
            raise ConfigurationError(f"activation {quoted(self.name)}: its variable must be a SymPy Symbol, "
                                     f"got {type(self.variable).__name__}")
        if not isinstance(self.parameters, (Mapping, tuple, list)):
            raise ConfigurationError(f"activation {quoted(self.name)}: parameters must map symbols or names to "
                                     f"numbers or sn.activations.trainable(initial), got {quoted(self.parameters)}")
        given = dict(self.parameters)
        for key in list(given):
            if isinstance(key, str):
                matches = [s for s in expr.free_symbols if s.name == key]
                given[matches[0] if matches else symbol(key)] = given.pop(key)
        for s, v in given.items():
            if not isinstance(s, sp.Symbol):
                raise ConfigurationError(f"activation {quoted(self.name)}: parameters are keyed by symbols or "
                                         f"names, got {type(s).__name__}")
            if not (isinstance(v, Trainable) or isinstance(v, (int, float)) and not isinstance(v, bool)):
                raise ConfigurationError(f"activation {quoted(self.name)}: parameter {quoted(s.name)} must be a "
                                         f"number or sn.activations.trainable(initial), got {quoted(v)}")
            if s == self.variable:
                raise ConfigurationError(f"activation {quoted(self.name)}: {quoted(s.name)} is its input, not a "
                                         "parameter")
            if isinstance(v, Trainable) and not (s.name.isascii() and is_name(s.name) and not s.name[-1].isdigit()
                                                 and s.name not in GENERATED_NAMES and not s.name.startswith("grad_")):
                raise ConfigurationError(f"activation {quoted(self.name)}: a trainable parameter named {quoted(s.name)} "
                                         "would clash in generated code (its arrays are <name><layer> and "
                                         "grad_<name><layer>); use ASCII letters, digits and _ not ending in a digit, "
                                         f"and none of {', '.join(sorted(GENERATED_NAMES))}")
        fixed = {s: exact_number(v) for s, v in given.items() if not isinstance(v, Trainable)}
        learned = tuple(sorted(((s, v) for s, v in given.items() if isinstance(v, Trainable)),
                               key=lambda item: item[0].name))
        object.__setattr__(self, "expr", expr.xreplace(fixed))
        object.__setattr__(self, "parameters", learned)
        free = self.expr.free_symbols
        allowed = {self.variable, *self.parameter_symbols}
        if not free <= allowed:
            extra = ", ".join(sorted(s.name for s in free - allowed))
            raise ExpressionError(
                f"activation {self.name!r} has symbols other than its input {self.variable}: {extra}; "
                "give them numbers or sn.activations.trainable(...) in parameters=, e.g. parameters={'gamma': 0.1}")

    @property
    def parameter_symbols(self):
        return tuple(s for s, _ in self.parameters)

    @property
    def initial_values(self):
        """``{symbol: initial value}`` of the trainable parameters: f as it starts training."""
        return {s: spec.initial for s, spec in self.parameters}

    @cached_property
    def parameter_derivatives(self):
        """{symbol: ∂f/∂symbol} for every trainable parameter, derived by SymPy."""
        return {s: local_derivative(self.expr, s) for s in self.parameter_symbols}

    @cached_property
    def derivative(self):
        """f'(z), derived by SymPy with symnet's conventions (ReLU'(0) = 0)."""
        return local_derivative(self.expr, self.variable)

    @property
    def has_useful_gradient(self):
        """False when f' vanishes almost everywhere (the perceptron's step)."""
        return self.derivative != 0

    def check_trainable(self):
        """Raise if gradient descent cannot train through this activation."""
        if not self.has_useful_gradient:
            raise DifferentiationError(
                f"activation {self.name!r} has derivative 0 almost everywhere, so gradient descent cannot "
                "train through it; use a smooth activation such as 'sigmoid' (the perceptron rule is not gradient-based)")


CATALOGUE = {}


def register(name, expr, aliases=()):
    """Add ``expr`` (in :data:`t`) to the catalogue under ``name`` and its aliases."""
    entry = Activation(name, expr)
    for key in (name, *aliases):
        CATALOGUE[key] = entry
    return entry


def sigmoid_expr(x):
    """The logistic function 1/(1 + e^(−x))."""
    return 1 / (1 + sp.exp(-x))


# Leaky ReLU and ELU are written as one Piecewise rather than the notes'
# max(x, γx) and max(0, x) + γ·min(0, e^x − 1): those sums have two kinks at 0,
# and the per-kink convention H(0) = 0 would give ELU'(0) = 0 instead of γ.

def leaky_relu(gamma=0.01):
    """max(x, γx) for 0 < γ < 1, as ``Piecewise((x, x > 0), (γx, True))``."""
    return Activation(f"leaky_relu(gamma={gamma})", sp.Piecewise((t, t > 0), (exact_number(gamma) * t, True)))


def elu(gamma=1):
    """max(0, x) + γ·min(0, e^x − 1), as ``Piecewise((x, x > 0), (γ(e^x − 1), True))``."""
    return Activation(f"elu(gamma={gamma})", sp.Piecewise((t, t > 0), (exact_number(gamma) * (sp.exp(t) - 1), True)))


def swish(beta=1, learn=False):
    """x·σ(βx); with ``learn=True`` β is trainable per neuron, starting at ``beta``."""
    if learn:
        beta_symbol = symbol("beta")
        return Activation("swish(beta trainable)", t * sigmoid_expr(beta_symbol * t),
                          parameters={beta_symbol: trainable(beta)})
    return Activation(f"swish(beta={beta})", t * sigmoid_expr(exact_number(beta) * t))


def prelu(gamma=0.25, shared=False):
    """PReLU, max(0, x) + γ·min(0, x) with γ trainable per neuron (or ``shared`` by the layer), starting at
    ``gamma``; declared as ``Piecewise((x, x > 0), (γx, True))`` like leaky ReLU."""
    gamma_symbol = symbol("gamma")
    return Activation("prelu" + ("(shared)" if shared else ""),
                      sp.Piecewise((t, t > 0), (gamma_symbol * t, True)),
                      parameters={gamma_symbol: trainable(gamma, shared)})


register("identity", t, aliases=("linear",))
register("sigmoid", sigmoid_expr(t), aliases=("logistic",))
register("tanh", sp.tanh(t))
register("hard_sigmoid", sp.Max(sp.Min(t / 4 + sp.Rational(1, 2), 1), 0), aliases=("hard_logistic",))
register("hard_tanh", sp.Max(sp.Min(t, 1), -1))
register("relu", sp.Max(0, t))
register("softplus", sp.log(1 + sp.exp(t)))
register("gelu", t * (1 + sp.erf(t / sp.sqrt(2))) / 2)
register("step", sp.Heaviside(t, 0))
for _factory in (leaky_relu, elu, swish, prelu):
    CATALOGUE[_factory.__name__] = _factory()


def get(spec):
    """Resolve an activation: a catalogue name, expression text, a SymPy expression, or an Activation."""
    if spec is None:
        return CATALOGUE["identity"]
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        if spec in CATALOGUE:
            return CATALOGUE[spec]
        if spec.isidentifier():
            raise ConfigurationError(f"unknown activation {spec!r}; known: {', '.join(sorted(CATALOGUE))}")
        spec = parse_expression(spec)
    if isinstance(spec, sp.Basic):
        free = sorted(spec.free_symbols, key=lambda s: s.name)
        if len(free) != 1:
            raise ExpressionError(f"an activation needs exactly one free symbol, {spec} has {len(free)}")
        return Activation(str(spec), spec, free[0])
    raise ConfigurationError(f"expected an activation name, expression or Activation, got {type(spec).__name__}")
