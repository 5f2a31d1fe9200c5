"""Optimizers: each is a small object with state arrays and one update rule, written in SymPy.

The rule is a list of assignments over scalar symbols (θ the parameter, g
its gradient, the optimizer's state, its hyper-parameters); the code
generator prints it as one compiled loop over the flat parameter vector,
fused into the training step.  Hyper-parameters are arguments of the
generated step, so changing the learning rate does not regenerate code.
"""

import math

import numpy as np
import sympy as sp

from symnet.errors import ConfigurationError

theta = sp.Symbol("theta", real=True)
g = sp.Symbol("g", real=True)


def _check(name, value, low=0.0, high=math.inf, low_open=True, high_open=True):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigurationError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: ``state`` symbols (one array each, shaped like θ), ``hyperparameters`` symbols, ``rule()``."""

    state = ()
    hyperparameters = ()
    g = g

    @property
    def state_and_theta(self):
        return (theta, *self.state)

    def rule(self):
        raise NotImplementedError

    def values(self):
        """Hyper-parameter values in the order of :attr:`hyperparameters`."""
        return [getattr(self, h.name) for h in self.hyperparameters]

    def init_state(self, size, dtype):
        """Zeroed state arrays."""
        return {s.name: np.zeros(size, dtype=dtype) for s in self.state}

    def definition(self):
        """Text identifying the rule for the content hash (hyper-parameter values excluded)."""
        return f"{type(self).__name__}:{self.rule()}"


class SGD(Optimizer):
    """Stochastic gradient descent on mini-batches: θ ← θ − η g."""

    lr_symbol = sp.Symbol("lr", real=True)
    hyperparameters = (lr_symbol,)

    def __init__(self, lr=0.01):
        self.lr = _check("lr", lr)

    def rule(self):
        return [(theta, theta - self.lr_symbol * g)]


class GD(SGD):
    """Gradient descent on the full batch: θ ← θ − η g (the caller passes the whole set as one batch)."""
