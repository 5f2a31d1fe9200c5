"""The optimizers of the notes: ``sn.optim.SGD(lr=0.1)``, ``sn.optim.Adam()``, ... (see :mod:`symnet.train.optim`)."""

from symnet.train.optim import (OPTIMIZERS, GD, SGD, AdaGrad, Adam, Momentum, Nesterov, Optimizer, RMSProp,
                                RMSPropNesterov, get)

__all__ = ["OPTIMIZERS", "GD", "SGD", "AdaGrad", "Adam", "Momentum", "Nesterov", "Optimizer", "RMSProp",
           "RMSPropNesterov", "get"]
