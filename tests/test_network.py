"""Compiled networks against independent references: the unrolled SymPy gradient,
central differences, and a NumPy implementation of the textbook back-propagation."""

import re
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

import symnet as sn
from tests import zoo
from tests.references import generated_texts
from symnet.declare import activations
from symnet.declare import layers as L
from symnet.network import Parameters


def central_differences(net, params, X, Y, eps=1e-6, loss=None):
    """(L(θ + εe_k) − L(θ − εe_k)) / 2ε for every parameter k.  L is the loss ``net.loss_and_grad`` returns
    unless ``loss(params, X, Y)`` is given: its gradient is never used, and the module's ``loss_value`` need not be
    compiled (it is checked against NumPy in the digits test)."""
    loss = loss or (lambda params, X, Y: net.loss_and_grad(params, X, Y)[0])
    flat = params.flat
    result = np.zeros_like(flat)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        plus = loss(params, X, Y)
        flat[k] = old - eps
        minus = loss(params, X, Y)
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
    rng = np.random.default_rng(12345)
    params.flat[:] += rng.normal(scale=0.1, size=params.flat.size)   # biases away from 0, no kinks
    X = rng.normal(size=(2, 2))     # two samples: the mean over the batch, at half the unrolled size of three
    Y = rng.uniform(0.1, 0.9, size=(2, sizes[-1])) if loss in ("mse", "binary_cross_entropy") \
        else np.eye(sizes[-1])[[0, 1]]
    expr, symbols = sn.unrolled_loss(model, X, Y)
    # SymPy's own diff of the whole unrolled loss, evaluated in mpmath at 30 digits
    evaluate = sp.lambdify(symbols, [expr] + [sp.diff(expr, s) for s in symbols], modules="mpmath")
    with mpmath.workdps(30):
        reference_loss, *reference = [float(v) for v in evaluate(*[mpmath.mpf(float(v)) for v in params.flat])]
    loss_value, grads = net.loss_and_grad(params, X, Y)
    assert abs(loss_value - reference_loss) <= 1e-12 * max(1.0, abs(reference_loss))
    np.testing.assert_allclose(grads.flat, reference, rtol=1e-10, atol=1e-12)


def catalogue_chains(count=4):
    """The catalogue's trainable activations (each once: an alias names the same Activation), dealt into ``count``
    chains: one network per chain instead of one per activation, so each activation costs no Numba compile of its
    own.  Four chains of three compile in about the time of two of six, in smaller pieces for the test workers to
    share."""
    distinct = {}
    for name in sorted(set(activations.CATALOGUE) - {"step"}):
        distinct.setdefault(id(activations.CATALOGUE[name]), name)
    names = sorted(distinct.values())
    return [tuple(names[start::count]) for start in range(count)]


def catalogue_network(chain):
    """4 → 6 → … → 6 → 3, one Dense layer per activation of ``chain``, a linear output, softmax cross-entropy
    (the checks below only call ``loss_and_grad``, so it is the one function compiled)."""
    sizes = [4] + [6] * len(chain)
    layers = [sn.Dense(a, b, activation=name) for a, b, name in zip(sizes, sizes[1:], chain)] + [sn.Dense(6, 3)]
    return sn.Sequential(layers, loss="softmax_cross_entropy").compile(optimizer=sn.optim.SGD(lr=0.05))


def check_gradients_and_training(net, chain):
    """The chain of :func:`catalogue_network`: the derived gradient of every layer equals central differences of
    the whole network's loss, gradient flows through every activation, and gradient descent on it lowers the
    loss."""
    layers = net.model.layers
    params = net.init(seed=1)
    rng = np.random.default_rng(12345)
    for number in range(1, len(chain) + 1):
        params[f"b{number}"][...] = rng.normal(scale=0.3, size=6)      # away from the kinks at 0
    X, Y = classification_data(16, 4, 3, seed=2)
    first, grads = net.loss_and_grad(params, X, Y)
    numeric = Parameters(central_differences(net, params, X, Y), net.layout)
    # from the output down: a wrong f' of layer l spoils the gradients of layers l, l − 1, …, 1, so the first
    # layer that fails is the one whose activation is wrong
    for number in range(len(layers), 0, -1):
        name = chain[number - 1] if number <= len(chain) else "identity (output)"
        for key in (key for key, *_ in net.layout if re.fullmatch(rf"[A-Za-z_]+{number}", key)):
            np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-5, atol=1e-8,
                                       err_msg=f"{key}: layer {number}, activation {name}")
            assert np.abs(grads[key]).max() > 1e-4, f"no gradient reaches {key} through activation {name}"
    for _ in range(30):                                             # θ ← θ − η ∇L with the derived gradient
        _, grads = net.loss_and_grad(params, X, Y)
        params.flat[:] -= 0.05 * grads.flat
    assert net.loss_and_grad(params, X, Y)[0] < 0.95 * first, chain


# f(1000) and f(−1000) by the textbook definitions (e^-1000 underflows to 0; PReLU's γ starts at 0.25)
AT_PLUS_MINUS_1000 = {"elu": (1000.0, -1.0), "gelu": (1000.0, 0.0), "hard_logistic": (1.0, 0.0),
                      "hard_tanh": (1.0, -1.0), "identity": (1000.0, -1000.0), "leaky_relu": (1000.0, -10.0),
                      "logistic": (1.0, 0.0), "prelu": (1000.0, -250.0), "relu": (1000.0, 0.0),
                      "softplus": (1000.0, 0.0), "swish": (1000.0, 0.0), "tanh": (1.0, -1.0)}


def check_finite_at_plus_minus_1000(net, chain):
    """The chain of :func:`catalogue_network` with weights that put every layer's inputs at exactly ±1000: layer l
    gets z = ±(1000, −1000, 1000, …) and gives f(±1000); W_{l+1} = s·(±1)(1, −1, 0, …) with
    s = 1000 / (f(1000) − f(−1000)) makes that ±1000 again.  A NaN or infinity from any f or f' reaches the loss
    or the gradient, and the loss is exact only if every f(±1000) is."""
    params = net.init(seed=0)
    signs = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    params["W1"][...] = np.outer(signs, [1.0, 0.0, 0.0, 0.0])
    for number, name in enumerate(chain, start=1):
        assert name in AT_PLUS_MINUS_1000, f"add {name}'s textbook f(1000), f(-1000) to AT_PLUS_MINUS_1000"
        params[f"b{number}"][...] = 0
        high, low = AT_PLUS_MINUS_1000[name]
        params[f"W{number + 1}"][...] = np.outer(signs, [1.0, -1.0, 0, 0, 0, 0])[:len(params[f"b{number + 1}"])] * (
            1000.0 / (high - low) if number < len(chain) else 1.0)
    params[f"b{len(chain) + 1}"][...] = 0
    X = np.array([[1000.0, 0, 0, 0], [-1000.0, 0, 0, 0]])
    Y = np.array([[1.0, 0, 0], [1.0, 0, 0]])
    loss, grads = net.loss_and_grad(params, X, Y)
    for key, *_ in net.layout:
        assert np.isfinite(grads[key]).all(), f"{key}: {grads[key]}"
    high, low = AT_PLUS_MINUS_1000[chain[-1]]
    logits = (high - low) * np.outer([1.0, -1.0], signs[:3])             # the output layer's (p − m)·(±signs)
    shifted = logits - logits.max(axis=1, keepdims=True)
    expected = -np.mean(shifted[:, 0] - np.log(np.exp(shifted).sum(axis=1)))
    assert loss == pytest.approx(expected, rel=1e-12), chain


@pytest.mark.parametrize("chain", catalogue_chains(), ids="-".join)
def test_every_catalogue_activation_has_correct_gradients_and_is_finite_at_plus_minus_1000(chain):
    """Both checks below on one network per chain: it is compiled once for the two."""
    net = catalogue_network(chain)
    check_gradients_and_training(net, chain)
    check_finite_at_plus_minus_1000(net, chain)


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
    assert abs(net.loss(params, X, Y) - reference_loss) < 1e-12 * reference_loss     # loss_value, the forward alone
    for name, value in reference.items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-11, atol=1e-15)


def sgd_network():
    """tests/zoo.py's digits network with SGD: these two tests and test_train's share its module."""
    return zoo.digits_small(sn.optim.SGD(lr=0.3))


def test_sgd_step_is_theta_minus_lr_times_gradient():
    net = sgd_network()
    params = net.init(seed=4)
    X, Y = classification_data(8, 64, 10, seed=4)
    before = params.flat.copy()
    expected_loss, grads = net.loss_and_grad(params, X, Y)
    assert net.step(params, X, Y) == expected_loss
    np.testing.assert_allclose(params.flat, before - 0.3 * grads.flat, rtol=0, atol=1e-15)


def test_plain_dict_parameters_are_accepted_and_updated_in_place():
    net = sgd_network()
    X, Y = classification_data(8, 64, 10, seed=5)
    packed = net.init(seed=0)
    params = {k: v.copy() for k, v in packed.items()}
    arrays = {k: params[k] for k in params}
    loss = net.step(params, X, Y)
    net.reset_state()
    assert loss == net.step(packed, X, Y)                  # the same step on the packed parameters
    for name, value in params.items():
        assert value is arrays[name], f"{name} was replaced, not updated in place"
        np.testing.assert_array_equal(value, packed[name], err_msg=name)
    assert not np.array_equal(params["W1"], net.init(seed=0)["W1"])


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
    X = np.random.default_rng(6).uniform(-1, 1, size=(64, 2))
    Y = (X[:, :1] * X[:, 1:])
    first, grads = net.loss_and_grad(params, X, Y)
    np.testing.assert_allclose(grads.flat, central_differences(net, params, X, Y), rtol=1e-5, atol=1e-9)
    for _ in range(300):
        net.step(params, X, Y)
    assert net.loss_and_grad(params, X, Y)[0] < 0.5 * first


def test_network_module_is_deterministic_across_processes(tmp_path):
    source = ("import symnet as sn; m = sn.Sequential([sn.Dense(3, 4, activation='gelu'), sn.Dense(4, 2)], "
              "loss='softmax_cross_entropy', weight_decay=0.1); print(m.compile(optimizer=sn.optim.SGD(0.1)).path)")
    texts = generated_texts(source, tmp_path)
    assert texts[0] == texts[1]
    assert "# grad_W2[p, q] = Sum(a[n, q]*delta[n, p], (n, 0, N - 1))" in texts[0]


def test_latex_prints_each_layers_map_and_derived_vjps():
    lines = sn.Sequential([sn.Dense(4, 3, activation="sigmoid"), sn.Dense(3, 2)], loss="softmax_cross_entropy",
                          weight_decay=0.1).latex().splitlines()
    # written by hand: Dense's map, σ, softmax cross-entropy's gradient, the δ recursion with σ' = a(1 − a), and
    # ∂L/∂W = Σ_n δ a + λW, in the generated code's names
    expected = [r"{z_{1}}_{n,i} = {b_{1}}_{i} + \sum_{j=0}^{3} {W_{1}}_{i,j} {X}_{n,j}",
                r"{a_{1}}_{n,i} = \frac{1}{1 + e^{- {z_{1}}_{n,i}}}",
                r"{\delta_{2}}_{n,i} = \frac{1}{N} \left(\frac{e^{- m + {a_{2}}_{n,i}}}{\sum_{k=0}^{1} e^{- m + "
                r"{a_{2}}_{n,k}}} - {Y}_{n,i}\right), \quad m = \max_{k} {a_{2}}_{n,k}",
                r"{\delta_{1}}_{r,q} = \left(\sum_{i=0}^{1} {W_{2}}_{i,q} {\delta_{2}}_{r,i}\right) \cdot "
                r"\left(- {a_{1}}_{r,q}^{2} + {a_{1}}_{r,q}\right)",
                r"\frac{\partial L}{\partial {W_{1}}_{p,q}} = \sum_{n=0}^{N - 1} {X}_{n,q} {\delta_{1}}_{n,p} + "
                r"\lambda {W_{1}}_{p,q}",
                r"\frac{\partial L}{\partial {b_{1}}_{p}} = \sum_{n=0}^{N - 1} {\delta_{1}}_{n,p}"]
    for line in expected:
        assert line in lines, line


def test_latex_of_maxout_and_a_residual_layer_routes_and_keeps_the_identity_term():
    W, b = sp.IndexedBase("W", real=True), sp.IndexedBase("b", real=True)

    class Residual(sn.Layer):
        forward_map = sp.Sum(W[L.i, L.j] * L.a[L.n, L.j], (L.j, 0, L.J_SIZE - 1)) + b[L.i] + L.a[L.n, L.i]
        parameter_shapes = {W: ("out", "in"), b: ("out",)}

    lines = sn.Sequential([sn.Maxout(3, 3, pieces=2), Residual(3, 3, "tanh"), sn.Dense(3, 1)]).latex().splitlines()
    assert r"{a_{1}}_{n,i} = \max_{k} {z_{1}}_{n,i,k}" in lines
    # δ below a residual layer: the identity's δ plus Wᵀδ (no f' for Maxout's identity activation) ...
    assert r"{\delta_{1}}_{r,q} = {\delta_{2}}_{r,q} + \sum_{i=0}^{2} {W_{2}}_{i,q} {\delta_{2}}_{r,i}" in lines
    # ... which reaches only the winning piece of the Maxout
    assert (r"{\bar{z}_{1}}_{n,i,k} = {\delta_{1}}_{n,i} \left[k = \operatorname{argmax}_{k} {z_{1}}_{n,i,k}\right]"
            in lines)
    assert r"\frac{\partial L}{\partial {b_{1}}_{p,q}} = \sum_{n=0}^{N - 1} {\bar{z}_{1}}_{n,p,q}" in lines
    assert not any("W^{(l+1)}" in line for line in lines)


def test_initialisation_follows_the_documented_formulas():
    net = sn.Sequential([sn.Dense(300, 200, activation="tanh"), sn.Dense(200, 100, activation="relu")]).compile()
    params = net.init(seed=0)
    limit = np.sqrt(6 / 500)
    assert np.abs(params["W1"]).max() <= limit and np.abs(params["W1"]).max() > 0.99 * limit
    assert abs(params["W2"].std() - np.sqrt(2 / 200)) < 0.01 * np.sqrt(2 / 200) * 5
    assert np.array_equal(net.init(seed=0).flat, params.flat)
    xavier = net.init(seed=1, scheme="xavier_normal")
    assert abs(xavier["W1"].std() - np.sqrt(2 / 500)) < 0.05 * np.sqrt(2 / 500)
