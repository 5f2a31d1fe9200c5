"""Self-attention declared in index notation: the compiled network's loss and derived gradients against an
independent NumPy forward pass (and its central differences), with a LayerNorm on each step after it in one
configuration, causal masking, large logits, bad configurations.

One compiled network per configuration (module-scoped fixtures): each costs several seconds of Numba compile."""

import numpy as np
import pytest

import symnet as sn
from symnet.errors import ConfigurationError, ShapeError
from tests.references import central_differences, numpy_attention, numpy_layer_norm, softmax_cross_entropy

CLASSES = 3


def numpy_output(p, X, heads, causal, layer_norm):
    """SelfAttention (→ LayerNorm over each step's features) → Flatten → Dense(T·d_model, 3)."""
    a = numpy_attention(X, p["Wq1"], p["Wk1"], p["Wv1"], p["Wo1"], heads, causal)
    if layer_norm:
        a = numpy_layer_norm(a, p["scale2"], p["shift2"], 1e-5)
    last = 4 if layer_norm else 3
    return a.reshape(len(X), -1) @ p[f"W{last}"].T + p[f"b{last}"]


def numpy_loss(p, X, Y, heads, causal, layer_norm):
    """:func:`numpy_output`'s softmax cross-entropy averaged over the batch."""
    return softmax_cross_entropy(numpy_output(p, X, heads, causal, layer_norm), Y)


def model(length, d_model, heads, causal, layer_norm):
    normalised = [sn.LayerNorm(d_model)] if layer_norm else []
    return sn.Sequential([sn.SelfAttention(d_model, heads=heads, causal=causal), *normalised, sn.Flatten(),
                          sn.Dense(length * d_model, CLASSES)], loss="softmax_cross_entropy",
                         input_shape=(length, d_model))


CONFIGURATIONS = [(5, 3, 1, False, False), (6, 4, 2, True, True)]
"""(T, d_model, heads, causal, LayerNorm after it): two networks cover heads 1 and 2, causal off and on, the
attention's output read directly and through a LayerNorm on each step (each costs 20–70 s of Numba compile on a
cold cache)."""


_NETWORKS = {}


def compiled_network(configuration):
    """The compiled network of a configuration, compiled once per test run."""
    if configuration not in _NETWORKS:
        _NETWORKS[configuration] = model(*configuration).compile()
    return _NETWORKS[configuration]


@pytest.fixture(scope="module", params=CONFIGURATIONS,
                ids=lambda c: "T{}-d{}-h{}-{}{}".format(*c[:3], "causal" * c[3], "-layernorm" * c[4]))
def compiled(request):
    return request.param, compiled_network(request.param)


def test_loss_and_gradient_match_numpy(compiled):
    (length, d_model, heads, causal, layer_norm), net = compiled
    params = net.init(seed=3)
    rng = np.random.default_rng(4)
    if layer_norm:     # off their starting values (1 and 0), so the gradient through them is general
        params["scale2"][...] = rng.uniform(0.5, 1.5, d_model)
        params["shift2"][...] = rng.normal(size=d_model) * 0.1
    X, Y = rng.normal(size=(4, length, d_model)), np.eye(CLASSES)[rng.integers(0, CLASSES, 4)]
    reference = {name: np.array(params[name]) for name in params}
    loss, grads = net.loss_and_grad(params, X, Y)
    assert loss == pytest.approx(numpy_loss(reference, X, Y, heads, causal, layer_norm), rel=1e-12)
    np.testing.assert_allclose(net.predict(params, X), numpy_output(reference, X, heads, causal, layer_norm),
                               rtol=1e-12, atol=1e-12)
    for name, numerical in central_differences(lambda: numpy_loss(reference, X, Y, heads, causal, layer_norm),
                                               reference).items():
        np.testing.assert_allclose(grads[name], numerical, rtol=1e-6, atol=1e-8, err_msg=name)


def test_large_scores_stay_finite(compiled):
    """Inputs of ±1000 make scores of order 10⁶: the softmax's max shift (over the keys a causal query sees) keeps
    the loss and gradient finite and equal to NumPy's."""
    (length, d_model, heads, causal, layer_norm), net = compiled
    params = net.init(seed=5)
    rng = np.random.default_rng(6)
    X, Y = 1000 * rng.choice([-1.0, 1.0], size=(3, length, d_model)), np.eye(CLASSES)[rng.integers(0, CLASSES, 3)]
    loss, grads = net.loss_and_grad(params, X, Y)
    assert np.isfinite(loss) and all(np.isfinite(grads[name]).all() for name in grads)
    reference = {name: np.array(params[name]) for name in params}
    assert loss == pytest.approx(numpy_loss(reference, X, Y, heads, causal, layer_norm), rel=1e-9)


def test_causal_output_ignores_later_steps():
    """With causal=True, the outputs at steps before the last do not change when the last step's input does (nor do
    they after a LayerNorm on each step): a Dense layer that reads only those steps gives exactly the same output."""
    length, d_model, _, _, _ = CONFIGURATIONS[1]
    net = compiled_network(CONFIGURATIONS[1])
    params = net.init(seed=1)
    params["W4"][:, (length - 1) * d_model:] = 0.0
    X = np.random.default_rng(2).normal(size=(2, length, d_model))
    changed = X.copy()
    changed[:, -1, :] += 5.0
    assert np.array_equal(net.predict(params, X), net.predict(params, changed))
    params["W4"][:, -1] = 1.0       # … and a Dense layer that reads the last step sees the change
    assert not np.array_equal(net.predict(params, X), net.predict(params, changed))


def test_parameters_are_decayed_xavier_weights():
    layer = sn.SelfAttention(4, heads=2)
    model_ = sn.Sequential([layer, sn.Flatten(), sn.Dense(20, CLASSES)], input_shape=(5, 4))
    assert [(str(base), shape) for base, shape in layer.parameters] == [
        ("Wq", (4, 4)), ("Wk", (4, 4)), ("Wv", (4, 4)), ("Wo", (4, 4))]
    assert sn.declare.layers.weight_names(model_.layers) == ["Wq1", "Wk1", "Wv1", "Wo1", "W3"]
    assert repr(sn.SelfAttention(8, heads=2, causal=True)) == "SelfAttention(8, heads=2, causal=True)"


def test_bad_configurations_say_what_is_wrong():
    with pytest.raises(ConfigurationError, match="d_model 6 is not divisible by heads 4"):
        sn.SelfAttention(6, heads=4)
    with pytest.raises(ConfigurationError, match=r"takes sequences of shape \(time, 4\)"):
        sn.Sequential([sn.SelfAttention(4), sn.Flatten(), sn.Dense(20, 2)], input_shape=(5, 3))
    with pytest.raises(ConfigurationError, match=r"takes sequences of shape \(time, 4\)"):
        sn.Sequential([sn.SelfAttention(4), sn.Flatten(), sn.Dense(20, 2)], input_shape=(20,))
    with pytest.raises(ConfigurationError, match="input_shape"):
        sn.Sequential([sn.SelfAttention(4), sn.Flatten(), sn.Dense(20, 2)])
    with pytest.raises(ConfigurationError, match="causal must be True or False"):
        sn.SelfAttention(4, causal="yes")


def test_input_of_the_wrong_shape_is_refused(compiled):
    (length, d_model, _, _, _), net = compiled
    params = net.init()
    with pytest.raises(ShapeError, match="X must have shape"):
        net.predict(params, np.zeros((2, length + 1, d_model)))
    with pytest.raises(ShapeError, match="X must have shape"):
        net.predict(params, np.zeros((2, length, d_model, 1)))
