"""The one measure of time symnet reports: the median of repeated calls (the machines are shared and noisy)."""

import statistics
import time


def median_seconds(function, budget=0.5, least=20, most=2000):
    """Median wall time of ``function()`` after one warm-up call: ``least`` calls at least, then more while
    ``budget`` seconds last, ``most`` at most."""
    function()
    times = []
    started = time.perf_counter()
    while len(times) < least or (time.perf_counter() - started < budget and len(times) < most):
        begin = time.perf_counter()
        function()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)
