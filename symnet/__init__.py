"""symnet: symbolic differentiation and Numba code generation for neural networks."""

__version__ = "0.1.0"

from symnet.errors import (ConfigurationError, DifferentiationError, ExpressionError,  # noqa: E402
                           NonFiniteError, ShapeError, SymnetError)
from symnet.expression import derive  # noqa: E402

__all__ = ["derive", "SymnetError", "ExpressionError", "DifferentiationError", "ShapeError",
           "NonFiniteError", "ConfigurationError"]
