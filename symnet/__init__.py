"""symnet: symbolic differentiation and Numba code generation for neural networks."""

__version__ = "0.1.0"

from symnet import datasets, layers, optim  # noqa: E402
from symnet.check import check_gradient  # noqa: E402
from symnet.declare import activations, losses  # noqa: E402
from symnet.declare.activations import Activation  # noqa: E402
from symnet.declare.layers import Dense, Dropout, Layer, Maxout, Softmax  # noqa: E402
from symnet.errors import (ConfigurationError, DifferentiationError, ExpressionError,  # noqa: E402
                           NonFiniteError, ShapeError, SymnetError)
from symnet.expression import derive  # noqa: E402
from symnet.network import Sequential, unrolled_loss  # noqa: E402
from symnet.train.checkpoint import Checkpoint, load, save  # noqa: E402
from symnet.train.loop import History, fit  # noqa: E402

__all__ = ["derive", "Sequential", "Layer", "Dense", "Dropout", "Maxout", "Softmax", "Activation", "activations",
           "layers", "losses", "optim", "datasets", "unrolled_loss", "fit", "History", "save", "load", "Checkpoint",
           "SymnetError", "ExpressionError", "DifferentiationError", "ShapeError", "NonFiniteError",
           "ConfigurationError", "check_gradient"]
