"""Check a compiled network's gradient against finite differences of its loss, like PyTensor's ``verify_grad``
and PyTorch's ``gradcheck``.

>>> result = sn.check_gradient(net, params, X, Y)
>>> result.ok, result.max_abs_error
>>> print(result)                                  # a table: parameter, shape, errors, worst index

The compiled gradient g comes from ``net.loss_and_grad``; the numerical one ĝ from ``net.loss`` alone, one
coordinate θ_k at a time.  ``net.loss`` runs the same generated forward pass, but none of the derived
back-propagation, so a wrong derivative anywhere in it shows up as a disagreement.
"""

import math
from dataclasses import dataclass

import numpy as np

from symnet.errors import ConfigurationError, DifferentiationError, NonFiniteError, quoted
from symnet.network import CompiledNetwork, Parameters

METHODS = ("central", "richardson")
SAMPLE_LIMIT = 2000     # networks with more parameters are checked on a seeded sample of this many coordinates
SAMPLE_SEED = 0
NOISE_SEED = 0          # the training mode (dropout masks, batch statistics) checked when no noise_seed is given

# (rtol, atol) by dtype.  float64: central differences at h = ε^(1/3) are good to about 1e-10 on losses of
# order 1.  float32: the loss itself is only good to a few ulps (1e-7 relative) and the best central difference
# to about 1e-5 absolute, 1e-2 relative on small entries (measured on a 3-5-4 tanh network).
TOLERANCES = {"float64": (1e-6, 1e-9), "float32": (1e-2, 1e-3)}
# h = ε^(1/order) · max(1, |θ_k|) balances truncation (h², resp. h⁴) against rounding (ε·|L|/h).
STEP_ORDERS = {"central": 3, "richardson": 5}
STEP_TEXT = {"central": "ε^(1/3)", "richardson": "ε^(1/5)"}


@dataclass(frozen=True)
class ParameterCheck:
    """One parameter's row of a :class:`GradientCheck`: its worst coordinate by the tolerance test."""

    name: str
    shape: tuple
    checked: int              # coordinates of this parameter that were checked
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple        # index into the parameter's array, e.g. (3, 1) for W1[3, 1]
    worst_ratio: float        # |g − ĝ| / (atol + rtol·|ĝ|) there; ≤ 1 passes


@dataclass(frozen=True, eq=False)
class GradientCheck:
    """The result of :func:`check_gradient`; ``bool(result)`` is :attr:`ok` and ``str(result)`` the report.

    ``indices`` are the flat coordinates checked (into ``params.flat``), ``analytic`` (g) and ``numerical`` (ĝ)
    the two gradients there and ``steps`` the half-width h actually used for each (as represented in the
    network's dtype).  Relative errors are |g − ĝ| / max(|g|, |ĝ|), 0 where both are 0.
    """

    ok: bool
    method: str
    dtype: str
    rtol: float
    atol: float
    step_rule: str                      # how h was chosen, e.g. "ε^(1/3)·max(1, |θ_k|)" or "eps = 1e-05"
    max_abs_error: float
    max_rel_error: float
    max_ratio: float                    # largest |g − ĝ| / (atol + rtol·|ĝ|); the check passes when ≤ 1
    worst_parameter: str
    worst_index: tuple
    parameters: dict                    # name → ParameterCheck, in the network's layout order
    checked: int
    total: int
    indices: np.ndarray
    analytic: np.ndarray
    numerical: np.ndarray
    steps: np.ndarray
    noise_seed: object                  # the seed that fixed the dropout masks, or None without dropout
    notes: tuple                        # what the check chose on its own (sample, noise seed)

    def __bool__(self):
        return self.ok

    def __str__(self):
        names = {"central": "central differences", "richardson": "Richardson extrapolation of central differences"}
        verdict = "passed" if self.ok else "FAILED"
        lines = [f"gradient check {verdict}: {names[self.method]}, {self.dtype}, "
                 f"{self.checked:,} of {self.total:,} coordinates",
                 f"  g = net.loss_and_grad (compiled), ĝ = numerical from net.loss; "
                 f"h = {self.step_rule} ({_span(self.steps)})",
                 f"  test |g − ĝ| ≤ atol + rtol·|ĝ|, rtol = {self.rtol:g}, atol = {self.atol:g}: worst "
                 f"{self.worst_parameter}{list(self.worst_index)} at {self.max_ratio:.3g} × its tolerance"]
        lines += [f"  {note}" for note in self.notes]
        header = ("parameter", "shape", "checked", "max abs err", "max rel err", "worst index", "× tolerance")
        rows = [header] + [(row.name, str(row.shape), f"{row.checked:,}", f"{row.max_abs_error:.2e}",
                            f"{row.max_rel_error:.2e}", str(row.worst_index), f"{row.worst_ratio:.3g}")
                           for row in self.parameters.values()]
        widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
        lines.append("")
        for row in rows:
            lines.append("  ".join(cell.ljust(w) if c < 2 else cell.rjust(w)
                                   for c, (cell, w) in enumerate(zip(row, widths))).rstrip())
        return "\n".join(lines)


def check_gradient(net, params, X, Y, *, method="central", eps=None, rtol=None, atol=None, noise_seed=None,
                   indices=None, raise_on_failure=False):
    r"""Compare ``net.loss_and_grad``'s gradient g with a numerical gradient ĝ from ``net.loss`` alone.

    Per checked coordinate θ_k, with e_k the k-th unit vector:

    .. math::

        \text{central:}\quad C(h) = \frac{L(\theta + h e_k) - L(\theta - h e_k)}{2h}, \quad
            \text{error } O(h^2)

        \text{richardson:}\quad \frac{4\,C(h/2) - C(h)}{3}, \quad \text{error } O(h^4)

    and the coordinate passes when :math:`|g_k - \hat g_k| \le \mathrm{atol} + \mathrm{rtol}\,|\hat g_k|`
    (numpy.isclose's test, with ĝ as the reference).

    ``eps`` is h itself; by default h = ε^(1/3)·max(1, |θ_k|) for central differences and ε^(1/5)·max(1, |θ_k|)
    for Richardson (ε the dtype's machine epsilon: 6.1e-6, resp. 7.4e-4 in float64), which balance the
    truncation error against rounding in L.  The divisor is the step as represented in the network's dtype,
    (θ_k + h) − (θ_k − h), not 2h.  ``rtol`` and ``atol`` default by dtype: float64 1e-6 and 1e-9; float32
    1e-2 and 1e-3, since a float32 loss is only good to about 1e-7 relative and so its differences to about 1e-5
    (check in float64 to find smaller errors: compile the same model with ``dtype="float64"``).

    ``indices``: which flat coordinates of ``params.flat`` to check: a sequence of integers, or an integer n for
    a seeded random sample of n; by default all when the network has at most 2000 parameters, else a seeded
    sample of 2000 that includes coordinates of every parameter (said in the report).  A network with Dropout
    is checked with one fixed mask: every loss evaluation uses ``noise_seed`` (0 when None is given, said in the
    report).  The complex step is not offered: the compiled loss computes in real numbers only.

    ``params`` is not changed (the check perturbs a copy).  Returns a :class:`GradientCheck`; with
    ``raise_on_failure=True`` a failed check raises :class:`~symnet.errors.DifferentiationError` with the report.
    """
    if not isinstance(net, CompiledNetwork):
        raise ConfigurationError(f"check_gradient needs a compiled network (model.compile()), got "
                                 f"{type(net).__name__}")
    if net.size == 0:
        raise ConfigurationError(f"this network has no parameters, so there is no gradient to check "
                                 f"({net.model.describe()})")
    method = _check_method(method)
    default_rtol, default_atol = TOLERANCES[str(net.dtype)]
    rtol = default_rtol if rtol is None else _nonnegative(rtol, "rtol")
    atol = default_atol if atol is None else _nonnegative(atol, "atol")
    if eps is not None:
        eps = _nonnegative(eps, "eps")
        if eps == 0:
            raise ConfigurationError("eps must be > 0: it is the finite-difference step h")
    if not isinstance(raise_on_failure, bool):
        raise ConfigurationError(f"raise_on_failure must be True or False, got {quoted(raise_on_failure)}")

    notes = []
    training_mode = net.model.training_mode
    net.noise(noise_seed)                                   # validates it
    if training_mode and noise_seed is None:
        noise_seed = NOISE_SEED
        fixed = "dropout masks fixed" if net.model.noisy else "checked in training mode (batch statistics)"
        notes.append(f"{fixed} by noise_seed = {NOISE_SEED} (none was given)")
    elif not training_mode:
        if noise_seed is not None:
            notes.append(f"noise_seed = {noise_seed} ignored: the network has no dropout")
        noise_seed = None

    theta = Parameters(net.pack(params).flat.copy(), net.layout)   # never the caller's array
    if not np.isfinite(theta.flat).all():
        name, index = _locate(net.layout, int(np.argmax(~np.isfinite(theta.flat))))
        raise NonFiniteError(f"params contain NaN or infinity (first {name}{list(index)}); "
                             "the gradient can only be checked at finite parameters")
    X, Y = net._inputs(X, Y)                                # converted and checked once, as the network does

    chosen, note = _coordinates(indices, net.layout, net.size)
    if note:
        notes.append(note)

    def loss():
        return float(net.loss(theta, X, Y, noise_seed))

    centre = loss()
    if not math.isfinite(centre):
        raise NonFiniteError(f"the loss at params is {centre}; the gradient can only be checked where it is finite")
    _, gradient = net.loss_and_grad(theta, X, Y, noise_seed)
    analytic = np.asarray(gradient.flat, dtype=np.float64)[chosen]

    machine_eps = float(np.finfo(net.dtype).eps)
    flat = theta.flat

    def central(k, original, h):
        """C(h) at coordinate k and the half-width as represented: ((θ_k + h) − (θ_k − h)) / 2."""
        flat[k] = original + h
        plus, up = loss(), float(flat[k])
        flat[k] = original - h
        minus, down = loss(), float(flat[k])
        flat[k] = original                                  # the exact original bits
        if up == down:
            name, index = _locate(net.layout, int(k))
            raise ConfigurationError(f"eps = {h:g} is below the resolution of {net.dtype} at {name}{list(index)} "
                                     f"= {float(original):g}; use a larger eps, or None for the default step")
        return (plus - minus) / (up - down), (up - down) / 2

    numerical, steps = np.empty(len(chosen)), np.empty(len(chosen))
    for position, k in enumerate(chosen):
        original = flat[k]
        h = eps if eps is not None else machine_eps ** (1 / STEP_ORDERS[method]) * max(1.0, abs(float(original)))
        estimate, half_width = central(k, original, h)
        if method == "richardson":
            # (h₁²·C(h₂) − h₂²·C(h₁)) / (h₁² − h₂²) with the represented half-widths; (4·C(h/2) − C(h))/3 if exact
            narrow, narrow_width = central(k, original, h / 2)
            estimate = (half_width**2 * narrow - narrow_width**2 * estimate) / (half_width**2 - narrow_width**2)
        numerical[position], steps[position] = estimate, half_width

    with np.errstate(invalid="ignore", divide="ignore"):
        errors = np.abs(analytic - numerical)
        errors[~np.isfinite(errors)] = np.inf               # a NaN anywhere fails, never passes by comparison
        scale = np.maximum(np.abs(analytic), np.abs(numerical))
        relative = np.where(errors == 0, 0.0, errors / scale)
        ratios = errors / (atol + rtol * np.abs(numerical))
        ratios[errors == 0] = 0.0
    rows = {}
    for name, start, stop, shape in net.layout:
        inside = np.flatnonzero((chosen >= start) & (chosen < stop))
        if inside.size:
            worst = inside[np.argmax(ratios[inside])]
            rows[name] = ParameterCheck(name, shape, int(inside.size), float(errors[inside].max()),
                                        float(relative[inside].max()), _locate(net.layout, int(chosen[worst]))[1],
                                        float(ratios[worst]))
    worst = int(np.argmax(ratios))
    worst_name, worst_index = _locate(net.layout, int(chosen[worst]))
    step_rule = f"eps = {eps:g}" if eps is not None else f"{STEP_TEXT[method]}·max(1, |θ_k|)"
    result = GradientCheck(
        ok=bool(np.all(ratios <= 1.0)), method=method, dtype=str(net.dtype), rtol=rtol, atol=atol,
        step_rule=step_rule, max_abs_error=float(errors.max()), max_rel_error=float(relative.max()),
        max_ratio=float(ratios[worst]), worst_parameter=worst_name, worst_index=worst_index, parameters=rows,
        checked=len(chosen), total=net.size, indices=chosen, analytic=analytic, numerical=numerical, steps=steps,
        noise_seed=noise_seed, notes=tuple(notes))
    if raise_on_failure and not result.ok:
        raise DifferentiationError(f"the compiled gradient disagrees with finite differences of the loss\n{result}")
    return result


def _check_method(method):
    if method == "complex":
        raise ConfigurationError("method 'complex' (the complex step) needs a loss that accepts complex "
                                 "parameters; the compiled loss computes in real numbers only. Use 'central' "
                                 "or 'richardson'")
    if method not in METHODS:
        raise ConfigurationError(f"unknown method {quoted(method)}; known: {', '.join(METHODS)}")
    return method


def _nonnegative(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{name} must be a finite number ≥ 0, got {quoted(value)}")
    return float(value)


def _locate(layout, k):
    """``(name, index tuple)`` of flat coordinate k."""
    for name, start, stop, shape in layout:
        if start <= k < stop:
            return name, tuple(int(i) for i in np.unravel_index(k - start, shape))
    raise IndexError(k)


def _coordinates(indices, layout, size):
    """The sorted flat coordinates to check and a note when they are a sample."""
    if indices is None:
        if size <= SAMPLE_LIMIT:
            return np.arange(size), None
        count = SAMPLE_LIMIT
    elif isinstance(indices, (int, np.integer)) and not isinstance(indices, bool):
        if indices < 1:
            raise ConfigurationError(f"indices as a sample size must be ≥ 1, got {indices}")
        if indices >= size:
            return np.arange(size), None
        count = int(indices)
    else:
        chosen = np.asarray(indices) if not isinstance(indices, (str, bytes)) else None
        if chosen is None or chosen.ndim != 1 or chosen.size == 0 \
                or not (np.issubdtype(chosen.dtype, np.integer) and chosen.dtype != np.bool_):
            raise ConfigurationError(f"indices must be a non-empty list of flat coordinates (integers into "
                                     f"params.flat) or a sample size, got {quoted(indices)}")
        if chosen.min() < 0 or chosen.max() >= size:
            raise ConfigurationError(f"indices must lie in [0, {size}) (params.flat has {size} entries), got "
                                     f"{int(chosen.min() if chosen.min() < 0 else chosen.max())}")
        return np.unique(chosen).astype(np.int64), None
    # a seeded sample: up to count // (2·arrays) coordinates of each parameter, the rest uniformly from the others
    rng = np.random.default_rng(SAMPLE_SEED)
    quota = max(1, count // (2 * len(layout)))
    picked = [start + rng.choice(stop - start, size=min(quota, stop - start), replace=False)
              for _, start, stop, _ in layout]
    picked = np.unique(np.concatenate(picked))[:count]
    rest = np.setdiff1d(np.arange(size), picked, assume_unique=True)
    picked = np.concatenate([picked, rng.choice(rest, size=count - picked.size, replace=False)])
    return np.sort(picked), (f"a seeded sample (seed {SAMPLE_SEED}) of {count:,} of {size:,} coordinates, "
                             f"including up to {quota:,} of every parameter")


def _span(steps):
    low, high = float(steps.min()), float(steps.max())
    return f"{low:.2g}" if np.isclose(low, high, rtol=0.05) else f"{low:.2g} … {high:.2g}"
