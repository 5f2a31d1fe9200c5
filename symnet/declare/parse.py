"""Parse expression text into SymPy without evaluating arbitrary Python.

``sympy.parse_expr`` runs ``eval`` on its input, so it must never see text a
user typed on a command line or wrote in a file.  :func:`parse_expression`
walks Python's ``ast`` instead and accepts only numbers, names, arithmetic
(``+ - * / **``, with ``^`` read as a power) and calls of the functions in
:data:`FUNCTIONS`.  Every name that is not a known function or constant
becomes a real SymPy symbol.
"""

import ast
import keyword
import math
import numbers
import unicodedata

import sympy as sp
from sympy.codegen.cfunctions import log1p
from sympy.core.function import Application

from symnet.errors import ExpressionError, quoted

FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "ln": sp.log, "sqrt": sp.sqrt,
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan,
    "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
    "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh,
    "erf": sp.erf, "erfc": sp.erfc,
    "abs": sp.Abs, "Abs": sp.Abs, "sign": sp.sign,
    "max": sp.Max, "Max": sp.Max, "min": sp.Min, "Min": sp.Min,
    "Heaviside": sp.Heaviside,
}
CONSTANTS = {"pi": sp.pi, "E": sp.E}
SUPPORTED = tuple({f for f in FUNCTIONS.values() if isinstance(f, type)} | {sp.Piecewise, sp.DiracDelta, log1p})
VARIADIC = {"max", "Max", "min", "Min"}
"""Functions of any number of arguments; every other function takes exactly one (Heaviside too: H(0) is symnet's
0, so there is no second argument to give)."""

MAX_LENGTH = 20_000

_POWERS = (ast.Pow, ast.BitXor)


def is_name(name):
    """Whether ``name`` can name a symbol: a Python identifier (Unicode letters welcome, e.g. α) that starts with a
    letter and is not a keyword.  Python reads identifiers in NFKC form, so :func:`parse_names` does too."""
    return name.isidentifier() and name[0].isalpha() and not keyword.iskeyword(name)


def symbol(name):
    """The real SymPy symbol symnet uses for ``name`` (the same object on every call)."""
    return sp.Symbol(name, real=True)


def parse_expression(text, evaluate=True):
    """Parse ``text`` such as ``"1/(exp(-(w*x+b))+1)"`` into a SymPy expression.

    With ``evaluate=False`` the expression keeps the structure it was written
    in (``-(w*x+b)`` stays a negation of a sum, ``1/u`` a reciprocal): the
    automatic-differentiation traces of ``symnet compare`` then follow the
    text step by step.  Raises :class:`ExpressionError` naming the offending
    part for anything outside the whitelist (attribute access, subscripts,
    unknown functions, keywords, ...), for nesting deeper than
    :data:`MAX_DEPTH` and for numbers no float64 can hold.  Nothing in the
    text is executed.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expected expression text, got {type(text).__name__}")
    if not text.strip():
        raise ExpressionError("empty expression; expected e.g. 'x*tanh(x)'")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ExpressionError(f"cannot parse {quoted(text)}: {error.msg}; expected arithmetic like "
                              "'x**2 + exp(-x)'") from None
    except (RecursionError, MemoryError):
        raise _too_deep(text) from None
    return check_numbers(_convert(tree.body, text, _EVALUATED if evaluate else _AS_WRITTEN, 0), text)


MAX_DEPTH = 100
"""How deeply an expression may nest (a chain of + − or of × ÷ counts as one level, however long).  SymPy recurses over the
expression tree, so deeper ones would fail later with RecursionError."""
MAX_POWER_BITS = 4096
"""Numeric powers are evaluated exactly; one whose numerator or denominator would exceed this many bits
(|result| beyond about 1e1233 or below its inverse) is refused before it is computed."""


def _too_deep(text):
    return ExpressionError(f"{quoted(text)} nests more than {MAX_DEPTH} levels deep; write it with fewer nested "
                           "parentheses, calls or unary signs")


_EVALUATED = {
    ast.Pow: lambda a, b: a**b,
    ast.BitXor: lambda a, b: a**b,
    "sum": lambda terms: sp.Add(*terms),
    "product": lambda factors: sp.Mul(*factors),
    "reciprocal": lambda a: 1 / a,
    "neg": lambda a: -a,
    "call": lambda function, args: function(*args),
}
# as written: sums and products stay n-ary in the order written (a − b − c is a + (−b) + (−c)), which the traces
# of symnet compare fold left to right, as Python evaluates the text
_AS_WRITTEN = {
    ast.Pow: lambda a, b: sp.Pow(a, b, evaluate=False),
    ast.BitXor: lambda a, b: sp.Pow(a, b, evaluate=False),
    "sum": lambda terms: sp.Add(*terms, evaluate=False),
    "product": lambda factors: factors[0] if len(factors) == 1 else sp.Mul(*factors, evaluate=False),
    "reciprocal": lambda a: sp.Pow(a, -1, evaluate=False),
    "neg": lambda a: -a if a.is_Number else sp.Mul(-1, a, evaluate=False),
    "call": lambda function, args: sp.Pow(args[0], sp.S.Half, evaluate=False) if function is sp.sqrt
    else function(*args, evaluate=False),
}
_CHAINS = {ast.Add: (ast.Add, ast.Sub), ast.Sub: (ast.Add, ast.Sub), ast.Mult: (ast.Mult, ast.Div),
           ast.Div: (ast.Mult, ast.Div)}


def _chain(node):
    """``a ± b ± c …`` or ``a */ b */ c …`` written left to right: the first operand and ``[(op, operand), …]``.
    Walked iteratively, so a sum of a thousand terms costs no recursion depth."""
    kinds, links = _CHAINS[type(node.op)], []
    while isinstance(node, ast.BinOp) and isinstance(node.op, kinds):
        links.append((type(node.op), node.right))
        node = node.left
    return node, links[::-1]


def _convert(node, text, build, depth):
    if depth > MAX_DEPTH:
        raise _too_deep(text)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return exact_number(node.value, text)
    if isinstance(node, ast.Name):
        return _name(node.id, text)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        negate = False
        while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            negate ^= isinstance(node.op, ast.USub)
            node = node.operand
        operand = _convert(node, text, build, depth + 1)
        return build["neg"](operand) if negate else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _CHAINS:
        first, links = _chain(node)
        value = _convert(first, text, build, depth + 1)
        operands = [(op, _convert(operand, text, build, depth + 1)) for op, operand in links]
        if any(op is ast.Div and operand == 0 for op, operand in operands):
            raise ExpressionError(f"division by zero in {quoted(text)}")
        if type(node.op) in (ast.Add, ast.Sub):
            return build["sum"]([value] + [build["neg"](b) if op is ast.Sub else b for op, b in operands])
        factors = [build["reciprocal"](b) if op is ast.Div else b for op, b in operands]
        return build["product"](factors if value == 1 and links[0][0] is ast.Div else [value] + factors)
    if isinstance(node, ast.BinOp) and isinstance(node.op, _POWERS):
        left, right = _convert(node.left, text, build, depth + 1), _convert(node.right, text, build, depth + 1)
        _check_power(left, right, node, text)
        return build[type(node.op)](left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"unknown function {quoted(name)}; known functions: {known}")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ExpressionError(f"{name}() takes positional expression arguments only")
        if not (len(node.args) >= 1 if name in VARIADIC else len(node.args) == 1):
            wanted = "one or more arguments" if name in VARIADIC else "exactly one argument"
            raise ExpressionError(f"{name}() takes {wanted}, got {len(node.args)} in {quoted(text)}")
        return build["call"](FUNCTIONS[name], [_convert(arg, text, build, depth + 1) for arg in node.args])
    snippet = ast.get_source_segment(text.strip(), node) or type(node).__name__
    raise ExpressionError(
        f"{quoted(snippet)} is not allowed in an expression; use numbers, names, + - * / ** and known functions")


def _check_power(base, exponent, node, text):
    """Refuse a numeric power whose exact value would be too large to compute (see :data:`MAX_POWER_BITS`)."""
    if not (base.is_Rational and exponent.is_Number) or base in (0, 1, -1):
        return
    if not exponent.is_Rational:
        return
    bits = max(abs(base.p).bit_length(), abs(base.q).bit_length())
    if abs(exponent) * bits > MAX_POWER_BITS:
        power = ast.get_source_segment(text.strip(), node)
        raise ExpressionError(f"the numeric power {quoted(power)} is too large to evaluate exactly; float64 holds "
                              "magnitudes up to about 1.8e308")


def _short(number):
    """A number as text short enough for a message (large ones in scientific notation)."""
    return str(number) if len(str(number.p)) + len(str(number.q)) < 40 else str(sp.Float(number, 6))


def exact_number(value, text=None):
    """The exact SymPy number of a finite int or float: ``0.1`` becomes 1/10 (the literal's decimal value)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ExpressionError(f"expected a number, got {type(value).__name__}")
    where = f" in {quoted(text)}" if text is not None else ""
    if isinstance(value, numbers.Integral):
        if abs(int(value)) > FLOAT64_MAX:
            raise ExpressionError(f"the number {quoted(_short(sp.Integer(value)))}{where} is beyond float64's range "
                                  "(|x| ≤ 1.8e308)")
        return sp.Integer(int(value))
    value = float(value)
    if not math.isfinite(value):
        raise ExpressionError(f"the number {value!r}{where} is not finite in float64 (|x| ≤ 1.8e308)")
    return sp.Rational(repr(value))


FLOAT64_MAX = sp.Float(1.7976931348623157e308)


def check_numbers(expr, text=None):
    """Return ``expr`` if every number in it is finite in float64; raise :class:`ExpressionError` otherwise.

    Generated code computes in float64, so a number beyond its range (``2**1100``, ``oo``, ``nan``) could only
    become infinity or NaN there."""
    for number in expr.atoms(sp.Number):
        if number.is_Number and number.is_finite and (number == 0 or abs(number) <= FLOAT64_MAX):
            continue
        where = f" in {quoted(text if text is not None else str(expr))}"
        shown = _short(number) if number.is_Rational else str(number)
        raise ExpressionError(f"the number {quoted(shown)}{where} is beyond float64's range (|x| ≤ 1.8e308)")
    for part in sp.preorder_traversal(expr):
        if not part.free_symbols and part.is_real is False:
            raise ExpressionError(f"{quoted(str(part))} in {quoted(text if text is not None else str(expr))} is not a "
                                  "real number; symnet computes in real float64")
    return expr


def check_functions(expr, text=None):
    """Return ``expr`` if symnet can differentiate and print every function in it (those of :data:`FUNCTIONS`,
    ``Piecewise`` and the stable forms' ``log1p``), else raise :class:`ExpressionError` naming the first other."""
    for part in sp.preorder_traversal(expr):
        known = isinstance(part, SUPPORTED) or not isinstance(part, (Application, sp.Integral, sp.Sum, sp.Product,
                                                                     sp.Derivative, sp.Subs, sp.Limit))
        if not known:
            raise ExpressionError(f"{quoted(str(part))} in {quoted(text if text is not None else str(expr))}: symnet "
                                  f"cannot differentiate or print {type(part).__name__}; use "
                                  f"{', '.join(sorted(FUNCTIONS))}")
    return expr


def as_expression(value):
    """A SymPy expression from expression text (parsed by the whitelist, never ``eval``), a SymPy expression or
    a finite number; every number in it must be finite in float64."""
    if isinstance(value, str):
        return parse_expression(value)
    if isinstance(value, sp.Basic):
        if not isinstance(value, sp.Expr):
            raise ExpressionError(f"expected a SymPy expression, got {type(value).__name__}")
        return check_functions(check_numbers(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return exact_number(value)
    raise ExpressionError(f"expected a SymPy expression or expression text, got {type(value).__name__}")


def _name(name, text):
    if name in CONSTANTS:
        return CONSTANTS[name]
    if name in FUNCTIONS:
        raise ExpressionError(f"{name!r} is a function; call it, e.g. {name}(x)")
    if not is_name(name):
        raise ExpressionError(f"name {quoted(name)} in {quoted(text)} is not allowed; names start with a letter, "
                              "e.g. x, w1, α")
    return symbol(name)


def parse_names(text, what="variables"):
    """Parse a comma-separated list of symbol names (``"w,b"``, ``"α,β"``) into symbols, each name once."""
    names = [unicodedata.normalize("NFKC", part.strip()) for part in text.split(",") if part.strip()]
    if not names:
        raise ExpressionError(f"no {what} given in {quoted(text)}; expected a comma-separated list such as 'w,b'")
    for name in names:
        if not is_name(name) or name in FUNCTIONS or name in CONSTANTS:
            raise ExpressionError(f"{quoted(name)} is not a valid variable name in {what} {quoted(text)}; names are "
                                  "letters (α too), digits and _, start with a letter and are not functions or "
                                  "constants")
        if names.count(name) > 1:
            raise ExpressionError(f"{what} {quoted(text)} names {quoted(name)} twice; give each name once")
    return [symbol(name) for name in names]


def parse_point(text, symbols=None):
    """Parse ``"x=1,w=0,b=-0.5"`` into ``{Symbol: float}``: each name once, each value a finite number.

    With ``symbols`` (the symbols of the expression the point is for), a name that is not one of them is an
    error that lists them.
    """
    point = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ExpressionError(f"malformed point entry {quoted(part.strip())}; expected name=value, e.g. x=1,w=0")
        (sym,) = parse_names(name, "point")
        if sym in point:
            raise ExpressionError(f"the point {quoted(text)} gives {quoted(sym.name)} twice; give each name one value")
        try:
            point[sym] = float(value)
        except ValueError:
            raise ExpressionError(f"value {quoted(value.strip())} for {quoted(sym.name)} is not a number") from None
        if not math.isfinite(point[sym]):
            raise ExpressionError(f"value {quoted(value.strip())} for {quoted(sym.name)} is not a finite number")
    if not point:
        raise ExpressionError(f"empty point {quoted(text)}; expected name=value pairs, e.g. x=1,w=0")
    if symbols is not None:
        known = sorted(s.name for s in symbols)
        unknown = [s.name for s in point if s.name not in known]
        if unknown:
            has = f"its symbols are {quoted(', '.join(known))}" if known else "it has no symbols"
            raise ExpressionError(f"the point names {quoted(unknown[0])}, which is not a symbol of the expression; "
                                  f"{has}")
    return point
