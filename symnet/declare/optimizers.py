"""Optimizers: each is a small object with state arrays and one update rule, written in SymPy.

The rule is a list of assignments over scalar symbols (θ the parameter, g
its batch-mean gradient, the optimizer's per-parameter state, its
hyper-parameters and the step count t); the code generator prints it as one
compiled loop over the flat parameter vector, fused into the training step.
Hyper-parameters are arguments of the generated step, so changing the
learning rate does not regenerate code.  Nesterov-type optimizers declare a
``lookahead`` point, θ + αv, where the gradient is evaluated.

The rules are those of the notes (SEEDS.md, Optimization), with Adam's bias
correction as it should be: 1 − ρ1^t and 1 − ρ2^t at step t (the notes divide
by 1 − ρ1 and 1 − ρ2).
"""

import math

import sympy as sp

from symnet.errors import ConfigurationError


def _real(name):
    return sp.Symbol(name, real=True)


theta, g = _real("theta"), _real("g")
v, r, s = _real("v"), _real("r"), _real("s")          # velocity, second-moment accumulator, first moment
t = sp.Symbol("t", positive=True)                     # step count, from 1
lr, momentum, decay, eps, beta1, beta2 = (_real(name) for name in ("lr", "momentum", "decay", "eps", "beta1", "beta2"))
STEP = "step"
"""Name of the step-count state entry (an array of one float) of optimizers that count steps."""


def _check(name, value, low=0.0, high=math.inf, low_open=True, high_open=True):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigurationError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


class Optimizer:
    """Base class.

    Subclasses set ``state`` (symbols of per-parameter arrays, zero at the
    start), ``hyperparameters`` (symbols whose values are attributes of the
    same name), ``lookahead`` (None, or the point where g is evaluated) and
    ``rule()`` (assignments applied in order to every parameter).  A rule
    that uses ``t`` makes the optimizer count steps.
    """

    state = ()
    hyperparameters = ()
    lookahead = None

    def __repr__(self):
        values = ", ".join(f"{h.name}={getattr(self, h.name)!r}" for h in self.hyperparameters)
        return f"{type(self).__name__}({values})"

    def __setattr__(self, name, value):
        # a compiled network copies the hyper-parameters into its step's scalars; the version tells it to copy
        # again after an assignment such as ``optimizer.lr = 0.001`` (a learning-rate schedule)
        object.__setattr__(self, name, value)
        if any(h.name == name for h in self.hyperparameters):
            object.__setattr__(self, "version", getattr(self, "version", 0) + 1)

    @property
    def counts_steps(self):
        """True when the rule uses the step count t (Adam's bias correction)."""
        return any(value.has(t) for _, value in self.rule())

    def rule(self):
        raise NotImplementedError

    def values(self):
        """Hyper-parameter values in the order of :attr:`hyperparameters`."""
        return [getattr(self, h.name) for h in self.hyperparameters]

    def buffer_names(self):
        """The arrays held in the generated step's ``work`` argument, in order, each as long as θ: the gradient,
        the look-ahead point (Nesterov-type optimizers), then the state arrays."""
        return ["gradient", *(["lookahead"] if self.lookahead is not None else []), *(s.name for s in self.state)]

    def scalar_names(self):
        """The generated step's ``scalars`` argument (float64), in order: the step count t, then the
        hyper-parameters."""
        return [STEP, *(h.name for h in self.hyperparameters)]

    def state_names(self):
        """Names of the state a checkpoint keeps: the state arrays, and ``step`` (t) if the rule uses it."""
        return [symbol.name for symbol in self.state] + ([STEP] if self.counts_steps else [])

    def definition(self):
        """Text identifying the rule for the content hash (hyper-parameter values excluded)."""
        return f"{type(self).__name__}:{self.rule()}:{self.lookahead}"


class SGD(Optimizer):
    """Stochastic gradient descent on mini-batches: θ ← θ − η g."""

    hyperparameters = (lr,)

    def __init__(self, lr=0.01):
        self.lr = _check("lr", lr)

    def rule(self):
        return [(theta, theta - lr * g)]


class GD(SGD):
    """Gradient descent: the rule of SGD, used with the whole training set as one batch (``fit`` does so)."""

    full_batch = True


class Momentum(Optimizer):
    """Momentum: v ← αv − η g; θ ← θ + v."""

    state = (v,)
    hyperparameters = (lr, momentum)

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = _check("lr", lr)
        self.momentum = _check("momentum", momentum, 0.0, 1.0, low_open=False)

    def rule(self):
        return [(v, momentum * v - lr * g), (theta, theta + v)]


class Nesterov(Momentum):
    """Nesterov momentum: g evaluated at θ + αv; v ← αv − η g; θ ← θ + v."""

    lookahead = theta + momentum * v


class AdaGrad(Optimizer):
    """AdaGrad: r ← r + g⊙g; θ ← θ − η/(ε + √r) ⊙ g."""

    state = (r,)
    hyperparameters = (lr, eps)

    def __init__(self, lr=0.01, eps=1e-7):
        self.lr = _check("lr", lr)
        self.eps = _check("eps", eps)

    def rule(self):
        return [(r, r + g * g), (theta, theta - lr / (eps + sp.sqrt(r)) * g)]


class RMSProp(Optimizer):
    """RMSProp: r ← ρr + (1 − ρ) g⊙g; θ ← θ − η/(ε + √r) ⊙ g."""

    state = (r,)
    hyperparameters = (lr, decay, eps)

    def __init__(self, lr=0.001, decay=0.9, eps=1e-7):
        self.lr = _check("lr", lr)
        self.decay = _check("decay", decay, 0.0, 1.0, low_open=False)
        self.eps = _check("eps", eps)

    def rule(self):
        return [(r, decay * r + (1 - decay) * g * g), (theta, theta - lr / (eps + sp.sqrt(r)) * g)]


class RMSPropNesterov(Optimizer):
    """RMSProp with Nesterov momentum: g at θ + αv; r ← ρr + (1 − ρ) g⊙g; v ← αv − η/(ε + √r) ⊙ g; θ ← θ + v."""

    state = (v, r)
    hyperparameters = (lr, decay, momentum, eps)
    lookahead = theta + momentum * v

    def __init__(self, lr=0.001, decay=0.9, momentum=0.9, eps=1e-7):
        self.lr = _check("lr", lr)
        self.decay = _check("decay", decay, 0.0, 1.0, low_open=False)
        self.momentum = _check("momentum", momentum, 0.0, 1.0, low_open=False)
        self.eps = _check("eps", eps)

    def rule(self):
        return [(r, decay * r + (1 - decay) * g * g), (v, momentum * v - lr / (eps + sp.sqrt(r)) * g),
                (theta, theta + v)]


class Adam(Optimizer):
    """Adam: s ← ρ1 s + (1 − ρ1) g; r ← ρ2 r + (1 − ρ2) g⊙g;
    θ ← θ − η (s / (1 − ρ1^t)) / (ε + √(r / (1 − ρ2^t))), t the step count from 1."""

    state = (s, r)
    hyperparameters = (lr, beta1, beta2, eps)

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7):
        self.lr = _check("lr", lr)
        self.beta1 = _check("beta1", beta1, 0.0, 1.0, low_open=False)
        self.beta2 = _check("beta2", beta2, 0.0, 1.0, low_open=False)
        self.eps = _check("eps", eps)

    def rule(self):
        return [(s, beta1 * s + (1 - beta1) * g), (r, beta2 * r + (1 - beta2) * g * g),
                (theta, theta - lr * (s / (1 - beta1**t)) / (eps + sp.sqrt(r / (1 - beta2**t))))]


OPTIMIZERS = {cls.__name__: cls for cls in (GD, SGD, Momentum, Nesterov, AdaGrad, RMSProp, RMSPropNesterov, Adam)}


def get(name, **hyperparameters):
    """An optimizer by class name, case-insensitive (``"adam"``, ``"RMSPropNesterov"``)."""
    by_lower = {key.lower(): cls for key, cls in OPTIMIZERS.items()}
    cls = by_lower.get(str(name).lower())
    if cls is None:
        raise ConfigurationError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    return cls(**hyperparameters)
