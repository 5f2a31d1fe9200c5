"""The vectorisable exp and tanh emitted into generated modules, against mpmath at 40 digits."""

import math

import mpmath
import numba
import numpy as np

from symnet.generate import kernels
from symnet.generate.network import JIT


def compiled(name):
    """out[i] = _name(x[i]) compiled as generated modules compile it: the kernels' text, a loop under their JIT
    line (no file here, so no cache)."""
    namespace = {"math": math, "numba": numba, "np": np}
    loop = f"{JIT}\ndef apply(x, out):\n    for i in range(x.shape[0]):\n        out[i] = _{name}(x[i])\n"
    exec(("\n".join(kernels.texts_for([name])) + "\n" + loop).replace("cache=True, ", ""), namespace)
    return namespace["apply"]


def ulps_from_exact(x, out, exact_function):
    """|out − exact| in units of the last place of the exact value (subnormal spacing below 2^−1022)."""
    with mpmath.workdps(40):
        exact = np.array([float(exact_function(mpmath.mpf(float(v)))) for v in x])
    return np.abs(out - exact) / np.spacing(np.abs(exact))


def test_exp_kernel_is_within_one_ulp_over_its_whole_range():
    rng = np.random.default_rng(1)
    x = np.concatenate([np.linspace(-746, 710, 40001), rng.normal(0, 5, 20000), np.logspace(-300, 0, 2000),
                        -np.logspace(-300, 0, 2000), [709.78, -708.39, -708.4, -744.4, -745.13, 0.5 * math.log(2)]])
    exact_is_finite = x < 709.782712893384   # ln of the largest float64
    out = np.empty_like(x)
    compiled("exp")(x, out)
    ulps = ulps_from_exact(x[exact_is_finite], out[exact_is_finite], mpmath.exp)
    assert ulps.max() <= 1.0, (x[exact_is_finite][np.argmax(ulps)], ulps.max())
    assert np.all(out[~exact_is_finite] == np.inf)


def test_exp_kernel_special_values():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e308, -1e308, 709.79, -745.2])
    out = np.empty_like(x)
    compiled("exp")(x, out)
    assert out[0] == np.inf and out[1] == 0.0 and np.isnan(out[2]) and out[3] == 1.0 and out[4] == 1.0
    assert out[5] == np.inf and out[6] == 0.0 and out[7] == np.inf and out[8] == 0.0


def test_tanh_kernel_is_within_one_ulp_everywhere():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-25, 25, 20001), rng.normal(0, 3, 20000), np.logspace(-300, 1.5, 2000),
                        -np.logspace(-300, 1.5, 2000), [0.625, -0.625, np.nextafter(0.625, 0), 0.6249, 19.9, 20.1]])
    out = np.empty_like(x)
    compiled("tanh")(x, out)
    ulps = ulps_from_exact(x, out, mpmath.tanh)
    assert ulps.max() <= 1.0, (x[np.argmax(ulps)], ulps.max())


def test_tanh_kernel_special_values():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, 1e308, -1e308])
    out = np.empty_like(x)
    compiled("tanh")(x, out)
    assert out[0] == 1.0 and out[1] == -1.0 and np.isnan(out[2]) and out[3] == 0.0
    assert out[4] == 1.0 and out[5] == -1.0


def test_generated_float64_modules_use_the_kernels_and_float32_ones_their_own():
    import symnet as sn

    model = sn.Sequential([sn.Dense(2, 8, "tanh"), sn.Dense(8, 1)], loss="mse")
    double = model.compile().path.read_text()
    single = model.compile(dtype="float32").path.read_text()
    assert "def _tanh(x):" in double and "_tanh(z)" in double and "math.tanh" not in double
    assert double.index("def _exp(y):") < double.index("def _tanh(x):")   # the kernel tanh calls comes first
    assert "def _tanh(" not in single and "def _exp(" not in single and "_tanh32(z)" in single
    sigmoid = sn.Sequential([sn.Dense(2, 8, "sigmoid"), sn.Dense(8, 1)], loss="mse").compile().path.read_text()
    assert "_exp(-z)" in sigmoid and "math.exp" not in sigmoid and "def _tanh" not in sigmoid


def test_narrow_loops_call_libm_and_softmax_exps_run_flat_over_the_batch():
    import symnet as sn

    text = sn.Sequential([sn.Dense(4, 3, "sigmoid"), sn.Dense(3, 3)], loss="softmax_cross_entropy").compile().path.read_text()
    # three units: the activation loop would never reach LLVM's vector loop, so libm's exp is called there
    assert "1/(1 + math.exp(-z))" in text and "_exp(-z)" not in text
    # the softmax exps are evaluated in one loop over the batch × classes, with the kernel
    assert "term0_flat[q] = _exp(term0_flat[q])" in text and "def _exp(y):" in text
