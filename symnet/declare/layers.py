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


class Dense:
    """Fully connected layer: ``z[n,i] = Σ_j W[i,j] a[n,j] + b[i]``, ``a' = f(z)``; W has shape (out, in)."""

    kind = "Dense"
    W = sp.IndexedBase("W", real=True)
    b = sp.IndexedBase("b", real=True)
    forward_map = sp.Sum(W[i, j] * a[n, j], (j, 0, J_SIZE - 1)) + b[i]

    def __init__(self, n_in, n_out, activation=None, init=None):
        self.n_in = _positive_int(n_in, "n_in", "Dense")
        self.n_out = _positive_int(n_out, "n_out", "Dense")
        self.activation = activations.get(activation)
        self.init = init

    def __repr__(self):
        return f"Dense({self.n_in}, {self.n_out}, activation={self.activation.name!r})"

    @property
    def parameters(self):
        """``[(base, shape)]`` in storage order: W (out, in), then b (out,)."""
        return [(self.W, (self.n_out, self.n_in)), (self.b, (self.n_out,))]

    def definition(self):
        """Text that identifies this layer for the content hash."""
        return f"Dense({self.n_in},{self.n_out},{sp.srepr(self.activation.expr)},{self.init})"

    @classmethod
    def vjps(cls):
        """``{base: (indices, contracted expression)}`` for the input ``a`` and every parameter."""
        return _derived_vjps(cls.forward_map, (cls.W, cls.b))


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
