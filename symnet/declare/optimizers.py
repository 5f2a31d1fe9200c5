"""Optimizers: each is a small object with state arrays and one update rule, written in SymPy.

The rule is a list of assignments over scalar symbols (θ the parameter, g
its batch-mean gradient, the optimizer's per-parameter state, its
hyper-parameters and the step count t); the code generator prints it as one
compiled loop over the flat parameter vector, fused into the training step.
Hyper-parameters are arguments of the generated step, so changing the
learning rate does not regenerate code.  Nesterov-type optimizers declare a
``lookahead`` point, θ + αv, where the gradient is evaluated.

The rules are those of the notes (SEEDS.md, Optimization), with Adam's bias
correction as it should be: 1 − ρ1^t and 1 − ρ2^t at step t (the notes divide
by 1 − ρ1 and 1 − ρ2).  ``notes()`` is each rule written as the notes write it
(Adam's bias-corrected moments ŝ and r̂ as steps of their own, the terms in the
notes' order); ``latex()`` and ``_repr_latex_`` (Jupyter) print that form,
and tests/test_repr.py proves it equal to ``rule()``.
"""

import math

import numpy as np
import sympy as sp

from symnet.errors import ConfigurationError
from symnet.latex import aligned, display, latex, text


def _real(name):
    return sp.Symbol(name, real=True)


theta, g = _real("theta"), _real("g")
v, r, s = _real("v"), _real("r"), _real("s")          # velocity, second-moment accumulator, first moment
t = sp.Symbol("t", positive=True)                     # step count, from 1
lr, momentum, decay, eps, beta1, beta2 = (_real(name) for name in ("lr", "momentum", "decay", "eps", "beta1", "beta2"))
damping, cg_iterations, cg_tolerance = _real("damping"), _real("cg_iterations"), _real("cg_tolerance")
p = _real("p")                                        # Newton-CG's step direction (shown only)
STEP = "step"
"""Name of the step-count state entry (an array of one float) of optimizers that count steps."""
g_squared = _real("g_squared")                       # g⊙g as the notes write it (shown only)
s_hat, r_hat = _real("s_hat"), _real("r_hat")        # Adam's bias-corrected moments (shown only)
NOTATION = {lr: r"\eta", momentum: r"\alpha", decay: r"\rho", beta1: r"\rho_{1}", beta2: r"\rho_{2}",
            eps: r"\epsilon", g_squared: r"g \odot g", s_hat: r"\hat{s}", r_hat: r"\hat{r}", damping: r"\lambda",
            cg_iterations: r"k_{\mathrm{CG}}", cg_tolerance: r"\tau_{\mathrm{CG}}"}
"""How the symbols are printed: the notes' letters (η the learning rate, α the momentum, ρ a decay rate)."""
SHOWN_ONLY = {g_squared: g * g}
"""Symbols of :meth:`Optimizer.notes` that stand for an expression of the rule's symbols."""


def _sum(*terms):
    """A sum printed in the order given (the notes' order)."""
    return sp.Add(*terms, evaluate=False)


def _product(*factors):
    """A product printed in the order given."""
    return sp.Mul(*factors, evaluate=False)


def _over(numerator, denominator):
    return _product(numerator, sp.Pow(denominator, -1, evaluate=False))


def _shown(expr):
    """LaTeX of a rule's expression in the notes' letters, its terms in the order they were built."""
    return latex(expr, symbol_names=NOTATION, order="none")


def _number(value):
    r"""A hyper-parameter's value in LaTeX: ``0.001``, ``10^{-7}``, ``2.5 \cdot 10^{-8}``."""
    shown = repr(float(value))
    if "e" not in shown:
        return shown
    mantissa, exponent = shown.split("e")
    power = f"10^{{{int(exponent)}}}"
    return power if mantissa in ("1", "1.0") else rf"{mantissa} \cdot {power}"


def _check(name, value, low=0.0, high=math.inf, low_open=True, high_open=True):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigurationError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


class Optimizer:
    """Base class.

    Subclasses set ``state`` (symbols of per-parameter arrays, zero at the
    start), ``hyperparameters`` (symbols whose values are attributes of the
    same name), ``lookahead`` (None, or the point where g is evaluated) and
    ``rule()`` (assignments applied in order to every parameter).  A rule
    that uses ``t`` makes the optimizer count steps.
    """

    state = ()
    hyperparameters = ()
    lookahead = None

    def __repr__(self):
        values = ", ".join(f"{h.name}={getattr(self, h.name)!r}" for h in self.hyperparameters)
        return f"{type(self).__name__}({values})"

    def __setattr__(self, name, value):
        # a compiled network copies the hyper-parameters into its step's scalars; the version tells it to copy
        # again after an assignment such as ``optimizer.lr = 0.001`` (a learning-rate schedule)
        object.__setattr__(self, name, value)
        if any(h.name == name for h in self.hyperparameters):
            object.__setattr__(self, "version", getattr(self, "version", 0) + 1)

    @property
    def counts_steps(self):
        """True when the rule uses the step count t (Adam's bias correction)."""
        return any(value.has(t) for _, value in self.rule())

    def rule(self):
        raise NotImplementedError

    def values(self):
        """Hyper-parameter values in the order of :attr:`hyperparameters`."""
        return [getattr(self, h.name) for h in self.hyperparameters]

    def buffer_names(self):
        """The arrays held in the generated step's ``work`` argument, in order, each as long as θ: the gradient,
        the look-ahead point (Nesterov-type optimizers), then the state arrays."""
        return ["gradient", *(["lookahead"] if self.lookahead is not None else []), *(s.name for s in self.state)]

    def scalar_names(self):
        """The generated step's ``scalars`` argument (float64), in order: the step count t, then the
        hyper-parameters."""
        return [STEP, *(h.name for h in self.hyperparameters)]

    def state_names(self):
        """Names of the state a checkpoint keeps: the state arrays, and ``step`` (t) if the rule uses it."""
        return [symbol.name for symbol in self.state] + ([STEP] if self.counts_steps else [])

    def definition(self):
        """Text identifying the rule for the content hash (hyper-parameter values excluded)."""
        return f"{type(self).__name__}:{self.rule()}:{self.lookahead}"

    def notes(self):
        """The rule as the notes write it: assignments in order, which may name intermediate values (Adam's ŝ,
        r̂) and use the symbols of :data:`SHOWN_ONLY`; equal to :meth:`rule` (tests/test_repr.py)."""
        return self.rule()

    def latex_rows(self):
        """The update of one step as the notes write it, as ``(target, value)`` LaTeX pairs: where the gradient g
        is evaluated, ``t ← t + 1`` when the rule counts steps, then :meth:`notes`."""
        point = theta if self.lookahead is None else _sum(theta, self.lookahead - theta)
        rows = [("g", rf"\nabla_{{\theta}} L\left({_shown(point)}\right)")]
        if self.counts_steps:
            rows.append(("t", "t + 1"))
        return rows + [(_shown(target), _shown(value)) for target, value in self.notes()]

    def latex(self):
        r""":meth:`latex_rows` as LaTeX lines ``target \leftarrow value``."""
        return [rf"{target} \leftarrow {value}" for target, value in self.latex_rows()]

    def latex_names(self):
        """``{hyper-parameter name: its LaTeX symbol}``, e.g. ``{"lr": "\\eta"}``, in the order of
        :attr:`hyperparameters`."""
        return {h.name: NOTATION.get(h) or latex(h) for h in self.hyperparameters}

    def latex_values(self):
        """The hyper-parameters' values in LaTeX, e.g. ``\\eta = 0.001``, in the order of :attr:`hyperparameters`."""
        return [f"{symbol} = {_number(getattr(self, name))}" for name, symbol in self.latex_names().items()]

    def _repr_latex_(self):
        rows = [(target, r"\leftarrow", value) for target, value in self.latex_rows()]
        rows.append((text(f"{type(self).__name__}:"), r"\quad", r",\ ".join(self.latex_values())))
        return display(aligned(rows))


class SGD(Optimizer):
    """Stochastic gradient descent on mini-batches: θ ← θ − η g."""

    hyperparameters = (lr,)

    def __init__(self, lr=0.01):
        self.lr = _check("lr", lr)

    def rule(self):
        return [(theta, theta - lr * g)]

    def notes(self):
        return [(theta, _sum(theta, -_product(lr, g)))]


class GD(SGD):
    """Gradient descent: the rule of SGD, used with the whole training set as one batch (``fit`` does so)."""

    full_batch = True


class Momentum(Optimizer):
    """Momentum: v ← αv − η g; θ ← θ + v."""

    state = (v,)
    hyperparameters = (lr, momentum)

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = _check("lr", lr)
        self.momentum = _check("momentum", momentum, 0.0, 1.0, low_open=False)

    def rule(self):
        return [(v, momentum * v - lr * g), (theta, theta + v)]

    def notes(self):
        return [(v, _sum(_product(momentum, v), -_product(lr, g))), (theta, _sum(theta, v))]


class Nesterov(Momentum):
    """Nesterov momentum: g evaluated at θ + αv; v ← αv − η g; θ ← θ + v."""

    lookahead = theta + momentum * v


class AdaGrad(Optimizer):
    """AdaGrad: r ← r + g⊙g; θ ← θ − η/(ε + √r) ⊙ g."""

    state = (r,)
    hyperparameters = (lr, eps)

    def __init__(self, lr=0.01, eps=1e-7):
        self.lr = _check("lr", lr)
        self.eps = _check("eps", eps)

    def rule(self):
        return [(r, r + g * g), (theta, theta - lr / (eps + sp.sqrt(r)) * g)]

    def notes(self):
        return [(r, _sum(r, g_squared)), (theta, _sum(theta, -_product(_over(lr, _sum(eps, sp.sqrt(r))), g)))]


class RMSProp(Optimizer):
    """RMSProp: r ← ρr + (1 − ρ) g⊙g; θ ← θ − η/(ε + √r) ⊙ g."""

    state = (r,)
    hyperparameters = (lr, decay, eps)

    def __init__(self, lr=0.001, decay=0.9, eps=1e-7):
        self.lr = _check("lr", lr)
        self.decay = _check("decay", decay, 0.0, 1.0, low_open=False)
        self.eps = _check("eps", eps)

    def rule(self):
        return [(r, decay * r + (1 - decay) * g * g), (theta, theta - lr / (eps + sp.sqrt(r)) * g)]

    def notes(self):
        return [(r, _sum(_product(decay, r), _product(_sum(1, -decay), g_squared))),
                (theta, _sum(theta, -_product(_over(lr, _sum(eps, sp.sqrt(r))), g)))]


class RMSPropNesterov(Optimizer):
    """RMSProp with Nesterov momentum: g at θ + αv; r ← ρr + (1 − ρ) g⊙g; v ← αv − η/(ε + √r) ⊙ g; θ ← θ + v."""

    state = (v, r)
    hyperparameters = (lr, decay, momentum, eps)
    lookahead = theta + momentum * v

    def __init__(self, lr=0.001, decay=0.9, momentum=0.9, eps=1e-7):
        self.lr = _check("lr", lr)
        self.decay = _check("decay", decay, 0.0, 1.0, low_open=False)
        self.momentum = _check("momentum", momentum, 0.0, 1.0, low_open=False)
        self.eps = _check("eps", eps)

    def rule(self):
        return [(r, decay * r + (1 - decay) * g * g), (v, momentum * v - lr / (eps + sp.sqrt(r)) * g),
                (theta, theta + v)]

    def notes(self):
        return [(r, _sum(_product(decay, r), _product(_sum(1, -decay), g_squared))),
                (v, _sum(_product(momentum, v), -_product(_over(lr, _sum(eps, sp.sqrt(r))), g))),
                (theta, _sum(theta, v))]


class Adam(Optimizer):
    """Adam: s ← ρ1 s + (1 − ρ1) g; r ← ρ2 r + (1 − ρ2) g⊙g;
    θ ← θ − η (s / (1 − ρ1^t)) / (ε + √(r / (1 − ρ2^t))), t the step count from 1."""

    state = (s, r)
    hyperparameters = (lr, beta1, beta2, eps)

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7):
        self.lr = _check("lr", lr)
        self.beta1 = _check("beta1", beta1, 0.0, 1.0, low_open=False)
        self.beta2 = _check("beta2", beta2, 0.0, 1.0, low_open=False)
        self.eps = _check("eps", eps)

    def rule(self):
        return [(s, beta1 * s + (1 - beta1) * g), (r, beta2 * r + (1 - beta2) * g * g),
                (theta, theta - lr * (s / (1 - beta1**t)) / (eps + sp.sqrt(r / (1 - beta2**t))))]

    def notes(self):
        """The notes' Adam with the bias correction at step t: ŝ = s/(1 − ρ1^t), r̂ = r/(1 − ρ2^t)."""
        return [(s, _sum(_product(beta1, s), _product(_sum(1, -beta1), g))),
                (r, _sum(_product(beta2, r), _product(_sum(1, -beta2), g_squared))),
                (s_hat, _over(s, _sum(1, -beta1**t))), (r_hat, _over(r, _sum(1, -beta2**t))),
                (theta, _sum(theta, -_product(lr, _over(s_hat, _sum(eps, sp.sqrt(r_hat))))))]


class NewtonCG(Optimizer):
    """Hessian-free Newton (truncated Newton, Martens 2010): p ≈ −(H + λI)⁻¹ g by at most ``cg_iterations``
    conjugate-gradient iterations, each one exact Hessian-vector product on the step's batch
    (:meth:`~symnet.network.CompiledNetwork.hvp`), stopped when the residual falls below ``cg_tolerance``·‖g‖ or a
    direction of non-positive curvature appears (then the last iterate, or −g on the first iteration); then
    θ ← θ + η p if the loss on the batch falls, else θ stays.

    λ starts at ``damping`` and adapts as Levenberg-Marquardt's (Martens' rule): ρ, the loss's actual change over
    the change the quadratic model q(ηp) = η gᵀp + ½η² pᵀ(H + λI)p predicts, below ¼ multiplies λ by 3/2, above
    ¾ by 2/3 (λ = 0 stays 0: plain Newton).  The current λ is the optimizer's state (``damping`` in
    ``net.optimizer_state``; checkpoints keep it).

    Not an elementwise rule: the compiled network runs it in Python around the compiled gradient and H·v (no
    ``train_step`` is generated for it), one CG solve and one extra loss per batch in ``sn.fit``."""

    hyperparameters = (lr, damping, cg_iterations, cg_tolerance)
    second_order = True

    def __init__(self, lr=1.0, damping=1.0, cg_iterations=10, cg_tolerance=1e-4):
        self.lr = _check("lr", lr)
        self.damping = _check("damping", damping, low_open=False)
        if isinstance(cg_iterations, bool) or not isinstance(cg_iterations, int) or cg_iterations < 1:
            raise ConfigurationError(f"cg_iterations must be a positive integer, got {cg_iterations!r}")
        self.cg_iterations = cg_iterations
        self.cg_tolerance = _check("cg_tolerance", cg_tolerance)

    def rule(self):
        return [(theta, theta + lr * p)]

    def state_names(self):
        return ["damping"]

    def latex_rows(self):
        return [("g", r"\nabla_{\theta} L\left(\theta\right)"),
                ("p", rf"-\left(H + {NOTATION[damping]} I\right)^{{-1}} g \text{{ by at most }} "
                      rf"{NOTATION[cg_iterations]} \text{{ conjugate-gradient steps}}"),
                (_shown(theta), _shown(_sum(theta, _product(lr, p))))]

    def step_direction(self, gradient, curvature, current_damping):
        """``(p, pᵀ(H + λI)p)``: p ≈ −(H + λI)⁻¹ g by conjugate gradients, ``curvature(d)`` = H·d (flat arrays)."""
        b = -gradient
        x = np.zeros_like(b)
        residual = b.copy()
        d = residual.copy()
        rr = float(residual @ residual)
        stop = self.cg_tolerance * math.sqrt(rr)
        for iteration in range(self.cg_iterations):
            Ad = curvature(d) + current_damping * d
            along = float(d @ Ad)
            if along <= 0:                 # not a descent model along d: keep what we have (−g at the start)
                if iteration == 0:
                    return b, along
                break
            alpha = rr / along
            x += alpha * d
            residual -= alpha * Ad
            new = float(residual @ residual)
            if math.sqrt(new) <= stop:
                break
            d = residual + (new / rr) * d
            rr = new
        return x, float(x @ (b - residual))          # (H + λI) x = b − residual

    def adapted(self, current_damping, reduction, predicted):
        """λ after a step whose loss changed by ``reduction`` where the quadratic model predicted ``predicted``."""
        ratio = reduction / predicted if predicted < 0 else -math.inf
        if ratio < 0.25:
            return current_damping * 1.5
        if ratio > 0.75:
            return current_damping * (2 / 3)
        return current_damping


OPTIMIZERS = {cls.__name__: cls for cls in (GD, SGD, Momentum, Nesterov, AdaGrad, RMSProp, RMSPropNesterov, Adam,
                                                   NewtonCG)}


def get(name, **hyperparameters):
    """An optimizer by class name, case-insensitive, underscores ignored (``"adam"``, ``"RMSPropNesterov"``,
    ``"newton_cg"``)."""
    by_lower = {key.lower(): cls for key, cls in OPTIMIZERS.items()}
    cls = by_lower.get(str(name).lower().replace("_", ""))
    if cls is None:
        raise ConfigurationError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    return cls(**hyperparameters)
