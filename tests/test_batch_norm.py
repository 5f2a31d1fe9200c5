"""Batch normalisation declared in index notation: the compiled network in training mode (batch statistics) and
outside it (running statistics) against a NumPy batch norm written from the textbook formulas, its derived gradients
against central differences of that NumPy loss (an independent reference), the running statistics' update against
PyTorch's convention, checkpoints that keep them, and bad input."""

import numpy as np
import pytest

import symnet as sn
from symnet.declare.layers import state_names, weight_names
from symnet.errors import ConfigurationError, ShapeError
from tests.references import central_differences

EPS, MOMENTUM, LAMBDA, LR = 1e-3, 0.2, 0.01, 0.05


def model():
    """Dense(5, 7, tanh) → BatchNorm(7) → Dense(7, 3), softmax cross-entropy, weight decay λ."""
    return sn.Sequential([sn.Dense(5, 7, "tanh"), sn.BatchNorm(7, momentum=MOMENTUM, eps=EPS), sn.Dense(7, 3)],
                         loss="softmax_cross_entropy", weight_decay=LAMBDA)


def numpy_loss(p, X, Y, training):
    """The model's mean loss plus ½λ‖W‖²; in training the batch's mean and biased variance normalise, else the
    running statistics."""
    a = np.tanh(X @ p["W1"].T + p["b1"])
    if training:
        mean, variance = a.mean(axis=0), a.var(axis=0)
    else:
        mean, variance = p["running_mean2"], p["running_var2"]
    a = (a - mean) / np.sqrt(variance + EPS) * p["scale2"] + p["shift2"]
    o = a @ p["W3"].T + p["b3"]
    shifted = o - o.max(axis=1, keepdims=True)
    loss = (np.log(np.exp(shifted).sum(axis=1)) - (Y * shifted).sum(axis=1)).mean()
    return loss + LAMBDA / 2 * ((p["W1"] ** 2).sum() + (p["W3"] ** 2).sum())


def data(seed, rows=6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 5)), np.eye(3)[rng.integers(0, 3, rows)]


@pytest.fixture(scope="module")
def net():
    return model().compile(optimizer=sn.optim.SGD(lr=LR))


def random_params(net, seed):
    params = net.init(seed=seed)
    rng = np.random.default_rng(seed + 100)
    for name, low, high in (("scale2", 0.5, 1.5), ("shift2", -0.2, 0.2), ("running_mean2", -0.3, 0.3),
                            ("running_var2", 0.5, 2.0)):
        params[name][...] = rng.uniform(low, high, 7)
    return params


def test_init_layout_and_declaration(net):
    params = net.init(seed=0)
    assert list(params)[-2:] == ["running_mean2", "running_var2"]          # state after every parameter
    assert np.array_equal(params["scale2"], np.ones(7)) and not params["shift2"].any()
    assert not params["running_mean2"].any() and np.array_equal(params["running_var2"], np.ones(7))
    assert net.model.parameter_count == 5 * 7 + 7 + 7 + 7 + 7 * 3 + 3 and net.size == net.model.parameter_count + 14
    assert weight_names(net.model.layers) == ["W1", "W3"] and state_names(net.model.layers) == [
        "running_mean2", "running_var2"]
    assert "state: 14 (running_mean2 (7,), running_var2 (7,))" in repr(net)
    assert repr(sn.BatchNorm(4)) == "BatchNorm(4)" and repr(sn.BatchNorm(4, 0.3, 0.1)) == \
        "BatchNorm(4, momentum=0.3, eps=0.1)"
    text = net.model.latex()
    assert r"\text{ outside training}" in text and r"\mathrm{running\_var}_{2}" in text
    assert text.count(r"\text{ after each training step}") == 2


@pytest.mark.parametrize("training", [True, False])
def test_loss_and_gradient_match_numpy(net, training):
    params = random_params(net, 3)
    X, Y = data(4)
    reference = {name: np.array(params[name]) for name in params}
    noise_seed = 0 if training else None
    loss, grads = net.loss_and_grad(params, X, Y, noise_seed=noise_seed)
    assert loss == pytest.approx(numpy_loss(reference, X, Y, training), rel=1e-12)
    assert net.loss(params, X, Y, noise_seed=noise_seed) == pytest.approx(loss, rel=1e-14)
    trainable = [name for name in reference if not name.startswith("running")]
    for name, numerical in central_differences(lambda: numpy_loss(reference, X, Y, training), reference,
                                               trainable).items():
        np.testing.assert_allclose(grads[name], numerical, rtol=1e-6, atol=1e-8, err_msg=name)
    assert not grads["running_mean2"].any() and not grads["running_var2"].any()   # state: not trained


def test_predict_uses_the_running_statistics(net):
    params = random_params(net, 5)
    X, _ = data(6, rows=4)
    p = {name: np.array(params[name]) for name in params}
    a = np.tanh(X @ p["W1"].T + p["b1"])
    a = (a - p["running_mean2"]) / np.sqrt(p["running_var2"] + EPS) * p["scale2"] + p["shift2"]
    np.testing.assert_allclose(net.predict(params, X), a @ p["W3"].T + p["b3"], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(net.predict(params, X[:1]), net.predict(params, X)[:1], rtol=1e-14)  # per sample


def test_step_updates_running_statistics_as_pytorch(net):
    params = random_params(net, 7)
    X, Y = data(8)
    before = {name: np.array(params[name]) for name in params}
    _, grads = net.loss_and_grad(params, X, Y, noise_seed=0)
    expected = {name: before[name] - LR * grads[name] for name in before if not name.startswith("running")}
    a = np.tanh(X @ before["W1"].T + before["b1"])
    expected["running_mean2"] = (1 - MOMENTUM) * before["running_mean2"] + MOMENTUM * a.mean(axis=0)
    expected["running_var2"] = (1 - MOMENTUM) * before["running_var2"] + MOMENTUM * a.var(axis=0, ddof=1)
    loss = net.step(params, X, Y)
    assert loss == pytest.approx(numpy_loss(before, X, Y, True), rel=1e-12)
    for name, value in expected.items():
        np.testing.assert_allclose(params[name], value, rtol=1e-12, atol=1e-15, err_msg=name)


def test_training_needs_two_samples_per_batch(net):
    params = net.init()
    X, Y = data(9, rows=7)
    with pytest.raises(ShapeError, match="at least 2 samples"):
        net.step(params, X[:1], Y[:1])
    with pytest.raises(ConfigurationError, match="leave a batch of 1; choose another batch_size"):
        sn.fit(net, params, X, Y, epochs=1, batch_size=3, verbose=False)
    loss, _ = net.loss_and_grad(params, X[:1], Y[:1], noise_seed=0)   # a gradient of one sample is defined
    assert np.isfinite(loss)


def test_resume_keeps_running_statistics_bit_identical(net, tmp_path):
    X, Y = data(10, rows=40)
    whole = net.init(seed=1)
    sn.fit(net, whole, X, Y, epochs=4, batch_size=8, seed=2, verbose=False)
    assert not np.array_equal(whole["running_var2"], np.ones(7))                 # the steps moved them
    net.reset_state()
    first = net.init(seed=1)
    path = tmp_path / "bn.npz"
    sn.fit(net, first, X, Y, epochs=2, batch_size=8, seed=2, verbose=False, checkpoint=path)
    net.reset_state()
    resumed = net.init(seed=9)                                                    # overwritten by the checkpoint
    sn.fit(net, resumed, X, Y, epochs=4, batch_size=8, seed=2, verbose=False, resume=path)
    assert np.array_equal(resumed.flat, whole.flat)


def test_float32_matches_float64(net):
    float64, float32 = net, model().compile(dtype="float32")
    params = random_params(float64, 11)
    X, Y = data(12)
    for noise_seed in (0, None):
        loss64, grads64 = float64.loss_and_grad(params, X, Y, noise_seed=noise_seed)
        loss32, grads32 = float32.loss_and_grad(params, X, Y, noise_seed=noise_seed)
        assert loss32 == pytest.approx(loss64, rel=1e-5)
        np.testing.assert_allclose(grads32.flat, grads64.flat, rtol=2e-3, atol=2e-5)


def test_bad_declarations():
    for momentum in (-0.1, 1.5, True, "0.1"):
        with pytest.raises(ConfigurationError, match="momentum must be a number in"):
            sn.BatchNorm(4, momentum=momentum)
    with pytest.raises(ConfigurationError, match="eps must be a positive number"):
        sn.BatchNorm(4, eps=0)
    with pytest.raises(ConfigurationError, match="takes 4 inputs but layer 1"):
        sn.Sequential([sn.Dense(3, 5), sn.BatchNorm(4)])
