"""Activations: expressions in one input symbol, declared once; derivatives are derived.

The catalogue holds the activations of the source notes.  Any SymPy
expression in one free symbol is an activation too::

    t = sn.activations.t
    mish = sn.Activation("mish", t * sp.tanh(sp.log(1 + sp.exp(t))))
"""

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from symnet.declare.parse import parse_expression, symbol
from symnet.differentiate import local_derivative
from symnet.errors import ConfigurationError, DifferentiationError, ExpressionError

t = symbol("t")
"""The input symbol of the catalogue's activations."""


@dataclass(frozen=True)
class Activation:
    """An elementwise activation ``a = f(z)`` declared as a SymPy expression in one symbol."""

    name: str
    expr: sp.Expr
    variable: sp.Symbol = t

    def __post_init__(self):
        free = self.expr.free_symbols
        if not free <= {self.variable}:
            extra = ", ".join(sorted(s.name for s in free - {self.variable}))
            raise ExpressionError(
                f"activation {self.name!r} has symbols other than its input {self.variable}: {extra}; "
                "give them numbers (e.g. leaky_relu(gamma=0.1))")

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

    def __call__(self, value):
        """f applied to a SymPy expression."""
        return self.expr.xreplace({self.variable: value})


CATALOGUE = {}


def register(name, expr, aliases=()):
    """Add ``expr`` (in :data:`t`) to the catalogue under ``name`` and its aliases."""
    entry = Activation(name, sp.sympify(expr))
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
    return Activation(f"leaky_relu(gamma={gamma})", sp.Piecewise((t, t > 0), (sp.nsimplify(gamma) * t, True)))


def elu(gamma=1):
    """max(0, x) + γ·min(0, e^x − 1), as ``Piecewise((x, x > 0), (γ(e^x − 1), True))``."""
    return Activation(f"elu(gamma={gamma})", sp.Piecewise((t, t > 0), (sp.nsimplify(gamma) * (sp.exp(t) - 1), True)))


def swish(beta=1):
    """x·σ(βx)."""
    return Activation(f"swish(beta={beta})", t * sigmoid_expr(sp.nsimplify(beta) * t))


register("identity", t, aliases=("linear",))
register("sigmoid", sigmoid_expr(t), aliases=("logistic",))
register("tanh", sp.tanh(t))
register("hard_sigmoid", sp.Max(sp.Min(t / 4 + sp.Rational(1, 2), 1), 0), aliases=("hard_logistic",))
register("hard_tanh", sp.Max(sp.Min(t, 1), -1))
register("relu", sp.Max(0, t))
register("softplus", sp.log(1 + sp.exp(t)))
register("gelu", t * (1 + sp.erf(t / sp.sqrt(2))) / 2)
register("step", sp.Heaviside(t, 0))
for _factory in (leaky_relu, elu, swish):
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
