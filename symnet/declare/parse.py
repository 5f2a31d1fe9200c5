"""Parse expression text into SymPy without evaluating arbitrary Python.

``sympy.parse_expr`` runs ``eval`` on its input, so it must never see text a
user typed on a command line or wrote in a file.  :func:`parse_expression`
walks Python's ``ast`` instead and accepts only numbers, names, arithmetic
(``+ - * / **``, with ``^`` read as a power) and calls of the functions in
:data:`FUNCTIONS`.  Every name that is not a known function or constant
becomes a real SymPy symbol.
"""

import ast
import re

import sympy as sp

from symnet.errors import ExpressionError

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

MAX_LENGTH = 20_000
MAX_NUMERIC_EXPONENT = 10_000

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
    ast.BitXor: lambda a, b: a**b,
}
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


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
    unknown functions, keywords, ...).  Nothing in the text is executed.
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
        raise ExpressionError(f"cannot parse {text!r}: {error.msg}; expected arithmetic like 'x**2 + exp(-x)'") from None
    return _convert(tree.body, text, _EVALUATED if evaluate else _AS_WRITTEN)


_EVALUATED = {
    **_BINARY,
    "neg": lambda a: -a,
    "call": lambda function, args: function(*args),
}
_AS_WRITTEN = {
    ast.Add: lambda a, b: sp.Add(a, b, evaluate=False),
    ast.Sub: lambda a, b: sp.Add(a, sp.Mul(-1, b, evaluate=False), evaluate=False),
    ast.Mult: lambda a, b: sp.Mul(a, b, evaluate=False),
    ast.Div: lambda a, b: sp.Pow(b, -1, evaluate=False) if a == 1 else sp.Mul(a, sp.Pow(b, -1, evaluate=False),
                                                                              evaluate=False),
    ast.Pow: lambda a, b: sp.Pow(a, b, evaluate=False),
    ast.BitXor: lambda a, b: sp.Pow(a, b, evaluate=False),
    "neg": lambda a: -a if a.is_Number else sp.Mul(-1, a, evaluate=False),
    "call": lambda function, args: sp.Pow(args[0], sp.S.Half, evaluate=False) if function is sp.sqrt
    else function(*args, evaluate=False),
}


def _convert(node, text, build):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        # exact decimal value of the literal as written: 0.1 stays 1/10
        return sp.Rational(repr(node.value)) if isinstance(node.value, float) else sp.Integer(node.value)
    if isinstance(node, ast.Name):
        return _name(node.id, text)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _convert(node.operand, text, build)
        return build["neg"](operand) if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _convert(node.left, text, build), _convert(node.right, text, build)
        if isinstance(node.op, (ast.Pow, ast.BitXor)) and left.is_Number and right.is_Number \
                and abs(right) > MAX_NUMERIC_EXPONENT and abs(left) != 1 and left != 0:
            raise ExpressionError(f"numeric power {left}**{right} is too large to evaluate")
        if isinstance(node.op, ast.Div) and right == 0:
            raise ExpressionError(f"division by zero in {text!r}")
        return build[type(node.op)](left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"unknown function {name!r}; known functions: {known}")
        if node.keywords or not node.args:
            raise ExpressionError(f"{name}() takes positional expression arguments only")
        return build["call"](FUNCTIONS[name], [_convert(arg, text, build) for arg in node.args])
    snippet = ast.get_source_segment(text.strip(), node) or type(node).__name__
    raise ExpressionError(
        f"{snippet!r} is not allowed in an expression; use numbers, names, + - * / ** and known functions")


def _name(name, text):
    if name in CONSTANTS:
        return CONSTANTS[name]
    if name in FUNCTIONS:
        raise ExpressionError(f"{name!r} is a function; call it, e.g. {name}(x)")
    if not _IDENTIFIER.match(name):
        raise ExpressionError(f"name {name!r} in {text!r} is not allowed; names start with a letter")
    return symbol(name)


def parse_names(text, what="variables"):
    """Parse a comma-separated list of symbol names (``"w,b"``) into symbols."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ExpressionError(f"no {what} given; expected a comma-separated list such as 'w,b'")
    for name in names:
        if not _IDENTIFIER.match(name) or name in FUNCTIONS or name in CONSTANTS:
            raise ExpressionError(f"{name!r} is not a valid variable name in {what} {text!r}")
    if len(set(names)) != len(names):
        raise ExpressionError(f"{what} {text!r} names a variable twice")
    return [symbol(name) for name in names]


def parse_point(text):
    """Parse ``"x=1,w=0,b=-0.5"`` into ``{Symbol: float}``."""
    point = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise ExpressionError(f"malformed point entry {part.strip()!r}; expected name=value, e.g. x=1,w=0")
        (sym,) = parse_names(name, "point")
        try:
            point[sym] = float(value)
        except ValueError:
            raise ExpressionError(f"value {value.strip()!r} for {name.strip()} is not a number") from None
    if not point:
        raise ExpressionError("empty point; expected name=value pairs, e.g. x=1,w=0")
    return point
