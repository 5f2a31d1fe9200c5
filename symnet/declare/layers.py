"""Layers: forward maps in index notation over symbolic sizes; backward passes are derived.

A layer declares ``z[n, i]`` (sample ``n``, output unit ``i``) as a SymPy
expression of its input ``a[n, j]`` and its parameters.  Its vector-Jacobian
products

.. math:: \\bar P[p, q] = \\sum_{n, i} \\delta[n, i] \\, \\partial z[n, i] / \\partial P[p, q]

are derived by SymPy and reduced by :func:`symnet.indexed.contract`, once per
layer type: sizes stay symbols, so the cost does not grow with the number of
parameters.  For ``Dense`` this gives ``Σ_n δ[n,p] a[n,q]``,
``Σ_n δ[n,p]`` and ``Σ_i W[i,q] δ[r,i]``.
"""

from functools import lru_cache

import sympy as sp

from symnet.declare import activations
from symnet.errors import ConfigurationError
from symnet.indexed import contract, index

n, i, j, p, q, r = (index(name) for name in "nijpqr")
N = sp.Symbol("N", integer=True, positive=True)       # batch size
I_SIZE = sp.Symbol("I", integer=True, positive=True)  # output units
J_SIZE = sp.Symbol("J", integer=True, positive=True)  # input units
a = sp.IndexedBase("a", real=True)                    # the layer's input
delta = sp.IndexedBase("delta", real=True)            # ∂L/∂z, the upstream gradient
SOURCE_INDICES = ((p,), (p, q), (p, q, r))


def _positive_int(value, what, layer):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{layer}: {what} must be a positive integer, got {value!r}")
    return value


class Layer:
    """A layer declared by its forward map ``z[n, i]`` in index notation, then an elementwise activation.

    Subclasses set ``forward_map`` (in the input ``a[n, j]`` and their
    parameters, with the sizes ``I`` (outputs) and ``J`` (inputs)) and
    ``parameter_shapes``: ``{base: shape}`` with "out" and "in" for the sizes,
    in storage order.  Everything else — the vector-Jacobian products, the
    generated forward and backward code — is derived from them.  Parameters of
    rank ≥ 2 are weights (initialised by the scheme, decayed by
    ``weight_decay``); rank-1 parameters start at 0.
    """

    forward_map = None
    parameter_shapes = {}
    noise = None          # an IndexedBase drawn afresh in every training step (Dropout's mask), or None

    def __init__(self, n_in, n_out, activation=None, init=None):
        self.n_in = _positive_int(n_in, "n_in", type(self).__name__)
        self.n_out = _positive_int(n_out, "n_out", type(self).__name__)
        self.activation = activations.get(activation)
        self.init = init
        reads_unit = any(e.base == a and len(e.indices) == 2 and e.indices[1] == i
                         for e in self.forward_map.atoms(sp.Indexed))
        if reads_unit and self.n_in != self.n_out:
            raise ConfigurationError(f"{self!r} reads its input at the output unit (a[n, i]), so it needs "
                                     f"n_in = n_out; got {self.n_in} and {self.n_out}")
        taken = {str(base) for base in self.parameter_shapes}
        clash = [s.name for s in self.activation.parameter_symbols if s.name in taken]
        if clash:
            raise ConfigurationError(f"{self!r}: activation parameter {clash[0]!r} has the name of a layer parameter")

    @property
    def kind(self):
        return type(self).__name__

    def __repr__(self):
        return f"{self.kind}({self.n_in}, {self.n_out}, activation={self.activation.name!r})"

    @property
    def parameters(self):
        """``[(base, shape)]`` in storage order: the forward map's, then the activation's trainable parameters."""
        sizes = {"out": self.n_out, "in": self.n_in}
        result = [(base, tuple(sizes.get(extent, extent) for extent in shape))
                  for base, shape in self.parameter_shapes.items()]
        for parameter, spec in self.activation.parameters:
            result.append((sp.IndexedBase(parameter.name, real=True), (1,) if spec.shared else (self.n_out,)))
        return result

    def definition(self):
        """Text that identifies this layer for the content hash."""
        return (f"{self.kind}({self.n_in},{self.n_out},{sp.srepr(self.forward_map)},{sp.srepr(self.activation.expr)},"
                f"{self.activation.parameters},{self.init})")

    def vjps(self):
        """``{base: (indices, contracted expression)}`` for the input ``a`` and every forward-map parameter."""
        return _derived_vjps(self.forward_map, tuple(self.parameter_shapes))


class Dense(Layer):
    """Fully connected layer: ``z[n,i] = Σ_j W[i,j] a[n,j] + b[i]``, ``a' = f(z)``; W has shape (out, in)."""

    W = sp.IndexedBase("W", real=True)
    b = sp.IndexedBase("b", real=True)
    forward_map = sp.Sum(W[i, j] * a[n, j], (j, 0, J_SIZE - 1)) + b[i]
    parameter_shapes = {W: ("out", "in"), b: ("out",)}


class Dropout(Layer):
    """Inverted dropout: ``z[n,i] = a[n,i] · M[n,i]`` with the mask M[n,i] = 1/(1 − p) with probability 1 − p,
    else 0, drawn per sample and unit in training (from the step's noise seed) and M = 1 otherwise.

    Its size comes from the layer before it (give ``size`` when it is the first layer).  The backward pass,
    δ_in = δ ⊙ M, is derived from the map like any other layer's.
    """

    M = sp.IndexedBase("M", real=True)
    forward_map = a[n, i] * M[n, i]
    parameter_shapes = {}
    noise = M

    def __init__(self, p, size=None):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ConfigurationError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        self.p = float(p)
        self.n_in = self.n_out = None if size is None else _positive_int(size, "size", "Dropout")
        self.activation = activations.get(None)
        self.init = None

    def sized(self, size):
        """This layer with its size set (from the layer before it)."""
        if self.n_in is None:
            self.n_in = self.n_out = size
        return self

    def __repr__(self):
        return f"Dropout({self.p}, size={self.n_in})"

    def definition(self):
        return f"Dropout({self.p},{self.n_in})"


@lru_cache(maxsize=None)
def _derived_vjps(forward_map, parameters):
    result = {}
    for base in (a, *parameters):
        rank = max(len(e.indices) for e in forward_map.atoms(sp.Indexed) if e.base == base)
        indices = SOURCE_INDICES[rank - 1]
        if base == a:
            indices = (r, q)          # the input's sample index must not clash with n
        total = sp.Sum(delta[n, i] * sp.diff(forward_map, base[indices]), (n, 0, N - 1), (i, 0, I_SIZE - 1))
        result[base] = (indices, contract(total))
    return result
