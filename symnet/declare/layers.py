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

import math
from functools import lru_cache

import sympy as sp

from symnet.declare import activations
from symnet.errors import ConfigurationError, DifferentiationError, quoted
from symnet.indexed import contract, index

INITIALISERS = ("xavier_normal", "xavier_uniform", "he_normal")

n, i, j, k, p, q, r = (index(name) for name in "nijkpqr")
N = sp.Symbol("N", integer=True, positive=True)       # batch size
I_SIZE = sp.Symbol("I", integer=True, positive=True)  # output units
J_SIZE = sp.Symbol("J", integer=True, positive=True)  # input units
K_SIZE = sp.Symbol("K", integer=True, positive=True)  # Maxout pieces
RANGES = {n: N, i: I_SIZE, k: K_SIZE}
"""The extent of each output index of a forward map."""
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
    generated forward and backward code — is derived from them.  The weights
    (initialised by the scheme, decayed by ``weight_decay``) are the parameters
    of rank ≥ 2 unless ``weights`` names them; the others start at 0.
    """

    forward_map = None
    parameter_shapes = {}
    output_indices = (n, i)   # or (n, i, k): the layer's output is then max_k z[n, i, k] (Maxout)
    weights = None            # the bases that are weights; None: those of rank ≥ 2
    noise = None          # an IndexedBase drawn afresh in every training step (Dropout's mask), or None

    def __init__(self, n_in, n_out, activation=None, init=None):
        self.n_in = _positive_int(n_in, "n_in", type(self).__name__)
        self.n_out = _positive_int(n_out, "n_out", type(self).__name__)
        self.activation = activations.get(activation)
        if init is not None and init not in INITIALISERS:
            raise ConfigurationError(f"{type(self).__name__}: unknown initialisation {quoted(init)}; known: "
                                     f"{', '.join(INITIALISERS)} (or None for the activation's default)")
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
        sizes = self.sizes()
        result = [(base, tuple(sizes.get(extent, extent) for extent in shape))
                  for base, shape in self.parameter_shapes.items()]
        for parameter, spec in self.activation.parameters:
            result.append((sp.IndexedBase(parameter.name, real=True), (1,) if spec.shared else (self.n_out,)))
        return result

    def sizes(self):
        """The named extents that ``parameter_shapes`` may use."""
        return {"out": self.n_out, "in": self.n_in}

    def definition(self):
        """Text that identifies this layer for the content hash."""
        return (f"{self.kind}({self.n_in},{self.n_out},{sp.srepr(self.forward_map)},{sp.srepr(self.activation.expr)},"
                f"{self.activation.parameters},{self.init})")

    def vjps(self):
        """``{base: (indices, contracted expression)}`` for the input ``a`` and every forward-map parameter."""
        return _derived_vjps(self.forward_map, tuple(self.parameter_shapes), self.output_indices)


class Dense(Layer):
    """Fully connected layer: ``z[n,i] = Σ_j W[i,j] a[n,j] + b[i]``, ``a' = f(z)``; W has shape (out, in)."""

    W = sp.IndexedBase("W", real=True)
    b = sp.IndexedBase("b", real=True)
    forward_map = sp.Sum(W[i, j] * a[n, j], (j, 0, J_SIZE - 1)) + b[i]
    parameter_shapes = {W: ("out", "in"), b: ("out",)}


class Maxout(Layer):
    """Maxout: ``z[n,i,k] = Σ_j W[i,k,j] a[n,j] + b[i,k]`` for k < ``pieces``, then ``a'[n,i] = max_k z[n,i,k]``.

    The VJPs of the linear map are derived; the max passes δ to the piece that
    won (the first one on a tie): ∂ max_k z_k / ∂z_k = [k = argmax].
    """

    W = sp.IndexedBase("W", real=True)
    b = sp.IndexedBase("b", real=True)
    forward_map = sp.Sum(W[i, k, j] * a[n, j], (j, 0, J_SIZE - 1)) + b[i, k]
    parameter_shapes = {W: ("out", "pieces", "in"), b: ("out", "pieces")}
    output_indices = (n, i, k)
    weights = (W,)            # b has rank 2 but is a bias: it starts at 0 and is not decayed

    def __init__(self, n_in, n_out, pieces=2, init=None):
        self.pieces = _positive_int(pieces, "pieces", "Maxout")
        super().__init__(n_in, n_out, None, init)

    def __repr__(self):
        return f"Maxout({self.n_in}, {self.n_out}, pieces={self.pieces})"

    def sizes(self):
        return {**super().sizes(), "pieces": self.pieces}

    def definition(self):
        return f"Maxout({self.n_in},{self.n_out},{self.pieces},{self.init})"


class SizedByPredecessor(Layer):
    """A layer without parameters whose size is that of the layer before it (give ``size`` when it comes first)."""

    parameter_shapes = {}

    def __init__(self, size=None):
        self.n_in = self.n_out = None if size is None else _positive_int(size, "size", type(self).__name__)
        self.activation = activations.get(None)
        self.init = None

    def sized(self, size):
        """This layer with its size set (from the layer before it)."""
        if self.n_in is None:
            self.n_in = self.n_out = size
        return self


class Softmax(SizedByPredecessor):
    """Softmax on its own: ``a'[n,i] = exp(a[n,i]) / Σ_j exp(a[n,j])``, for losses on probabilities
    (``cross_entropy``, ``mse``).  Prefer a linear last layer with ``softmax_cross_entropy``, which is stabler.

    The VJP is derived from the map and rewritten with the stored output
    ``s = a'`` (exp(a[n,x]) = s[n,x] Σ_j exp(a[n,j])), which SymPy reduces to
    ``s[r,q] (δ[r,q] − Σ_i δ[r,i] s[r,i])``; the forward pass is evaluated
    with the max shift, exp(a − m)/Σ exp(a − m).
    """

    forward_map = sp.exp(a[n, i]) / sp.Sum(sp.exp(a[n, j]), (j, 0, J_SIZE - 1))
    output = sp.IndexedBase("s", real=True)

    def __repr__(self):
        return f"Softmax(size={self.n_in})"

    def definition(self):
        return f"Softmax({self.n_in})"

    def vjps(self):
        indices, derived = _derived_vjps(self.forward_map, (), self.output_indices)[a]
        row = indices[0]
        normaliser = sp.Symbol("S", positive=True)
        (denominator,) = self.forward_map.atoms(sp.Sum)
        denominator = denominator.xreplace({n: row})
        rewritten = derived.xreplace({denominator: normaliser}).replace(
            lambda e: isinstance(e, sp.exp) and isinstance(e.args[0], sp.Indexed) and e.args[0].base == a,
            lambda e: self.output[e.args[0].indices] * normaliser)
        rewritten = sp.factor_terms(sp.expand(rewritten))
        if rewritten.has(normaliser) or rewritten.has(sp.exp):
            raise DifferentiationError(f"the softmax VJP did not reduce to the stored output: {rewritten}")
        return {a: (indices, rewritten)}


class Dropout(SizedByPredecessor):
    """Inverted dropout: ``z[n,i] = a[n,i] · M[n,i]`` with the mask M[n,i] = 1/(1 − p) with probability 1 − p,
    else 0, drawn per sample and unit in training (from the step's noise seed) and M = 1 otherwise.

    Its size comes from the layer before it (give ``size`` when it is the first layer).  The backward pass,
    δ_in = δ ⊙ M, is derived from the map like any other layer's.
    """

    M = sp.IndexedBase("M", real=True)
    forward_map = a[n, i] * M[n, i]
    noise = M

    def __init__(self, p, size=None):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ConfigurationError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        self.p = float(p)
        super().__init__(size)

    def __repr__(self):
        return f"Dropout({self.p}, size={self.n_in})"

    def definition(self):
        return f"Dropout({self.p},{self.n_in})"


@lru_cache(maxsize=None)
def _derived_vjps(forward_map, parameters, output_indices):
    result = {}
    limits = [(index_, 0, RANGES[index_] - 1) for index_ in output_indices]
    for base in (a, *parameters):
        rank = max(len(e.indices) for e in forward_map.atoms(sp.Indexed) if e.base == base)
        indices = SOURCE_INDICES[rank - 1]
        if base == a:
            indices = (r, q)          # the input's sample index must not clash with n
        total = sp.Sum(delta[output_indices] * sp.diff(forward_map, base[indices]), *limits)
        result[base] = (indices, contract(total))
    return result


def is_weight(layer, base):
    """True when ``base`` is one of ``layer``'s weights: initialised by the scheme and decayed."""
    if layer.weights is not None:
        return base in layer.weights
    return len(layer.parameter_shapes.get(base, ())) >= 2


def weight_names(layers):
    """The generated names (``W1``, …) of the weights of ``layers``, in storage order."""
    return [f"{base}{number}" for number, layer in enumerate(layers, start=1) for base, _ in layer.parameters
            if is_weight(layer, base)]


def parameter_layout(layers):
    """``((name, start, stop, shape), …)``: every parameter of ``layers``, named by its base and layer number
    (``W1``, ``b1``, ``gamma2``), and its slice of the flat parameter vector, in storage order. The one layout
    that the compiled network, its :class:`~symnet.network.Parameters`, the generated code (views, weight decay)
    and checkpoints share."""
    layout, offset = [], 0
    for number, layer in enumerate(layers, start=1):
        for base, shape in layer.parameters:
            size = math.prod(shape)
            layout.append((f"{base}{number}", offset, offset + size, shape))
            offset += size
    return tuple(layout)
