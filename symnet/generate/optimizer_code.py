"""Optimizer code: ``_train_step``, the gradient (at a look-ahead point if the rule has one) and then the
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
    """Writes ``_train_step`` (a mixin of :class:`~symnet.generate.network.NetworkModule`, which gives ``optimizer``,
    ``dtype`` and the noise argument of the step's signature, ``_noise_argument()``)."""

    def _step_tail(self):
        """``train_step``'s arguments after ``(theta, X, Y[, noise_seed])``: ``work`` (the arrays of
        :meth:`~symnet.declare.optimizers.Optimizer.buffer_names`, one after another) and ``scalars`` (float64: t,
        then the hyper-parameters), as :class:`~symnet.network.CompiledNetwork` holds them."""
        return ["work", "scalars"]

    def optimizer_step(self, w):
        optimizer = self.optimizer
        rule = optimizer.rule()
        name = type(optimizer).__name__
        elementwise = (optimizers.theta, optimizers.g, *optimizer.state)
        scalars = set(optimizer.hyperparameters) | {optimizers.t}
        hoisted = {}
        rule = [(target, _hoist(expr, scalars, hoisted)) for target, expr in rule]
        local = {symbol: f"{symbol.name}_k" for symbol in elementwise}
        printer = NumbaPrinter(self.dtype, local)
        arguments = ["theta", "X", "Y", *self._noise_argument(), *self._step_tail(), "scratch"]
        seed = "".join(", " + name for name in self._noise_argument())
        with w.function("_train_step", arguments):
            w(f'"""One {name} step in place; returns the loss at the point where the gradient is evaluated.')
            w(f"work holds {', '.join(optimizer.buffer_names())} (each as long as theta); scalars holds "
              f'{", ".join(optimizer.scalar_names())}; scratch the batch-sized arrays of _loss_and_gradient."""')
            w("length = theta.shape[0]")
            for number, buffer in enumerate(optimizer.buffer_names()):
                w(f"{buffer} = work[{number} * length:{number + 1} * length]")
            for number, scalar in enumerate(optimizer.scalar_names()[1:], start=1):
                w(f"{scalar} = scalars[{number}]" if self.dtype == "float64" else
                  f"{scalar} = np.{self.dtype}(scalars[{number}])")
            if optimizer.lookahead is None:
                w(f"loss = _loss_and_gradient(theta, X, Y{seed}, gradient, scratch)")
            else:
                w(f"# look-ahead: the gradient is evaluated at {optimizer.lookahead}")
                with w.loops(("k", "theta.shape[0]")):
                    point = NumbaPrinter(self.dtype, {symbol: f"{symbol.name}[k]" for symbol in elementwise})
                    w(f"lookahead[k] = {point.doprint(optimizer.lookahead)}")
                w(f"loss = _loss_and_gradient(lookahead, X, Y{seed}, gradient, scratch)")
            if optimizer.counts_steps:
                w("scalars[0] += 1.0")
                w("t = scalars[0]")
            for expr, symbol in hoisted.items():
                w(f"{symbol} = {printer.doprint(expr)}")
            w(f"# {name}: " + "; ".join(f"{target} ← {expr}" for target, expr in optimizer.rule()))
            with w.loops(("k", "theta.shape[0]")):
                w(f"{local[optimizers.g]} = gradient[k]")
                for symbol in (optimizers.theta, *optimizer.state):
                    w(f"{local[symbol]} = {symbol.name}[k]")
                for target, expr in rule:
                    w(f"{local[target]} = {printer.doprint(expr)}")
                for symbol in dict.fromkeys(target for target, _ in rule):
                    w(f"{symbol.name}[k] = {local[symbol]}")
            w("return loss")
