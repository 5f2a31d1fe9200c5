"""sn.check_gradient against independent references: NumPy's closed-form and textbook gradients, a gradient with
one coordinate made wrong on purpose, and the caller's parameters compared bit for bit."""

import numpy as np
import pytest

import symnet as sn
import symnet.check
from symnet.generate import modules
from symnet.network import CompiledNetwork
from tests import zoo

data = np.random.default_rng(2024)
X = data.normal(size=(8, 3))
Y_CLASSES = np.eye(4)[data.integers(0, 4, 8)]
Y_VALUES = data.normal(size=(8, 2))


def compiled(test_cache, model, dtype="float64"):
    """``model`` compiled into the test cache (conftest's folders; its own fixture is per test)."""
    generated, records = test_cache
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(modules.RECORD_VARIABLE, str(records))
        return model.compile(dtype=dtype, directory=generated)


def tanh_softmax():
    return sn.Sequential([sn.Dense(3, 5, activation="tanh"), sn.Dense(5, 4)], loss="softmax_cross_entropy")


@pytest.fixture(scope="module")
def tanh_net(test_cache):
    return compiled(test_cache, tanh_softmax())


@pytest.fixture(scope="module")
def tanh_net32(test_cache):
    return compiled(test_cache, tanh_softmax(), "float32")


@pytest.fixture(scope="module")
def linear_net(test_cache):
    return compiled(test_cache, sn.Sequential([sn.Dense(3, 2)], loss="mse", weight_decay=0.1))


@pytest.fixture(scope="module")
def dropout_net(test_cache):
    """tests/zoo.py's dropout network, whose module test_layers compiles too (4 inputs, 3 classes)."""
    generated, records = test_cache
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(modules.RECORD_VARIABLE, str(records))
        return zoo.dropout_small(directory=generated)


def textbook_gradient(params, X, Y):
    """∂L/∂θ of tanh → softmax cross-entropy by the back-propagation equations in NumPy, flat in layout order."""
    W1, b1, W2, b2 = (np.asarray(params[name], dtype=np.float64) for name in ("W1", "b1", "W2", "b2"))
    a1 = np.tanh(X @ W1.T + b1)
    z2 = a1 @ W2.T + b2
    softmax = np.exp(z2 - z2.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    delta2 = (softmax - Y) / len(X)
    delta1 = (delta2 @ W2) * (1 - a1**2)
    return np.concatenate([(delta1.T @ X).ravel(), delta1.sum(0), (delta2.T @ a1).ravel(), delta2.sum(0)])


class OneWrongCoordinate(CompiledNetwork):
    """The same compiled network, but loss_and_grad returns a gradient with one coordinate off by ``error``."""

    def __init__(self, net, name, index, error):
        self.__dict__.update(net.__dict__)
        self.wrong = (name, index, error)

    def loss_and_grad(self, params, X, Y, noise_seed=None):
        loss, grads = super().loss_and_grad(params, X, Y, noise_seed)
        name, index, error = self.wrong
        grads[name][index] += error
        return loss, grads


# --- a correct gradient passes ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["central", "richardson"])
def test_correct_float64_network_passes_and_its_numerical_gradient_matches_numpy_backprop(tanh_net, method):
    params = tanh_net.init(seed=1)
    result = sn.check_gradient(tanh_net, params, X, Y_CLASSES, method=method)
    assert result.ok and bool(result) and result.method == method
    assert (result.rtol, result.atol) == (1e-6, 1e-9)
    assert result.checked == result.total == tanh_net.size == 44
    np.testing.assert_array_equal(result.indices, np.arange(44))
    np.testing.assert_allclose(result.numerical, textbook_gradient(params, X, Y_CLASSES), rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(result.analytic, tanh_net.loss_and_grad(params, X, Y_CLASSES)[1].flat)
    assert list(result.parameters) == ["W1", "b1", "W2", "b2"]
    assert result.max_ratio <= 1 and result.max_abs_error < 1e-9


def test_central_error_falls_as_h_squared_and_richardson_as_h_to_the_fourth(tanh_net):
    params = tanh_net.init(seed=1)
    reference = textbook_gradient(params, X, Y_CLASSES)

    def error(method, eps):
        numerical = sn.check_gradient(tanh_net, params, X, Y_CLASSES, method=method, eps=eps).numerical
        return np.abs(numerical - reference).max()

    assert 3.5 < error("central", 2e-2) / error("central", 1e-2) < 4.5          # O(h²): halving h → ¼
    assert 12 < error("richardson", 0.2) / error("richardson", 0.1) < 20       # O(h⁴): halving h → 1/16


def test_float32_network_passes_with_float32_defaults_and_still_catches_a_gross_error(tanh_net, tanh_net32):
    params = tanh_net.init(seed=1)                   # float64 values, packed into float32 by the check
    result = sn.check_gradient(tanh_net32, params, X, Y_CLASSES)
    assert result.ok and result.dtype == "float32" and (result.rtol, result.atol) == (1e-2, 1e-3)
    assert np.all(result.steps > 1e-3)               # ε32^(1/3) ≈ 4.9e-3, not float64's 6e-6
    np.testing.assert_allclose(result.numerical, textbook_gradient(params, X, Y_CLASSES), rtol=1e-2, atol=1e-4)
    wrong = sn.check_gradient(OneWrongCoordinate(tanh_net32, "b1", (2,), 0.02), params, X, Y_CLASSES)
    assert not wrong.ok and (wrong.worst_parameter, wrong.worst_index) == ("b1", (2,))
    with pytest.raises(sn.ConfigurationError, match="below the resolution of float32"):
        sn.check_gradient(tanh_net32, params, X, Y_CLASSES, eps=1e-12)


# --- a wrong gradient is caught -----------------------------------------------------------------------------


def test_one_wrong_coordinate_fails_and_the_report_names_it(tanh_net):
    params = tanh_net.init(seed=1)
    wrong_net = OneWrongCoordinate(tanh_net, "W2", (1, 3), 1e-6)
    result = sn.check_gradient(wrong_net, params, X, Y_CLASSES)
    assert not result.ok and not bool(result)
    assert (result.worst_parameter, result.worst_index) == ("W2", (1, 3))
    assert result.parameters["W2"].worst_index == (1, 3) and result.parameters["W2"].worst_ratio > 1
    assert all(result.parameters[name].worst_ratio <= 1 for name in ("W1", "b1", "b2"))
    assert abs(result.max_abs_error - 1e-6) < 1e-9
    report = str(result)
    assert "FAILED" in report and "W2[1, 3]" in report
    row = next(line for line in report.splitlines() if line.startswith("W2 "))
    assert "(4, 5)" in row and "(1, 3)" in row
    with pytest.raises(sn.DifferentiationError, match=r"W2\[1, 3\]"):
        sn.check_gradient(wrong_net, params, X, Y_CLASSES, raise_on_failure=True)
    assert sn.check_gradient(tanh_net, params, X, Y_CLASSES, raise_on_failure=True).ok


def test_a_nan_in_the_gradient_fails_rather_than_passing_by_comparison(tanh_net):
    result = sn.check_gradient(OneWrongCoordinate(tanh_net, "b2", (0,), np.nan), tanh_net.init(seed=1),
                               X, Y_CLASSES)
    assert not result.ok and (result.worst_parameter, result.worst_index) == ("b2", (0,))
    assert result.max_abs_error == np.inf


# --- a closed-form reference --------------------------------------------------------------------------------


def test_numerical_gradient_of_linear_least_squares_equals_the_closed_form(linear_net):
    params = linear_net.init(seed=4)
    params["b1"][...] = [0.3, -0.7]
    result = sn.check_gradient(linear_net, params, X, Y_VALUES)
    W, b = params["W1"], params["b1"]
    residual = X @ W.T + b - Y_VALUES                      # L = (1/N) Σ ½‖W x_n + b − y_n‖² + ½λ‖W‖²
    closed_form = np.concatenate([(residual.T @ X / len(X) + 0.1 * W).ravel(), residual.mean(axis=0)])
    assert result.ok
    np.testing.assert_array_equal(result.indices, np.arange(8))
    np.testing.assert_allclose(result.numerical, closed_form, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(result.analytic, closed_form, rtol=1e-12, atol=1e-14)


# --- the caller's parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["central", "richardson"])
def test_params_are_bit_identical_after_the_check(tanh_net, method):
    params = tanh_net.init(seed=1)
    params.flat[:] += data.normal(scale=1e-3, size=params.flat.size)   # values with all 53 bits in use
    flat, before = params.flat, params.flat.copy()
    sn.check_gradient(tanh_net, params, X, Y_CLASSES, method=method)
    assert params.flat is flat
    np.testing.assert_array_equal(params.flat.view(np.uint64), before.view(np.uint64))
    as_dict = {name: np.array(params[name]) for name in params}
    copies = {name: value.copy() for name, value in as_dict.items()}
    sn.check_gradient(tanh_net, as_dict, X, Y_CLASSES, method=method)
    for name, value in as_dict.items():
        np.testing.assert_array_equal(value.view(np.uint64), copies[name].view(np.uint64))


# --- which coordinates ----------------------------------------------------------------------------------------


def test_explicit_indices_are_checked_sorted_and_once(tanh_net):
    params = tanh_net.init(seed=1)
    result = sn.check_gradient(tanh_net, params, X, Y_CLASSES, indices=[17, 0, 17, 43])
    np.testing.assert_array_equal(result.indices, [0, 17, 43])
    assert result.checked == 3 and result.total == 44 and result.ok
    # layout: W1 (5, 3) at 0–14, b1 at 15–19, W2 (4, 5) at 20–39, b2 at 40–43
    assert {name: row.worst_index for name, row in result.parameters.items()} == \
        {"W1": (0, 0), "b1": (2,), "b2": (3,)}
    np.testing.assert_allclose(result.numerical, textbook_gradient(params, X, Y_CLASSES)[[0, 17, 43]],
                               rtol=1e-7, atol=1e-9)


def test_a_sample_size_gives_a_seeded_sample_that_touches_every_parameter(tanh_net):
    params = tanh_net.init(seed=1)
    first = sn.check_gradient(tanh_net, params, X, Y_CLASSES, indices=10)
    again = sn.check_gradient(tanh_net, params, X, Y_CLASSES, indices=10)
    assert first.checked == 10 and len(np.unique(first.indices)) == 10
    np.testing.assert_array_equal(first.indices, again.indices)
    assert list(first.parameters) == ["W1", "b1", "W2", "b2"]
    assert any("10 of 44" in note for note in first.notes) and "10 of 44" in str(first)


def test_networks_above_the_limit_are_sampled_by_default(tanh_net, monkeypatch):
    monkeypatch.setattr(symnet.check, "SAMPLE_LIMIT", 20)
    result = sn.check_gradient(tanh_net, tanh_net.init(seed=1), X, Y_CLASSES)
    assert result.checked == 20 and result.total == 44
    assert set(result.parameters) == {"W1", "b1", "W2", "b2"}
    assert "seeded sample (seed 0) of 20 of 44 coordinates" in str(result)


# --- dropout ------------------------------------------------------------------------------------------------


def test_dropout_network_is_checked_with_one_fixed_mask(dropout_net):
    params = dropout_net.init(seed=1)
    rng = np.random.default_rng(4)
    X, Y_CLASSES = rng.normal(size=(8, 4)), np.eye(3)[rng.integers(0, 3, 8)]     # the shapes of this network
    result = sn.check_gradient(dropout_net, params, X, Y_CLASSES)
    assert result.ok and result.noise_seed == 0
    assert any("noise_seed = 0" in note for note in result.notes) and "noise_seed = 0" in str(result)
    with_mask = dropout_net.loss_and_grad(params, X, Y_CLASSES, noise_seed=0)[1].flat
    without_mask = dropout_net.loss_and_grad(params, X, Y_CLASSES)[1].flat
    np.testing.assert_array_equal(result.analytic, with_mask)
    assert not np.allclose(with_mask, without_mask)             # the mask is really in use
    chosen = sn.check_gradient(dropout_net, params, X, Y_CLASSES, noise_seed=7)
    assert chosen.ok and chosen.noise_seed == 7 and not chosen.notes
    np.testing.assert_array_equal(chosen.analytic, dropout_net.loss_and_grad(params, X, Y_CLASSES, 7)[1].flat)


def test_noise_seed_on_a_network_without_dropout_is_noted_and_ignored(tanh_net):
    result = sn.check_gradient(tanh_net, tanh_net.init(seed=1), X, Y_CLASSES, noise_seed=3)
    assert result.ok and result.noise_seed is None and "ignored" in result.notes[0]


# --- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keywords, error, message", [
    ({"method": "complex"}, sn.ConfigurationError, "real numbers only"),
    ({"method": "forward"}, sn.ConfigurationError, "known: central, richardson"),
    ({"eps": 0}, sn.ConfigurationError, "eps must be > 0"),
    ({"eps": -1e-3}, sn.ConfigurationError, "eps must be a finite number"),
    ({"eps": float("nan")}, sn.ConfigurationError, "eps must be a finite number"),
    ({"rtol": -1}, sn.ConfigurationError, "rtol"),
    ({"atol": "small"}, sn.ConfigurationError, "atol"),
    ({"noise_seed": -1}, sn.ConfigurationError, "noise_seed"),
    ({"indices": [44]}, sn.ConfigurationError, r"\[0, 44\)"),
    ({"indices": [-1]}, sn.ConfigurationError, r"\[0, 44\)"),
    ({"indices": []}, sn.ConfigurationError, "non-empty"),
    ({"indices": [0.5]}, sn.ConfigurationError, "integers"),
    ({"indices": "W1"}, sn.ConfigurationError, "integers"),
    ({"indices": 0}, sn.ConfigurationError, "≥ 1"),
    ({"indices": True}, sn.ConfigurationError, "integers"),
    ({"raise_on_failure": "yes"}, sn.ConfigurationError, "True or False"),
])
def test_bad_settings_are_refused(tanh_net, keywords, error, message):
    with pytest.raises(error, match=message):
        sn.check_gradient(tanh_net, tanh_net.init(seed=1), X, Y_CLASSES, **keywords)


def test_bad_networks_parameters_and_data_are_refused(tanh_net):
    params = tanh_net.init(seed=1)
    with pytest.raises(sn.ConfigurationError, match="compiled network"):
        sn.check_gradient(tanh_softmax(), params, X, Y_CLASSES)
    broken = tanh_net.init(seed=1)
    broken["W2"][1, 2] = np.nan
    with pytest.raises(sn.NonFiniteError, match=r"W2\[1, 2\]"):
        sn.check_gradient(tanh_net, broken, X, Y_CLASSES)
    with pytest.raises(sn.ShapeError, match="lack b2"):
        sn.check_gradient(tanh_net, {name: params[name] for name in ("W1", "b1", "W2")}, X, Y_CLASSES)
    with pytest.raises(sn.ShapeError, match=r"X must have shape \(batch, 3\)"):
        sn.check_gradient(tanh_net, params, X[:, :2], Y_CLASSES)
    with pytest.raises(sn.ShapeError, match="Y has shape"):
        sn.check_gradient(tanh_net, params, X, Y_CLASSES[:, :3])
    with pytest.raises(sn.NonFiniteError, match="X contains NaN"):
        sn.check_gradient(tanh_net, params, np.where(X > 1, np.inf, X), Y_CLASSES)


def test_a_network_without_parameters_is_refused_clearly():
    net = sn.Sequential([sn.Softmax(size=3)], loss="cross_entropy").compile()
    X, Y = np.full((2, 3), 0.5), np.full((2, 3), 1 / 3)
    with pytest.raises(sn.ConfigurationError, match="no parameters"):
        sn.check_gradient(net, net.init(), X, Y)
