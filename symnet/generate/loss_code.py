"""Loss code: the mean loss over the batch and δ of the last layer (the loss's sums over classes per sample, the
summands the gradient uses again kept for the batch, exps in one flat loop), and weight decay."""

import sympy as sp

from symnet.declare import layers as L
from symnet.declare import losses
from symnet.declare.parse import exact_number
from symnet.generate import kernels
from symnet.generate.layers_code import LayerCode


class LossCode(LayerCode):
    """Writes the loss, δ of the last layer through its activation, and weight decay (a mixin of
    :class:`~symnet.generate.network.NetworkModule`, which also gives ``kernels``, ``kernels_used`` and ``layout``)."""

    def loss(self, w, with_gradient):
        model, loss = self.model, self.model.loss
        last = len(model.layers)
        output = f"a{last}"
        K = model.layers[-1].n_out
        value, gradient = loss.stable_value, loss.stable_gradient

        def rows(expr):
            expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == losses.o,
                                lambda e: sp.IndexedBase(output, real=True)[L.n, e.indices[0]])
            expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == losses.y,
                                lambda e: sp.IndexedBase("Y", real=True)[L.n, e.indices[0]])
            return expr.xreplace({losses.K: K})

        value, gradient = rows(value), rows(gradient)
        shifts = losses.shift_names(value, gradient)      # each max (m) is computed once per row, before the sums
        value, gradient = value.xreplace(shifts), gradient.xreplace(shifts)
        w(f"# loss: L = (1/N) Σ_n ℓ_n,  ℓ = {loss.declared}")
        if loss.rewrite:
            w(f"# evaluated as ({loss.rewrite}): ℓ = {losses.named(loss.evaluated)}")
        if with_gradient:
            w(f"# delta{last}[n, j] = ∂L/∂z{last}[n, j] = (1/N) ∂ℓ/∂o_j ⊙ f'(z),  ∂ℓ/∂o_j = "
              f"{losses.named(loss.gradient)}")
            self.buffer(w, f"delta{last}", ("batch", K))
            self._zero_activation_gradients(w, last)
        totals = []
        for expr in (value, gradient) if with_gradient else (value,):
            totals += [t for t in sorted(expr.atoms(sp.Sum), key=sp.default_sort_key) if t not in totals]
        # a summand kept for the whole batch in term<i>[n, k]: one that ∂ℓ/∂o_j uses again at k = j (softmax's
        # e^(o_j − m)) and, with the exp kernel, every e^(…) (its arguments are stored row by row, then one flat loop
        # over the batch evaluates them: LLVM vectorises it, where a loop of K classes would leave a scalar tail)
        kept, flat_exp = {}, []
        for total in totals:
            at_j = total.function.xreplace({total.limits[0][0]: losses.j})
            exp_kernel = isinstance(total.function, sp.exp) and "exp" in self.kernels
            if exp_kernel or (with_gradient and gradient.has(at_j)):
                kept[total] = (sp.IndexedBase(f"term{len(kept)}", real=True), at_j)
                self.buffer(w, str(kept[total][0]), ("batch", K))
                if exp_kernel:
                    flat_exp.append(total)
        if flat_exp:
            self._exp_arguments(w, [(kept[t][0], t) for t in flat_exp], K, shifts)
        w(f"loss = {self.p(sp.Float(0))}")
        w("for n in range(batch):")
        with w.block():
            self._shifts(w, shifts, stored=bool(flat_exp))
            sums = {}
            for total in totals:
                name = sums[total] = sp.Symbol(f"sum{len(sums)}", real=True)
                (index, low, high) = total.limits[0]
                w(f"{name} = {self.p(sp.Float(0))}")
                w(f"for {index} in range({low}, {high + 1}):")
                with w.block():
                    if total in flat_exp:
                        w(f"{name} += {kept[total][0]}[n, {index}]")
                    elif total in kept:
                        w(f"{kept[total][0]}[n, {index}] = {self.p(total.function)}")
                        w(f"{name} += {kept[total][0]}[n, {index}]")
                    else:
                        w(f"{name} += {self.p(total.function)}")
            gradient = gradient.xreplace({at_j: buffer[L.n, losses.j] for buffer, at_j in kept.values()})
            w(f"loss += {self.p(value.xreplace(sums))}")
            if with_gradient:
                fprime = self.model.fprime_form(last - 1)
                w(f"for j in range({K}):")
                with w.block():
                    factor = self._fprime_factor(fprime, last, "n", "j")
                    if model.layers[-1].activation.parameters:
                        w(f"upstream = ({self.p(gradient.xreplace(sums))}) * inv_batch")
                        self._activation_gradients(w, last, "upstream", "n", "j")
                        w(f"delta{last}[n, j] = upstream" + (f" * {factor}" if factor else ""))
                    else:
                        scale = "inv_batch" + (f" * {factor}" if factor else "")
                        w(f"delta{last}[n, j] = ({self.p(gradient.xreplace(sums))}) * {scale}")
        w("loss = loss * inv_batch")

    def _shifts(self, w, shifts, stored):
        """Each max m = max_k f(k) of ``shifts`` ({MaxOver: m}) inside the loop over rows n: read back from
        row_max[n] (row_max1[n] for m1, …) when ``stored``, else computed."""
        for buffer, (shift, name) in zip(_row_buffers(shifts), shifts.items()):
            if stored:
                w(f"{name} = {buffer}[n]")
                continue
            ((bound, low, high),) = shift.limits
            w(f"{name} = {self.p(shift.function.xreplace({bound: low}))}")
            w(f"for {bound} in range({low + 1}, {high + 1}):")
            with w.block():
                w(f"{name} = max({name}, {self.p(shift.function)})")

    def _exp_arguments(self, w, buffers, K, shifts):
        """buffer[n, k] = e^(argument) for each (buffer, Σ_k e^(argument)): the arguments row by row (after the
        maxes of ``shifts``, then kept in row_max[n], …), then ``_exp`` in one loop over the flat buffer."""
        w("# " + "; ".join(f"{buffer}[n, {total.limits[0][0]}] = {total.function}" for buffer, total in buffers)
          + " for the whole batch: arguments row by row, then exp in one loop over batch × classes (vectorised)")
        for row_buffer in _row_buffers(shifts):
            self.buffer(w, row_buffer, ("batch",))
        w("for n in range(batch):")
        with w.block():
            self._shifts(w, shifts, stored=False)
            for row_buffer, name in zip(_row_buffers(shifts), shifts.values()):
                w(f"{row_buffer}[n] = {name}")
            for buffer, total in buffers:
                (index, low, high) = total.limits[0]
                w(f"for {index} in range({low}, {high + 1}):")
                with w.block():
                    w(f"{buffer}[n, {index}] = {self.p(total.function.args[0])}")
        exp = kernels.kernel_name("exp", self.dtype)
        self.kernels_used.add(exp)
        for buffer, _ in buffers:
            w(f"{buffer}_flat = {self.flat[str(buffer)]}")
            w(f"for q in range(batch * {K}):")
            with w.block():
                w(f"{buffer}_flat[q] = _{exp}({buffer}_flat[q])")

    def weight_decay(self, w, with_gradient):
        decay = self.model.weight_decay
        if not decay:
            return
        w(f"# weight decay: L += ½λ Σ_l ‖W_l‖², grad_W += λ W, λ = {decay}")
        lam = self.p(exact_number(decay))
        for name in self._weight_names():
            w(f"for k in range(theta_{name}.shape[0]):")
            with w.block():
                w(f"weight = theta_{name}[k]")
                w(f"loss += {self.p(sp.Rational(1, 2) * exact_number(decay))} * weight * weight")
                if with_gradient:
                    w(f"grad_theta_{name}[k] += {lam} * weight")

    def _weight_names(self):
        """The weights (:func:`~symnet.declare.layers.is_weight`; biases and activation parameters are not
        decayed)."""
        return L.weight_names(self.model.layers)

    def _flat_weight_views(self, w, with_gradient, point):
        """The weights as flat views of ``point`` (the parameters the loss is evaluated at), for weight decay."""
        if not self.model.weight_decay:
            return
        weights = set(self._weight_names())
        for name, start, stop, _ in self.layout:
            if name in weights:
                w(f"theta_{name} = {point}[{start}:{stop}]")
                if with_gradient:
                    w(f"grad_theta_{name} = gradient[{start}:{stop}]")


def _row_buffers(shifts):
    """The arrays that keep each max of ``shifts`` per row for the loop after the flat exp: row_max, row_max1, …"""
    return [f"row_max{number or ''}" for number in range(len(shifts))]
