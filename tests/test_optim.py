"""Every optimizer, step for step, against an independent NumPy implementation of the notes' formulas."""

import numpy as np
import pytest

import symnet as sn
from symnet.errors import ConfigurationError
from tests import zoo
from tests.zoo import HYPER

STEPS = 60


def linear_gradient(theta, X, Y):
    """Analytic gradient of L = (1/N) Σ_n ½‖W x_n + b − y_n‖² for a 3 → 2 linear layer (θ = [W row-major, b])."""
    W, b = theta[:6].reshape(2, 3), theta[6:]
    delta = (X @ W.T + b - Y) / len(X)
    return np.concatenate([(delta.T @ X).ravel(), delta.sum(axis=0)])


def reference_run(name, hyper, theta, batches):
    """The update rules as written in the issue, in NumPy."""
    theta = theta.copy()
    v, r, s = (np.zeros_like(theta) for _ in range(3))
    history = []
    for t, (X, Y) in enumerate(batches, start=1):
        if name in ("Nesterov", "RMSPropNesterov"):
            g = linear_gradient(theta + hyper["momentum"] * v, X, Y)
        else:
            g = linear_gradient(theta, X, Y)
        lr = hyper["lr"]
        if name in ("GD", "SGD"):
            theta = theta - lr * g
        elif name in ("Momentum", "Nesterov"):
            v = hyper["momentum"] * v - lr * g
            theta = theta + v
        elif name == "AdaGrad":
            r = r + g * g
            theta = theta - lr / (hyper["eps"] + np.sqrt(r)) * g
        elif name == "RMSProp":
            r = hyper["decay"] * r + (1 - hyper["decay"]) * g * g
            theta = theta - lr / (hyper["eps"] + np.sqrt(r)) * g
        elif name == "RMSPropNesterov":
            r = hyper["decay"] * r + (1 - hyper["decay"]) * g * g
            v = hyper["momentum"] * v - lr / (hyper["eps"] + np.sqrt(r)) * g
            theta = theta + v
        elif name == "Adam":
            s = hyper["beta1"] * s + (1 - hyper["beta1"]) * g
            r = hyper["beta2"] * r + (1 - hyper["beta2"]) * g * g
            s_hat = s / (1 - hyper["beta1"] ** t)
            r_hat = r / (1 - hyper["beta2"] ** t)
            theta = theta - lr * s_hat / (hyper["eps"] + np.sqrt(r_hat))
        history.append(theta.copy())
    return history


def linear_network(name):
    """The 3 → 2 linear layer with MSE of :func:`linear_gradient`, trained by optimizer ``name`` (tests/zoo.py).  Both
    step tests below use it, and test_train's GD test: one generated module per optimizer, compiled once per process
    (``net.step`` compiles ``train_step``, ``sn.fit`` adds ``train_epoch``)."""
    return zoo.linear(name)


@pytest.mark.parametrize("name", sorted(HYPER))
def test_optimizer_matches_numpy_formulas(name):
    rng = np.random.default_rng(7)
    batches = [(rng.normal(size=(8, 3)), rng.normal(size=(8, 2))) for _ in range(STEPS)]
    net = linear_network(name)
    params = net.init(seed=3)
    params["b1"][...] = rng.normal(size=2)
    expected = reference_run(name, HYPER[name], params.flat.copy(), batches)
    for step, (X, Y) in enumerate(batches):
        net.step(params, X, Y)
        scale = np.abs(expected[step]).max()
        assert np.abs(params.flat - expected[step]).max() <= 1e-12 * scale, f"{name} differs at step {step + 1}"
    if name == "Adam":
        assert net.optimizer_state["step"][0] == STEPS


def test_optimizer_lookup_and_bad_hyperparameters():
    assert type(sn.optim.get("rmspropnesterov")).__name__ == "RMSPropNesterov"
    with pytest.raises(ConfigurationError, match="unknown optimizer 'adamw'"):
        sn.optim.get("adamw")
    for make, message in [(lambda: sn.optim.SGD(lr=-1), "lr must be"),
                          (lambda: sn.optim.RMSProp(decay=1.0), r"decay must be a number in \[0.0, 1.0\)"),
                          (lambda: sn.optim.Adam(beta2=1.5), "beta2"),
                          (lambda: sn.optim.Momentum(momentum=float("nan")), "momentum"),
                          (lambda: sn.optim.AdaGrad(eps=0), "eps")]:
        with pytest.raises(ConfigurationError, match=message):
            make()


def test_changing_the_learning_rate_reuses_the_module():
    model = sn.Sequential([sn.Dense(3, 2)], loss="mse")
    first = model.compile(optimizer=sn.optim.Adam(lr=0.1))
    second = model.compile(optimizer=sn.optim.Adam(lr=0.001))
    assert first.path == second.path and not second.written


@pytest.mark.parametrize("name", sorted(HYPER))
def test_compiled_epoch_equals_the_same_steps_one_by_one(name):
    """fit runs whole epochs in the generated train_epoch; it must match net.step call by call, bit for bit."""
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(30, 3)), rng.normal(size=(30, 2))
    fitted, stepped = linear_network(name), linear_network(name)        # one module, two optimizer states
    first, second = fitted.init(seed=1), stepped.init(seed=1)
    history = sn.fit(fitted, first, X, Y, epochs=3, batch_size=8, seed=4)
    batch = 30 if name == "GD" else 8                       # GD trains on the whole set as one batch
    for epoch in (1, 2, 3):
        order = np.random.default_rng([4, epoch]).permutation(30)
        lows = range(0, 30, batch)
        losses = [stepped.step(second, X[order][low:low + batch], Y[order][low:low + batch]) for low in lows]
        assert history.loss[epoch - 1] == pytest.approx(
            sum(loss * len(order[low:low + batch]) for loss, low in zip(losses, lows)) / 30, rel=1e-15)
    assert np.array_equal(first.flat, second.flat)
    for key, value in stepped.optimizer_state.items():
        assert np.array_equal(fitted.optimizer_state[key], value)


def test_parallel_activation_loops_give_the_serial_results():
    """parallel=True runs wide transcendental activation loops with numba.prange; each row is independent, so the
    trained parameters must equal the serial module's (including a short last batch).  Two modules are two code
    paths, which LLVM may vectorise differently on another CPU: equal to within rounding, not bit for bit."""
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(45, 3)), rng.uniform(size=(45, 64))
    # relu is as wide as the others but cheap: its loop stays serial (the text says so; generating it compiles
    # nothing); the two modules trained are those without it, a layer less to compile. A sigmoid output saves one more
    with_relu = sn.Sequential([sn.Dense(3, 64, "relu"), sn.Dense(64, 64, "tanh"), sn.Dense(64, 64, "sigmoid")],
                              loss="mse")
    text = with_relu.compile(optimizer=sn.optim.Adam(lr=0.01), parallel=True).path.read_text()
    assert text.count("for n in numba.prange(batch):") == 2 * 4   # tanh and sigmoid, in the 4 functions with a forward pass
    assert "parallel=True" in text
    model = sn.Sequential([sn.Dense(3, 64, "tanh"), sn.Dense(64, 64, "sigmoid")], loss="mse")
    parallel = model.compile(optimizer=sn.optim.Adam(lr=0.01), parallel=True)
    serial = model.compile(optimizer=sn.optim.Adam(lr=0.01))
    assert parallel.path.read_text().count("for n in numba.prange(batch):") == 2 * 4
    assert "prange" not in serial.path.read_text()
    first, second = parallel.init(seed=2), serial.init(seed=2)
    one = sn.fit(parallel, first, X, Y, epochs=3, batch_size=16, seed=1)
    two = sn.fit(serial, second, X, Y, epochs=3, batch_size=16, seed=1)
    np.testing.assert_allclose(first.flat, second.flat, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(one.loss, two.loss, rtol=1e-12)
    with pytest.raises(ConfigurationError, match="parallel must be True or False"):
        model.compile(parallel="yes")
