"""Elementary functions written out for generated network modules, so that LLVM can vectorise the loops.

A loop that calls libm's ``exp`` or ``tanh`` runs one element at a time (Numba
has no SVML on these machines; timings in docs/performance.md).  The kernels
below compute them in plain arithmetic that LLVM turns into AVX2 vector code,
within 1 ulp of the exact value (tested against mpmath):

* :data:`EXP`: e^y = 2^k · e^r with y = k ln 2 + r, |r| ≤ ln 2 / 2, e^r by its
  Taylor polynomial.  k is found by the round-to-integer trick (adding
  1.5·2^52) and 2^k is built from its bits, so no float ↔ int64 conversion —
  which AVX2 lacks — is needed.
* :data:`TANH`: a rational approximation near 0 and 1 − 2/(e^{2|x|} + 1)
  elsewhere (libm's tanh is 2 ulp).
* :data:`EXP32` and :data:`TANH32`, the same in float32 arithmetic only (every
  constant ``np.float32``, 2^k built from int32 bits), so that LLVM's vectors
  hold twice as many values; within 1 ulp of float32, which takes a little
  more care: the rounding error of the reduced argument is carried, and tanh
  keeps e^{2|x|} + 1 as an unevaluated sum of two floats.

Generated modules include the text of the kernels they call (:func:`texts_for`);
:func:`kernel_name` is the kernel a module of a dtype calls for exp or tanh.
:data:`FINITE` is the input check every module uses.
"""

EXP = '''

LN2_HIGH = 6.93147180369123816490e-01     # ln 2 split in two: k·LN2_HIGH is exact for |k| < 2^11
LN2_LOW = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00
ROUND = 6755399441055744.0                 # 1.5·2^52: t + ROUND rounds t to an integer, held in the low bits
ROUND_BITS = np.float64(ROUND).view(np.int64)


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _exp(y):
    """e^y in plain arithmetic (vectorisable; ≤ 1 ulp, subnormal results included):
    y = k ln 2 + r with k = round(y / ln 2), |r| ≤ ln 2 / 2; e^r by its Taylor polynomial to r^13 (error < 1e-17);
    2^k = 2^k1 · 2^k2 (k1 clamped to the normal exponents, k2 = k − k1) made from their bits.
    y is first clamped to [−746, 710], where e^y is already 0 or inf; NaN stays NaN."""
    c = min(max(y, -746.0), 710.0)
    t = c * INV_LN2 + ROUND
    k_float = t - ROUND
    k = np.float64(t).view(np.int64) - ROUND_BITS
    r = (c - k_float * LN2_HIGH) - k_float * LN2_LOW
    p = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (
        1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
            1 / 479001600 + r * (1 / 6227020800)))))))))))))
    k1 = min(max(k, np.int64(-1022)), np.int64(1023))
    scale1 = np.int64((k1 + 1023) << 52).view(np.float64)
    scale2 = np.int64((k - k1 + 1023) << 52).view(np.float64)
    return p * scale1 * scale2 if y == y else y
'''
"""Source of ``_exp`` as it appears in generated modules (which import math, numba and numpy as np)."""

TANH = '''

@numba.njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _tanh(x):
    """tanh(x) in plain arithmetic (vectorisable; ≤ 1 ulp):
    |x| < 0.625: x + x³·P(x²)/Q(x²) (Cephes' rational approximation);
    otherwise ±(1 − 2/(e^{2|x|} + 1)) with |x| capped at 20 (tanh = ±1 in float64)."""
    a = min(abs(x), 20.0)
    far = math.copysign(1.0 - 2.0 / (_exp(2.0 * a) + 1.0), x)
    s = x * x
    P = (-9.64399179425052238628e-1 * s - 9.92877231001918586564e1) * s - 1.61468768441708447952e3
    Q = ((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s + 4.84406305325125486048e3
    near = x + x * s * P / Q
    return near if a < 0.625 else far
'''
"""Source of ``_tanh`` (which calls ``_exp``) as it appears in generated modules."""

EXP32 = '''

LN2_HIGH32 = np.float32(0.693145751953125)   # ln 2 to 15 bits: k·LN2_HIGH32 is exact for |k| < 2^9
LN2_LOW32 = np.float32(1.428606765330187e-06)
INV_LN2_32 = np.float32(1.4426950408889634)
ROUND32 = np.float32(12582912.0)             # 1.5·2^23: t + ROUND32 rounds t to an integer, held in the low bits
ROUND32_BITS = np.float32(ROUND32).view(np.int32)


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _exp32_parts(c):
    """k (int) and m with e^c = 2^k·(1 + m) in float32, for |c| < 150 (not NaN): c = k ln 2 + r, |r| ≤ ln 2 / 2, with
    the rounding error of r carried into m; e^r − 1 by its Taylor polynomial to r^8 (error < 0.01 ulp)."""
    t = c * INV_LN2_32 + ROUND32
    k_float = t - ROUND32
    k = np.float32(t).view(np.int32) - ROUND32_BITS
    r_high = c - k_float * LN2_HIGH32
    r = r_high - k_float * LN2_LOW32
    error = (r_high - r) - k_float * LN2_LOW32
    q = r * r * (np.float32(1 / 2) + r * (np.float32(1 / 6) + r * (np.float32(1 / 24) + r * (np.float32(1 / 120) + r * (
        np.float32(1 / 720) + r * (np.float32(1 / 5040) + r * np.float32(1 / 40320)))))))
    return k, r + (q + error)


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _exp32(y):
    """e^y in float32 arithmetic (vectorisable; ≤ 1 ulp, subnormal results included): (1 + m)·2^k1·2^k2 from
    :func:`_exp32_parts`, k1 clamped to the normal exponents.  y is first clamped to [−104, 89], where e^y is already
    0 or inf in float32; NaN stays NaN."""
    k, m = _exp32_parts(min(max(y, np.float32(-104.0)), np.float32(89.0)))
    k1 = min(max(k, -126), 127)
    scale1 = np.int32((k1 + 127) << 23).view(np.float32)
    scale2 = np.int32((k - k1 + 127) << 23).view(np.float32)
    return (np.float32(1.0) + m) * scale1 * scale2 if y == y else y
'''
"""Source of ``_exp32_parts`` and ``_exp32``, the float32 exp (the module imports math, numba and numpy as np)."""

TANH32 = '''

@numba.njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _tanh32(x):
    """tanh(x) in float32 arithmetic (vectorisable; ≤ 1 ulp):
    ±tanh(a), a = |x| capped at 10 (tanh = 1 in float32): a < 1: a + a·s·P(s), s = a², P of degree 7 fitted to tanh's
    relative error (< 0.01 ulp); otherwise 1 − q, q = 2/D to first order in d_low, where D = e^{2a} + 1 = d_high + d_low
    (an exact sum: 2^k·m is exact, and d_low is the rounding error of d_high)."""
    a = min(abs(x), np.float32(10.0))
    k, m = _exp32_parts(np.float32(2.0) * a)
    scale = np.int32((k + 127) << 23).view(np.float32)
    d_high = (scale + np.float32(1.0)) + scale * m
    d_low = ((scale + np.float32(1.0)) - d_high) + scale * m
    q = np.float32(2.0) / d_high
    far = np.float32(1.0) - (q - np.float32(0.5) * q * q * d_low)
    s = a * a
    P = ((((((np.float32(0.00011620864) * s + np.float32(-0.000821204)) * s + np.float32(0.0030481236)) * s
             + np.float32(-0.008571074)) * s + np.float32(0.021774355)) * s + np.float32(-0.053950716)) * s
         + np.float32(0.13333175)) * s + np.float32(-0.33333328)
    near = a + a * (s * P)
    return math.copysign(near if a < np.float32(1.0) else far, x)
'''
"""Source of ``_tanh32`` (which calls ``_exp32_parts``)."""

FINITE = '''

@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _finite(values):
    """True when no element of the 2-D array is NaN or ±inf: x − x is 0 exactly for finite x and NaN otherwise,
    and an OR over the rows is a reduction LLVM vectorises (a sum would have to keep its order)."""
    bad = False
    for row in range(values.shape[0]):
        for column in range(values.shape[1]):
            bad |= values[row, column] - values[row, column] != 0
    return not bad
'''
"""Source of ``_finite``, the input check at the start of a generated module's functions."""

KERNELS = {"exp": (EXP, ()), "tanh": (TANH, ("exp",)), "exp32": (EXP32, ()), "tanh32": (TANH32, ("exp32",)),
           "finite": (FINITE, ())}
"""Function name → (source, names of the kernels that source calls); ``exp32`` stands for the ``_exp32_parts`` and
``_exp32`` of its source (a module calling only ``_exp32_parts`` is one that calls ``_tanh32``, which brings it)."""
FUNCTIONS = ("exp", "tanh")
"""The SymPy functions that have kernels."""


def kernel_name(function, dtype):
    """The kernel that computes ``function`` (one of :data:`FUNCTIONS`) in modules of ``dtype``."""
    return function if dtype == "float64" else f"{function}32"


def texts_for(names):
    """The sources of the kernels ``names`` (those a module calls, as its printer and writer recorded them), each
    once, callees first, in a fixed order."""
    wanted, order = [name for name in KERNELS if name in set(names)], []

    def add(name):
        for callee in KERNELS[name][1]:
            add(callee)
        if name not in order:
            order.append(name)

    for name in wanted:
        add(name)
    return [KERNELS[name][0] for name in order]
