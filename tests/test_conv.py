"""Convolutional layers declared in index notation: the compiled forward pass against a NumPy convolution, the
derived gradients against central differences of that NumPy loss (an independent reference), shapes, errors and
the printed formulas."""

import numpy as np
import pytest
import sympy as sp

import symnet as sn
from symnet.backprop import symbolic_vjps
from symnet.declare import layers as D
from symnet.errors import ConfigurationError, ShapeError


def numpy_conv(a, W, b, stride, padding):
    """Cross-correlation with zero padding (PyTorch's Conv2d), one kernel offset at a time."""
    (sh, sw), (ph, pw) = stride, padding
    kh, kw = W.shape[2:]
    padded = np.pad(a, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    rows = (a.shape[2] + 2 * ph - kh) // sh + 1
    columns = (a.shape[3] + 2 * pw - kw) // sw + 1
    out = np.zeros((a.shape[0], W.shape[0], rows, columns))
    for u in range(kh):
        for v in range(kw):
            patch = padded[:, :, u:u + sh * (rows - 1) + 1:sh, v:v + sw * (columns - 1) + 1:sw]
            out += np.einsum("ndyx,cd->ncyx", patch, W[:, :, u, v])
    return out + b[None, :, None, None]


def numpy_pool(a, kernel, stride, reduce):
    """Max or mean over each window (no padding, sizes floored)."""
    (kh, kw), (sh, sw) = kernel, stride
    rows, columns = (a.shape[2] - kh) // sh + 1, (a.shape[3] - kw) // sw + 1
    windows = np.stack([a[:, :, u:u + sh * (rows - 1) + 1:sh, v:v + sw * (columns - 1) + 1:sw]
                        for u in range(kh) for v in range(kw)])
    return windows.max(axis=0) if reduce == "max" else windows.mean(axis=0)


def numpy_loss(params, X, Y, stages, loss):
    """The mean loss of the image layers in ``stages`` (("conv", stride, padding, activation) or ("max"/"avg",
    kernel, stride)), then Flatten and a linear Dense layer."""
    a = X
    for number, (kind, *options) in enumerate(stages, start=1):
        if kind == "conv":
            stride, padding, activation = options
            z = numpy_conv(a, params[f"W{number}"], params[f"b{number}"], stride, padding)
            a = np.tanh(z) if activation == "tanh" else np.maximum(z, 0)
        else:
            a = numpy_pool(a, *options, kind)
    last = len(stages) + 2
    o = a.reshape(len(a), -1) @ params[f"W{last}"].T + params[f"b{last}"]
    if loss == "mse":
        return 0.5 * ((o - Y) ** 2).sum() / len(X)
    shifted = o - o.max(axis=1, keepdims=True)
    return (np.log(np.exp(shifted).sum(axis=1)) - (Y * shifted).sum(axis=1)).mean()


CASES = {
    # kernel not square, stride (2, 1), padding only on rows, two input channels
    "strided": dict(layers=lambda: [sn.Conv2D(2, 3, kernel_size=(2, 3), stride=(2, 1), padding=(1, 0),
                                              activation="tanh")],
                    stages=[("conv", (2, 1), (1, 0), "tanh")], input_shape=(2, 5, 6), loss="softmax_cross_entropy"),
    # two convolutions: 'same' padding, then stride 2 without padding
    "stacked": dict(layers=lambda: [sn.Conv2D(1, 2, kernel_size=3, padding=1, activation="relu"),
                                    sn.Conv2D(2, 2, kernel_size=3, stride=2, activation="tanh")],
                    stages=[("conv", (1, 1), (1, 1), "relu"), ("conv", (2, 2), (0, 0), "tanh")],
                    input_shape=(1, 7, 7), loss="mse"),
    # the patch-matrix products (above SMALL_PRODUCT): a stride-1 convolution after another, so the input
    # gradient is a correlation of δ with the kernels (gathered as a matrix); odd sizes, a kernel not square
    "stacked_same": dict(layers=lambda: [sn.Conv2D(2, 3, kernel_size=3, padding=1, activation="relu"),
                                         sn.Conv2D(3, 2, kernel_size=(3, 2), padding=(1, 0), activation="tanh")],
                         stages=[("conv", (1, 1), (1, 1), "relu"), ("conv", (1, 1), (1, 0), "tanh")],
                         input_shape=(2, 5, 7), loss="softmax_cross_entropy"),
    # stride 2 without padding, three input channels, then max pooling
    "strided_channels": dict(layers=lambda: [sn.Conv2D(3, 4, kernel_size=3, stride=2, activation="relu"),
                                             sn.MaxPool2D(2)],
                             stages=[("conv", (2, 2), (0, 0), "relu"), ("max", (2, 2), (2, 2))],
                             input_shape=(3, 9, 9), loss="mse"),
    # pooling: max over 2×2 windows (7 rows: the last is dropped), then overlapping means over 2×2, stride 1
    "pooled": dict(layers=lambda: [sn.Conv2D(1, 2, kernel_size=3, padding=1, activation="tanh"), sn.MaxPool2D(2),
                                   sn.AvgPool2D(2, stride=1)],
                   stages=[("conv", (1, 1), (1, 1), "tanh"), ("max", (2, 2), (2, 2)), ("avg", (2, 2), (1, 1))],
                   input_shape=(1, 7, 6), loss="softmax_cross_entropy"),
}


def build(case):
    spec = CASES[case]
    layers = spec["layers"]()
    shape = spec["input_shape"]
    for layer in layers:
        assert layer.shaped(shape)
        shape = layer.output_shape
    model = sn.Sequential([*layers, sn.Flatten(), sn.Dense(int(np.prod(shape)), 3)], loss=spec["loss"],
                          input_shape=spec["input_shape"])
    return model, spec


@pytest.mark.parametrize("case", sorted(CASES))
def test_convolution_forward_and_gradient_match_numpy(case):
    model, spec = build(case)
    net = model.compile()
    params = net.init(seed=1)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4, *spec["input_shape"]))
    Y = np.eye(3)[rng.integers(0, 3, 4)] if spec["loss"] != "mse" else rng.normal(size=(4, 3))
    reference = {name: np.array(params[name]) for name in params}
    loss, grads = net.loss_and_grad(params, X, Y)
    assert loss == pytest.approx(numpy_loss(reference, X, Y, spec["stages"], spec["loss"]), rel=1e-12)
    for name in params:                                   # central differences of the NumPy loss
        value = reference[name]
        numerical = np.zeros_like(value)
        for cell in np.ndindex(value.shape):
            saved = value[cell]
            h = 1e-6 * max(1.0, abs(saved))
            value[cell] = saved + h
            up = numpy_loss(reference, X, Y, spec["stages"], spec["loss"])
            value[cell] = saved - h
            down = numpy_loss(reference, X, Y, spec["stages"], spec["loss"])
            value[cell] = saved
            numerical[cell] = (up - down) / (2 * h)
        np.testing.assert_allclose(grads[name], numerical, rtol=1e-6, atol=1e-8, err_msg=name)
    # samples as (batch, channels, height, width) or as rows of entries: the same numbers
    assert net.loss(params, X.reshape(4, -1), Y) == loss


def test_max_pooling_passes_delta_to_the_first_maximum_of_each_window():
    """Ties: a window of equal entries sends all of δ to its first entry in row-major order (PyTorch's rule; NumPy's
    argmax is the reference).  A 1×2 kernel [1, 0] makes z = X without its last column, so the kernel's second
    weight sees the right neighbour of the entry δ reached: that tells the tied entries apart."""
    model = sn.Sequential([sn.Conv2D(1, 1, kernel_size=(1, 2)), sn.MaxPool2D(2), sn.Flatten(), sn.Dense(4, 1)],
                          loss="mse", input_shape=(1, 4, 5))
    net = model.compile()
    params = net.init(seed=0)
    params["W1"][...] = [[[[1.0, 0.0]]]]
    params["W4"][...] = [[1.0, 2.0, 3.0, 4.0]]
    X = np.array([[1, 1, 0, 0, 7], [1, 1, 0, 0, 0], [2, 2, 5, 1, 0], [0, 2, 5, 5, 3]], dtype=float)
    z = X[:, :4]
    windows = [(y, x) for y in (0, 2) for x in (0, 2)]
    first = [np.unravel_index(np.argmax(z[y:y + 2, x:x + 2]), (2, 2)) for y, x in windows]
    pooled = np.array([z[y + u, x + v] for (y, x), (u, v) in zip(windows, first)])
    output = pooled @ [1.0, 2.0, 3.0, 4.0]
    assert net.predict(params, X[None, None])[0, 0] == pytest.approx(output, rel=1e-15)
    upstream = output * np.array([1.0, 2.0, 3.0, 4.0])       # ∂(½ output²)/∂pooled
    neighbour = sum(d * X[y + u, x + v + 1] for d, (y, x), (u, v) in zip(upstream, windows, first))
    last = [(1 - np.argmax(z[y:y + 2, x:x + 2][::-1, ::-1]) // 2, 1 - np.argmax(z[y:y + 2, x:x + 2][::-1, ::-1]) % 2)
            for y, x in windows]
    assert neighbour != sum(d * X[y + u, x + v + 1] for d, (y, x), (u, v) in zip(upstream, windows, last))
    _, grads = net.loss_and_grad(params, X[None, None], np.zeros((1, 1)))
    assert grads["W1"][0, 0, 0, 1] == pytest.approx(neighbour, rel=1e-15)
    np.testing.assert_allclose(grads["W4"], [output * pooled], rtol=1e-15)


def test_shapes_parameters_and_initialisation():
    model = sn.Sequential([sn.Conv2D(1, 8, kernel_size=3, padding=1, activation="relu"), sn.Flatten(),
                           sn.Dense(512, 10)], loss="softmax_cross_entropy", input_shape=(1, 8, 8))
    assert model.describe() == "1×8×8-8×8×8-512-10 (relu, identity, identity; softmax_cross_entropy)"
    params = model.compile().init(seed=0)
    assert {name: params[name].shape for name in params} == {"W1": (8, 1, 3, 3), "b1": (8,), "W3": (10, 512),
                                                             "b3": (10,)}
    # He initialisation from the kernel's fan-in: 1 channel × 3 × 3
    assert np.std(params["W1"]) == pytest.approx(np.sqrt(2 / 9), rel=0.3)
    assert not params["b1"].any()


def test_bad_configurations_say_what_is_wrong():
    with pytest.raises(ConfigurationError, match="larger than the padded input"):
        sn.Sequential([sn.Conv2D(1, 2, kernel_size=5), sn.Flatten(), sn.Dense(2, 1)], input_shape=(1, 3, 3))
    with pytest.raises(ConfigurationError, match=r"put sn.Flatten\(\) before it \(it takes 72 then\)"):
        sn.Sequential([sn.Conv2D(1, 2, kernel_size=3), sn.Dense(72, 1)], input_shape=(1, 8, 8))
    with pytest.raises(ConfigurationError, match=r"takes 100 inputs but layer 2 \(Flatten\(\)\) gives 72"):
        sn.Sequential([sn.Conv2D(1, 2, kernel_size=3), sn.Flatten(), sn.Dense(100, 1)], input_shape=(1, 8, 8))
    with pytest.raises(ConfigurationError, match="input_shape"):
        sn.Sequential([sn.Conv2D(1, 2, kernel_size=3), sn.Flatten(), sn.Dense(72, 1)])
    with pytest.raises(ConfigurationError, match="channels"):
        sn.Sequential([sn.Conv2D(3, 2, kernel_size=3), sn.Flatten(), sn.Dense(72, 1)], input_shape=(1, 8, 8))
    with pytest.raises(ConfigurationError, match="kernel_size must be an integer"):
        sn.Conv2D(1, 2, kernel_size=2.5)
    with pytest.raises(ConfigurationError, match="padding must be an integer ≥ 0"):
        sn.Conv2D(1, 2, kernel_size=3, padding=-1)
    assert repr(sn.MaxPool2D(2)) == "MaxPool2D(kernel_size=2)"
    assert repr(sn.AvgPool2D((2, 3), stride=1)) == "AvgPool2D(kernel_size=(2, 3), stride=1)"
    assert repr(sn.Conv2D(1, 2, 3, stride=2, padding=(1, 0))) == \
        "Conv2D(1, 2, kernel_size=3, stride=2, padding=(1, 0), activation='identity')"
    with pytest.raises(ConfigurationError, match="larger than the padded input"):
        sn.Sequential([sn.MaxPool2D(3), sn.Flatten(), sn.Dense(1, 1)], input_shape=(2, 2, 5))
    with pytest.raises(ConfigurationError, match="the loss takes vectors"):
        sn.Sequential([sn.Conv2D(1, 2, kernel_size=3)], input_shape=(1, 8, 8))
    net = sn.Sequential([sn.Conv2D(1, 2, kernel_size=3), sn.Flatten(), sn.Dense(72, 1)],
                        input_shape=(1, 8, 8)).compile()
    with pytest.raises(ShapeError, match=r"X must have shape \(batch, 1, 8, 8\)"):
        net.predict(net.init(), np.zeros((2, 8, 8)))


def test_derived_backward_pass_is_the_textbook_convolution():
    """The kernel's gradient is a correlation of the input with δ, the input's δ a full convolution of δ with the
    flipped kernel; each with the guards that keep its indices inside the arrays."""
    L = sn.layers
    vjps = symbolic_vjps(sn.Conv2D(2, 3, kernel_size=3, padding=1))
    c, y, x, n, p, q, r, t = (L.index(name) for name in "cyxnpqrt")
    row, column = p - D.S_H * y + D.P_H, t - D.S_W * x + D.P_W
    indices, expr = vjps[L.a]                    # δ_in[r, q, p, t] = Σ_{c,y,x} W[c, q, p − s·y + pad, …] δ[r, c, y, x]
    expected = sp.Sum(sn.Conv2D.W[c, q, row, column] * L.delta[r, c, y, x] * L.InRange(row, 0, D.KH - 1)
                      * L.InRange(column, 0, D.KW - 1), (c, 0, D.C_OUT - 1), (y, 0, D.H_OUT - 1), (x, 0, D.W_OUT - 1))
    assert indices == (r, q, p, t)
    assert expr == expected
    indices, expr = vjps[sn.Conv2D.W]            # Σ_{n,y,x} a[n, q, s·y + r − pad, …] δ[n, p, y, x]
    row, column = D.S_H * y + r - D.P_H, D.S_W * x + t - D.P_W
    expected = sp.Sum(L.a[n, q, row, column] * L.delta[n, p, y, x] * L.InRange(row, 0, D.H_IN - 1)
                      * L.InRange(column, 0, D.W_IN - 1), (n, 0, L.N - 1), (y, 0, D.H_OUT - 1), (x, 0, D.W_OUT - 1))
    assert indices == (p, q, r, t)
    assert expr == expected


def test_latex_prints_the_derived_convolution():
    model = sn.Sequential([sn.Conv2D(1, 2, kernel_size=3, padding=1, activation="tanh"), sn.Flatten(),
                           sn.Dense(32, 2)], loss="mse", input_shape=(1, 4, 4))
    text = model.latex()
    assert r"{z_{1}}_{n,c,y,x} = {b_{1}}_{c} + \sum" in text
    assert r"\left[0 \le u + y - 1 \le 3\right]" in text             # the padding guard, an Iverson bracket
    assert r"\frac{\partial L}{\partial {W_{1}}_{p,q,r,t}} = \sum" in text
    assert "{X}_{n,q,r + y - 1,t + x - 1} {\\delta_{1}}_{n,p,y,x}" in text   # a correlation of the input with δ
