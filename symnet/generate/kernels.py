"""Elementary functions written out for generated network modules, so that LLVM can vectorise the loops.

A loop that calls libm's ``exp`` or ``tanh`` runs one element at a time (about
4 and 10–15 ns each here; Numba has no SVML on these machines).  The kernels
below compute them in plain arithmetic that LLVM turns into AVX2 vector code,
within 1 ulp of the exact value (tested against mpmath):

* :data:`EXP`: e^y = 2^k · e^r with y = k ln 2 + r, |r| ≤ ln 2 / 2, e^r by its
  Taylor polynomial.  k is found by the round-to-integer trick (adding
  1.5·2^52) and 2^k is built from its bits, so no float ↔ int64 conversion —
  which AVX2 lacks — is needed.  About 0.9 ns per value against 4.3 for libm.
* :data:`TANH`: a rational approximation near 0 and 1 − 2/(e^{2|x|} + 1)
  elsewhere (libm's tanh is 2 ulp).

Generated float64 modules include the text of the kernels they call
(:func:`texts_for`); float32 modules call libm.  :data:`FINITE` is the input
check every module uses.
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

KERNELS = {"exp": (EXP, ()), "tanh": (TANH, ("exp",)), "finite": (FINITE, ())}
"""Function name → (source, names of the kernels that source calls)."""


def texts_for(text):
    """The kernel sources that ``text`` (a module body) calls, each once, callees first."""
    wanted, order = [name for name in KERNELS if f"_{name}(" in text], []

    def add(name):
        for callee in KERNELS[name][1]:
            add(callee)
        if name not in order:
            order.append(name)

    for name in wanted:
        add(name)
    return [KERNELS[name][0] for name in order]
