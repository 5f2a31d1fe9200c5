"""The exceptions symnet raises: one base class and a few specific kinds.

Every message says what was wrong, what was expected and, where possible,
how to fix it.
"""

from symnet.text import shorten


class SymnetError(Exception):
    """Base class of every error symnet raises on purpose."""


class ExpressionError(SymnetError, ValueError):
    """An expression could not be parsed, or uses something symnet cannot handle."""


class DifferentiationError(SymnetError):
    """A derivative could not be formed (unknown function, no useful gradient)."""


class ShapeError(SymnetError, ValueError):
    """An array has the wrong shape for the layer or model it is given to."""


class NonFiniteError(SymnetError, ValueError):
    """An input or a training loss contains NaN or infinity."""


class ConfigurationError(SymnetError, ValueError):
    """A model, layer or optimizer was built with invalid settings."""


QUOTE_LIMIT = 80


def quoted(text, limit=QUOTE_LIMIT):
    """``repr`` of ``text`` cut to about ``limit`` characters, for quoting user input in an error message."""
    return shorten(repr(text if isinstance(text, str) else str(text)), limit)


class SymnetWarning(UserWarning):
    """Something symnet repaired or worked around on its own (e.g. a generated module it rewrote)."""
