"""User-defined layers and trainable activation parameters: derived backward passes against central differences."""

import numpy as np
import pytest
import sympy as sp

import symnet as sn
from symnet.backprop import symbolic_vjps
from symnet.errors import ConfigurationError
from symnet.layers import J_SIZE, Layer, a, i, index, j, n
from symnet.network import Parameters
from tests import zoo
from tests.test_network import central_differences, classification_data


class Residual(Layer):
    """z[n,i] = a[n,i] + Σ_j W[i,j] a[n,j] + b[i]."""

    W, b = sp.IndexedBase("W", real=True), sp.IndexedBase("b", real=True)
    forward_map = a[n, i] + sp.Sum(W[i, j] * a[n, j], (j, 0, J_SIZE - 1)) + b[i]
    parameter_shapes = {W: ("out", "in"), b: ("out",)}


class Bilinear(Layer):
    """z[n,i] = Σ_j Σ_k U[i,j,k] a[n,j] a[n,k] + b[i]."""

    U, b, k = sp.IndexedBase("U", real=True), sp.IndexedBase("b", real=True), index("k")
    forward_map = sp.Sum(U[i, j, k] * a[n, j] * a[n, k], (j, 0, J_SIZE - 1), (k, 0, J_SIZE - 1)) + b[i]
    parameter_shapes = {U: ("out", "in", "in"), b: ("out",)}


def test_derived_vjps_of_a_residual_layer_read_as_the_textbook_formulas():
    """In symbols the identity term holds where q < I (q runs over the J inputs); the layer has I = J, and with its
    sizes put in the guard is gone."""
    delta, W, r, q = sn.layers.delta, Residual.W, sn.layers.r, sn.layers.q
    indices, expr = symbolic_vjps(Residual(3, 3))[a]
    guard = sn.layers.InRange(q, 0, sn.layers.I_SIZE - 1)
    assert indices == (r, q)
    assert sp.simplify(expr - (guard * delta[r, q] + sp.Sum(W[i, q] * delta[r, i], (i, 0, sn.layers.I_SIZE - 1)))) == 0
    indices, expr = sn.vjps(Residual(3, 3))[a]
    assert sp.simplify(expr - (delta[r, q] + sp.Sum(W[i, q] * delta[r, i], (i, 0, 2)))) == 0


def test_user_defined_layer_gradients_and_training():
    """Both user-defined layers in one network (one module to compile): each layer's derived gradient equals
    central differences of the whole loss, and Adam trains it."""
    layers = [sn.Dense(3, 4, "tanh"), Residual(4, 4, "tanh"), Bilinear(4, 3, "sigmoid"), sn.Dense(3, 2)]
    names = ["Dense", "Residual", "Bilinear", "Dense"]
    model = sn.Sequential(layers, loss="softmax_cross_entropy", weight_decay=0.01)
    net = model.compile(optimizer=sn.optim.Adam(lr=0.02))
    params = net.init(seed=0)
    X, Y = classification_data(12, 3, 2, seed=4)
    _, grads = net.loss_and_grad(params, X, Y)
    numeric = Parameters(central_differences(net, params, X, Y), net.layout)
    for key, *_ in reversed(net.layout):                  # from the output down: the first failure names the layer
        layer = names[int(key.lstrip("UWb")) - 1]
        np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-6, atol=1e-9, err_msg=f"{key} ({layer})")
        assert np.abs(grads[key]).max() > 1e-4, f"no gradient reaches {key} ({layer})"
    losses = [net.step(params, X, Y) for _ in range(100)]
    assert losses[-1] < 0.5 * losses[0]


def test_residual_layer_needs_equal_sizes_and_names_must_not_clash():
    with pytest.raises(ConfigurationError, match="n_in = n_out"):
        Residual(3, 4)
    gamma = sp.Symbol("U", real=True)      # Bilinear's own parameter
    clashing = sn.Activation("scaled", sn.activations.t * gamma, parameters={gamma: sn.activations.trainable(1.0)})
    with pytest.raises(ConfigurationError, match="name of a layer parameter"):
        Bilinear(2, 2, clashing)
    W = sp.Symbol("W", real=True)
    with pytest.raises(ConfigurationError, match="would clash in generated code"):
        sn.Activation("scaled", sn.activations.t * W, parameters={W: sn.activations.trainable(1.0)})


def test_trainable_activation_parameters_are_initialised_learned_and_reported():
    prelu, swish = sn.activations.prelu(gamma=0.2), sn.activations.swish(beta=1.5, learn=True)
    model = sn.Sequential([sn.Dense(3, 5, prelu), sn.Dense(5, 4, swish), sn.Dense(4, 2)], loss="softmax_cross_entropy")
    net = model.compile(optimizer=sn.optim.SGD(lr=0.1))
    params = net.init(seed=0)
    assert np.all(params["gamma1"] == 0.2) and params["gamma1"].shape == (5,)
    assert np.all(params["beta2"] == 1.5) and params["beta2"].shape == (4,)
    X, Y = classification_data(16, 3, 2, seed=1)
    _, grads = net.loss_and_grad(params, X, Y)
    np.testing.assert_allclose(grads.flat, central_differences(net, params, X, Y), rtol=1e-6, atol=1e-9)
    assert np.abs(grads["gamma1"]).max() > 0 and np.abs(grads["beta2"]).max() > 0
    before = params["beta2"].copy()
    net.step(params, X, Y)
    np.testing.assert_allclose(params["beta2"], before - 0.1 * grads["beta2"], rtol=1e-15, atol=0)   # FMA or not
    assert "trainable gamma1 (per neuron, starts at 0.2)" in model.summary()
    # ∂/∂β of z σ(βz) is z² e^(−βz) / (1 + e^(−βz))², summed over the batch against ∂L/∂a (written by hand)
    assert (r"\frac{\partial L}{\partial {\beta_{2}}_{i}} = \sum_{n} \frac{\partial L}{\partial {a_{2}}_{n,i}} "
            r"\left(\frac{e^{- {\beta_{2}}_{i} {z_{2}}_{n,i}} {z_{2}}_{n,i}^{2}}{\left(1 + e^{- {\beta_{2}}_{i} "
            r"{z_{2}}_{n,i}}\right)^{2}}\right)") in model.latex().splitlines()


def test_fixed_activation_parameters_are_substituted():
    g = sp.Symbol("g", real=True)
    scaled = sn.Activation("scaled_tanh", sp.tanh(g * sn.activations.t), parameters={"g": 2})
    assert scaled.expr == sp.tanh(2 * sn.activations.t) and scaled.parameters == ()
    with pytest.raises(sn.ExpressionError, match="symbols other than its input"):
        sn.Activation("loose", sp.tanh(g * sn.activations.t))
    with pytest.raises(ConfigurationError, match="must be a number or"):
        sn.Activation("bad", sp.tanh(g * sn.activations.t), parameters={"g": "two"})


def test_float32_network_agrees_with_float64():
    """sigmoid (exp kernel), relu (max) and prelu (trainable γ) in one network: one module per dtype."""
    data = sn.datasets.load("digits")
    X, Y = data.X[:64], data.Y[:64]
    activations = ["sigmoid", "relu", "prelu"]
    sizes = [64, 16, 16, 16]
    model = sn.Sequential([sn.Dense(n_in, n_out, f) for n_in, n_out, f in zip(sizes, sizes[1:], activations)]
                          + [sn.Dense(16, 10)], loss="softmax_cross_entropy", weight_decay=0.01)
    single = model.compile(optimizer=sn.optim.Adam(lr=0.01), dtype="float32")
    double = model.compile(optimizer=sn.optim.Adam(lr=0.01), dtype="float64")
    assert single.path != double.path and "np.float32(" in single.path.read_text()
    p32, p64 = single.init(seed=0), double.init(seed=0)
    assert p32.flat.dtype == np.float32 and np.array_equal(p32.flat, p64.flat.astype(np.float32))
    loss32, grads32 = single.loss_and_grad(p32, X, Y)
    loss64, grads64 = double.loss_and_grad(p64, X, Y)
    assert grads32.flat.dtype == np.float32
    assert abs(loss32 - loss64) <= 1e-6 * loss64
    for key, *_ in double.layout:
        number = int(key.lstrip("Wbgam"))                       # W1, b1, W2, b2, gamma3, …
        layer = activations[number - 1] if number <= len(activations) else "output"
        assert np.abs(grads32[key] - grads64[key]).max() <= 1e-5 * np.abs(grads64.flat).max(), f"{key} ({layer})"
    for _ in range(5):
        single.step(p32, X, Y)
        double.step(p64, X, Y)
    assert p32.flat.dtype == np.float32 and np.abs(p32.flat - p64.flat).max() <= 1e-5


def test_dropout_masks_are_seeded_inverted_and_only_in_training(tmp_path):
    plain = sn.Sequential([sn.Dense(4, 6, "tanh"), sn.Dense(6, 3)], loss="softmax_cross_entropy")
    net, reference = zoo.dropout_small(), plain.compile()     # 4 → 6 tanh → Dropout(0.25) → 3, SGD; test_check's too
    params = net.init(seed=0)
    same = {"W1": params["W1"], "b1": params["b1"], "W2": params["W3"], "b2": params["b3"]}
    X, Y = classification_data(10, 4, 3, seed=5)
    # outside training the layer is the identity (two modules are two code paths: they may differ by an ulp,
    # e.g. where LLVM contracts a·b + c into an FMA in one of them on an AVX-512 machine)
    assert net.loss(params, X, Y) == pytest.approx(reference.loss(same, X, Y), rel=1e-15)
    np.testing.assert_allclose(net.predict(params, X), reference.predict(same, X), rtol=1e-15, atol=0)
    # in training the mask is fixed by the seed, and the derived gradient is that of the masked loss
    assert net.loss(params, X, Y, noise_seed=7) == net.loss(params, X, Y, noise_seed=7) != net.loss(params, X, Y,
                                                                                                     noise_seed=8)
    _, grads = net.loss_and_grad(params, X, Y, noise_seed=7)
    numeric = central_differences(net, params, X, Y, loss=lambda params, X, Y: net.loss(params, X, Y, noise_seed=7))
    np.testing.assert_allclose(grads.flat, numeric, rtol=1e-6, atol=1e-9)
    # inverted dropout: a kept unit is scaled by 1/(1 − p), and about p of the units are dropped
    wide = sn.Sequential([sn.Dropout(0.25, size=400)], loss="mse").compile()
    ones = np.ones((50, 400))
    half_sum_of_squares = wide.loss({}, ones, np.zeros((50, 400)), noise_seed=3)   # mean over samples of ½ Σ_k m_k²
    kept_share = half_sum_of_squares / (0.5 * 400 * (1 / 0.75) ** 2)               # every kept m_k is 1/(1 − p)
    assert abs(kept_share - 0.75) < 0.02
    assert wide.loss({}, ones, np.zeros((50, 400))) == 200.0                          # no mask outside training


def test_dropout_training_resumes_bit_identically(tmp_path):
    model = sn.Sequential([sn.Dense(4, 8, "relu"), sn.Dropout(0.5), sn.Dense(8, 3)], loss="softmax_cross_entropy")
    X, Y = classification_data(40, 4, 3, seed=6)
    straight = model.compile(optimizer=sn.optim.Momentum(lr=0.05))
    expected = straight.init(seed=1)
    sn.fit(straight, expected, X, Y, epochs=4, batch_size=8, seed=2)
    first = model.compile(optimizer=sn.optim.Momentum(lr=0.05))
    params = first.init(seed=1)
    sn.fit(first, params, X, Y, epochs=2, batch_size=8, seed=2, checkpoint=tmp_path / "d.npz")
    again = model.compile(optimizer=sn.optim.Momentum(lr=0.05))
    resumed = again.init(seed=1)
    sn.fit(again, resumed, X, Y, epochs=4, batch_size=8, resume=tmp_path / "d.npz")
    assert np.array_equal(resumed.flat, expected.flat)
    with pytest.raises(ConfigurationError, match="probability"):
        sn.Dropout(1.0)
    with pytest.raises(ConfigurationError, match="size"):
        sn.Sequential([sn.Dropout(0.1), sn.Dense(3, 2)])


def test_maxout_matches_a_numpy_forward_and_central_differences():
    """Maxout as the first layer (on X), behind a Dense layer and as the output, in one network (one module)."""
    model = sn.Sequential([sn.Maxout(3, 4, pieces=3), sn.Dense(4, 4, "tanh"), sn.Maxout(4, 2, pieces=2)],
                          loss="mse", weight_decay=0.01)
    net = model.compile(optimizer=sn.optim.Adam(lr=0.01))
    params = net.init(seed=0)
    X, Y = classification_data(8, 3, 2, seed=9)

    def maxout(W, b, inputs):             # NumPy: z[n,i,k] = Σ_j W[i,k,j] x[n,j] + b[i,k], a = max_k z
        return (np.einsum("ikj,nj->nik", W, inputs) + b).max(axis=2)

    hidden = np.tanh(maxout(params["W1"], params["b1"], X) @ params["W2"].T + params["b2"])
    np.testing.assert_allclose(net.predict(params, X), maxout(params["W3"], params["b3"], hidden), rtol=1e-13,
                               atol=1e-14)
    _, grads = net.loss_and_grad(params, X, Y)
    numeric = Parameters(central_differences(net, params, X, Y), net.layout)
    for key, position in (("W3", "output Maxout"), ("b3", "output Maxout"), ("W2", "Dense"), ("b2", "Dense"),
                          ("W1", "first Maxout"), ("b1", "first Maxout")):
        np.testing.assert_allclose(grads[key], numeric[key], rtol=1e-6, atol=1e-9, err_msg=f"{key} ({position})")
        assert np.abs(grads[key]).max() > 1e-4, f"no gradient reaches {key} ({position})"
    losses = [net.step(params, X, Y) for _ in range(50)]
    assert losses[-1] < 0.6 * losses[0]
    assert sn.Maxout(3, 4, pieces=3).parameters[0][1] == (4, 3, 3)
    with pytest.raises(ConfigurationError, match="pieces"):
        sn.Maxout(3, 4, pieces=0)


def test_standalone_softmax_with_cross_entropy_equals_softmax_cross_entropy_on_logits():
    logits = sn.Sequential([sn.Dense(3, 4, "tanh"), sn.Dense(4, 3)], loss="softmax_cross_entropy").compile()
    probabilities = sn.Sequential([sn.Dense(3, 4, "tanh"), sn.Dense(4, 3), sn.Softmax()], loss="cross_entropy")
    net = probabilities.compile(optimizer=sn.optim.SGD(lr=0.1))
    params = net.init(seed=0)
    X, Y = classification_data(10, 3, 3, seed=3)
    loss_a, grads_a = net.loss_and_grad(params, X, Y)
    loss_b, grads_b = logits.loss_and_grad(params, X, Y)
    assert abs(loss_a - loss_b) <= 1e-14 * loss_b
    np.testing.assert_allclose(grads_a.flat, grads_b.flat, rtol=1e-12, atol=1e-15)
    derived = sn.vjps(sn.Softmax(3))[a][1]          # δ_prev[r,q] = s_q (δ_q − Σ_i δ_i s_i), s = e^(a)/S, written out
    delta, r, q = sn.layers.delta, sn.layers.r, sn.layers.q
    S = sp.Sum(sp.exp(a[r, j]), (j, 0, 2))
    s_q = sp.exp(a[r, q]) / S
    textbook = s_q * (delta[r, q] - sp.Sum(delta[r, i] * sp.exp(a[r, i]) / S, (i, 0, 2)))
    values = {a[r, x]: value for x, value in enumerate((0.3, -1.2, 2.0))}
    values.update({delta[r, x]: value for x, value in enumerate((0.7, 0.1, -0.4))})
    for entry in range(3):
        assert float(derived.xreplace({q: entry}).doit().xreplace(values)) == pytest.approx(
            float(textbook.xreplace({q: entry}).doit().xreplace(values)), rel=1e-14)
    # stable at extreme inputs; rows sum to one
    extreme = sn.Sequential([sn.Softmax(3)], loss="mse").compile()
    out = extreme.predict({}, np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]]))
    np.testing.assert_allclose(out, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-15, atol=0)
    _, grads = sn.Sequential([sn.Dense(3, 3), sn.Softmax()], loss="mse").compile().loss_and_grad(
        {"W1": np.eye(3) * 500, "b1": np.zeros(3)}, np.array([[2.0, -2.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    assert np.isfinite(grads.flat).all()


def test_float32_maxout_and_shared_activation_parameters_compile_and_agree_with_float64():
    # integer indices (Maxout's b[i, 0], a shared γ[0]) once printed as np.float32(0) in float32 modules
    model = sn.Sequential([sn.Maxout(3, 4, pieces=2), sn.Dense(4, 3, sn.activations.prelu(shared=True)),
                           sn.Dense(3, 2)], loss="softmax_cross_entropy")
    net64, net32 = model.compile(), model.compile(dtype="float32")
    params = net64.init(seed=0)
    X, Y = classification_data(8, 3, 2, seed=4)
    assert sn.check_gradient(net64, params, X, Y), "the float64 reference itself is wrong"
    loss64, grads64 = net64.loss_and_grad(params, X, Y)
    loss32, grads32 = net32.loss_and_grad(params, X, Y)
    assert abs(loss32 - loss64) < 1e-6 * abs(loss64)
    np.testing.assert_allclose(grads32.flat, grads64.flat, rtol=1e-4, atol=1e-6)


def test_maxout_biases_start_at_zero_and_are_not_decayed():
    # Maxout's b has shape (out, pieces): rank 2, yet a bias (the layer names W as its only weight)
    model = sn.Sequential([sn.Maxout(3, 2, pieces=2), sn.Dense(2, 1)], weight_decay=0.1)
    net, plain = model.compile(), sn.Sequential([sn.Maxout(3, 2, pieces=2), sn.Dense(2, 1)]).compile()
    params = net.init(seed=0)
    assert np.all(params["b1"] == 0) and np.abs(params["W1"]).max() > 0
    params["b1"][...] = 0.3
    X, Y = np.random.default_rng(5).normal(size=(5, 3)), np.ones((5, 1))
    decay = 0.05 * ((params["W1"] ** 2).sum() + (params["W2"] ** 2).sum())    # ½λ Σ‖W‖², no b1
    assert net.loss(params, X, Y) - plain.loss(params, X, Y) == pytest.approx(decay, rel=1e-12)
    _, grads = net.loss_and_grad(params, X, Y)
    _, plain_grads = plain.loss_and_grad(params, X, Y)
    np.testing.assert_allclose(grads["b1"], plain_grads["b1"], rtol=1e-13, atol=0)



@pytest.mark.parametrize("name", ["work", "theta", "lookahead", "scratch", "total", "a1", "grad_W"])
def test_an_index_named_like_a_variable_of_the_generated_code_is_refused(name):
    """The generated functions' variables share a scope with the layers' loop indices: an index ``work`` would
    overwrite the optimizer's array, so the declaration is refused with the names to avoid."""
    clashing = index(name)
    W, b = sp.IndexedBase("W", real=True), sp.IndexedBase("b", real=True)

    class Clashing(Layer):
        forward_map = sp.Sum(W[i, clashing] * a[n, clashing], (clashing, 0, J_SIZE - 1)) + b[i]
        parameter_shapes = {W: ("out", "in"), b: ("out",)}

    with pytest.raises(ConfigurationError, match=f"the index '{name}' has the name of a variable"):
        Clashing(3, 2)
