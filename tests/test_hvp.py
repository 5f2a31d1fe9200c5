"""Exact Hessian-vector products (net.hvp, the R-operator) against two independent references: Richardson-
extrapolated central differences of the compiled gradient along v, and the Hessian of the whole loss unrolled into
one SymPy expression (tiny networks); net.hessian against stacked products; bad input."""

import mpmath
import numpy as np
import pytest
import sympy as sp

import symnet as sn
from symnet.errors import ConfigurationError, NonFiniteError, ShapeError
from symnet.network import Parameters


def difference_hvp(net, params, X, Y, v, noise_seed=None, h=1e-4):
    """(4 D(h/2) − D(h)) / 3 with D(h) = (g(θ + h v) − g(θ − h v)) / 2h, g the compiled gradient: error O(h⁴)."""
    def gradient(theta):
        return net.loss_and_grad(Parameters(theta, net.layout), X, Y, noise_seed=noise_seed)[1].flat.copy()

    def central(step):
        return (gradient(params.flat + step * v) - gradient(params.flat - step * v)) / (2 * step)
    return (4 * central(h / 2) - central(h)) / 3


def direction(net, seed):
    v = np.random.default_rng(seed).normal(size=net.size)
    v[net.model.parameter_count:] = 0          # state (running statistics) is not a direction of the loss
    return v


CASES = {
    "dense tanh, softmax cross-entropy, weight decay": (
        lambda: sn.Sequential([sn.Dense(4, 5, "tanh"), sn.Dense(5, 3)], loss="softmax_cross_entropy",
                              weight_decay=0.01), (4,), 3, None),
    # the other kinds of layer in two networks (each costs a gradient module and a Hessian module to compile):
    # strided padded convolution, max pooling, Maxout, Softmax with cross-entropy; and LayerNorm's sums inside
    # functions, average pooling and Dropout's masks fixed by the seed.  BatchNorm's batch sums go through the same
    # evaluator as LayerNorm's (checked by hand: 5e-9 against the differences; a test would compile both modes)
    "conv, max pooling, maxout, softmax, cross-entropy": (
        lambda: sn.Sequential([sn.Conv2D(1, 2, 3, stride=2, padding=1, activation="tanh"), sn.MaxPool2D(2),
                               sn.Flatten(), sn.Maxout(2, 4, pieces=2), sn.Dense(4, 3), sn.Softmax()],
                              loss="cross_entropy", input_shape=(1, 5, 5)), (1, 5, 5), 3, None),
    "average pooling, layer norm, dropout, mse": (
        lambda: sn.Sequential([sn.Conv2D(1, 2, 2, activation="sigmoid"), sn.AvgPool2D(2), sn.Flatten(),
                               sn.LayerNorm(8), sn.Dropout(0.25), sn.Dense(8, 2, "softplus")], loss="mse",
                              input_shape=(1, 5, 5)), (1, 5, 5), 2, 7),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hvp_matches_differences_of_the_gradient(case):
    make, shape, classes, noise_seed = CASES[case]
    net = make().compile()
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, *shape))
    Y = np.eye(classes)[rng.integers(0, classes, 6)]
    params = net.init(seed=2)
    v = direction(net, 3)
    hv = net.hvp(params, X, Y, v, noise_seed=noise_seed)
    reference = difference_hvp(net, params, X, Y, v, noise_seed)
    count = net.model.parameter_count
    np.testing.assert_allclose(hv[:count], reference[:count], rtol=1e-7, atol=1e-9 * np.abs(reference).max())
    assert not hv[count:].any()
    as_parameters = net.hvp(params, X, Y, Parameters(v.copy(), net.layout), noise_seed=noise_seed)
    assert isinstance(as_parameters, Parameters) and np.array_equal(as_parameters.flat, hv)


def test_hessian_matches_the_unrolled_sympy_hessian():
    """2-2-1 tanh/sigmoid, mse, weight decay: the dense Hessian against SymPy's second derivatives of the whole loss
    as one expression (evaluated with mpmath at 30 digits), to 1e-10; symmetric; its columns are H·e_k."""
    model = sn.Sequential([sn.Dense(2, 2, "tanh"), sn.Dense(2, 1, "sigmoid")], loss="mse", weight_decay=0.1)
    net = model.compile()
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(3, 2)), rng.uniform(size=(3, 1))
    params = net.init(seed=5)
    expr, symbols = sn.unrolled_loss(model, X, Y)                 # with ½λ‖W‖²
    hessian_expr = [[sp.diff(expr, a, b) for b in symbols] for a in symbols]
    mpmath.mp.dps = 30
    at = [mpmath.mpf(float(value)) for value in params.flat]
    reference = np.array(sp.lambdify(symbols, hessian_expr, "mpmath")(*at), dtype=float)
    hessian = net.hessian(params, X, Y)
    np.testing.assert_allclose(hessian, reference, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hessian, hessian.T, rtol=0, atol=1e-14)
    v = rng.normal(size=net.size)
    np.testing.assert_allclose(net.hvp(params, X, Y, v), hessian @ v, rtol=1e-12, atol=1e-14)


def test_bad_input():
    net = sn.Sequential([sn.Dense(2, 3, "tanh"), sn.Dense(3, 1)], loss="mse").compile()
    params, X, Y = net.init(), np.ones((4, 2)), np.ones((4, 1))
    with pytest.raises(ShapeError, match=f"a flat array of {net.size} entries"):
        net.hvp(params, X, Y, np.ones(net.size + 1))
    with pytest.raises(NonFiniteError, match="v contains NaN or infinity"):
        net.hvp(params, X, Y, np.full(net.size, np.nan))
    with pytest.raises(ShapeError, match="parameters lack b1, W2, b2"):
        net.hvp(params, X, Y, {"W1": np.ones((3, 2))})
    prelu = sn.Sequential([sn.Dense(2, 3, "prelu"), sn.Dense(3, 1)], loss="mse").compile()
    with pytest.raises(ConfigurationError, match="trainable parameters .*not supported yet"):
        prelu.hvp(prelu.init(), X, Y, np.zeros(prelu.size))
    big = sn.Sequential([sn.Dense(64, 64), sn.Dense(64, 10)], loss="mse").compile()
    with pytest.raises(ConfigurationError, match="stops at 4,096 parameters: use net.hvp"):
        big.hessian(big.init(), np.ones((2, 64)), np.ones((2, 10)))


def test_newton_cg_reaches_the_least_squares_minimum_in_one_step():
    """Linear regression with mse is a quadratic: with λ = 0 and enough CG iterations one Newton step of the whole
    batch lands on the normal equations' solution (NumPy's lstsq), whatever the start."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(40, 3))
    Y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3 + 0.1 * rng.normal(size=(40, 1))
    newton = sn.optim.NewtonCG(lr=1.0, damping=0.0, cg_iterations=8, cg_tolerance=1e-12)
    net = sn.Sequential([sn.Dense(3, 1)], loss="mse").compile(optimizer=newton)
    params = net.init(seed=7)
    history = sn.fit(net, params, X, Y, epochs=1, batch_size=None, verbose=False)
    solution = np.linalg.lstsq(np.hstack([X, np.ones((40, 1))]), Y, rcond=None)[0][:, 0]
    np.testing.assert_allclose(np.append(params["W1"], params["b1"]), solution, rtol=1e-10)
    assert net.loss(params, X, Y) < history.loss[0]


def test_newton_cg_trains_and_resumes_bit_identically(tmp_path):
    """Softmax regression (convex) on the digits' first 200 rows: the loss falls every epoch; the adapted damping
    is optimizer state, so a run resumed from a checkpoint ends where the whole run does."""
    from symnet.models import builtin
    X, Y, *_ = builtin("digits").prepared_data()
    X, Y = X[:200], Y[:200]

    def run(epochs, **options):
        net = sn.Sequential([sn.Dense(64, 10)], loss="softmax_cross_entropy", weight_decay=1e-3).compile(
            optimizer=sn.optim.get("newton_cg", damping=1.0, cg_iterations=5))
        params = net.init(seed=0)
        history = sn.fit(net, params, X, Y, epochs=epochs, batch_size=50, seed=1, verbose=False, **options)
        return params, history, net
    whole, history, net = run(4)
    assert all(later < earlier for earlier, later in zip(history.loss, history.loss[1:]))
    assert net.optimizer_state["damping"][0] != 1.0                     # it adapted
    path = tmp_path / "newton.npz"
    run(2, checkpoint=path)
    resumed, _, _ = run(4, resume=path)
    assert np.array_equal(resumed.flat, whole.flat)


def test_newton_cg_bad_input():
    with pytest.raises(ConfigurationError, match="cg_iterations must be a positive integer"):
        sn.optim.NewtonCG(cg_iterations=0)
    with pytest.raises(ConfigurationError, match="damping must be"):
        sn.optim.NewtonCG(damping=-1.0)
    with pytest.raises(ConfigurationError, match="does not update layer state"):
        sn.Sequential([sn.Dense(2, 3), sn.BatchNorm(3), sn.Dense(3, 1)], loss="mse").compile(
            optimizer=sn.optim.NewtonCG())


def test_second_order_latex_prints_the_derived_r_operator():
    model = sn.Sequential([sn.Dense(3, 4, "relu"), sn.Dense(4, 2, "tanh")], loss="mse", weight_decay=0.1)
    lines = model.second_order_latex().splitlines()
    assert lines[0] == (r"{\mathcal{R}\{z_{1}\}}_{n,i} = {\mathcal{R}\{b_{1}\}}_{i} + \sum_{j=0}^{2} {X}_{n,j} "
                        r"{\mathcal{R}\{W_{1}\}}_{i,j}")
    assert r"\left(H v\right)_{{W_{1}}_{p,q}} = \sum_{n=0}^{N - 1} {X}_{n,q} {\mathcal{R}\{\delta_{1}\}}_{n,p} + " \
        r"\lambda {\mathcal{R}\{W_{1}\}}_{p,q}" in lines
    below = next(line for line in lines if line.startswith(r"{\mathcal{R}\{\delta_{1}\}}"))
    assert r"\tanh" not in below and "delta" not in below.replace(r"\delta", "")   # ReLU: f'' = 0 at the kink too
    text = "\n".join(lines)
    assert text.count(r"\left(H v\right)") == 4 and "DiracDelta" not in text
    assert r"\left(1 - \tanh^{2}{\left({z_{2}}_{n,i} \right)}\right)" in text    # tanh's f' in R{δ_2}
