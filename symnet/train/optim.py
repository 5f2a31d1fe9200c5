"""The optimizers' old import path, kept for code that imports ``symnet.train.optim``: the rules are declarations
and live in :mod:`symnet.declare.optimizers` (public names: ``sn.optim``)."""

from symnet.declare.optimizers import (OPTIMIZERS, GD, SGD, STEP, AdaGrad, Adam, Momentum, Nesterov, NewtonCG, Optimizer,
                                       RMSProp, RMSPropNesterov, get)

__all__ = ["OPTIMIZERS", "GD", "SGD", "STEP", "AdaGrad", "Adam", "Momentum", "Nesterov", "NewtonCG", "Optimizer", "RMSProp",
           "RMSPropNesterov", "get"]
