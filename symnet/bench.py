"""``symnet bench``: the generated training step against hand-written NumPy and Numba steps (and peers).

Each config is a network trained by SGD: multilayer perceptrons (:class:`Config`) and the digits CNN of issue 16
(:class:`ConvConfig`).  Every implementation
gets the same parameters and batch; times are medians of repeated calls in
one process, taken in interleaved rounds (:func:`symnet.timing.interleaved_medians`),
reported in µs per step and as ratios to the best hand-written reference,
because the machines are shared and noisy.  The references are
written out here by hand, textbook back-propagation, and the benchmark first
checks that every implementation computes the same update.
"""

import functools
import importlib.util
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numba
import numpy as np

from symnet.declare.layers import Conv2D, Dense, Flatten, MaxPool2D
from symnet.errors import ConfigurationError
from symnet.models import builtin
from symnet.network import Parameters, Sequential
from symnet.timing import interleaved_medians, median_seconds
from symnet.declare.optimizers import SGD

LEARNING_RATE = 0.01
PAUSE = 0.3
"""Idle seconds before each timing, so no worker thread of the implementation timed before still spins."""
ROUNDS = 5
TOLERANCE = {"float64": 1e-10, "float32": 1e-5}
"""How far the parameters after one step of symnet and of a reference may differ, relative to the largest one:
summation orders differ (~1e-15 in float64); a float32 network is compared with the float64 references (~1e-7)."""
HVP_TARGET = 4.0
"""Issue 18: one ``net.hvp`` costs at most this many ``net.loss_and_grad`` (Pearlmutter's bound is a small constant).
The bench reports the ratio per config; no test asserts it (timings are not unit tests)."""
HVP_TOLERANCE = {"float64": 1e-7, "float32": 1e-5}
"""How far symnet's H·v may differ, relative to its largest entry, from Richardson-extrapolated central differences
of the float64 gradient along v (:func:`difference_hvp`; the better of :data:`DIFFERENCE_STEPS`)."""
DIFFERENCE_STEPS = (1e-3, 1e-6)
"""Steps h·max|v| of :func:`difference_hvp`.  The large one has the smaller rounding error (~1e-16/h); the small one
is for ReLU networks, where θ ± h·v crossing a kink of some unit spoils the large step's differences."""
HVP_PEER_TOLERANCE = 1e-10
"""How far JAX's H·v may differ from symnet's, relative to the largest entry: both are exact to rounding."""


@dataclass(frozen=True)
class Config:
    name: str
    sizes: tuple
    hidden: str
    loss: str
    batch: int

    def products(self):
        """``(A, B)`` operand pairs of the matrix products an SGD step needs (A @ B each): per layer a @ Wᵀ forward,
        δᵀ @ a for ∂L/∂W and, above the first layer, δ @ W for the δ below."""
        rng = np.random.default_rng(0)
        pairs = []
        for number, (n_in, n_out) in enumerate(zip(self.sizes, self.sizes[1:])):
            a, W, delta = (rng.normal(size=shape) for shape in ((self.batch, n_in), (n_out, n_in),
                                                                (self.batch, n_out)))
            pairs += [(a, W.T), (delta.T, a)] + ([(delta, W)] if number else [])
        return pairs

    def model(self):
        last = len(self.sizes) - 2
        return Sequential([Dense(a, b, self.hidden if k < last else None)
                           for k, (a, b) in enumerate(zip(self.sizes, self.sizes[1:]))], loss=self.loss)

    def data(self, seed=0):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(self.batch, self.sizes[0]))
        if self.loss == "softmax_cross_entropy":
            Y = np.eye(self.sizes[-1])[rng.integers(0, self.sizes[-1], self.batch)]
        else:
            Y = rng.uniform(size=(self.batch, self.sizes[-1]))
        return X, Y

    @property
    def weighted(self):
        """The numbers of the layers with parameters (``W{k}``, ``b{k}``)."""
        return tuple(range(1, len(self.sizes)))

    def references(self, params, X, Y):
        """``{"numpy": (run, weights), "numba": (run, weights)}``: ``run()`` does one SGD step of that hand-written
        reference in place on ``weights``, its own copy of ``params`` as [(W, b), ...]."""
        by_numpy, by_numba = _weights(params, self.weighted), _weights(params, self.weighted)
        lists = numba_lists(by_numba)
        return {"numpy": (lambda: numpy_step(by_numpy, X, Y, self), by_numpy),
                "numba": (lambda: numba_step(lists, X, Y, self), by_numba)}

    def jax_loss(self):
        """The loss the JAX peers differentiate (:func:`jax_loss`)."""
        return jax_loss(self)

    def peers(self):
        """(peer, module, make) of the peers written for this config (:func:`peer_steps`)."""
        return (("jax", "jax", _jax_run), ("torch", "torch", _torch_run), ("pytensor", "pytensor", _pytensor_run))


@functools.lru_cache(maxsize=None)
def _digits_cnn_data(seed):
    X, Y, *_ = builtin("digits_cnn").prepared_data(seed=seed)
    return X, Y


@dataclass(frozen=True)
class ConvConfig:
    """Conv2D (stride 1, zero padding, ReLU) → MaxPool2D (stride = kernel, dividing the image) → Flatten → Dense,
    softmax cross-entropy: the digits CNN of issue 16 (``symnet.models.builtin("digits_cnn")``), on its data."""
    name: str
    image: tuple          # per-sample (channels, height, width)
    filters: int
    kernel: int
    padding: int
    pool: int
    classes: int
    batch: int
    hidden = "relu"       # what the references are written for: not fields
    loss = "softmax_cross_entropy"
    weighted = (1, 4)     # W1, b1 (Conv2D) and W4, b4 (Dense)

    @property
    def sizes(self):
        """Per-sample sizes: input, convolution, pooling (as C×H×W), flattened, output."""
        _, height, width = self.image
        return ("×".join(map(str, self.image)), f"{self.filters}×{height}×{width}",
                f"{self.filters}×{height // self.pool}×{width // self.pool}", self.flat, self.classes)

    @property
    def flat(self):
        return self.filters * (self.image[1] // self.pool) * (self.image[2] // self.pool)

    def model(self):
        return Sequential([Conv2D(self.image[0], self.filters, kernel_size=self.kernel, padding=self.padding,
                                  activation=self.hidden), MaxPool2D(self.pool), Flatten(),
                           Dense(self.flat, self.classes)], loss=self.loss, input_shape=self.image)

    def data(self, seed=0):
        """The first ``batch`` rows of the digits training split, standardised (rows of C·H·W pixels in C order),
        and their one-hot labels."""
        X, Y = _digits_cnn_data(seed)
        return X[:self.batch].copy(), Y[:self.batch].copy()

    def products(self):
        """``(A, B)`` operand pairs of the matrix products of an im2col step (:func:`numpy_cnn_step`): the
        convolution W1 @ patches and ∂L/∂W1 = δ1 @ patchesᵀ (patches: C·k·k rows, one column per output pixel),
        then the Dense layer's three as in :meth:`Config.products`."""
        rng = np.random.default_rng(0)
        channels, height, width = self.image
        pixels, patch = self.batch * height * width, channels * self.kernel ** 2
        patches, W1, delta1 = (rng.normal(size=shape) for shape in ((patch, pixels), (self.filters, patch),
                                                                    (self.filters, pixels)))
        a, W, delta = (rng.normal(size=shape) for shape in ((self.batch, self.flat), (self.classes, self.flat),
                                                             (self.batch, self.classes)))
        return [(W1, patches), (delta1, patches.T), (a, W.T), (delta.T, a), (delta, W)]

    def references(self, params, X, Y):
        """As :meth:`Config.references`: the NumPy im2col step and the Numba direct-loop step."""
        by_numpy, by_numba = _weights(params, self.weighted), _weights(params, self.weighted)
        return {"numpy": (lambda: numpy_cnn_step(by_numpy, X, Y, self), by_numpy),
                "numba": (lambda: numba_cnn_step(by_numba, X, Y, self), by_numba)}

    def jax_loss(self):
        return jax_cnn_loss(self)

    def peers(self):
        return (("jax", "jax", functools.partial(_jax_run, make_step=jax_cnn_step)),
                ("torch", "torch", functools.partial(_torch_run, make_step=torch_cnn_step)))


CONFIGS = {c.name: c for c in (
    Config("xor", (2, 2, 1), "relu", "mse", 4),
    Config("tiny", (2, 16, 1), "tanh", "mse", 64),
    Config("digits", (64, 32, 10), "sigmoid", "softmax_cross_entropy", 32),
    Config("deep", (64, 64, 64, 64, 64, 10), "tanh", "softmax_cross_entropy", 64),
    Config("mnist", (784, 256, 10), "relu", "softmax_cross_entropy", 128),
    ConvConfig("cnn", (1, 8, 8), 8, 3, 1, 2, 10, 32),
)}


# --- hand-written references ------------------------------------------------------

def _activation_numpy(name, z):
    """(a, f'(z)) by the textbook formulas."""
    if name == "relu":
        return np.maximum(z, 0.0), (z > 0).astype(z.dtype)
    if name == "tanh":
        a = np.tanh(z)
        return a, 1.0 - a * a
    a = 1.0 / (1.0 + np.exp(-z))
    return a, a * (1.0 - a)


def _softmax_delta(out, Y):
    """Mean softmax cross-entropy of the rows of ``out`` and its δ = ∂L/∂out, by the textbook formulas."""
    shifted = out - out.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    batch = len(out)
    return float(np.sum(log_sum - np.sum(Y * shifted, axis=1, keepdims=True))) / batch, \
        (np.exp(shifted - log_sum) - Y) / batch


def numpy_step(weights, X, Y, config, lr=LEARNING_RATE):
    """One SGD step by hand in NumPy; ``weights`` is [(W, b), ...] updated in place; returns the loss."""
    activations, derivatives = [X], []
    for number, (W, b) in enumerate(weights):
        z = activations[-1] @ W.T + b
        if number < len(weights) - 1:
            a, fprime = _activation_numpy(config.hidden, z)
            derivatives.append(fprime)
        else:
            a = z
        activations.append(a)
    out, batch = activations[-1], len(X)
    if config.loss == "mse":
        loss = 0.5 * np.sum((out - Y) ** 2) / batch
        delta = (out - Y) / batch
    else:
        loss, delta = _softmax_delta(out, Y)
    for number in range(len(weights) - 1, -1, -1):
        W, b = weights[number]
        grad_W, grad_b = delta.T @ activations[number], delta.sum(axis=0)
        if number:
            delta = (delta @ W) * derivatives[number - 1]
        W -= lr * grad_W
        b -= lr * grad_b
    return loss


@numba.njit(cache=True)
def _numba_activation(kind, z, fprime):
    for n in range(z.shape[0]):
        for i in range(z.shape[1]):
            v = z[n, i]
            if kind == 0:
                a = v if v > 0.0 else 0.0
                fprime[n, i] = 1.0 if v > 0.0 else 0.0
            elif kind == 1:
                a = np.tanh(v)
                fprime[n, i] = 1.0 - a * a
            else:
                a = 1.0 / (1.0 + np.exp(-v))
                fprime[n, i] = a * (1.0 - a)
            z[n, i] = a


@numba.njit(cache=True)
def _numba_softmax_cross_entropy_row(out, Y, delta, n, batch):
    """Row n's −Σ_k y_k log softmax(o)_k (shifted by the row's max), and δ[n] = (softmax(o) − y) / batch."""
    m = out[n, 0]
    for k in range(1, out.shape[1]):
        m = max(m, out[n, k])
    total = 0.0
    for k in range(out.shape[1]):
        total += np.exp(out[n, k] - m)
    loss = 0.0
    for k in range(out.shape[1]):
        loss -= Y[n, k] * (out[n, k] - m - np.log(total))
        delta[n, k] = (np.exp(out[n, k] - m) / total - Y[n, k]) / batch
    return loss


@numba.njit(cache=True)
def _numba_step(Ws, bs, X, Y, kind, softmax, lr):
    depth = len(Ws)
    acts = [X]
    fprimes = []
    for number in range(depth):
        z = np.dot(acts[number], Ws[number].T)
        for n in range(z.shape[0]):
            for i in range(z.shape[1]):
                z[n, i] += bs[number][i]
        if number < depth - 1:
            fprime = np.empty_like(z)
            _numba_activation(kind, z, fprime)
            fprimes.append(fprime)
        acts.append(z)
    out = acts[depth]
    batch = X.shape[0]
    delta = np.empty_like(out)
    loss = 0.0
    for n in range(batch):
        if softmax:
            loss += _numba_softmax_cross_entropy_row(out, Y, delta, n, batch)
        else:
            for k in range(out.shape[1]):
                d = out[n, k] - Y[n, k]
                loss += 0.5 * d * d
                delta[n, k] = d / batch
    for number in range(depth - 1, -1, -1):
        W, b = Ws[number], bs[number]
        grad_W = np.dot(delta.T, acts[number])
        if number:
            previous = np.dot(delta, W)
            fprime = fprimes[number - 1]
            for n in range(previous.shape[0]):
                for i in range(previous.shape[1]):
                    previous[n, i] *= fprime[n, i]
        for i in range(W.shape[0]):
            total = 0.0
            for n in range(batch):
                total += delta[n, i]
            b[i] -= lr * total
            for j in range(W.shape[1]):
                W[i, j] -= lr * grad_W[i, j]
        if number:
            delta = previous
    return loss / batch


ACTIVATION_KIND = {"relu": 0, "tanh": 1, "sigmoid": 2}


def numba_lists(weights):
    """[(W, b), ...] as the two tuples :func:`numba_step` takes (built once, outside the timed loop)."""
    return tuple(W for W, _ in weights), tuple(b for _, b in weights)


def numba_step(lists, X, Y, config, lr=LEARNING_RATE):
    """One SGD step by hand in Numba (fused elementwise loops, ``np.dot`` for products)."""
    Ws, bs = lists
    return _numba_step(Ws, bs, X, Y, ACTIVATION_KIND[config.hidden], config.loss != "mse", lr)


def numpy_cnn_step(weights, X, Y, config, lr=LEARNING_RATE):
    """One SGD step of the CNN by hand in NumPy, im2col: the convolution is one product of the kernels with the
    patches (a copy of a ``sliding_window_view`` of the padded images, one column per output pixel), its ∂L/∂W one
    product of δ with the same patches.  The pixels are ordered (window entry, sample, window row, window column),
    so each entry of the pooling windows is a contiguous block: the max, the first maximum of each window (in
    row-major order) and the routing of δ to it are a few whole-array operations.  ``weights`` is [(W1, b1),
    (W4, b4)], updated in place; returns the loss."""
    (W1, b1), (W4, b4) = weights
    n = len(X)
    channels, height, width = config.image
    k, p, pool, filters = config.kernel, config.padding, config.pool, config.filters
    rows, columns = height // pool, width // pool
    padded = np.zeros((n, channels, height + 2 * p, width + 2 * p))
    padded[:, :, p:p + height, p:p + width] = X.reshape(n, channels, height, width)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3)).reshape(
        n, channels, rows, pool, columns, pool, k, k)                    # a view: (n, C, y, u, x, v, k, k)
    patches = windows.transpose(1, 6, 7, 3, 5, 0, 2, 4).reshape(channels * k * k, -1)          # the one copy
    z1 = (W1.reshape(filters, -1) @ patches).reshape(filters, pool * pool, -1)   # (filter, entry, n·rows·columns)
    z1 += b1[:, None, None]
    a1 = np.maximum(z1, 0.0)
    a2 = a1.max(axis=1)
    a3 = a2.reshape(filters, n, rows * columns).transpose(1, 0, 2).reshape(n, -1)        # Flatten: C order
    loss, delta = _softmax_delta(a3 @ W4.T + b4, Y)
    grad_W4, grad_b4 = delta.T @ a3, delta.sum(axis=0)
    delta3 = (delta @ W4).reshape(n, filters, rows * columns).transpose(1, 0, 2).reshape(filters, 1, -1)
    first = a1 == a2[:, None, :]                                         # the maxima of each window ...
    taken = first[:, 0].copy()
    for entry in range(1, pool * pool):                                  # ... but the first one only
        first[:, entry] &= ~taken
        taken |= first[:, entry]
    delta1 = (delta3 * (first & (z1 > 0))).reshape(filters, -1)
    grad_W1, grad_b1 = (delta1 @ patches.T).reshape(W1.shape), delta1.sum(axis=1)
    for parameter, gradient in ((W1, grad_W1), (b1, grad_b1), (W4, grad_W4), (b4, grad_b4)):
        parameter -= lr * gradient
    return loss


@numba.njit(cache=True)
def _numba_cnn_step(W1, b1, W4, b4, X, Y, padding, pool, lr):
    batch, channels, height, width = X.shape
    filters, kernel = W1.shape[0], W1.shape[2]
    rows, columns = height // pool, width // pool
    padded = np.zeros((batch, channels, height + 2 * padding, width + 2 * padding))
    padded[:, :, padding:padding + height, padding:padding + width] = X
    # convolution, one kernel entry at a time over all output pixels (the inner loop runs along a row)
    a1 = np.empty((batch, filters, height, width))
    for n in range(batch):
        for f in range(filters):
            a1[n, f] = b1[f]
            for d in range(channels):
                for u in range(kernel):
                    for v in range(kernel):
                        w = W1[f, d, u, v]
                        for y in range(height):
                            for x in range(width):
                                a1[n, f, y, x] += w * padded[n, d, y + u, x + v]
            for y in range(height):
                for x in range(width):
                    a1[n, f, y, x] = max(a1[n, f, y, x], 0.0)
    # max pooling, flattened in C order; piece: the first maximum of the window in row-major order (selects, not
    # branches: which entry wins is unpredictable)
    a3 = np.empty((batch, filters * rows * columns))
    piece = np.empty((batch, filters * rows * columns), dtype=np.int64)
    for n in range(batch):
        for f in range(filters):
            for y in range(rows):
                for x in range(columns):
                    i = (f * rows + y) * columns + x
                    best, choice = a1[n, f, pool * y, pool * x], 0
                    for u in range(pool):
                        for v in range(pool):
                            value = a1[n, f, pool * y + u, pool * x + v]
                            greater = value > best
                            best = value if greater else best
                            choice = u * pool + v if greater else choice
                    a3[n, i], piece[n, i] = best, choice
    out = np.dot(a3, W4.T)
    delta = np.empty_like(out)
    loss = 0.0
    for n in range(batch):
        for k in range(out.shape[1]):
            out[n, k] += b4[k]
        loss += _numba_softmax_cross_entropy_row(out, Y, delta, n, batch)
    grad_W4 = np.dot(delta.T, a3)
    delta3 = np.dot(delta, W4)
    # δ through the pooling (to the chosen entry) and the ReLU
    delta1 = np.zeros_like(a1)
    for n in range(batch):
        for f in range(filters):
            for y in range(rows):
                for x in range(columns):
                    i = (f * rows + y) * columns + x
                    row, column = pool * y + piece[n, i] // pool, pool * x + piece[n, i] % pool
                    if a1[n, f, row, column] > 0.0:
                        delta1[n, f, row, column] = delta3[n, i]
    # ∂L/∂W1[f, d, u, v] = Σ δ1[n, f, y, x]·padded[n, d, y + u, x + v], summed per column x first (vectorises)
    along = np.empty(width)
    for f in range(filters):
        total = 0.0
        for n in range(batch):
            for y in range(height):
                for x in range(width):
                    total += delta1[n, f, y, x]
        b1[f] -= lr * total
        for d in range(channels):
            for u in range(kernel):
                for v in range(kernel):
                    along[:] = 0.0
                    for n in range(batch):
                        for y in range(height):
                            for x in range(width):
                                along[x] += delta1[n, f, y, x] * padded[n, d, y + u, x + v]
                    W1[f, d, u, v] -= lr * along.sum()
    for k in range(W4.shape[0]):
        total = 0.0
        for n in range(batch):
            total += delta[n, k]
        b4[k] -= lr * total
        for j in range(W4.shape[1]):
            W4[k, j] -= lr * grad_W4[k, j]
    return loss / batch


def numba_cnn_step(weights, X, Y, config, lr=LEARNING_RATE):
    """One SGD step of the CNN by hand in Numba: direct loops for the convolution, the pooling and their backward
    passes, ``np.dot`` for the Dense layer; ``weights`` as for :func:`numpy_cnn_step`."""
    (W1, b1), (W4, b4) = weights
    return _numba_cnn_step(W1, b1, W4, b4, X.reshape(len(X), *config.image), Y, config.padding, config.pool, lr)


# --- timing -------------------------------------------------------------------------

def blas_floor(config, dtype="float64"):
    """The step's matrix products alone (:meth:`Config.products`, in ``dtype``) as calls of NumPy's ``@`` (BLAS),
    for timing: what a step built on BLAS cannot go below is the sum of their times."""
    products = [(A.astype(dtype, copy=False), B.astype(dtype, copy=False)) for A, B in config.products()]
    return {f"blas {number}": (lambda A=A, B=B: A @ B) for number, (A, B) in enumerate(products)}


def warm_start_seconds(directory, config, dtype="float64"):
    """Seconds a new process takes, after its imports, to declare the config's model, find its module cached in
    ``directory``, load it (Numba's cache: no compiling) and run one step."""
    script = "\n".join([
        "import time",
        "from symnet.bench import CONFIGS, LEARNING_RATE",
        "from symnet.declare.optimizers import SGD",
        f"config = CONFIGS[{config.name!r}]",
        f"X, Y = (data.astype({dtype!r}) for data in config.data())",
        "began = time.perf_counter()",
        f"net = config.model().compile(optimizer=SGD(lr=LEARNING_RATE), directory={str(directory)!r}, "
        f"dtype={dtype!r})",
        "net.module.train_step(net.init(seed=0).flat, X, Y, *net.step_arguments())",
        "print(time.perf_counter() - began)"])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def _weights(params, layers):
    """Copies [(W, b), ...] of layers 1 … ``layers`` (an int), or of the layers numbered in ``layers``."""
    numbers = range(1, layers + 1) if isinstance(layers, int) else layers
    return [(params[f"W{k}"].copy(), params[f"b{k}"].copy()) for k in numbers]


def disagreement(config, updated, references, dtype="float64"):
    """Largest difference between the parameters ``updated`` ({name: array}) and each of ``references``
    ([(W, b), ...] of the config's weighted layers); a ConfigurationError when it exceeds :data:`TOLERANCE` relative
    to the largest parameter."""
    worst, largest = 0.0, 1.0
    for weights in references:
        for k, (W, b) in zip(config.weighted, weights):
            for name, reference in ((f"W{k}", W), (f"b{k}", b)):
                worst = max(worst, float(np.abs(updated[name] - reference).max()))
                largest = max(largest, float(np.abs(reference).max()))
    if not worst <= TOLERANCE[str(dtype)] * largest:
        raise ConfigurationError(f"config {config.name}: one SGD step of symnet and of the hand-written references "
                                 f"disagree by {worst:.3g} (parameters up to {largest:.3g}): not comparable")
    return worst


def check_agreement(config, net, params, X, Y):
    """Largest difference between the parameters after one step of symnet, NumPy and Numba (~1e-15 in float64; a
    float32 network is compared with the float64 references, ~1e-7); a ConfigurationError beyond
    :data:`TOLERANCE`."""
    references = config.references(Parameters(params.flat.astype(np.float64), params.layout), X, Y)
    for run, _ in references.values():
        run()
    flat = params.flat.copy()
    net.module.train_step(flat, X.astype(net.dtype), Y.astype(net.dtype), *net.step_arguments())
    return disagreement(config, Parameters(flat, net.layout), [weights for _, weights in references.values()],
                        net.dtype)


def epoch_run(net, params, X, Y, steps):
    """A call running ``steps`` steps in one ``train_epoch`` call (the same batch, repeated)."""
    order = np.tile(np.arange(len(X)), steps)
    losses = np.empty(steps)
    arguments = net.step_arguments()

    def run():
        reached = net.module.train_epoch(params.flat, X, Y, order, len(X), 0, steps, losses, *arguments)
        if reached != steps:
            raise ConfigurationError(f"the benchmark's training diverged at step {reached}")

    return run


def _peer_loss(config, weights, X, Y, activation, total, row_logsumexp, row_sum):
    """The config's mean loss written with a peer's array operations (autograd differentiates it)."""
    a = X
    for number, (W, b) in enumerate(weights):
        a = a @ W.T + b
        if number < len(weights) - 1:
            a = activation(a)
    if config.loss == "mse":
        return 0.5 * total((a - Y) ** 2) / X.shape[0]
    return total(row_logsumexp(a) - row_sum(Y * a)) / X.shape[0]


def jax_loss(config):
    """The config's mean loss in JAX, ``loss(weights, X, Y)`` with weights [(W, b), ...]: what the JAX step and HVP
    peers differentiate."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    activation = {"relu": lambda z: jnp.maximum(z, 0.0), "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}[config.hidden]

    def loss(weights, X, Y):
        return _peer_loss(config, weights, X, Y, activation, jnp.sum, lambda a: jax.nn.logsumexp(a, axis=1),
                          lambda a: jnp.sum(a, axis=1))

    return loss


def jax_cnn_loss(config):
    """The loss of a :class:`ConvConfig` in JAX: ``lax.conv_general_dilated`` (NCHW, OIHW), ``lax.reduce_window``
    max, the Dense layer, softmax cross-entropy."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    p, pool = config.padding, config.pool

    def loss(weights, X, Y):
        (W1, b1), (W4, b4) = weights
        z = jax.lax.conv_general_dilated(X.reshape(X.shape[0], *config.image), W1, (1, 1), ((p, p), (p, p)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW")) + b1[None, :, None, None]
        a = jax.lax.reduce_window(jnp.maximum(z, 0.0), -jnp.inf, jax.lax.max, (1, 1, pool, pool),
                                  (1, 1, pool, pool), "VALID")
        o = a.reshape(X.shape[0], -1) @ W4.T + b4
        return jnp.sum(jax.nn.logsumexp(o, axis=1) - jnp.sum(Y * o, axis=1)) / X.shape[0]

    return loss


def _jax_sgd(loss):
    """``jax.jit`` of value-and-gradient of ``loss`` plus the SGD update."""
    import jax

    @jax.jit
    def step(weights, X, Y):
        value, grads = jax.value_and_grad(loss)(weights, X, Y)
        return [(W - LEARNING_RATE * gW, b - LEARNING_RATE * gb) for (W, b), (gW, gb) in zip(weights, grads)], value

    return step


def jax_step(config):
    """A JAX peer: the same network and loss (:func:`jax_loss`), ``jax.jit`` of value-and-gradient plus the SGD
    update."""
    return _jax_sgd(jax_loss(config))


def jax_cnn_step(config):
    """A JAX peer for :class:`ConvConfig` (:func:`jax_cnn_loss`): ``jax.jit`` of value-and-gradient plus the SGD
    update."""
    return _jax_sgd(jax_cnn_loss(config))


def torch_cnn_step(config):
    """A PyTorch peer (eager) for :class:`ConvConfig`: ``conv2d``, ``max_pool2d``, ``linear``, autograd, then the
    SGD update without tracking."""
    import torch
    import torch.nn.functional as F

    def step(weights, X, Y):
        (W1, b1), (W4, b4) = weights
        a = torch.relu(F.conv2d(X.reshape(X.shape[0], *config.image), W1, b1, padding=config.padding))
        o = F.linear(torch.flatten(F.max_pool2d(a, config.pool), 1), W4, b4)
        return _torch_sgd(weights, torch.sum(torch.logsumexp(o, dim=1) - torch.sum(Y * o, dim=1)) / X.shape[0])

    return step


def torch_step(config):
    """A PyTorch peer (eager): autograd of the same loss, then the SGD update without tracking."""
    import torch

    activation = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[config.hidden]

    def step(weights, X, Y):
        return _torch_sgd(weights, _peer_loss(config, weights, X, Y, activation, torch.sum,
                                              lambda a: torch.logsumexp(a, dim=1), lambda a: torch.sum(a, dim=1)))

    return step


def _torch_sgd(weights, value):
    """Back-propagate ``value`` (a PyTorch loss of ``weights``, pairs (W, b)) and take one SGD step; return it."""
    import torch

    for W, b in weights:
        W.grad = b.grad = None
    value.backward()
    with torch.no_grad():
        for W, b in weights:
            W -= LEARNING_RATE * W.grad
            b -= LEARNING_RATE * b.grad
    return value


def pytensor_step(config, weights):
    """A PyTensor peer: one compiled function (default C backend) of the loss, with the SGD update of its shared
    weights; ``weights`` are the starting values."""
    import pytensor
    import pytensor.tensor as pt

    activation = {"relu": lambda z: pt.maximum(z, 0.0), "tanh": pt.tanh, "sigmoid": pt.sigmoid}[config.hidden]
    shared = [(pytensor.shared(W), pytensor.shared(b)) for W, b in weights]
    X, Y = pt.dmatrix("X"), pt.dmatrix("Y")
    loss = _peer_loss(config, shared, X, Y, activation, pt.sum, lambda a: pt.logsumexp(a, axis=1),
                      lambda a: pt.sum(a, axis=1))
    variables = [v for pair in shared for v in pair]
    updates = [(v, v - LEARNING_RATE * g) for v, g in zip(variables, pytensor.grad(loss, variables))]
    return pytensor.function([X, Y], loss, updates=updates)


def _check_peer(name, value, reference):
    if abs(float(value) - reference) > 1e-10 * abs(reference):
        raise ConfigurationError(f"the {name} peer computes loss {float(value)!r}, symnet {reference!r}: not comparable")


def peer_steps(config, params, X, Y, reference_loss):
    """``{peer: step}``: a call running one SGD step of each installed peer ("not installed" in its place
    otherwise), after checking that the peer computes the same loss as symnet at the starting parameters."""
    weights = _weights(params, config.weighted)
    result = {}
    for peer, module, make in config.peers():
        if importlib.util.find_spec(module) is None:
            result[peer] = "not installed"
        else:
            result[peer] = make(config, weights, X, Y, reference_loss)
    return result


def _jax_run(config, weights, X, Y, reference_loss, make_step=jax_step):
    import jax.numpy as jnp

    step = make_step(config)
    weights = [(jnp.asarray(W), jnp.asarray(b)) for W, b in weights]
    X, Y = jnp.asarray(X), jnp.asarray(Y)
    _check_peer("JAX", step(weights, X, Y)[1], reference_loss)

    def run():
        new, value = step(weights, X, Y)
        value.block_until_ready()

    return run


def _torch_run(config, weights, X, Y, reference_loss, make_step=torch_step):
    import torch

    step = make_step(config)
    X, Y = torch.tensor(X), torch.tensor(Y)
    fresh = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) for W, b in weights]
    _check_peer("PyTorch", step(fresh, X, Y).item(), reference_loss)
    trained = [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) for W, b in weights]
    return lambda: step(trained, X, Y)


def _pytensor_run(config, weights, X, Y, reference_loss):
    step = pytensor_step(config, weights)
    _check_peer("PyTensor", step(X, Y), reference_loss)
    return lambda: step(X, Y)


# --- Hessian-vector products (issue 18) ----------------------------------------------

def hvp_direction(net, seed=1):
    """The fixed direction v of the HVP timings: standard normal entries (seeded), in the network's dtype, zero on
    state entries (BatchNorm's running statistics are not a direction of the loss)."""
    v = np.random.default_rng(seed).normal(size=net.size)
    v[net.model.parameter_count:] = 0
    return v.astype(net.dtype)


def difference_hvp(net, params, X, Y, v, step):
    """H·v by Richardson-extrapolated central differences of ``net.loss_and_grad`` along ``v``: (4 D(h/2) − D(h)) / 3
    with D(h) = (g(θ + h v) − g(θ − h v)) / 2h, h = ``step`` / max|v| (error O(h⁴) where the loss is smooth)."""
    h = step / float(np.abs(v).max())

    def gradient(theta):
        return net.loss_and_grad(Parameters(theta, net.layout), X, Y)[1].flat.copy()

    def central(width):
        return (gradient(params.flat + width * v) - gradient(params.flat - width * v)) / (2 * width)

    return (4 * central(h / 2) - central(h)) / 3


def _relative(got, expected):
    """max|got − expected| over max|expected| (over 1 where H·v is all zeros)."""
    return float(np.abs(got - expected).max()) / max(float(np.abs(expected).max()), np.finfo(float).tiny)


def check_hvp(config, net, params, X, Y, v, hv, reference=None):
    """The relative difference of symnet's H·v ``hv`` from central differences of the float64 gradient along ``v``
    (:func:`difference_hvp`, the better of :data:`DIFFERENCE_STEPS`); a ConfigurationError beyond
    :data:`HVP_TOLERANCE`.  ``reference``: a float64 compile of the same model for a float32 ``net`` (else ``net``
    itself)."""
    reference = net if reference is None else reference
    count = net.model.parameter_count
    theta = Parameters(params.flat.astype(np.float64), reference.layout)
    direction, X, Y = v.astype(np.float64), X.astype(np.float64), Y.astype(np.float64)
    worst = min(_relative(hv[:count].astype(np.float64), difference_hvp(reference, theta, X, Y, direction, step)[:count])
                for step in DIFFERENCE_STEPS)
    if not worst <= HVP_TOLERANCE[str(net.dtype)]:
        raise ConfigurationError(f"config {config.name}: symnet's Hessian-vector product and central differences of "
                                 f"the gradient along v disagree by {worst:.3g} (relative to the largest entry): not "
                                 f"timed")
    return worst


def jax_hvp_runs(config, params, X, Y, v, hv):
    """``({"jax_grad": run, "jax_hvp": run}, disagreement)``: ``jax.jit`` of value-and-gradient of the config's JAX
    loss (the one the JAX step peer differentiates) and of ``jax.jvp(jax.grad(loss), (weights,), (v,))``, after
    checking that the latter gives symnet's ``hv`` to :data:`HVP_PEER_TOLERANCE` (a ConfigurationError otherwise).
    ``params``, ``v`` and ``hv`` are in symnet's layout."""
    import jax
    import jax.numpy as jnp

    loss = config.jax_loss()
    grad = jax.jit(jax.value_and_grad(loss))

    @jax.jit
    def hvp(weights, X, Y, direction):
        return jax.jvp(lambda w: jax.grad(loss)(w, X, Y), (weights,), (direction,))[1]

    def tree(flat):
        return [(jnp.asarray(W), jnp.asarray(b)) for W, b in _weights(Parameters(flat, params.layout),
                                                                        config.weighted)]

    weights, direction = tree(params.flat), tree(np.asarray(v, dtype=np.float64))
    X, Y = jnp.asarray(X), jnp.asarray(Y)
    by_jax = np.concatenate([np.ravel(array) for pair in hvp(weights, X, Y, direction) for array in pair])
    by_symnet = np.concatenate([np.ravel(array) for pair in _weights(Parameters(hv, params.layout), config.weighted)
                                for array in pair])
    worst = _relative(by_symnet, by_jax)
    if not worst <= HVP_PEER_TOLERANCE:
        raise ConfigurationError(f"config {config.name}: the Hessian-vector products of symnet and of JAX "
                                 f"(jax.jvp of jax.grad) disagree by {worst:.3g} relative to the largest entry: not "
                                 f"comparable")
    return {"jax_grad": lambda: jax.block_until_ready(grad(weights, X, Y)),
            "jax_hvp": lambda: jax.block_until_ready(hvp(weights, X, Y, direction))}, worst


def bench_config(config, peers=False, directory=None, epoch_seconds=0.01, rounds=ROUNDS, dtype="float64", hvp=True):
    """One row: µs per SGD step of symnet's generated step (called directly, through ``net.step``, inside one
    ``train_epoch`` call, and with ``parallel=True``), of the NumPy and Numba references, of the peers and of the
    step's matrix products alone (the BLAS floor); ratios; cold and warm start.  With ``hvp`` (issue 18) also
    ``row["hvp"]``: µs of ``net.loss_and_grad`` and of ``net.hvp`` (same batch and parameters, the fixed direction of
    :func:`hvp_direction`), their ratio against :data:`HVP_TARGET`, the HVP's check against central differences
    (:func:`check_hvp`) and, with ``peers`` and JAX installed, JAX's jitted grad and ``jax.jvp`` of ``jax.grad``
    (:func:`jax_hvp_runs`), all timed in the same interleaved rounds as the steps. The module is generated in a new
    temporary folder unless ``directory`` is given, so the cold start includes Numba compiling it. ``rounds=1``
    is a smoke run: one round, no idle pauses, short budgets (rough numbers). ``dtype="float32"`` compiles symnet's
    network in float32; the references stay float64 (peers are refused: they compute in float64)."""
    if peers and dtype != "float64":
        raise ConfigurationError("the peers compute in float64: time them with dtype float64")
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="symnet-bench-") as fresh:
            return bench_config(config, peers, fresh, epoch_seconds, rounds, dtype, hvp)
    began = time.perf_counter()
    net = config.model().compile(optimizer=SGD(lr=LEARNING_RATE), directory=directory, dtype=dtype)
    params = net.init(seed=0)
    start = net.pack({name: value.copy() for name, value in params.items()})
    X, Y = config.data()
    Xs, Ys = X.astype(dtype), Y.astype(dtype)            # symnet's inputs
    net.module.train_step(params.flat.copy(), Xs, Ys, *net.step_arguments())      # Numba compiles here
    cold_seconds = time.perf_counter() - began
    disagreement = check_agreement(config, net, params, X, Y)
    references = config.references(Parameters(params.flat.astype(np.float64), params.layout), X, Y)
    arguments = net.step_arguments()
    flat = params.flat
    row = {"config": config.name, "sizes": "-".join(map(str, config.sizes)), "hidden": config.hidden,
           "loss": config.loss, "batch": config.batch, "dtype": dtype, "max_disagreement": disagreement,
           "cold_start_seconds": cold_seconds, "warm_start_seconds": warm_start_seconds(directory, config, dtype)}
    step_seconds = median_seconds(lambda: net.module.train_step(flat, Xs, Ys, *arguments), budget=0.05)
    epoch_steps = max(10, int(epoch_seconds / step_seconds))
    timed = {"symnet": lambda: net.module.train_step(flat, Xs, Ys, *arguments),
             "symnet_epoch": epoch_run(net, params, Xs, Ys, epoch_steps),
             "symnet_net_step": lambda: net.step(params, Xs, Ys),
             "numpy": references["numpy"][0], "numba": references["numba"][0], **blas_floor(config, dtype)}
    parallel = config.model().compile(optimizer=SGD(lr=LEARNING_RATE), directory=directory, parallel=True,
                                      dtype=dtype)
    parallel_arguments = parallel.step_arguments()
    if "numba.prange" in parallel.path.read_text(encoding="utf-8"):
        timed["symnet_parallel"] = lambda: parallel.module.train_step(flat, Xs, Ys, *parallel_arguments)
    peers = peer_steps(config, start, X, Y, net.loss(start, X, Y)) if peers else {}
    timed.update({peer: step for peer, step in peers.items() if callable(step)})
    if hvp:
        row["hvp"], hvp_runs = hvp_report(config, net, start, X, Y, peers, directory)
        timed.update(hvp_runs)
    timing = dict(rounds=rounds, pause=PAUSE) if rounds > 1 else dict(rounds=1, budget=0.01)
    micro = {name: seconds * 1e6 for name, seconds in interleaved_medians(timed, **timing).items()}
    row.update({name: micro[name] for name in ("symnet", "symnet_net_step", "numpy", "numba")})
    row["symnet_parallel"] = micro.get("symnet_parallel", row["symnet"])
    row["blas_floor"] = sum(value for name, value in micro.items() if name.startswith("blas "))
    row["symnet_epoch"] = micro["symnet_epoch"] / epoch_steps
    row["ratio_to_best_reference"] = row["symnet_net_step"] / min(row["numpy"], row["numba"])   # the public call
    row["ratio_to_blas_floor"] = row["symnet"] / row["blas_floor"]
    if peers:
        row["peers"] = {peer: micro.get(peer, step) for peer, step in peers.items()}
        timed_peers = [micro[peer] for peer in peers if peer in micro]
        row["best_peer_over_symnet"] = min(timed_peers) / row["symnet_net_step"] if timed_peers else None
    if hvp:
        report = row["hvp"]
        report.update(loss_and_grad=micro["symnet_loss_and_grad"], hvp=micro["symnet_hvp"])
        report["ratio"] = report["hvp"] / report["loss_and_grad"]
        report["within_target"] = report["ratio"] <= HVP_TARGET
        if isinstance(report.get("jax"), dict):
            report["jax"].update(grad=micro["jax_grad"], hvp=micro["jax_hvp"])
            report["jax"]["ratio"] = micro["jax_hvp"] / micro["jax_grad"]
            report["hvp_over_jax_hvp"] = report["hvp"] / micro["jax_hvp"]
    return row


def hvp_report(config, net, start, X, Y, peers, directory):
    """``(report, runs)`` of :func:`bench_config`'s HVP columns before timing: the report holds the checks
    (``disagreement`` from central differences, ``jax``'s from symnet where it runs, else why not) and the seconds
    of the first ``net.hvp`` (generating and compiling the second-order module); ``runs`` the calls to time.  The
    parameters ``start`` are not changed (the timed steps train other copies)."""
    dtype = net.dtype
    Xs, Ys = X.astype(dtype), Y.astype(dtype)
    v = hvp_direction(net)
    began = time.perf_counter()
    hv = net.hvp(start, Xs, Ys, v)
    report = {"target": HVP_TARGET, "cold_start_seconds": time.perf_counter() - began}
    reference = None
    if str(dtype) != "float64":
        reference = config.model().compile(optimizer=SGD(lr=LEARNING_RATE), directory=directory)
    report["disagreement"] = check_hvp(config, net, start, X, Y, v, hv, reference)
    runs = {"symnet_loss_and_grad": lambda: net.loss_and_grad(start, Xs, Ys),
            "symnet_hvp": lambda: net.hvp(start, Xs, Ys, v)}
    if peers:
        if importlib.util.find_spec("jax") is None:
            report["jax"] = "not installed"
        else:
            jax_runs, worst = jax_hvp_runs(config, start, X, Y, v, hv)
            report["jax"] = {"disagreement": worst}
            runs.update(jax_runs)
    return report, runs


def run(names=None, peers=False, directory=None, rounds=ROUNDS, dtype="float64", hvp=True):
    """The benchmark table: ``{"rows": [one row per config (:func:`bench_config`)]}``; ``hvp=False`` leaves out the
    Hessian-vector product columns (and the second-order module's compile)."""
    unknown = [name for name in names or () if name not in CONFIGS]
    if unknown:
        raise ConfigurationError(f"unknown config {unknown[0]!r}; known: {', '.join(CONFIGS)}")
    if peers and dtype != "float64":
        raise ConfigurationError("the peers compute in float64: time them with dtype float64")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigurationError(f"rounds must be a positive integer, got {rounds!r}")
    return {"rounds": rounds, "rows": [bench_config(CONFIGS[name], peers, directory, rounds=rounds, dtype=dtype,
                                                    hvp=hvp) for name in names or CONFIGS]}


def processor():
    """The CPU's model name and widest vector extension (``/proc/cpuinfo`` on Linux), else what :mod:`platform`
    knows: numbers from different CPUs differ by 30 % and more on some rows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            fields = dict(line.partition(":")[::2] for line in cpuinfo.read().split("\n\n")[0].splitlines())
    except OSError:
        fields = {}
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    flags = fields.get("flags", "").split()
    vector = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), None)
    return fields["model name"] + (f" with {vector}" if vector else "")
