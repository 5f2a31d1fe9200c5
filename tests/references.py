"""Independent references for the tests: mpmath at high precision, finite differences and NumPy forward passes.

Nothing here calls symnet's differentiator; derivatives come from
``mpmath.diff`` of the forward expression only.
"""

import os
import subprocess
import sys

import mpmath
import numpy as np
import sympy as sp

DIGITS = 50


def mp_function(expr, symbols):
    """The forward expression as an mpmath function (Heaviside(0) = 0, as symnet's convention)."""
    expr = expr.replace(lambda e: isinstance(e, sp.Heaviside),
                        lambda e: sp.Piecewise((1, e.args[0] > 0), (0, True)))
    return sp.lambdify(symbols, expr, modules="mpmath")


def mp_gradient(expr, wrt, point):
    """∂expr/∂v for v in wrt at point ({symbol: float}), by mpmath.diff at 50 digits."""
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    function = mp_function(expr, symbols)
    with mpmath.workdps(DIGITS):
        at = [mpmath.mpf(point[s]) for s in symbols]
        result = []
        for var in wrt:
            order = [1 if s == var else 0 for s in symbols]
            result.append(mpmath.diff(function, at, order))
        return result


def mp_value(expr, point):
    """expr evaluated at point in mpmath at 50 digits."""
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    with mpmath.workdps(DIGITS):
        return mp_function(expr, symbols)(*[mpmath.mpf(point[s]) for s in symbols])


def relative_error(value, reference):
    """|value − reference| / |reference| (absolute error where the reference is 0)."""
    reference = mpmath.mpf(reference)
    error = abs(mpmath.mpf(value) - reference)
    return float(error / abs(reference)) if reference != 0 else float(error)


def generated_texts(source, tmp_path, seeds=("1", "7")):
    """Run ``source`` (which prints a generated module's path) once per hash seed; return each module's text."""
    texts = []
    for seed in seeds:
        env = dict(os.environ, PYTHONHASHSEED=seed, SYMNET_GENERATED_DIR=str(tmp_path / f"seed{seed}"))
        result = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, env=env, check=True)
        texts.append(open(result.stdout.strip(), encoding="utf-8").read())
    return texts


def central_differences(loss, params, names=None):
    """``{name: ∂loss/∂params[name]}`` by central differences of ``loss()``, a NumPy reference that reads the
    arrays of the dict ``params`` (each entry moved by h = 10⁻⁶·max(1, |θ|) in place and put back); ``names``:
    the entries to differentiate (all by default)."""
    result = {}
    for name in params if names is None else names:
        value, numerical = params[name], np.zeros_like(params[name])
        for cell in np.ndindex(value.shape):
            saved = value[cell]
            h = 1e-6 * max(1.0, abs(saved))
            value[cell] = saved + h
            up = loss()
            value[cell] = saved - h
            down = loss()
            value[cell] = saved
            numerical[cell] = (up - down) / (2 * h)
        result[name] = numerical
    return result


def assert_matches_numpy(net, params, X, Y, loss):
    """``net``'s loss and gradient at ``params`` equal ``loss(p)``, a NumPy reference of the same loss that reads the
    dict ``p`` (copies of the parameters), and its :func:`central_differences`."""
    reference = {name: np.array(params[name]) for name in params}
    value, grads = net.loss_and_grad(params, X, Y)
    np.testing.assert_allclose(value, loss(reference), rtol=1e-12)
    for name, numerical in central_differences(lambda: loss(reference), reference).items():
        np.testing.assert_allclose(grads[name], numerical, rtol=1e-6, atol=1e-8, err_msg=name)


def softmax_cross_entropy(o, Y):
    """The mean over the batch of log Σ_k e^(o_k) − Σ_k y_k o_k (each row shifted by its max first)."""
    shifted = o - o.max(axis=1, keepdims=True)
    return (np.log(np.exp(shifted).sum(axis=1)) - (Y * shifted).sum(axis=1)).mean()


def numpy_layer_norm(a, scale, shift, eps):
    """(a − μ) / √(σ² + ε) · scale + shift over the last axis (biased variance), as PyTorch's LayerNorm: each
    sample of a batch of vectors, each time step of a batch of sequences."""
    mean = a.mean(axis=-1, keepdims=True)
    variance = ((a - mean) ** 2).mean(axis=-1, keepdims=True)
    return (a - mean) / np.sqrt(variance + eps) * scale + shift


def numpy_attention(X, Wq, Wk, Wv, Wo, heads, causal):
    """softmax_s(Q_h[t] · K_h[s] / √d_h) (keys after the query masked when causal) times V_h, heads concatenated,
    times Woᵀ."""
    batch, length, d_model = X.shape
    d_head = d_model // heads
    Q, K, V = X @ Wq.T, X @ Wk.T, X @ Wv.T
    out = np.empty_like(Q)
    for h in range(heads):
        cut = slice(h * d_head, (h + 1) * d_head)
        S = Q[:, :, cut] @ K[:, :, cut].transpose(0, 2, 1) / np.sqrt(d_head)
        if causal:
            S = np.where(np.tril(np.ones((length, length), dtype=bool)), S, -np.inf)
        P = np.exp(S - S.max(axis=2, keepdims=True))
        out[:, :, cut] = (P / P.sum(axis=2, keepdims=True)) @ V[:, :, cut]
    return out @ Wo.T
