"""Layers: forward maps in index notation over symbolic sizes; backward passes are derived.

A layer declares its output ``z[n, …]`` (sample ``n``) as a SymPy expression of
its input ``a[n, …]`` and its parameters, in index notation of any rank, with
affine indices where it reads shifted or strided entries (a convolution reads
``a[n, d, s·y + u − p, s·x + v − p]``, zero outside the input: :func:`padded`).
Its vector-Jacobian products

.. math:: \\bar P[p, q, …] = \\sum_{n, i, …} \\delta[n, i, …] \\, \\partial z[n, i, …] / \\partial P[p, q, …]

are derived by SymPy and reduced by :func:`symnet.indexed.contract`, once per
layer type, in :mod:`symnet.backprop`: sizes stay symbols, so the cost does not
grow with the number of parameters; each layer's sizes are put in afterwards.
A layer class holds its declaration and nothing else.  For
``Dense`` this gives ``Σ_n δ[n,p] a[n,q]``, ``Σ_n δ[n,p]`` and
``Σ_i W[i,q] δ[r,i]``; for ``Conv2D`` the kernel's gradient is a correlation
of the input with δ and the input's a full convolution of δ with the flipped
kernel, each with the bounds its guards give.
"""

import math

import sympy as sp

from symnet.declare import activations
from symnet.declare.parse import exact_number
from symnet.errors import ConfigurationError, quoted
from symnet.indexed import InRange, index, settle

INITIALISERS = ("xavier_normal", "xavier_uniform", "he_normal")


def size(name):
    """A symbolic extent (a positive integer)."""
    return sp.Symbol(name, integer=True, positive=True)


n, i, j, k, p, q, r = (index(name) for name in "nijkpqr")
f, h = index("f"), index("h")   # a batch statistic's sample indices
c, d, y, x, u, v = (index(name) for name in "cdyxuv")
N = size("N")         # batch size
I_SIZE = size("I")    # output units
J_SIZE = size("J")    # input units
K_SIZE = size("K")    # Maxout pieces
C_OUT, C_IN, H_IN, W_IN, H_OUT, W_OUT, KH, KW, S_H, S_W = (
    size(name) for name in ("C", "D", "H", "W", "H_o", "W_o", "K_h", "K_w", "s_h", "s_w"))
P_H, P_W = (sp.Symbol(name, integer=True, nonnegative=True) for name in ("p_h", "p_w"))
T_SIZE = size("T")    # a sequence's length
t = index("t")        # its time step (a query's, in attention)
EPS = sp.Symbol("epsilon", positive=True)   # a normalisation's ε
MOMENTUM = sp.Symbol("momentum", nonnegative=True)   # how far a running statistic moves toward the batch's per step
UNIFORM = sp.Symbol("uniform", real=True)    # a draw from [0, 1), one per entry of a layer's noise (not an index name)
H = sp.IndexedBase("H", real=True)   # a recurrent layer's own output, which its map reads at earlier steps (RNN)
RANGES = {i: I_SIZE, k: K_SIZE}
"""The extent of each output index of a forward map (a layer's ``extents``)."""
NAMED_SIZES = {"out": I_SIZE, "in": J_SIZE, "pieces": K_SIZE}
"""Names ``parameter_shapes`` may use for the sizes."""
a = sp.IndexedBase("a", real=True)                    # the layer's input
delta = sp.IndexedBase("delta", real=True)            # ∂L/∂z, the upstream gradient
VJP_INDICES = tuple(index(name) for name in "pqrtgh")
"""The indices a VJP is taken at (the input's start with r, so its sample index does not clash with n), skipping
those the forward map uses.  Never a float local of the generated code (z, m, e, …): they name its loops."""


def recurrence(layer):
    """The output index along which ``layer``'s map reads its own output :data:`H` at earlier steps (an RNN's t:
    ``H[n, t − 1, k]``), or None for a map that does not read it.  The generated code then runs the steps in order
    (the map at step t needs H up to t − 1) and back-propagates through them in reverse."""
    reads = [e for e in layer.forward_map.atoms(sp.Indexed) if e.base == H]
    if not reads:
        return None
    steps = set()
    for read in reads:
        shifted = [(index_, position) for index_, position in zip(layer.output_indices, read.indices)
                   if index_ in layer.extents and position != index_ and position.has(index_)]
        if len(read.indices) != len(layer.output_indices) or len(shifted) != 1 or read.indices[0] != n:
            steps.add(None)
            continue
        index_, position = shifted[0]
        lag = index_ - position
        steps.add(index_ if lag.is_Integer and lag >= 1 else None)
    if len(steps) != 1 or None in steps:
        raise ConfigurationError(f"{layer.kind}: a recurrent map reads its own output H at earlier steps of one of "
                                 f"its output indices (H[n, t − 1, k]), sample n first; got "
                                 f"{', '.join(sorted(map(str, reads)))}")
    return steps.pop()


def padded(base, indices, extents):
    """``base[indices]`` read as zero outside its extents: times an :class:`~symnet.indexed.InRange` guard for each
    index that is not a plain index symbol (``a[n, d, s·y + u − p, …]``, zero padding)."""
    guards = [InRange(position, 0, extent - 1) for position, extent in zip(indices[1:], extents)
              if not isinstance(position, sp.Symbol)]
    return base[indices] * sp.Mul(*guards)


def _positive_int(value, what, layer):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{layer}: {what} must be a positive integer, got {value!r}")
    return value


def _pair(value, what, layer, least=1):
    """``value`` as a pair of integers ≥ ``least`` (an int means the same for rows and columns)."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2
            and all(isinstance(e, int) and not isinstance(e, bool) and e >= least for e in pair)):
        raise ConfigurationError(f"{layer}: {what} must be an integer ≥ {least} or a pair of them, got {value!r}")
    return tuple(pair)


def _shape_text(shape):
    return "×".join(map(str, shape))


def _generated_variable(name):
    """A layer index of this name would overwrite a variable of the generated functions (or an array: a1, z2,
    sigma0, grad_W1, theta_W1)."""
    return name in activations.GENERATED_VARIABLES or name[-1:].isdigit() or name.startswith(("grad_", "theta_"))


def _index_symbols(expr):
    """The symbols in the indices of ``expr``'s Indexed objects and the variables of its sums."""
    found = {symbol for element in expr.atoms(sp.Indexed) for index in element.indices
             for symbol in index.free_symbols}
    return found | {limit[0] for total in expr.atoms(sp.Sum) for limit in total.limits}


class Layer:
    """A layer declared by its forward map ``z[n, …]`` in index notation, then an elementwise activation.

    Subclasses set ``forward_map`` (in the input ``a[n, j]`` and their parameters, with the sizes ``I`` (outputs)
    and ``J`` (inputs)) and ``parameter_shapes``: ``{base: shape}`` in storage order, the shape in size symbols or
    the names "out", "in".  Layers on tensors of higher rank also set ``output_indices`` (sample index first),
    ``extents`` (``{output index: size symbol}``), ``input_extents`` (the input's per-sample axes) and
    :meth:`sizes`.  Everything else — the vector-Jacobian products, the generated forward and backward code, the
    LaTeX — is derived from them.  The weights (initialised by the scheme, decayed by ``weight_decay``) are the
    parameters of rank ≥ 2 unless ``weights`` names them; the others start at 0.
    """

    forward_map = None
    parameter_shapes = {}
    output_indices = (n, i)
    extents = RANGES          # {output index: its size}
    input_extents = (J_SIZE,)  # the input's per-sample axes
    max_over = ()             # output indices the layer's output is the max over (Maxout's k)
    weights = None            # the bases that are weights; None: those of rank ≥ 2
    initial = {}              # {base: the value a parameter that is not a weight starts at}; others start at 0
    noise = None              # an IndexedBase drawn afresh in every training step (Dropout's mask), or None:
    noise_off = 1             # its value outside training; in training :meth:`noise_sample` of a uniform draw
    evaluation_map = None     # the map outside training when it differs (BatchNorm's running statistics), or None
    state_shapes = {}         # {base: shape} of non-trainable state the layer keeps (running statistics)
    state_updates = {}        # {base: its value after a training step}, in the old value and the step's batch
    min_training_batch = 1    # the fewest samples a training step takes (BatchNorm's unbiased variance: 2)
    step_index = None         # the index a recurrent map steps along (:func:`recurrence`; set from the map)
    last_step_only = False    # a recurrent layer that outputs only its last step (RNN without return_sequences)

    def __init__(self, n_in, n_out, activation=None, init=None):
        self.n_in = _positive_int(n_in, "n_in", type(self).__name__)
        self.n_out = _positive_int(n_out, "n_out", type(self).__name__)
        self._configure(activation, init)
        reads_unit = any(e.base == a and len(e.indices) == 2 and e.indices[1] == i
                         for e in self.forward_map.atoms(sp.Indexed))
        if reads_unit and self.n_in != self.n_out:
            raise ConfigurationError(f"{self!r} reads its input at the output unit (a[n, i]), so it needs "
                                     f"n_in = n_out; got {self.n_in} and {self.n_out}")

    def _configure(self, activation, init):
        clash = sorted(name for name in map(str, _index_symbols(self.forward_map)) if _generated_variable(name))
        if clash:
            avoid = ", ".join(sorted(activations.GENERATED_VARIABLES))
            raise ConfigurationError(f"{type(self).__name__}: the index {quoted(clash[0])} has the name of a variable "
                                     f"of the generated code; name indices with letters that are not {avoid}, not "
                                     "ending in a digit and not starting with grad_ or theta_")
        self.activation = activations.get(activation)
        self.step_index = recurrence(self)
        if init is not None and init not in INITIALISERS:
            raise ConfigurationError(f"{type(self).__name__}: unknown initialisation {quoted(init)}; known: "
                                     f"{', '.join(INITIALISERS)} (or None for the activation's default)")
        self.init = init
        taken = {str(base) for base in self.parameter_shapes}
        clash = [s.name for s in self.activation.parameter_symbols if s.name in taken]
        if clash:
            raise ConfigurationError(f"{self!r}: activation parameter {clash[0]!r} has the name of a layer parameter")
        if len(self.output_indices) - len(self.max_over) > 2 and any(
                not spec.shared for _, spec in self.activation.parameters):
            raise ConfigurationError(f"{self!r}: an activation with a parameter per neuron needs a layer with "
                                     "vector outputs; share the parameter (shared=True)")

    @property
    def kind(self):
        return type(self).__name__

    def __repr__(self):
        return f"{self.kind}({self.n_in}, {self.n_out}, activation={self.activation.name!r})"

    def sizes(self):
        """``{size symbol or name: value}``: the extents the declaration uses."""
        return {I_SIZE: self.n_out, J_SIZE: self.n_in, "out": self.n_out, "in": self.n_in}

    def size_values(self):
        """``{size symbol: value}``, to put into the declared expressions."""
        return {symbol: value for symbol, value in self.sizes().items() if isinstance(symbol, sp.Symbol)}

    def _extent(self, extent):
        return self.sizes()[NAMED_SIZES.get(extent, extent)]

    @property
    def input_shape(self):
        """The per-sample shape of the input, or None when it comes from the layer before."""
        return tuple(self._extent(extent) for extent in self.input_extents)

    @property
    def z_shape(self):
        """The per-sample shape of ``z`` (over every output index after n)."""
        return tuple(self._extent(self.extents[index_]) for index_ in self.output_indices[1:])

    @property
    def output_shape(self):
        """The per-sample shape of the layer's output (without the indices it takes the max over, nor the step index
        of a recurrent layer that outputs its last step only)."""
        return tuple(self._extent(self.extents[index_]) for index_ in self.output_indices[1:]
                     if index_ not in self.max_over and not (self.last_step_only and index_ == self.step_index))

    def shaped(self, shape):
        """True when this layer takes inputs of per-sample ``shape``; a layer sized by its input takes it then."""
        return tuple(shape) == self.input_shape

    def noise_sample(self):
        """The value of an entry of ``noise`` in a training step, in the uniform draw :data:`UNIFORM`."""
        raise NotImplementedError(f"{self.kind} declares noise but not its sample")

    def fans(self):
        """``(fan_in, fan_out)`` of a weight entry, for the initialisation schemes."""
        return self.n_in, self.n_out

    @property
    def training_mode(self):
        """True when the layer computes differently in training (noise drawn, batch statistics)."""
        return self.noise is not None or self.evaluation_map is not None

    @property
    def parameters(self):
        """``[(base, shape)]`` in storage order: the forward map's, then the activation's trainable parameters."""
        result = [(base, tuple(self._extent(extent) for extent in shape))
                  for base, shape in self.parameter_shapes.items()]
        for parameter, spec in self.activation.parameters:
            result.append((sp.IndexedBase(parameter.name, real=True), (1,) if spec.shared else (self.n_out,)))
        return result

    @property
    def state(self):
        """``[(base, shape)]`` of the non-trainable state, in storage order."""
        return [(base, tuple(self._extent(extent) for extent in shape)) for base, shape in self.state_shapes.items()]

    def definition(self):
        """Text that identifies this layer for the content hash: everything its generated code depends on,
        including the activation's name, which the module's docstring prints, and whether a recurrent layer outputs
        its last step only."""
        maps = sp.srepr(self.forward_map)
        if self.evaluation_map is not None or self.state_shapes:
            maps += sp.srepr([self.evaluation_map, sorted(self.state_updates.items(), key=str)])
        return (f"{self.kind}({self.input_shape},{self.z_shape},{sorted(map(str, self.size_values().items()))},"
                f"{maps},{self.activation.name!r},{sp.srepr(self.activation.expr)},{self.activation.parameters},"
                f"{self.init})" + (" last step" if self.last_step_only else ""))

    def sized_map(self, evaluation=False):
        """The forward map (with ``evaluation``, the map outside training) with this layer's sizes put in and the
        guards they decide settled."""
        chosen = self.evaluation_map if evaluation and self.evaluation_map is not None else self.forward_map
        return self.sized(chosen)

    def sized(self, expr):
        """``expr``, an expression of this layer's declaration, with its sizes put in and the guards they decide
        settled."""
        values = self.size_values()
        ranges = {n: (0, N - 1), **{index_: (0, self._extent(self.extents[index_]) - 1)
                                    for index_ in self.output_indices[1:]}}
        return settle(expr.xreplace(values), ranges)


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
    max_over = (k,)
    weights = (W,)            # b has rank 2 but is a bias: it starts at 0 and is not decayed

    def __init__(self, n_in, n_out, pieces=2, init=None):
        self.pieces = _positive_int(pieces, "pieces", "Maxout")
        super().__init__(n_in, n_out, None, init)

    def __repr__(self):
        return f"Maxout({self.n_in}, {self.n_out}, pieces={self.pieces})"

    def sizes(self):
        return {**super().sizes(), K_SIZE: self.pieces, "pieces": self.pieces}


class _Windowed(Layer):
    """A layer on images (channels, height, width) that slides a window of ``kernel_size`` over them with
    ``stride`` and zero ``padding``: the output has ⌊(H + 2p − K)/s⌋ + 1 rows (and columns likewise).  The input's
    height and width come from the layer before (or the model's ``input_shape``)."""

    input_extents = (C_IN, H_IN, W_IN)
    in_channels = None        # None: the input's

    def _window(self, kernel_size, stride, padding):
        self.kernel_size = _pair(kernel_size, "kernel_size", self.kind)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", self.kind)
        self.padding = _pair(padding, "padding", self.kind, least=0)
        self.image = None     # (channels, height, width) of the input, from the layer before

    def _options(self):
        """``kernel_size=…`` and the stride and padding that differ from the defaults, as in the constructor."""
        def text(pair):
            return str(pair[0]) if pair[0] == pair[1] else str(pair)
        defaults = {"stride": self.default_stride(), "padding": (0, 0)}
        return f"kernel_size={text(self.kernel_size)}" + "".join(
            f", {name}={text(getattr(self, name))}" for name, default in defaults.items()
            if getattr(self, name) != default)

    def default_stride(self):
        return (1, 1)

    def shaped(self, shape):
        shape = tuple(shape)
        if len(shape) != 3 or (self.in_channels is not None and shape[0] != self.in_channels):
            return False
        for extent, kernel, pad, axis in zip(shape[1:], self.kernel_size, self.padding, ("height", "width")):
            if extent + 2 * pad < kernel:
                raise ConfigurationError(f"{self!r}: the kernel's {axis} {kernel} is larger than the padded input's "
                                         f"{extent + 2 * pad} (input {_shape_text(shape)}, padding {pad})")
        self.image = shape
        return True

    def sizes(self):
        if self.image is None:
            raise ConfigurationError(f"{self!r} does not know its input's height and width: give the model "
                                     f"input_shape=(channels, height, width)")
        (channels, height, width), (kh, kw) = self.image, self.kernel_size
        (sh, sw), (ph, pw) = self.stride, self.padding
        return {C_IN: channels, H_IN: height, W_IN: width, KH: kh, KW: kw, S_H: sh, S_W: sw, P_H: ph, P_W: pw,
                H_OUT: (height + 2 * ph - kh) // sh + 1, W_OUT: (width + 2 * pw - kw) // sw + 1}

    @property
    def input_shape(self):
        return self.image

    @property
    def n_in(self):
        return None if self.image is None else math.prod(self.image)

    @property
    def n_out(self):
        return None if self.image is None else math.prod(self.output_shape)


class Conv2D(_Windowed):
    """2-D convolution (cross-correlation, PyTorch's ``Conv2d``) on inputs (channels, height, width), with zero
    padding ``p`` and stride ``s``:

    ``z[n,c,y,x] = Σ_{d,u,v} W[c,d,u,v] · a[n, d, s_h·y + u − p_h, s_w·x + v − p_w] + b[c]``, ``a' = f(z)``,

    a read outside the input being 0.  W has shape (out_channels, in_channels, K_h, K_w); the output has
    ⌊(H + 2p − K)/s⌋ + 1 rows and columns."""

    W = sp.IndexedBase("W", real=True)
    b = sp.IndexedBase("b", real=True)
    forward_map = sp.Sum(W[c, d, u, v] * padded(a, (n, d, S_H * y + u - P_H, S_W * x + v - P_W), (C_IN, H_IN, W_IN)),
                         (d, 0, C_IN - 1), (u, 0, KH - 1), (v, 0, KW - 1)) + b[c]
    parameter_shapes = {W: (C_OUT, C_IN, KH, KW), b: (C_OUT,)}
    output_indices = (n, c, y, x)
    extents = {c: C_OUT, y: H_OUT, x: W_OUT}

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, activation=None, init=None):
        self.in_channels = _positive_int(in_channels, "in_channels", "Conv2D")
        self.out_channels = _positive_int(out_channels, "out_channels", "Conv2D")
        self._window(kernel_size, stride, padding)
        self._configure(activation, init)

    def __repr__(self):
        return (f"Conv2D({self.in_channels}, {self.out_channels}, {self._options()}, "
                f"activation={self.activation.name!r})")

    def sizes(self):
        return {**super().sizes(), C_OUT: self.out_channels}

    def fans(self):
        receptive = self.kernel_size[0] * self.kernel_size[1]
        return self.in_channels * receptive, self.out_channels * receptive


class _Pool(_Windowed):
    """A pooling layer: each channel's windows (stride = the kernel size unless given, no padding) reduced to one
    number."""

    extents = {c: C_IN, y: H_OUT, x: W_OUT, u: KH, v: KW}

    def __init__(self, kernel_size, stride=None):
        self._window(kernel_size, stride, 0)
        self._configure(None, None)

    def default_stride(self):
        return self.kernel_size

    def __repr__(self):
        return f"{self.kind}({self._options()})"


class MaxPool2D(_Pool):
    """Max pooling: ``a'[n,c,y,x] = max_{u,v} a[n, c, s_h·y + u, s_w·x + v]``; δ reaches the first maximum of each
    window in row-major order (∂ max / ∂ entry = [entry is that maximum])."""

    forward_map = a[n, c, S_H * y + u, S_W * x + v]
    output_indices = (n, c, y, x, u, v)
    max_over = (u, v)


class AvgPool2D(_Pool):
    """Average pooling: ``a'[n,c,y,x] = 1/(K_h K_w) Σ_{u,v} a[n, c, s_h·y + u, s_w·x + v]``."""

    forward_map = sp.Sum(a[n, c, S_H * y + u, S_W * x + v], (u, 0, KH - 1), (v, 0, KW - 1)) / (KH * KW)
    output_indices = (n, c, y, x)


class LayerNorm(Layer):
    """Layer normalisation of each sample over its features (biased variance), then a learned scale and shift:

    ``z[n,i] = (a[n,i] − μ[n]) / √(σ²[n] + ε) · scale[i] + shift[i]``, ``μ[n] = Σ_j a[n,j] / I``,
    ``σ²[n] = Σ_k (a[n,k] − μ[n])² / I``.

    On sequences (time, features), after a layer that gives them or with the model's ``input_shape=(T, I)``, each
    time step is normalised on its own, as PyTorch's ``nn.LayerNorm(I)`` on (batch, T, I):

    ``z[n,t,i] = (a[n,t,i] − μ[n,t]) / √(σ²[n,t] + ε) · scale[i] + shift[i]``, μ and σ² over the step's features.

    ``scale`` starts at 1, ``shift`` at 0; neither is decayed.  The backward pass (through μ and σ², the
    famously fiddly one) is derived from the map."""

    scale = sp.IndexedBase("scale", real=True)
    shift = sp.IndexedBase("shift", real=True)
    _mean = sp.Sum(a[n, j], (j, 0, I_SIZE - 1)) / I_SIZE
    _variance = sp.Sum((a[n, k] - _mean) ** 2, (k, 0, I_SIZE - 1)) / I_SIZE
    vector_map = (a[n, i] - _mean) / sp.sqrt(_variance + EPS) * scale[i] + shift[i]
    _step_mean = sp.Sum(a[n, t, j], (j, 0, I_SIZE - 1)) / I_SIZE
    _step_variance = sp.Sum((a[n, t, k] - _step_mean) ** 2, (k, 0, I_SIZE - 1)) / I_SIZE
    sequence_map = (a[n, t, i] - _step_mean) / sp.sqrt(_step_variance + EPS) * scale[i] + shift[i]
    parameter_shapes = {scale: ("out",), shift: ("out",)}
    initial = {scale: 1}

    def __init__(self, features, eps=1e-5):
        self.features = _positive_int(features, "features", "LayerNorm")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
            raise ConfigurationError(f"LayerNorm: eps must be a positive number, got {eps!r}")
        self.eps = float(eps)
        self.length = None    # the sequences' length when the input is (time, features); None: vectors
        self._configure(None, None)

    def __repr__(self):
        return f"LayerNorm({self.features}" + (f", eps={self.eps}" if self.eps != 1e-5 else "") + ")"

    # the declaration follows the input: the vector map over (n, i), or the per-step map over (n, t, i)
    @property
    def forward_map(self):
        return self.vector_map if self.length is None else self.sequence_map

    @property
    def output_indices(self):
        return (n, i) if self.length is None else (n, t, i)

    @property
    def extents(self):
        return RANGES if self.length is None else {t: T_SIZE, i: I_SIZE}

    @property
    def input_extents(self):
        return (I_SIZE,) if self.length is None else (T_SIZE, I_SIZE)

    def shaped(self, shape):
        shape = tuple(shape)
        if len(shape) == 1:
            self.length = None
            return shape[0] == self.features      # otherwise the model says "takes 4 inputs but … gives 5"
        if len(shape) == 2 and shape[1] == self.features:
            self.length = shape[0]
            return True
        fix = (f"give LayerNorm({shape[1]}) to normalise each step's {shape[1]} features" if len(shape) == 2 else
               f"put sn.Flatten() before it and give LayerNorm({math.prod(shape)})")
        raise ConfigurationError(f"{self!r} normalises the last axis, of {self.features} features: it takes vectors "
                                 f"of {self.features} or sequences of shape (time, {self.features}), got "
                                 f"{_shape_text(shape)}; {fix}")

    def sizes(self):
        steps = {} if self.length is None else {T_SIZE: self.length}
        return {I_SIZE: self.features, J_SIZE: self.features, "out": self.features, "in": self.features,
                EPS: self.eps, **steps}

    @property
    def n_in(self):
        return self.features * (self.length or 1)

    n_out = n_in


class BatchNorm(Layer):
    """Batch normalisation of each feature over the batch, then a learned scale and shift.  In training steps, the
    batch's statistics (biased variance) over its N samples:

    ``z[n,i] = (a[n,i] − μ[i]) / √(σ²[i] + ε) · scale[i] + shift[i]``, ``μ[i] = Σ_h a[h,i] / N``,
    ``σ²[i] = Σ_f (a[f,i] − μ[i])² / N``,

    and after the step ``running_mean[i] ← (1 − m)·running_mean[i] + m·μ[i]``,
    ``running_var[i] ← (1 − m)·running_var[i] + m·σ²[i]·N/(N − 1)`` (the unbiased variance: PyTorch's convention,
    so a training step needs N ≥ 2).  Outside training (``predict``, and ``loss`` without a noise seed) the running
    statistics stand in for μ and σ².

    ``scale`` starts at 1, ``shift`` at 0, ``running_mean`` at 0, ``running_var`` at 1.  The running statistics
    are state, not parameters: they sit at the end of the flat parameter vector, their gradient is 0, no optimizer
    moves them and checkpoints keep them.  The backward pass through μ and σ² is derived from the map."""

    scale = sp.IndexedBase("scale", real=True)
    shift = sp.IndexedBase("shift", real=True)
    running_mean = sp.IndexedBase("running_mean", real=True)
    running_var = sp.IndexedBase("running_var", real=True)
    _mean = sp.Sum(a[h, i], (h, 0, N - 1)) / N
    _variance = sp.Sum((a[f, i] - _mean) ** 2, (f, 0, N - 1)) / N
    forward_map = (a[n, i] - _mean) / sp.sqrt(_variance + EPS) * scale[i] + shift[i]
    evaluation_map = (a[n, i] - running_mean[i]) / sp.sqrt(running_var[i] + EPS) * scale[i] + shift[i]
    parameter_shapes = {scale: ("out",), shift: ("out",)}
    state_shapes = {running_mean: ("out",), running_var: ("out",)}
    state_updates = {running_mean: (1 - MOMENTUM) * running_mean[i] + MOMENTUM * _mean,
                     running_var: (1 - MOMENTUM) * running_var[i] + MOMENTUM * _variance * N / (N - 1)}
    input_extents = (I_SIZE,)
    initial = {scale: 1, running_var: 1}
    min_training_batch = 2

    def __init__(self, features, momentum=0.1, eps=1e-5):
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ConfigurationError(f"BatchNorm: momentum must be a number in [0, 1], got {momentum!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
            raise ConfigurationError(f"BatchNorm: eps must be a positive number, got {eps!r}")
        self.momentum, self.eps = float(momentum), float(eps)
        super().__init__(features, features)

    def __repr__(self):
        options = "".join(f", {name}={value}" for name, value, default in
                          (("momentum", self.momentum, 0.1), ("eps", self.eps, 1e-5)) if value != default)
        return f"BatchNorm({self.n_in}{options})"

    def sizes(self):
        return {**super().sizes(), EPS: self.eps, MOMENTUM: exact_number(self.momentum)}


class SizedByPredecessor(Layer):
    """A layer without parameters whose input shape is the output shape of the layer before it (give ``size``
    when it comes first).  Its map reads the input as a vector ``a[n, i]`` (the entries in C order)."""

    parameter_shapes = {}
    input_extents = (I_SIZE,)

    def __init__(self, size=None):
        self.shape = None if size is None else (_positive_int(size, "size", type(self).__name__),)
        self.activation = activations.get(None)
        self.init = None

    def shaped(self, shape):
        self.shape = tuple(shape)
        return True

    @property
    def n_in(self):
        return None if self.shape is None else math.prod(self.shape)

    n_out = n_in

    @property
    def input_shape(self):
        return self.shape

    output_shape = input_shape


class Flatten(SizedByPredecessor):
    """``z[n, i] = a[n, i]`` with the input's entries in C order (channel, row, column), as ``torch.flatten(x, 1)``:
    a Dense layer can follow a convolution.  The same memory, so it costs nothing."""

    forward_map = a[n, i]

    def __init__(self):
        super().__init__()

    def __repr__(self):
        return "Flatten()"

    @property
    def output_shape(self):
        return None if self.shape is None else (self.n_in,)


class Softmax(SizedByPredecessor):
    """Softmax on its own: ``a'[n,i] = exp(a[n,i]) / Σ_j exp(a[n,j])``, for losses on probabilities
    (``cross_entropy``, ``mse``).  Prefer a linear last layer with ``softmax_cross_entropy``, which is stabler.

    A declaration like any other: the VJP ``δ[r,q] e^(a_q)/S − e^(a_q) Σ_i δ[r,i] e^(a_i)/S²`` is derived from
    the map, and the generated code evaluates both with every exponential shifted by the row max (exp(a − m), which
    leaves the ratios as they are)."""

    forward_map = sp.exp(a[n, i]) / sp.Sum(sp.exp(a[n, j]), (j, 0, I_SIZE - 1))

    def __repr__(self):
        return f"Softmax(size={self.n_in})"


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

    def noise_sample(self):
        keep = exact_number(1 - self.p)
        return sp.Piecewise((1 / keep, UNIFORM < keep), (0, True))

    def definition(self):
        return f"Dropout({self.p},{self.shape})"


def is_weight(layer, base):
    """True when ``base`` is one of ``layer``'s weights: initialised by the scheme and decayed."""
    if layer.weights is not None:
        return base in layer.weights
    return len(layer.parameter_shapes.get(base, ())) >= 2


def weight_names(layers):
    """The generated names (``W1``, …) of the weights of ``layers``, in storage order."""
    return [f"{base}{number}" for number, layer in enumerate(layers, start=1) for base, _ in layer.parameters
            if is_weight(layer, base)]


def state_names(layers):
    """The generated names (``running_mean2``, …) of the layers' non-trainable state, in storage order."""
    return [f"{base}{number}" for number, layer in enumerate(layers, start=1) for base, _ in layer.state]


def parameter_layout(layers):
    """``((name, start, stop, shape), …)``: every parameter of ``layers``, named by its base and layer number
    (``W1``, ``b1``, ``gamma2``), and its slice of the flat parameter vector, in storage order; then the layers'
    non-trainable state (``running_mean2``), so the trainable parameters are one prefix of the vector, the part
    optimizers update.  The one layout that the compiled network, its :class:`~symnet.network.Parameters`, the
    generated code (views, weight decay) and checkpoints share."""
    layout, offset = [], 0
    for kind in ("parameters", "state"):
        for number, layer in enumerate(layers, start=1):
            for base, shape in getattr(layer, kind):
                size = math.prod(shape)
                layout.append((f"{base}{number}", offset, offset + size, shape))
                offset += size
    return tuple(layout)


def trainable_size(layers):
    """How many entries of the flat parameter vector are trainable (the prefix before the state)."""
    return sum(math.prod(shape) for layer in layers for _, shape in layer.parameters)


HEADS = size("n_h")         # attention heads
D_HEAD = size("d_h")        # features per head
s, e_key, w_in = index("s"), index("u"), index("w")   # key time, normaliser's key, V's input


def causal_mask(query, key):
    """``[0 ≤ key ≤ query]`` (an Iverson bracket): the keys a causal query attends to, those not after it."""
    return InRange(key, 0, query)


def attention_score(query, key, causal=False):
    """The score of head ``h`` for ``query`` and ``key``: ``Σ_c Q[n,query,h·d_h+c] K[n,key,h·d_h+c] / √d_h``, with
    ``Q[n,t,e] = Σ_d Wq[e,d] a[n,t,d]`` and ``K[n,s,e] = Σ_v Wk[e,v] a[n,s,v]``."""
    Wq, Wk = SelfAttention.Wq, SelfAttention.Wk
    Q = sp.Sum(Wq[h * D_HEAD + c, d] * a[n, query, d], (d, 0, I_SIZE - 1))
    K = sp.Sum(Wk[h * D_HEAD + c, v] * a[n, key, v], (v, 0, I_SIZE - 1))
    return sp.Sum(Q * K, (c, 0, D_HEAD - 1)) / sp.sqrt(D_HEAD)


def _attention_map(causal):
    """``z[n,t,i] = Σ_{h,k} Wo[i, h·d_h+k] Σ_s P[n,h,t,s] V[n,s,h·d_h+k]``, ``P`` the softmax over the keys s of the
    scores (over s ≤ t only when ``causal``), ``V[n,s,e] = Σ_w Wv[e,w] a[n,s,w]``."""
    def weight(key):
        return sp.exp(attention_score(t, key)) * (causal_mask(t, key) if causal else 1)
    P = weight(s) / sp.Sum(weight(e_key), (e_key, 0, T_SIZE - 1))
    V = sp.Sum(SelfAttention.Wv[h * D_HEAD + k, w_in] * a[n, s, w_in], (w_in, 0, I_SIZE - 1))
    return sp.Sum(SelfAttention.Wo[i, h * D_HEAD + k] * sp.Sum(P * V, (s, 0, T_SIZE - 1)),
                  (h, 0, HEADS - 1), (k, 0, D_HEAD - 1))


class OnSequences(Layer):
    """A layer on sequences (time, ``features``) whose length T comes from the model's ``input_shape`` or the layer
    before; its map reads ``a[n, t, j]`` over the sizes T and J = ``features``."""

    input_extents = (T_SIZE, J_SIZE)
    features = None   # the input's features per step
    length = None     # T, once the model has given the input's shape

    def shaped(self, shape):
        shape = tuple(shape)
        if len(shape) != 2 or shape[1] != self.features:
            raise ConfigurationError(f"{self!r} takes sequences of shape (time, {self.features}) (input_shape=(T, "
                                     f"{self.features})), got {_shape_text(shape)}")
        self.length = shape[0]
        return True

    def sizes(self):
        if self.length is None:
            raise ConfigurationError(f"{self!r} does not know its sequences' length: give the model "
                                     f"input_shape=(T, {self.features})")
        return {T_SIZE: self.length, J_SIZE: self.features, "in": self.features}

    @property
    def input_shape(self):
        return None if self.length is None else (self.length, self.features)

    @property
    def n_in(self):
        return None if self.length is None else self.length * self.features


class SelfAttention(OnSequences):
    """Multi-head self-attention on sequences (time, features), without biases:

    ``Q = a Wqᵀ``, ``K = a Wkᵀ``, ``V = a Wvᵀ``; per head h (features h·d_h … h·d_h + d_h − 1, d_h = d_model / heads)
    ``P[n,h,t,s] = softmax_s(Q_h[n,t] · K_h[n,s] / √d_h)``, over the keys s ≤ t only when ``causal``; the heads'
    ``Σ_s P V_h`` concatenated, then times ``Woᵀ``:

    ``z[n,t,i] = Σ_{h,k} Wo[i, h·d_h+k] Σ_s P[n,h,t,s] V[n,s,h·d_h+k]``.

    Every W is d_model × d_model (out, in), initialised by the scheme (Xavier by default) and decayed.  One map in
    index notation: the backward pass is derived, and the generated code computes Q, K, V, the scores and the
    softmax's normaliser (shifted by the max over the keys it attends to) once each into arrays."""

    Wq, Wk, Wv, Wo = (sp.IndexedBase(name, real=True) for name in ("Wq", "Wk", "Wv", "Wo"))
    parameter_shapes = {Wq: ("out", "in"), Wk: ("out", "in"), Wv: ("out", "in"), Wo: ("out", "in")}
    output_indices = (n, t, i)
    extents = {t: T_SIZE, i: I_SIZE}

    def __init__(self, d_model, heads=1, causal=False, init=None):
        d_model = _positive_int(d_model, "d_model", "SelfAttention")
        self.heads = _positive_int(heads, "heads", "SelfAttention")
        if d_model % self.heads:
            raise ConfigurationError(f"SelfAttention: d_model {d_model} is not divisible by heads {self.heads}; "
                                     f"choose heads among {[m for m in range(1, d_model + 1) if d_model % m == 0]}")
        if not isinstance(causal, bool):
            raise ConfigurationError(f"SelfAttention: causal must be True or False, got {causal!r}")
        self.d_model = self.features = d_model
        self.causal = causal
        self.forward_map = _attention_map(causal)
        self._configure(None, init)

    def __repr__(self):
        options = (f", heads={self.heads}" if self.heads != 1 else "") + (", causal=True" if self.causal else "")
        return f"SelfAttention({self.d_model}{options})"

    def sizes(self):
        return {**super().sizes(), I_SIZE: self.d_model, "out": self.d_model, HEADS: self.heads,
                D_HEAD: self.d_model // self.heads}

    n_out = OnSequences.n_in

    def fans(self):
        return self.d_model, self.d_model


class RNN(OnSequences):
    """Elman recurrent layer on sequences (time, features):

    ``z[n,t,i] = Σ_j W[i,j] a[n,t,j] + Σ_k U[i,k] H[n,t−1,k] + b[i]``, ``H[n,t,i] = f(z[n,t,i])``, ``H[n,−1,·] = 0``,

    where H is the layer's own output.  The output is ``H[n, T−1, ·]`` (the last state), or the whole sequence
    ``H[n, ·, ·]`` with ``return_sequences``.  W is (hidden, input), U (hidden, hidden), both initialised by the scheme
    and decayed; b starts at 0.  Back-propagation through time is derived from the map like any other backward
    pass: the VJP with respect to H carries δ from step t + 1 to step t."""

    W, U, b = (sp.IndexedBase(name, real=True) for name in "WUb")
    forward_map = (sp.Sum(W[i, j] * a[n, t, j], (j, 0, J_SIZE - 1))
                   + sp.Sum(U[i, k] * padded(H, (n, t - 1, k), (T_SIZE, I_SIZE)), (k, 0, I_SIZE - 1)) + b[i])
    parameter_shapes = {W: ("out", "in"), U: ("out", "out"), b: ("out",)}
    output_indices = (n, t, i)
    extents = {t: T_SIZE, i: I_SIZE}

    def __init__(self, input_size, hidden_size, activation="tanh", return_sequences=False, init=None):
        self.input_size = self.features = _positive_int(input_size, "input_size", "RNN")
        self.hidden_size = _positive_int(hidden_size, "hidden_size", "RNN")
        if not isinstance(return_sequences, bool):
            raise ConfigurationError(f"RNN: return_sequences must be True or False, got {return_sequences!r}")
        self.last_step_only = not return_sequences
        self._configure(activation, init)
        if self.activation.parameters:
            raise ConfigurationError(f"RNN: activations with trainable parameters ({self.activation.name}) are not "
                                     "supported in a recurrent layer yet; choose one without (tanh, relu, …)")

    def __repr__(self):
        options = (f", activation={self.activation.name!r}" if self.activation.name != "tanh" else "") + (
            "" if self.last_step_only else ", return_sequences=True")
        return f"RNN({self.input_size}, {self.hidden_size}{options})"

    def sizes(self):
        return {**super().sizes(), I_SIZE: self.hidden_size, "out": self.hidden_size}

    @property
    def n_out(self):
        return self.hidden_size if self.last_step_only else None if self.length is None else (
            self.length * self.hidden_size)

    def fans(self):
        return self.input_size, self.hidden_size
