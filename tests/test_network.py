"""Compiled networks against independent references: the unrolled SymPy gradient,
central differences, and a NumPy implementation of the textbook back-propagation."""

import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

import symnet as sn
from tests.references import generated_texts
from symnet.declare import activations

rng = np.random.default_rng(12345)


def central_differences(net, params, X, Y, eps=1e-6):
    flat = params.flat
    result = np.zeros_like(flat)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        plus = net.loss(params, X, Y)
        flat[k] = old - eps
        minus = net.loss(params, X, Y)
        flat[k] = old
        result[k] = (plus - minus) / (2 * eps)
    return result


def classification_data(batch, n_in, n_out, seed=0):
    generator = np.random.default_rng(seed)
    return generator.normal(size=(batch, n_in)), np.eye(n_out)[generator.integers(0, n_out, batch)]


UNROLLED_CASES = [
    (["tanh"], "mse", 0.0),
    (["sigmoid", "sigmoid"], "mse", 0.0),
    (["relu", "identity"], "softmax_cross_entropy", 0.0),
    (["softplus", "identity"], "binary_cross_entropy", 0.0),
    (["gelu", "sigmoid"], "cross_entropy", 0.0),
    (["elu", "tanh", "identity"], "softmax_cross_entropy", 0.05),
    (["leaky_relu", "swish", "identity"], "mse", 0.1),
    (["hard_tanh", "identity"], "mse", 0.0),
    (["prelu", "identity"], "softmax_cross_entropy", 0.01),                            # trainable γ per neuron
    ([activations.swish(learn=True), activations.prelu(shared=True), "sigmoid"], "mse", 0.0),  # β per neuron, shared γ
]


def case_id(acts, loss):
    return "-".join(a if isinstance(a, str) else a.name for a in acts) + "-" + loss


@pytest.mark.parametrize("acts, loss, decay", UNROLLED_CASES, ids=[case_id(a, l) for a, l, _ in UNROLLED_CASES])
def test_layered_gradient_equals_unrolled_symbolic_gradient(acts, loss, decay):
    sizes = [2] + [2] * len(acts)     # small: the unrolled reference grows fast with size
    if loss == "binary_cross_entropy":
        sizes[-1] = 1
    layers = [sn.Dense(a, b, activation=f) for a, b, f in zip(sizes, sizes[1:], acts)]
    model = sn.Sequential(layers, loss=loss, weight_decay=decay)
    net = model.compile()
    params = net.init(seed=3)
    params.flat[:] += rng.normal(scale=0.1, size=params.flat.size)   # biases away from 0, no kinks
    X = rng.normal(size=(3, 2))
    Y = rng.uniform(0.1, 0.9, size=(3, sizes[-1])) if loss in ("mse", "binary_cross_entropy") \
        else np.eye(sizes[-1])[[0, 1, 1]]
    expr, symbols = sn.unrolled_loss(model, X, Y)
    # SymPy's own diff of the whole unrolled loss, evaluated in mpmath at 30 digits
    evaluate = sp.lambdify(symbols, [expr] + [sp.diff(expr, s) for s in symbols], modules="mpmath")
    with mpmath.workdps(30):
        reference_loss, *reference = [float(v) for v in evaluate(*[mpmath.mpf(float(v)) for v in params.flat])]
    loss_value, grads = net.loss_and_grad(params, X, Y)
    assert abs(loss_value - reference_loss) <= 1e-12 * max(1.0, abs(reference_loss))
    np.testing.assert_allclose(grads.flat, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(set(activations.CATALOGUE) - {"step"}))
def test_every_catalogue_activation_trains_with_correct_gradients(name):
    model = sn.Sequential([sn.Dense(4, 6, activation=name), sn.Dense(6, 3)], loss="softmax_cross_entropy")
    net = model.compile(optimizer=sn.optim.SGD(lr=0.05))
    params = net.init(seed=1)
    params["b1"][...] = rng.normal(scale=0.3, size=6)
    X, Y = classification_data(16, 4, 3, seed=2)
    _, grads = net.loss_and_grad(params, X, Y)
    np.testing.assert_allclose(grads.flat, central_differences(net, params, X, Y), rtol=1e-5, atol=1e-8)
    losses = [net.step(params, X, Y) for _ in range(30)]
    assert losses[-1] < losses[0]


def numpy_backprop(params, X, Y, weight_decay):
    """The four equations of back-propagation, written directly in NumPy (tanh hidden, softmax CE)."""
    W1, b1, W2, b2 = (np.asarray(params[k]) for k in ("W1", "b1", "W2", "b2"))
    z1 = X @ W1.T + b1
    a1 = np.tanh(z1)
    z2 = a1 @ W2.T + b2
    shifted = z2 - z2.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    N = len(X)
    loss = -(Y * log_softmax).sum() / N + weight_decay / 2 * ((W1**2).sum() + (W2**2).sum())
    delta2 = (np.exp(log_softmax) - Y) / N                  # δ^L = ∇_a C ⊙ σ'(z^L)
    delta1 = (delta2 @ W2) * (1 - a1**2)                     # δ^l = (W^{l+1})^T δ^{l+1} ⊙ σ'(z^l)
    return loss, {"W2": delta2.T @ a1 + weight_decay * W2, "b2": delta2.sum(0),
                  "W1": delta1.T @ X + weight_decay * W1, "b1": delta1.sum(0)}


def test_digits_sized_network_matches_numpy_textbook_backprop():
    model = sn.Sequential([sn.Dense(64, 32, activation="tanh"), sn.Dense(32, 10)],
                          loss="softmax_cross_entropy", weight_decay=1e-3)
    net = model.compile()
    params = net.init(seed=0)
    X, Y = classification_data(32, 64, 10)
    loss, grads = net.loss_and_grad(params, X, Y)
    reference_loss, reference = numpy_backprop(params, X, Y, 1e-3)
    assert abs(loss - reference_loss) < 1e-12 * reference_loss
    for name, value in reference.items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-11, atol=1e-15)


def test_sgd_step_is_theta_minus_lr_times_gradient():
    model = sn.Sequential([sn.Dense(5, 4, activation="sigmoid"), sn.Dense(4, 2)], loss="mse")
    net = model.compile(optimizer=sn.optim.SGD(lr=0.3))
    params = net.init(seed=4)
    X, Y = rng.normal(size=(8, 5)), rng.normal(size=(8, 2))
    before = params.flat.copy()
    expected_loss, grads = net.loss_and_grad(params, X, Y)
    assert net.step(params, X, Y) == expected_loss
    np.testing.assert_allclose(params.flat, before - 0.3 * grads.flat, rtol=0, atol=1e-15)


def test_plain_dict_parameters_are_accepted_and_updated_in_place():
    net = sn.Sequential([sn.Dense(2, 3, activation="tanh"), sn.Dense(3, 1)], loss="mse").compile(
        optimizer=sn.optim.SGD(lr=0.1))
    params = {k: v.copy() for k, v in net.init(seed=0).items()}
    W1 = params["W1"].copy()
    net.step(params, np.ones((2, 2)), np.zeros((2, 1)))
    assert not np.array_equal(params["W1"], W1)


def test_softmax_cross_entropy_is_stable_at_extreme_logits():
    net = sn.Sequential([sn.Dense(3, 3)], loss="softmax_cross_entropy").compile()
    params = net.init()
    params["W1"][...] = np.eye(3)
    params["b1"][...] = 0
    X, Y = np.array([[1000.0, -1000.0, 0.0]]), np.array([[0.0, 1.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grads = net.loss_and_grad(params, X, Y)
    assert loss == 2000.0
    # ∂L/∂z = softmax(z) − y = (1, −1, 0) up to e^-1000; ∂L/∂b = that
    np.testing.assert_array_equal(grads["b1"], [1.0, -1.0, 0.0])


@pytest.mark.parametrize("activation", ["sigmoid", "softplus", "tanh", "swish", "gelu", "elu"])
def test_activations_have_finite_values_and_gradients_at_plus_minus_1000(activation):
    net = sn.Sequential([sn.Dense(1, 2, activation=activation), sn.Dense(2, 1)], loss="mse").compile()
    params = net.init()
    params["W1"][...] = [[1.0], [-1.0]]
    params["b1"][...] = 0
    X = np.array([[1000.0], [-1000.0]])
    loss, grads = net.loss_and_grad(params, X, np.zeros((2, 1)))
    assert np.isfinite(loss) and np.isfinite(grads.flat).all()


def test_binary_cross_entropy_logit_form_is_stable_and_exact():
    net = sn.Sequential([sn.Dense(1, 1)], loss="binary_cross_entropy").compile()
    params = net.init()
    params["W1"][...] = 1.0
    params["b1"][...] = 0.0
    loss, grads = net.loss_and_grad(params, np.array([[1000.0], [-1000.0]]), np.array([[0.0], [1.0]]))
    assert loss == 1000.0                       # (1000 + 1000) / 2
    assert grads["b1"][0] == 0.5 * ((1 - 0) + (0 - 1))


def test_bad_input_names_layer_and_shapes():
    net = sn.Sequential([sn.Dense(64, 32), sn.Dense(32, 10)], loss="mse").compile()
    params = net.init()
    with pytest.raises(sn.ShapeError, match=r"layer 1 Dense\(64, 32.*\(batch, 64\)"):
        net.loss(params, np.zeros((5, 63)), np.zeros((5, 10)))
    with pytest.raises(sn.ShapeError, match=r"Y has shape \(5, 9\); expected \(5, 10\)"):
        net.loss(params, np.zeros((5, 64)), np.zeros((5, 9)))
    X = np.zeros((5, 64))
    X[3, 2] = np.nan
    with pytest.raises(sn.NonFiniteError, match="row 3"):
        net.loss(params, X, np.zeros((5, 10)))
    with pytest.raises(sn.ShapeError, match="W1 has shape"):
        net.loss({**params, "W1": np.zeros((3, 3))}, np.zeros((5, 64)), np.zeros((5, 10)))
    with pytest.raises(sn.ConfigurationError, match="compiled without an optimizer"):
        net.step(params, np.zeros((5, 64)), np.zeros((5, 10)))


def test_bad_declarations_are_reported():
    with pytest.raises(sn.ConfigurationError, match="layer 2 .* takes 5 inputs but layer 1 .* gives 4"):
        sn.Sequential([sn.Dense(3, 4), sn.Dense(5, 1)])
    with pytest.raises(sn.ConfigurationError, match="unknown activation 'relux'"):
        sn.Dense(3, 4, activation="relux")
    with pytest.raises(sn.ConfigurationError, match="unknown loss"):
        sn.Sequential([sn.Dense(3, 4)], loss="hinge")
    with pytest.raises(sn.ConfigurationError, match="positive integer"):
        sn.Dense(0, 4)
    with pytest.raises(sn.ConfigurationError, match="lr must be"):
        sn.optim.SGD(lr=-1)


def test_step_activation_cannot_be_trained_and_says_why():
    model = sn.Sequential([sn.Dense(2, 1, activation="step")], loss="mse")
    with pytest.raises(sn.DifferentiationError, match="activation 'step' has derivative 0"):
        model.compile(optimizer=sn.optim.SGD(lr=0.1))
    # the perceptron of the notes still evaluates: NAND with weights −2, −2 and bias 3
    net = model.compile()
    params = net.init()
    params["W1"][...] = [[-2.0, -2.0]]
    params["b1"][...] = 3.0
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    assert net.predict(params, X).ravel().tolist() == [1.0, 1.0, 1.0, 0.0]


def test_user_defined_activation_trains_end_to_end():
    t = activations.t
    mish = sn.Activation("mish", t * sp.tanh(sp.log(1 + sp.exp(t))))
    net = sn.Sequential([sn.Dense(2, 8, activation=mish), sn.Dense(8, 1)], loss="mse").compile(
        optimizer=sn.optim.SGD(lr=0.1))
    params = net.init(seed=0)
    X = rng.uniform(-1, 1, size=(64, 2))
    Y = (X[:, :1] * X[:, 1:])
    _, grads = net.loss_and_grad(params, X, Y)
    np.testing.assert_allclose(grads.flat, central_differences(net, params, X, Y), rtol=1e-5, atol=1e-9)
    first = net.loss(params, X, Y)
    for _ in range(300):
        net.step(params, X, Y)
    assert net.loss(params, X, Y) < 0.5 * first


def test_network_module_is_deterministic_across_processes(tmp_path):
    source = ("import symnet as sn; m = sn.Sequential([sn.Dense(3, 4, activation='gelu'), sn.Dense(4, 2)], "
              "loss='softmax_cross_entropy', weight_decay=0.1); print(m.compile(optimizer=sn.optim.SGD(0.1)).path)")
    texts = generated_texts(source, tmp_path)
    assert texts[0] == texts[1]
    assert "# grad_W2[p, q] = Sum(a[n, q]*delta[n, p], (n, 0, N - 1))" in texts[0]


def test_latex_shows_backprop_equations_and_derived_derivatives():
    text = sn.Sequential([sn.Dense(4, 3, activation="sigmoid"), sn.Dense(3, 2)], loss="softmax_cross_entropy").latex()
    assert r"\delta^{(l)} = \left(W^{(l+1)}\right)^{T} \delta^{(l+1)} \odot f_l'" in text
    assert "f_1' = - a^{2} + a" in text
    assert r"\frac{\partial \ell}{\partial o_j}" in text


def test_initialisation_follows_the_documented_formulas():
    net = sn.Sequential([sn.Dense(300, 200, activation="tanh"), sn.Dense(200, 100, activation="relu")]).compile()
    params = net.init(seed=0)
    limit = np.sqrt(6 / 500)
    assert np.abs(params["W1"]).max() <= limit and np.abs(params["W1"]).max() > 0.99 * limit
    assert abs(params["W2"].std() - np.sqrt(2 / 200)) < 0.01 * np.sqrt(2 / 200) * 5
    assert np.array_equal(net.init(seed=0).flat, params.flat)
    xavier = net.init(seed=1, scheme="xavier_normal")
    assert abs(xavier["W1"].std() - np.sqrt(2 / 500)) < 0.05 * np.sqrt(2 / 500)
