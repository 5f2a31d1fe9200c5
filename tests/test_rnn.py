"""The recurrent layer declared by one step of index notation: the compiled network's loss, predictions and gradients
(back-propagation through time, derived) against an independent NumPy forward pass and its central differences;
the LaTeX of the derived recursion; bad configurations and inputs.

One compiled network per configuration (module-scoped): each costs seconds of Numba compile."""

import numpy as np
import pytest

import symnet as sn
from symnet import models
from symnet.errors import ConfigurationError, ShapeError
from symnet.layers import I_SIZE, T_SIZE, H, Layer, a, i, n, t
from tests.references import central_differences

ACTIVATIONS = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0), "sigmoid": lambda z: 1 / (1 + np.exp(-z))}


def numpy_rnn(X, W, U, b, activation, return_sequences):
    """h_t = f(W x_t + U h_{t−1} + b), h_{−1} = 0, step by step; every h_t (batch, T, hidden) or the last."""
    batch, length, _ = X.shape
    h, states = np.zeros((batch, len(b))), []
    for step in range(length):
        h = ACTIVATIONS[activation](X[:, step] @ W.T + h @ U.T + b)
        states.append(h)
    return np.stack(states, axis=1) if return_sequences else h


CONFIGURATIONS = {
    # (T, input, hidden), the layers, the loss and the outputs: the last state into a Dense read-out (the built-in
    # adding_rnn, compiled with its optimizer so that its training test reuses the module) ...
    "last": ((10, 2, 16), [("tanh", False)], "mse", 1),
    # ... and a relu RNN's whole sequence into a sigmoid RNN (stacked: δ goes through time twice), softmax CE
    "stacked": ((5, 2, 3), [("relu", True), ("sigmoid", False)], "softmax_cross_entropy", 2),
}


def model(name):
    (length, features, hidden), recurrent, loss, outputs = CONFIGURATIONS[name]
    layers, width = [], features
    for activation, sequences in recurrent:
        layers.append(sn.RNN(width, hidden, activation, return_sequences=sequences))
        width = hidden
    return sn.Sequential([*layers, sn.Dense(hidden, outputs)], loss=loss, input_shape=(length, features))


def numpy_loss(p, X, Y, name):
    """The configuration's network and loss, averaged over the batch, from the parameters ``p`` by name."""
    _, recurrent, loss, _ = CONFIGURATIONS[name]
    a = X
    for number, (activation, sequences) in enumerate(recurrent, start=1):
        a = numpy_rnn(a, p[f"W{number}"], p[f"U{number}"], p[f"b{number}"], activation, sequences)
    last = len(recurrent) + 1
    o = a @ p[f"W{last}"].T + p[f"b{last}"]
    if loss == "mse":
        return 0.5 * ((o - Y) ** 2).sum(axis=1).mean()
    shifted = o - o.max(axis=1, keepdims=True)
    return (np.log(np.exp(shifted).sum(axis=1)) - (Y * shifted).sum(axis=1)).mean()


_NETWORKS = {}


@pytest.fixture(scope="module", params=sorted(CONFIGURATIONS))
def compiled(request):
    if request.param not in _NETWORKS:
        _NETWORKS[request.param] = model(request.param).compile(optimizer=sn.optim.Adam(lr=0.01))
    return request.param, _NETWORKS[request.param]


def test_loss_and_gradient_through_time_match_numpy(compiled):
    name, net = compiled
    (length, features, _), _, _, outputs = CONFIGURATIONS[name]
    params = net.init(seed=3)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(5, length, features))
    Y = np.eye(outputs)[rng.integers(0, outputs, 5)] if name == "stacked" else rng.normal(size=(5, outputs))
    reference = {key: np.array(params[key]) for key in params}
    for key in reference:                     # move the biases off 0 so relu's kinks are not at the points
        if key.startswith("b"):
            reference[key][:] = rng.normal(size=reference[key].shape)
            params[key][:] = reference[key]
    loss, grads = net.loss_and_grad(params, X, Y)
    assert loss == pytest.approx(numpy_loss(reference, X, Y, name), rel=1e-12)
    for key, numerical in central_differences(lambda: numpy_loss(reference, X, Y, name), reference).items():
        np.testing.assert_allclose(grads[key], numerical, rtol=1e-6, atol=1e-8, err_msg=key)


def test_predictions_match_numpy_and_ignore_nothing_before_the_last_step(compiled):
    """The last state depends on the first step's input (the recursion carries it), and matches NumPy's."""
    name, net = compiled
    (length, features, _), recurrent, _, _ = CONFIGURATIONS[name]
    params = net.init(seed=1)
    X = np.random.default_rng(2).normal(size=(3, length, features))
    reference = {key: np.array(params[key]) for key in params}
    a = X
    for number, (activation, sequences) in enumerate(recurrent, start=1):
        a = numpy_rnn(a, reference[f"W{number}"], reference[f"U{number}"], reference[f"b{number}"], activation,
                      sequences)
    last = len(recurrent) + 1
    np.testing.assert_allclose(net.predict(params, X), a @ reference[f"W{last}"].T + reference[f"b{last}"],
                               rtol=1e-12, atol=1e-12)
    changed = X.copy()
    changed[:, 0, :] += 1.0
    assert not np.allclose(net.predict(params, X), net.predict(params, changed))


def test_latex_prints_the_derived_recursion():
    """δ at step q: δ from above at the last step plus U-weighted δ of step q + 1, times tanh' read from h."""
    text = model("last").latex()
    assert r"{h_{1}}_{n,t,i} = \tanh{\left({z_{1}}_{n,t,i} \right)}, \quad {h_{1}}_{n,-1,i} = 0" in text
    assert r"{a_{1}}_{n,i} = {h_{1}}_{n,9,i}" in text
    assert (r"{\delta_{1}}_{r,q,p} = \left({\bar{a}_{1}}_{r,p} \left[q = 9\right] + \left[0 \le q + 1 \le 9\right] "
            r"\sum_{i=0}^{15} {U_{1}}_{i,p} {\delta_{1}}_{r,q + 1,i}\right) \cdot \left(1 - {h_{1}}_{r,q,p}^{2}\right)"
            in text)
    assert r"{h_{1}}_{n,t - 1,q}" in text     # ∂L/∂U reads the state one step back


def test_parameters_and_representation():
    layer = sn.RNN(3, 4, return_sequences=True)
    network = sn.Sequential([layer, sn.Flatten(), sn.Dense(20, 1)], input_shape=(5, 3))
    assert [(str(base), shape) for base, shape in layer.parameters] == [("W", (4, 3)), ("U", (4, 4)), ("b", (4,))]
    assert sn.declare.layers.weight_names(network.layers) == ["W1", "U1", "W3"]
    assert layer.output_shape == (5, 4) and sn.RNN(3, 4).shaped((5, 3))
    assert repr(sn.RNN(2, 8, "relu")) == "RNN(2, 8, activation='relu')"
    assert repr(layer) == "RNN(3, 4, return_sequences=True)"
    last = sn.RNN(3, 4)
    last.shaped((5, 3))
    assert last.definition() != layer.definition()     # the two outputs never share a module or a checkpoint


def test_bad_configurations_say_what_is_wrong():
    with pytest.raises(ConfigurationError, match=r"takes sequences of shape \(time, 3\)"):
        sn.Sequential([sn.RNN(3, 4), sn.Dense(4, 1)], input_shape=(5, 2))
    with pytest.raises(ConfigurationError, match="input_shape"):
        sn.Sequential([sn.RNN(3, 4), sn.Dense(4, 1)])
    with pytest.raises(ConfigurationError, match="is recurrent; end with a read-out layer"):
        sn.Sequential([sn.RNN(3, 4)], input_shape=(5, 3))
    with pytest.raises(ConfigurationError, match="hidden_size must be a positive integer"):
        sn.RNN(3, 0)
    with pytest.raises(ConfigurationError, match="return_sequences must be True or False"):
        sn.RNN(3, 4, return_sequences="yes")
    with pytest.raises(ConfigurationError, match="not supported in a recurrent layer"):
        sn.RNN(3, 4, sn.activations.prelu(shared=True))
    with pytest.raises(ConfigurationError, match="recurrent layers .* not supported yet"):
        model("last").compile(optimizer=sn.optim.NewtonCG())
    with pytest.raises(ConfigurationError, match="recurrent layers .* not supported yet"):
        model("last").second_order_latex()


def test_a_map_that_reads_its_output_at_a_later_step_is_refused():
    """Only earlier steps can be computed in order: H[n, t + 1, k] is refused when the layer is declared."""
    class Anticausal(Layer):
        forward_map = a[n, t, i] + H[n, t + 1, i]
        output_indices = (n, t, i)
        extents = {t: T_SIZE, i: I_SIZE}
        input_extents = (T_SIZE, I_SIZE)

    with pytest.raises(ConfigurationError, match="reads its own output H at earlier steps"):
        Anticausal(4, 4)


def test_input_of_the_wrong_shape_is_refused(compiled):
    name, net = compiled
    (length, features, _), _, _, _ = CONFIGURATIONS[name]
    params = net.init()
    with pytest.raises(ShapeError, match="X must have shape"):
        net.predict(params, np.zeros((2, length + 1, features)))
    with pytest.raises(ShapeError, match="X must have shape"):
        net.predict(params, np.zeros((2, length * features + 1)))


def test_adding_rnn_learns_the_adding_problem():
    """Always answering the mean gives a test loss (½·MSE) of about 0.08; 10 epochs get well below it (the built-in's
    30 reach about 0.0014)."""
    recipe = models.builtin("adding_rnn")
    assert recipe.model.definition() == model("last").definition()   # the module the tests above compiled
    result = recipe.train(epochs=10)
    assert result["epochs"] == 10 and result["test_loss"] < 0.01
