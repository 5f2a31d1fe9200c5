"""symnet's conventions for derivatives, for the declarations and the differentiation stage alike.

Pure SymPy.  It sits below the declarations because an activation derives its own f' (and ∂f/∂γ) when asked.
"""

import sympy as sp

from symnet.errors import DifferentiationError


def normalize(expr):
    """Apply symnet's conventions at non-differentiable points: ``Heaviside(0) = 0``, ``δ(x) = 0``.

    SymPy's default ``Heaviside(0) = 1/2`` would make ReLU'(0) = 1/2; PyTorch,
    TensorFlow and symnet use 0.
    """
    expr = expr.replace(lambda e: isinstance(e, sp.Heaviside) and e.args[1:] != (0,),
                        lambda e: sp.Heaviside(e.args[0], 0))
    # derivatives of step functions vanish almost everywhere; symnet takes 0 at the step too
    return expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))


def local_derivative(expr, arg):
    """``∂expr/∂arg`` with symnet's conventions; raises if SymPy cannot form it."""
    result = normalize(sp.diff(expr, arg))
    if result.has(sp.Derivative, sp.Subs):
        raise DifferentiationError(f"SymPy cannot differentiate {expr} with respect to {arg}")
    return result
