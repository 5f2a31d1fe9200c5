"""The vectorisable tanh emitted into generated modules, against mpmath at 40 digits."""

import math

import mpmath
import numba
import numpy as np

from symnet.generate import kernels
from symnet.generate.network import JIT


def compiled_tanh():
    """out[i] = _tanh(x[i]) compiled as generated modules compile it: the kernel's text, a loop under their JIT
    line (no file here, so no cache)."""
    namespace = {"math": math, "numba": numba, "np": np}
    loop = f"{JIT}\ndef apply(x, out):\n    for i in range(x.shape[0]):\n        out[i] = _tanh(x[i])\n"
    exec((kernels.TANH + "\n" + loop).replace("cache=True, ", ""), namespace)
    return namespace["apply"]


def test_tanh_kernel_is_within_one_ulp_everywhere():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-25, 25, 20001), rng.normal(0, 3, 20000), np.logspace(-300, 1.5, 2000),
                        -np.logspace(-300, 1.5, 2000), [0.625, -0.625, np.nextafter(0.625, 0), 0.6249, 19.9, 20.1]])
    out = np.empty_like(x)
    compiled_tanh()(x, out)
    with mpmath.workdps(40):
        exact = np.array([float(mpmath.tanh(mpmath.mpf(float(v)))) for v in x])
    ulps = np.abs(out - exact) / np.spacing(np.abs(exact))
    assert ulps.max() <= 1.0, (x[np.argmax(ulps)], ulps.max())


def test_tanh_kernel_special_values():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, 1e308, -1e308])
    out = np.empty_like(x)
    compiled_tanh()(x, out)
    assert out[0] == 1.0 and out[1] == -1.0 and np.isnan(out[2]) and out[3] == 0.0
    assert out[4] == 1.0 and out[5] == -1.0


def test_generated_float64_modules_use_the_kernel_and_float32_ones_libm():
    import symnet as sn

    model = sn.Sequential([sn.Dense(2, 3, "tanh"), sn.Dense(3, 1)], loss="mse")
    double = model.compile().path.read_text()
    single = model.compile(dtype="float32").path.read_text()
    assert "def _tanh(x):" in double and "_tanh(z)" in double and "math.tanh" not in double
    assert "_tanh" not in single and "math.tanh(z)" in single
