"""The one printer of symnet's generated scalar code.

:class:`NumbaPrinter` is SymPy's ``PythonCodePrinter`` with the few node types
changed that matter inside a Numba loop:

* ``Heaviside(x, H0)`` and ``sign`` become plain conditional expressions
  (symnet's convention: ``Heaviside(0) = 0``, so ReLU'(0) = 0);
* small integer powers become products (``x*x``), which Numba compiles to
  multiplications and which keep float32 in float32;
* in float32 code every constant is typed ``np.float32(...)``, because Numba
  (like NumPy) promotes ``float32 * 1.0`` and ``float32 * 2`` to float64.

``Max``/``Min`` print as the builtins ``max``/``min`` and ``Piecewise`` as
nested conditional expressions (both inherited), ``erf`` as ``math.erf``.
"""

import builtins
import keyword
import math
import unicodedata

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from symnet.errors import ConfigurationError
from symnet.generate.kernels import kernel_name

DTYPES = ("float64", "float32")
EXACT_INTEGER_MAX = 2**53
"""Larger integers are printed as float literals: Numba types integer literals as int64, and float64 holds
integers exactly only up to 2^53."""
_EXPANDED_POWER_MAX = 4


def check_dtype(dtype):
    """Return ``dtype`` as one of :data:`DTYPES`, or raise a clear error."""
    name = getattr(dtype, "__name__", None) or str(dtype)
    name = {"float": "float64", "double": "float64", "single": "float32"}.get(name, name)
    if name not in DTYPES:
        raise ConfigurationError(f"dtype {dtype!r} is not supported; expected one of {', '.join(DTYPES)}")
    return name


RESERVED_NAMES = frozenset(dir(builtins)) | {"math", "np", "numba", "i", "n", "inputs", "value", "gradient"}
"""Names a symbol's variable never takes: Python's builtins, the modules and the generated code's own locals."""


def python_name(name, taken):
    """A valid, unused ASCII Python identifier for a symbol called ``name`` (``α`` → ``alpha``, ``w"x`` → ``w_x``).

    ASCII only: Python folds identifiers by NFKC, so two different Unicode names could become one variable."""
    pieces = []
    for character in name:
        if character.isascii():
            pieces.append(character if character.isalnum() or character == "_" else "_")
        else:
            words = unicodedata.name(character, "").split()
            pieces.append(words[-1].lower() if character.isalpha() and words and words[-1].isalpha() else "_")
    base = "".join(pieces)
    if not base or base[0].isdigit() or base[0] == "_":   # generated names never start with _ (kernels do)
        base = "v_" + base
    if keyword.iskeyword(base) or base in RESERVED_NAMES:
        base += "_"
    candidate, index = base, 1
    while candidate in taken:
        candidate, index = f"{base}_{index}", index + 1
    taken.add(candidate)
    return candidate


class NumbaPrinter(PythonCodePrinter):
    """Print scalar SymPy expressions as Python that Numba compiles in ``nopython`` mode."""

    def __init__(self, dtype="float64", names=None, kernels=()):
        super().__init__({"standard": "python3"})
        self.dtype = check_dtype(dtype)
        self.names = dict(names or {})
        self.kernels = set(kernels)
        """Functions printed as calls of a module's own kernel, the one for the dtype (``"tanh"`` → ``_tanh(x)`` in
        float64, ``_tanh32(x)`` in float32)."""
        self.used = set()
        """The kernels printed so far (their names: ``"tanh32"``), whose sources the module must include."""
        self.names_used = set()
        """The symbols of ``names`` printed so far (whose variables the caller must define)."""
        self.flat_rows = {}
        """``{array name: per-sample shape}`` of arrays stored as (batch, entries) rows: ``a[n, c, y, x]`` prints as
        ``a[n, c·H·W + y·W + x]`` (C order)."""

    def _print_kernel_or_libm(self, expr):
        name = type(expr).__name__
        if name in self.kernels:
            self.used.add(kernel_name(name, self.dtype))
            return f"_{kernel_name(name, self.dtype)}({self._print(expr.args[0])})"
        return getattr(super(), f"_print_{name}")(expr)

    _print_exp = _print_tanh = _print_kernel_or_libm

    def _typed(self, text):
        return text if self.dtype == "float64" else f"np.float32({text})"

    def _print_Symbol(self, expr):
        name = self.names.get(expr)
        if name is None:
            return super()._print_Symbol(expr)
        self.names_used.add(expr)
        return name

    _print_Dummy = _print_Symbol   # SymPy would print a Dummy as "_x_123", bypassing the names given

    def _print_Indexed(self, expr):
        """``base[i, j]``: indices are integers, so they print without the float32 casts of numbers."""
        shape = self.flat_rows.get(str(expr.base))
        indices = expr.indices
        if shape is not None and len(indices) == len(shape) + 1:
            strides = [math.prod(shape[axis + 1:]) for axis in range(len(shape))]
            indices = (indices[0], sp.Add(*(stride * index for stride, index in zip(strides, indices[1:]))))
        return f"{expr.base}[{', '.join(self.index_text(index) for index in indices)}]"

    def index_text(self, expr):
        """An integer index expression, printed without the float32 casts of numbers."""
        dtype, self.dtype = self.dtype, "float64"
        try:
            return self._print(expr)
        finally:
            self.dtype = dtype

    def _print_Integer(self, expr):
        if abs(expr.p) > EXACT_INTEGER_MAX:   # beyond int64 Numba cannot type it; a float literal keeps the value
            return self._typed(repr(float(expr.p)))
        return self._typed(str(expr.p))

    def _print_Rational(self, expr):
        if max(abs(expr.p), expr.q) > EXACT_INTEGER_MAX:
            return self._typed(repr(expr.p / expr.q))   # Python's int / int rounds correctly
        return self._typed(f"{expr.p}/{expr.q}") if self.dtype == "float32" else f"({expr.p}/{expr.q})"

    def _print_Float(self, expr):
        return self._typed(repr(float(expr)))

    def _print_Pi(self, expr):
        return self._typed("math.pi")

    def _print_Exp1(self, expr):
        return self._typed("math.e")

    def _print_Pow(self, expr, rational=False):
        base, exponent = expr.args
        if exponent.is_Integer and 1 <= abs(int(exponent)) <= _EXPANDED_POWER_MAX:
            factor = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Mul"] + 1)
            product = "*".join([factor] * abs(int(exponent)))
            if abs(int(exponent)) > 1:
                product = f"({product})"   # it may stand in a denominator: 1/(x*x)
            return product if exponent > 0 else f"{self._print(sp.Integer(1))}/{product}"
        if exponent.is_Integer:
            return f"{self.parenthesize(base, sp.printing.precedence.PRECEDENCE['Pow'] + 1)}**{int(exponent)}"
        return super()._print_Pow(expr, rational=rational)

    def _print_Heaviside(self, expr):
        argument = self._print(expr.args[0])
        at_zero = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
        one, zero = self._print(sp.Integer(1)), self._print(sp.Integer(0))
        if at_zero == 0:
            return f"({one} if {argument} > 0 else {zero})"
        return f"({one} if {argument} > 0 else ({self._print(at_zero)} if {argument} == 0 else {zero}))"

    def _print_sign(self, expr):
        argument = self._print(expr.args[0])
        one, zero = self._print(sp.Integer(1)), self._print(sp.Integer(0))
        return f"({one} if {argument} > 0 else (-{one} if {argument} < 0 else {zero}))"
