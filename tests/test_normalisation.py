"""Layer normalisation declared in index notation: the compiled network against a NumPy layer norm, its derived
gradients against central differences of that NumPy loss (an independent reference), defaults and errors."""

import numpy as np
import pytest

import symnet as sn
from symnet.declare.layers import weight_names
from symnet.errors import ConfigurationError
from tests.references import assert_matches_numpy, numpy_layer_norm, softmax_cross_entropy


def numpy_loss(p, X, Y, eps):
    """Dense(5, 7, tanh) → LayerNorm(7) → Dense(7, 3), softmax cross-entropy, plus ½λ‖W‖² (λ = 0.01)."""
    a = np.tanh(X @ p["W1"].T + p["b1"])
    a = numpy_layer_norm(a, p["scale2"], p["shift2"], eps)
    return softmax_cross_entropy(a @ p["W3"].T + p["b3"], Y) + 0.005 * ((p["W1"] ** 2).sum() + (p["W3"] ** 2).sum())


def test_layer_norm_forward_and_gradient_match_numpy():
    eps = 1e-3
    model = sn.Sequential([sn.Dense(5, 7, "tanh"), sn.LayerNorm(7, eps=eps), sn.Dense(7, 3)],
                          loss="softmax_cross_entropy", weight_decay=0.01)
    net = model.compile()
    params = net.init(seed=3)
    assert np.array_equal(params["scale2"], np.ones(7)) and not params["shift2"].any()
    rng = np.random.default_rng(4)
    params["scale2"][...] = rng.uniform(0.5, 1.5, 7)
    params["shift2"][...] = rng.normal(size=7) * 0.1
    X, Y = rng.normal(size=(6, 5)), np.eye(3)[rng.integers(0, 3, 6)]
    assert_matches_numpy(net, params, X, Y, lambda p: numpy_loss(p, X, Y, eps))


def test_layer_norm_on_sequences_normalises_each_step():
    """LayerNorm(4) on (T, 4) sequences normalises each sample's each step over its 4 features (PyTorch's
    nn.LayerNorm(4) on (batch, T, 4)); first, then flattened into a Dense layer."""
    length, eps = 5, 1e-3
    model = sn.Sequential([sn.LayerNorm(4, eps=eps), sn.Flatten(), sn.Dense(length * 4, 3)],
                          loss="softmax_cross_entropy", input_shape=(length, 4))
    assert model.describe().startswith("5×4-5×4-20-3") and model.layers[0].output_shape == (length, 4)
    net = model.compile()
    params = net.init(seed=1)
    rng = np.random.default_rng(2)
    params["scale1"][...] = rng.uniform(0.5, 1.5, 4)
    params["shift1"][...] = rng.normal(size=4) * 0.1
    X, Y = rng.normal(size=(3, length, 4)) * rng.uniform(0.1, 5, (3, length, 1)), np.eye(3)[rng.integers(0, 3, 3)]

    def sequence_loss(p):
        a = numpy_layer_norm(X, p["scale1"], p["shift1"], eps).reshape(len(X), -1)
        return softmax_cross_entropy(a @ p["W3"].T + p["b3"], Y)

    assert_matches_numpy(net, params, X, Y, sequence_loss)


def test_layer_norm_first_normalises_each_sample():
    net = sn.Sequential([sn.LayerNorm(4)], loss="mse").compile(dtype="float32")
    X = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(net.predict(net.init(), X), numpy_layer_norm(X, 1.0, 0.0, 1e-5), rtol=1e-5, atol=1e-6)


def test_layer_norm_declaration():
    layer = sn.LayerNorm(6)
    assert repr(layer) == "LayerNorm(6)" and repr(sn.LayerNorm(6, eps=0.1)) == "LayerNorm(6, eps=0.1)"
    assert weight_names([layer]) == []                                # scale and shift are not decayed
    with pytest.raises(ConfigurationError, match="eps must be a positive number"):
        sn.LayerNorm(4, eps=0)
    with pytest.raises(ConfigurationError, match="takes 4 inputs but layer 1"):
        sn.Sequential([sn.Dense(3, 5), sn.LayerNorm(4)])
    with pytest.raises(ConfigurationError, match=r"LayerNorm\(5\) .* sequences of shape \(time, 5\), got 6×4; "
                                                 r"give LayerNorm\(4\)"):
        sn.Sequential([sn.LayerNorm(5), sn.Flatten(), sn.Dense(30, 2)], input_shape=(6, 4))
    with pytest.raises(ConfigurationError, match=r"got 1×8×8; put sn.Flatten\(\) before it and give LayerNorm\(64\)"):
        sn.Sequential([sn.LayerNorm(8), sn.Flatten(), sn.Dense(64, 2)], input_shape=(1, 8, 8))
    text = sn.Sequential([sn.Dense(3, 4), sn.LayerNorm(4)], loss="mse").latex()
    assert r"\sqrt{" in text and r"\frac{\partial L}{\partial {scale_{2}}_{p}}" in text



def test_tidy_merges_sums_only_when_no_free_index_is_added():
    """Σ_i f[r, i] + c[r]·Σ_i g[r, i] is one sum per row; with d[r, q] merged in it would be one per (r, q), the
    O(B·I²) loop LayerNorm's input VJP had.  Both keep their value (NumPy sums of random numbers)."""
    import sympy as sp
    from symnet.indexed import tidy
    r, q, i = sp.symbols("r q i", integer=True)
    f, g, c, d = (sp.IndexedBase(name, real=True) for name in "fgcd")
    per_row = tidy(sp.Sum(f[r, i], (i, 0, 2)) + c[r] * sp.Sum(g[r, i], (i, 0, 2)))
    per_cell = tidy(sp.Sum(f[r, i], (i, 0, 2)) + d[r, q] * sp.Sum(g[r, i], (i, 0, 2)))
    assert len(per_row.atoms(sp.Sum)) == 1 and len(per_cell.atoms(sp.Sum)) == 2
    rng = np.random.default_rng(0)
    arrays = {"f": rng.normal(size=(2, 3)), "g": rng.normal(size=(2, 3)), "c": rng.normal(size=2),
              "d": rng.normal(size=(2, 2))}

    def value(expr):
        expr = expr.subs({r: 1, q: 0}).doit()
        return float(expr.replace(lambda e: isinstance(e, sp.Indexed),
                                  lambda e: arrays[str(e.base)][tuple(int(k) for k in e.indices)]))

    F, G = arrays["f"][1].sum(), arrays["g"][1].sum()
    assert value(per_row) == pytest.approx(F + arrays["c"][1] * G, rel=1e-12)
    assert value(per_cell) == pytest.approx(F + arrays["d"][1, 0] * G, rel=1e-12)
