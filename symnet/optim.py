"""``symnet.optim``: the optimizers (see :mod:`symnet.train.optim`)."""

from symnet.train.optim import GD, SGD, Optimizer

__all__ = ["Optimizer", "GD", "SGD"]
