"""symnet: symbolic differentiation and Numba code generation for neural networks."""

from symnet import datasets, layers, optim, version
from symnet.backprop import vjps
from symnet.check import check_gradient
from symnet.declare import activations, losses
from symnet.declare.activations import Activation
from symnet.declare.layers import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, Layer, LayerNorm, Maxout,
                                   MaxPool2D, RNN, SelfAttention, Softmax)
from symnet.errors import (ConfigurationError, DifferentiationError, ExpressionError, NonFiniteError, ShapeError,
                           SymnetError)
from symnet.expression import derive, jacobian
from symnet.network import Sequential, unrolled_loss
from symnet.sweep import sweep   # the function; the module stays sys.modules["symnet.sweep"]
from symnet.train.checkpoint import Checkpoint, load, save
from symnet.train.loop import History, fit

__all__ = ["derive", "Sequential", "Layer", "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "Flatten", "LayerNorm", "BatchNorm", "Dropout", "Maxout", "Softmax", "SelfAttention", "RNN", "Activation",
           "activations", "layers", "losses", "optim", "datasets", "unrolled_loss", "fit", "History", "save", "load", "Checkpoint",
           "SymnetError", "ExpressionError", "DifferentiationError", "ShapeError", "NonFiniteError",
           "ConfigurationError", "check_gradient", "vjps", "jacobian", "sweep"]
__version__ = version.__version__   # one definition, in a leaf that generated headers and checkpoints read
