"""Expression swell: how large the naive, CSE'd and reverse-mode gradients get (``symnet swell``).

The logistic map reproduces Baydin et al. 2018, Table 1; :func:`network_swell` unrolls a small network's loss and
sets it against what symnet derives per layer type.
"""

import sympy as sp

from symnet import backprop
from symnet.declare.parse import symbol
from symnet.differentiate import count_ops
from symnet.errors import ExpressionError, quoted
from symnet.expression import derive
from symnet.network import unrolled_loss


def logistic_map(n, x=None):
    """``l_n`` of the logistic map ``l_1 = x``, ``l_{k+1} = 4 l_k (1 − l_k)`` (Baydin et al. 2018, Table 1)."""
    if n < 1:
        raise ExpressionError(f"the logistic map starts at n = 1, got n = {n}")
    x = x if x is not None else symbol("x")
    value = x
    for _ in range(n - 1):
        value = 4 * value * (1 - value)
    return value


def swell_row(expr, var, n=None, simplified=None):
    """One row of the expression-swell table for ``∂expr/∂var``."""
    d = derive(expr, [var])
    row = {"n": n} if n is not None else {}
    row.update(forward_ops=count_ops(d.expr), forward_dag_ops=d.forward_cse.ops, naive_ops=count_ops(d.naive[0]),
               cse_ops=d.cse.ops, reverse_ops=d.reverse.ops,
               simplified=str(simplified if simplified is not None else d.simplified[0]))
    return row


LOGISTIC_MAP_MAX = 11
"""The longest swell table ``symnet swell --logistic-map`` offers: each level takes about 4 times as long as the one
before, and n = 12 already takes most of a minute (docs/performance.md)."""


def logistic_map_swell(n_max):
    """The swell table for ``l_1 … l_{n_max}`` of the logistic map, derivative w.r.t. ``x``.

    The ``simplified`` column is the expanded derivative, computed from the
    expanded polynomial (``sympy.Poly``), which is fast at any ``n``.
    """
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 1:
        raise ExpressionError(f"the logistic-map table takes n ≥ 1, got {quoted(n_max)}")
    x = symbol("x")
    polynomial = sp.Poly(x, x)
    rows = []
    for n in range(1, n_max + 1):
        rows.append(swell_row(logistic_map(n, x), x, n=n, simplified=polynomial.diff(x).as_expr()))
        polynomial = 4 * polynomial * (1 - polynomial)
    return rows


def network_swell(model, X, Y):
    """The swell of a small network's full gradient: the unrolled loss (one scalar expression in every
    parameter) differentiated naively, after CSE and in reverse mode, against the layer-level derivation.

    ``layered_ops`` counts the operations of everything symnet derives per layer type (the VJPs, each f'
    and ∂f/∂γ, the loss gradient): it does not grow with the number of parameters or samples.
    """
    expr, symbols = unrolled_loss(model, X, Y)
    d = derive(expr, symbols)
    return {"network": model.describe(), "samples": len(X), "parameters": len(symbols),
            "forward_ops": count_ops(expr), "forward_dag_ops": d.forward_cse.ops,
            "naive_ops": sum(count_ops(g) for g in d.naive), "cse_ops": d.cse.ops, "reverse_ops": d.reverse.ops,
            "layered_ops": layered_ops(model)}


def layered_ops(model):
    """Operations of everything symnet derives for ``model`` per layer type: the VJPs, each f' and ∂f/∂γ, and
    the loss gradient.  Independent of the layer sizes."""
    layered = [model.loss.gradient]
    for layer in model.layers:
        layered += [vjp for _, vjp in backprop.symbolic_vjps(layer).values()]
        layered += [layer.activation.derivative, *layer.activation.parameter_derivatives.values()]
    return sum(count_ops(e) for e in layered)
