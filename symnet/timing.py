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


def interleaved_medians(functions, rounds=5, budget=0.1, pause=0.0):
    """``{name: seconds}`` for ``{name: function}``, timed in turns: each of ``rounds`` rounds takes
    :func:`median_seconds` of every function (``budget`` seconds each, after ``pause`` idle seconds), and each
    result is the median over the rounds.  A slow phase of a shared machine then falls on all of them alike, so
    their ratios hold; the pause lets the worker threads of the function before go to sleep (PyTorch's and
    OpenBLAS's spin for a while after each call and would take cores from the next)."""
    samples = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            time.sleep(pause)
            samples[name].append(median_seconds(function, budget))
    return {name: statistics.median(values) for name, values in samples.items()}
