"""The optimizers of the notes: ``sn.optim.SGD(lr=0.1)``, ``sn.optim.Adam()``, ... (see :mod:`symnet.declare.optimizers`)."""

from symnet.declare.optimizers import (OPTIMIZERS, GD, SGD, AdaGrad, Adam, Momentum, Nesterov, NewtonCG, Optimizer,
                                       RMSProp, RMSPropNesterov, get)

__all__ = ["OPTIMIZERS", "GD", "SGD", "AdaGrad", "Adam", "Momentum", "Nesterov", "NewtonCG", "Optimizer", "RMSProp",
           "RMSPropNesterov", "get"]
