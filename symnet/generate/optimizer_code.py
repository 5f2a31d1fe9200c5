"""Optimizer code: a training step's arrays and hyper-parameters, the look-ahead point if the rule has one, and the
optimizer's update rule in one loop over the flat parameter vector, with its per-step scalars computed once."""

import sympy as sp

from symnet.declare import optimizers
from symnet.generate.printer import NumbaPrinter


def _hoist(expr, scalars, hoisted):
    """Replace the largest subexpressions of ``expr`` in ``scalars`` only by names ``c0, c1, ...`` (in ``hoisted``),
    so the per-parameter loop does not recompute, e.g., Adam's 1 − ρ1^t."""
    if expr.is_Atom:
        return expr
    if expr.free_symbols <= scalars:
        return hoisted.setdefault(expr, sp.Symbol(f"c{len(hoisted)}", real=True))
    if isinstance(expr, (sp.Add, sp.Mul)):
        fixed = [arg for arg in expr.args if arg.free_symbols <= scalars]
        varying = [_hoist(arg, scalars, hoisted) for arg in expr.args if not arg.free_symbols <= scalars]
        if len(fixed) > 1 or (fixed and not fixed[0].is_Atom):
            fixed = [_hoist(expr.func(*fixed), scalars, hoisted)]
        return expr.func(*fixed, *varying, evaluate=False)
    return expr.func(*(_hoist(arg, scalars, hoisted) for arg in expr.args))


class OptimizerCode:
    """Writes the optimizer's part of a training step (a mixin of :class:`~symnet.generate.network.NetworkModule`,
    which gives ``optimizer`` and ``dtype``)."""

    def step_docstring(self):
        optimizer = self.optimizer
        return (f"One {type(optimizer).__name__} step in place; returns the loss at the point where the gradient is "
                f"evaluated.\nwork holds {', '.join(optimizer.buffer_names())} (each as long as theta); scalars holds "
                f"{', '.join(optimizer.scalar_names())}; scratch the batch-sized arrays.")

    def optimizer_functions(self, w):
        """``_update`` (and ``_lookahead`` if the rule has a look-ahead point): small functions of their own, so
        the optimizer's own names (state arrays such as Adam's ``r``, hyper-parameters, ``t``) never meet the
        back-propagation code's loop indices in one scope (the names that do, ``theta``, ``work``, ``scalars``,
        ``gradient``, ``lookahead``, are refused as layer indices); LLVM inlines them."""
        optimizer = self.optimizer
        name = type(optimizer).__name__
        elementwise = (optimizers.theta, optimizers.g, *optimizer.state)
        if optimizer.lookahead is not None:
            with w.function("_lookahead", ["theta", "work", "scalars"]):
                w(f'"""The look-ahead point {optimizer.lookahead} of {name}, into the lookahead slot of work."""')
                self._unpack(w, {"lookahead"} | {symbol.name for symbol in optimizer.lookahead.free_symbols})
                point = NumbaPrinter(self.dtype, {symbol: f"{symbol.name}[k]" for symbol in elementwise})
                with w.loops(("k", self._trained_extent())):
                    w(f"lookahead[k] = {point.doprint(optimizer.lookahead)}")
                w("return lookahead")
        hoisted = {}
        scalars = set(optimizer.hyperparameters) | {optimizers.t}
        rule = [(target, _hoist(expr, scalars, hoisted)) for target, expr in optimizer.rule()]
        local = {symbol: f"{symbol.name}_k" for symbol in elementwise}
        printer = NumbaPrinter(self.dtype, local)
        with w.function("_update", ["theta", "work", "scalars"]):
            state = "" if self.trainable == self.size else \
                f" The state after its first {self.trainable} entries is not trained."
            w(f'"""One {name} update of theta in place, from the gradient in the first slot of work.{state}"""')
            used = set().union(*(expr.free_symbols | {target} for target, expr in optimizer.rule()))
            self._unpack(w, {"gradient"} | {symbol.name for symbol in used})
            if optimizer.counts_steps:
                w("scalars[0] += 1.0")
                w("t = scalars[0]")
            for expr, symbol in hoisted.items():
                w(f"{symbol} = {printer.doprint(expr)}")
            w(f"# {name}: " + "; ".join(f"{target} ← {expr}" for target, expr in optimizer.rule()))
            with w.loops(("k", self._trained_extent())):
                w(f"{local[optimizers.g]} = gradient[k]")
                for symbol in (optimizers.theta, *optimizer.state):
                    w(f"{local[symbol]} = {symbol.name}[k]")
                for target, expr in rule:
                    w(f"{local[target]} = {printer.doprint(expr)}")
                for symbol in dict.fromkeys(target for target, _ in rule):
                    w(f"{symbol.name}[k] = {local[symbol]}")

    def _trained_extent(self):
        """How many entries of theta the rule updates: all but the state at its end (BatchNorm's running
        statistics), which no optimizer moves."""
        return "theta.shape[0]" if self.trainable == self.size else str(self.trainable)

    def _unpack(self, w, names):
        """Those of the optimizer's arrays (slices of work) and hyper-parameters (from scalars) named in ``names``."""
        w("length = theta.shape[0]")
        for number, buffer in enumerate(self.optimizer.buffer_names()):
            if buffer in names:
                w(f"{buffer} = work[{number} * length:{number + 1} * length]")
        for number, scalar in enumerate(self.optimizer.scalar_names()[1:], start=1):
            if scalar in names:
                w(f"{scalar} = scalars[{number}]" if self.dtype == "float64" else
                  f"{scalar} = np.{self.dtype}(scalars[{number}])")

    def step_prologue(self, w):
        """The gradient's slot of work, and the look-ahead point if the rule has one; returns the name of the flat
        array the gradient is evaluated at."""
        w("gradient = work[:theta.shape[0]]")
        if self.optimizer.lookahead is None:
            return "theta"
        w("lookahead = _lookahead(theta, work, scalars)")
        return "lookahead"

    def step_update(self, w):
        w("_update(theta, work, scalars)")
