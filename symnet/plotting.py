"""Plotting helpers: matplotlib when it is installed (the ``plot`` extra), and NumPy functions of expressions."""

import numpy as np
import scipy.special
import sympy as sp


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def numpy_function(expr, variable):
    """``expr`` as a NumPy function of ``variable``, with H(0) = 0 and erf from SciPy (for plots and tables)."""
    return sp.lambdify(variable, expr, modules=[{"Heaviside": lambda x, h=0: np.heaviside(x, h),
                                                 "erf": scipy.special.erf}, "numpy"])
