"""The safe expression parser: a whitelist over Python's ast, never eval."""

import subprocess
import sys

import pytest
import sympy as sp

from symnet.declare.parse import parse_expression, parse_names, parse_point, symbol
from symnet.errors import ExpressionError

x, y = symbol("x"), symbol("y")


@pytest.mark.parametrize("text, expected", [
    ("x**2 + 3*x", x**2 + 3 * x),
    ("x^2", x**2),
    ("1/(exp(-(x))+1)", 1 / (sp.exp(-x) + 1)),
    ("max(0, x)", sp.Max(0, x)),
    ("0.25*x", sp.Rational(1, 4) * x),
    ("erf(x/sqrt(2))", sp.erf(x / sp.sqrt(2))),
    ("pi*E*x", sp.pi * sp.E * x),
    ("-x + +y", -x + y),
])
def test_parses_arithmetic_and_known_functions(text, expected):
    assert parse_expression(text) == expected


def test_symbols_are_real_so_abs_has_a_sign_derivative():
    assert sp.diff(parse_expression("abs(x)"), x) == sp.sign(x)


@pytest.mark.parametrize("text, fragment", [
    ("__import__('os').system('echo pwned')", "not allowed"),
    ("os.system('ls')", "not allowed"),
    ("x[0]", "not allowed"),
    ("lambda: 1", "not allowed"),
    ("open('f')", "unknown function 'open'"),
    ("exp", "is a function"),
    ("x +", "cannot parse"),
    ("", "empty expression"),
    ("9**9**9", "too large"),
    ("x/0", "division by zero"),
    ("'text'", "not allowed"),
    ("exp(x, base=2)", "positional"),
])
def test_rejects_anything_outside_the_whitelist(text, fragment):
    with pytest.raises(ExpressionError, match=fragment):
        parse_expression(text)


def test_malicious_text_on_the_command_line_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    result = subprocess.run([sys.executable, "-m", "symnet.cli", "derive", payload, "--wrt", "x"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert not marker.exists()
    assert result.stderr.count("\n") == 1 and "not allowed" in result.stderr
    assert "Traceback" not in result.stderr


def test_names_and_points():
    assert parse_names("w, b") == [symbol("w"), symbol("b")]
    assert parse_point("x=1,w=0,b=-0.5") == {symbol("x"): 1.0, symbol("w"): 0.0, symbol("b"): -0.5}
    for bad, fragment in [("x", "expected name=value"), ("x=abc", "not a number"), ("1x=2", "not a valid")]:
        with pytest.raises(ExpressionError, match=fragment):
            parse_point(bad)
    with pytest.raises(ExpressionError, match="twice"):
        parse_names("x,x")
