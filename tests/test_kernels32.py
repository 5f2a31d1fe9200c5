"""The float32 exp and tanh kernels emitted into float32 modules, against mpmath rounded to float32."""

import math

import mpmath
import numba
import numpy as np

from symnet.generate import kernels
from symnet.generate.network import JIT


def compiled(name):
    """out[i] = _name(x[i]) over a float32 array, compiled as generated modules compile it (no cache here)."""
    namespace = {"math": math, "numba": numba, "np": np}
    loop = f"{JIT}\ndef apply(x, out):\n    for i in range(x.shape[0]):\n        out[i] = _{name}(x[i])\n"
    exec(("\n".join(kernels.texts_for([name])) + "\n" + loop).replace("cache=True, ", ""), namespace)
    return namespace["apply"]


def run(name, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    compiled(name)(x, out)
    assert out.dtype == np.float32
    return x, out


def ulps_from_exact(x, out, exact_function):
    """|out − exact| in float32 units in the last place of the exact value (2^−149 below the normal range)."""
    with mpmath.workdps(30):
        exact = [exact_function(mpmath.mpf(float(v))) for v in x]
    exponents = np.array([mpmath.frexp(e)[1] if e != 0 else -200 for e in exact])   # |e| = m·2^p, m in [0.5, 1)
    ulp = np.ldexp(1.0, np.maximum(exponents - 24, -149))
    with mpmath.workdps(30):
        errors = [float(abs(mpmath.mpf(float(o)) - e)) for o, e in zip(out, exact)]
    return np.array(errors) / ulp


def dense(low, high, count, seed):
    """``count`` evenly spaced float32 values in [low, high], random ones around 0 and many tiny magnitudes."""
    rng = np.random.default_rng(seed)
    return np.concatenate([np.linspace(low, high, count), rng.normal(0, 3, count // 4), np.logspace(-40, 0, 2000),
                           -np.logspace(-40, 0, 2000)]).astype(np.float32)


def test_exp32_kernel_is_within_one_ulp_over_its_whole_range():
    x = np.concatenate([dense(-104, 89, 40001, 1),
                        np.float32([88.72, 88.7228, -87.33, -87.34, -103.27, -103.97, 0.5 * math.log(2), -0.34657])])
    x, out = run("exp32", x)
    finite = x < np.float32(88.72283)    # ln of the largest float32
    ulps = ulps_from_exact(x[finite], out[finite], mpmath.exp)
    assert ulps.max() <= 1.0, (x[finite][np.argmax(ulps)], ulps.max())
    assert np.all(out[~finite] == np.inf)
    assert np.any((out > 0) & (out < np.finfo(np.float32).tiny))   # subnormal results were checked too


def test_exp32_kernel_special_values():
    last_finite = np.float32(88.72283)   # the largest float32 below ln(float32 max) = 88.722839...
    smallest = np.float32(2.0**-149)
    first_zero = np.float32(-103.9720993)   # e^x < smallest / 2 from here down (ln(2^−150) = −103.9720771...)
    x, out = run("exp32", [np.inf, -np.inf, np.nan, 0.0, -0.0, 3e38, -3e38, 88.73, -104.0, last_finite,
                           np.nextafter(last_finite, np.float32(np.inf)), first_zero,
                           np.float32(-103.9720764)])
    assert out[0] == np.inf and out[1] == 0.0 and np.isnan(out[2]) and out[3] == 1.0 and out[4] == 1.0
    assert out[5] == np.inf and out[6] == 0.0 and out[7] == np.inf and out[8] == 0.0
    assert out[9] == np.float32(mpmath.exp(float(last_finite))) and out[10] == np.inf
    assert out[11] == 0.0 and out[12] == smallest


def test_tanh32_kernel_is_within_one_ulp_everywhere():
    x = np.concatenate([dense(-12, 12, 40001, 0), np.logspace(-40, 1.5, 1000), -np.logspace(-40, 1.5, 1000),
                        np.float32([1.0, -1.0, np.nextafter(np.float32(1), np.float32(0)), 0.99, 9.0, 9.02, 10.5])])
    x, out = run("tanh32", x)
    ulps = ulps_from_exact(x, out, mpmath.tanh)
    assert ulps.max() <= 1.0, (x[np.argmax(ulps)], ulps.max())


def test_tanh32_kernel_special_values():
    x, out = run("tanh32", [np.inf, -np.inf, np.nan, 0.0, -0.0, 3e38, -3e38, 1e-45, 20.0])
    assert out[0] == 1.0 and out[1] == -1.0 and np.isnan(out[2]) and out[3] == 0.0
    assert out[4] == 0.0 and math.copysign(1, out[4]) == -1
    assert out[5] == 1.0 and out[6] == -1.0 and out[7] == np.float32(1e-45) and out[8] == 1.0


def test_kernel_names_do_not_find_each_other():
    for name in kernels.KERNELS:
        called = f"x = _{name}(y)"
        assert [k for k in kernels.KERNELS if f"_{k}(" in called] == [name]


def test_generated_float32_modules_use_the_float32_kernels():
    import symnet as sn

    single = sn.Sequential([sn.Dense(2, 8, "tanh"), sn.Dense(8, 1)], loss="mse").compile(dtype="float32")
    text = single.path.read_text()
    assert "def _tanh32(x):" in text and "_tanh32(z)" in text and "math.tanh" not in text and "def _tanh(" not in text
    assert text.index("def _exp32_parts(c):") < text.index("def _tanh32(x):")
    sigmoid = sn.Sequential([sn.Dense(2, 8, "sigmoid"), sn.Dense(8, 1)], loss="mse").compile(dtype="float32")
    text = sigmoid.path.read_text()
    assert "_exp32(-z)" in text and "math.exp" not in text and "def _tanh32" not in text
    softmax = sn.Sequential([sn.Dense(4, 3, "sigmoid"), sn.Dense(3, 3)], loss="softmax_cross_entropy")
    text = softmax.compile(dtype="float32").path.read_text()
    assert "math.exp(-z)" in text and "term0_flat[q] = _exp32(term0_flat[q])" in text   # narrow loop: libm
