"""Second-order code: the exact Hessian-vector product H·v of the mean loss by Pearlmutter's R-operator
(Neural Computation 6, 1994), R{·} = d/dε (·)(θ + ε v) at ε = 0.

Every quantity of the forward and backward pass gets its R-image, derived by SymPy from the same declarations
(:func:`~symnet.backprop.jvp` of each layer's map and of each VJP the backward pass evaluates) and written by the
same emitters (contractions become ``np.dot`` or loops, sums inside functions are hoisted):

* forward: ``R{z_l} = R{F_l}(a_{l−1}, P_l; R{a_{l−1}}, v_P)``, ``R{a_l} = f'(z_l) ⊙ R{z_l}`` (a max passes the
  winner's; R{X} = 0);
* loss: ``R{δ_L} = (1/N) (R{∂ℓ/∂o} ⊙ f'(z_L) + ∂ℓ/∂o ⊙ f''(z_L) ⊙ R{z_L})``, R{∂ℓ/∂o} the JVP of the loss's
  derived gradient in the direction R{o} = R{a_L} (the log-sum-exp shift m held fixed: the gradient does not
  depend on it);
* backward: ``(H v)_P = R{VJP_P}``, ``u = VJP_a``, ``δ_{l−1} = u ⊙ f'(z_{l−1})``,
  ``R{δ_{l−1}} = R{VJP_a} ⊙ f'(z_{l−1}) + u ⊙ f''(z_{l−1}) ⊙ R{z_{l−1}}``; weight decay adds λ v_W.

Piecewise activations (ReLU, leaky ReLU, hard tanh) have f'' = 0 except at their kinks, where the derivative
does not exist; symnet takes 0 there too (SymPy's f'' holds a DiracDelta, read as 0), so H·v is that of the
piecewise-quadratic loss the kinks cut the space into.  A max (Maxout, max pooling) keeps its winners fixed.
"""

import sympy as sp

from symnet import backprop
from symnet.declare import layers as L
from symnet.declare import losses
from symnet.declare.parse import exact_number
from symnet.generate.layers_code import A_SCALAR, _arrays
from symnet.indexed import held_constant
from symnet.rewrites import stable


def _base(name):
    return sp.IndexedBase(name, real=True)


def _no_dirac(expr):
    """``expr`` with SymPy's DiracDelta of a kink read as 0."""
    return expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.Integer(0))


def activation_derivatives(activation):
    """``(f', f'')`` of ``activation`` in its variable, stable forms, f'' = 0 at a kink."""
    return (stable(activation.derivative),
            stable(_no_dirac(sp.diff(activation.derivative, activation.variable))))


def gradient_jvp(gradient, direction):
    """R{∂ℓ/∂o_j}: :func:`~symnet.backprop.jvp` of a loss's ``gradient`` ∂ℓ/∂o_j (or its stable form) in the
    direction R{o} = ``direction``, each max in it held constant as :attr:`~symnet.declare.losses.Loss.gradient`
    holds it (a shift ℓ does not depend on, so neither does ∂ℓ/∂o_j)."""
    return held_constant(lambda expr: backprop.jvp(expr, {losses.o: direction}), gradient)


class SecondOrderCode:
    """Writes ``hessian_vector_product`` (a mixin of :class:`~symnet.generate.network.NetworkModule`, whose forward,
    loss and contraction emitters it drives)."""

    def hvp_body(self, w, arguments, with_loss, with_gradient, point="theta", training=None):
        """Forward, loss and δ, then the R-images of the forward pass, of δ_L and of the backward pass into
        ``hv``; leaves the loss in ``loss``.  The arguments are those of :meth:`function`'s bodies."""
        self.loss_prologue(w)
        self.views(w, point, state=training is False)
        self.views(w, "v", prefix="v_", state=False)
        self.views(w, "hv", prefix="hv_", state=False)
        if self.trainable < self.size:
            w(f"hv[{self.trainable}:] = {self.p(sp.Float(0))}   # the state's: it is not trained")
        self.keep_z = True                  # f' and f'' of an activation without an output form read z
        self.forward(w, store_fprime=True, training=training)
        self.keep_z = False
        with self.innermost(self.model.layers[-1].n_out):
            self.loss(w, with_gradient=True)
        self.r_forward(w, training)
        self.r_loss(w)
        self.r_backward(w, training)
        self.hv_weight_decay(w)

    def _directions(self, layer, number, delta=None):
        """{generated array: its R-image} for layer ``number``: its parameters (v), its input (R{a_{l−1}}; X has
        none) and, given ``delta`` = (δ's array, its R-image's), δ."""
        directions = {_base(f"{base}{number}"): _base(f"v_{base}{number}") for base in layer.parameter_shapes}
        if number > 1:
            directions[_base(f"a{number - 1}")] = _base(f"ra{number - 1}")
        if delta is not None:
            directions[_base(delta[0])] = _base(delta[1])
        return directions

    def _r_assign(self, w, expr, target, indices, allocate, alias=None):
        """target[indices] = expr: zero when expr is 0, ``target = alias`` when expr is alias[indices] itself."""
        w(f"# {target}{list(indices)} = {expr}")
        if alias is not None and expr == _base(alias)[indices]:
            w(f"{target} = {alias}   # the same values: the same memory")
        elif expr == 0 and allocate:
            self.buffer(w, target, self.shapes[target], zero=True)
        elif expr == 0:
            w(f"{target}[...] = {self.p(sp.Float(0))}")
        else:
            self._assign(w, expr, target, indices, allocate)

    def _derivatives(self, number, indices):
        """f'(z) and f''(z) of layer ``number`` at [indices], read from its stored output a when the main module
        does so for f' (tanh' = 1 − a², and by the chain rule f'' = p'(a)·p(a) for f' = p(a): no tanh or exp is
        evaluated again), else from z."""
        layer = self.model.layers[number - 1]
        kind, form = self.model.fprime_form(number - 1)
        if kind == "output":
            at = {A_SCALAR: _base(f"a{number}")[indices]}
            return form.xreplace(at), _no_dirac(sp.diff(form, A_SCALAR) * form).xreplace(at)
        first, second = activation_derivatives(layer.activation)
        at = {layer.activation.variable: _base(f"z{number}")[indices]}
        return first.xreplace(at), second.xreplace(at)

    def _activation_loop(self, w, number, lines):
        """One loop over the cells of layer ``number``'s output, writing ``lines(cell, fprime, fsecond)``: printed
        statements given the cell printer and f', f'' of its activation (:meth:`_derivatives`)."""
        layer = self.model.layers[number - 1]
        out = tuple(index_ for index_ in layer.output_indices if index_ not in layer.max_over)
        first, second = self._derivatives(number, out)
        with w.loops(("n", "batch"), *zip(map(str, out[1:]), layer.output_shape)), \
                self.innermost(layer.output_shape[-1]):
            for line in lines(lambda name: self.p(_base(name)[out]), f"({self.p(first)})", f"({self.p(second)})"):
                w(line)

    def r_forward(self, w, training):
        """R{z_l} and R{a_l} for every layer, from the first."""
        for number, layer in enumerate(self.model.layers, start=1):
            previous = "X" if number == 1 else f"a{number - 1}"
            names = {L.a: previous, **self._parameter_names(layer, number)}
            mapped = _arrays(layer.sized_map(evaluation=training is False), names)
            rz = backprop.jvp(mapped, self._directions(layer, number))
            out = layer.output_indices
            w(f"# R-operator, layer {number}")
            self._r_assign(w, rz, f"rz{number}", out, allocate=True,
                           alias=None if number == 1 else f"ra{number - 1}")
            if layer.max_over:
                kept = tuple(index_ for index_ in out if index_ not in layer.max_over)
                w(f"# ra{number}{list(kept)} = rz{number} at the winner piece{number}")
                self.buffer(w, f"ra{number}", self.shapes[f"ra{number}"])
                with self.at_winners(w, layer, number) as cell:
                    w(f"{self.p(_base(f'ra{number}')[kept])} = rz{number}[{cell}]")
            elif layer.activation.expr == layer.activation.variable:
                w(f"ra{number} = rz{number}   # f is the identity")
            else:
                self.buffer(w, f"ra{number}", self.shapes[f"ra{number}"])
                self._activation_loop(w, number, lambda cell, first, second: [
                    f"{cell(f'ra{number}')} = {first} * {cell(f'rz{number}')}"])

    def r_loss(self, w):
        """R{δ_L}: the JVP of the loss's derived gradient ∂ℓ/∂o_j in the direction R{o} = R{a_L}, through f'."""
        last, loss = len(self.model.layers), self.model.loss
        K = self.model.layers[-1].n_out
        direction = _base("R_o")
        gradient = loss.stable_gradient
        r_gradient = gradient_jvp(gradient, direction)
        row = {losses.o: _base(f"a{last}"), losses.y: _base("Y"), direction: _base(f"ra{last}")}

        def per_row(expr):
            expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base in row,
                                lambda e: row[e.base][L.n, e.indices[0]])
            return expr.xreplace({losses.K: K})

        first, second = self._derivatives(last, (L.n, losses.j))
        expr = (per_row(r_gradient) * first + per_row(gradient) * second * _base(f"rz{last}")[L.n, losses.j]) / L.N
        w(f"# rdelta{last}[n, j] = (R{{∂ℓ/∂o_j}} f'(z) + ∂ℓ/∂o_j f''(z) R{{z}}) / N,  R{{∂ℓ/∂o_j}} = "
          f"{losses.named(r_gradient)}")
        self.evaluate(w, expr, f"rdelta{last}", (L.n, losses.j), allocate=True)

    def r_backward(self, w, training):
        """(H v)_P for every parameter and R{δ} of every layer, from the last."""
        model = self.model
        for number in range(len(model.layers), 0, -1):
            layer = model.layers[number - 1]
            previous = "X" if number == 1 else f"a{number - 1}"
            names = {L.a: previous, L.delta: f"delta{number}", **self._parameter_names(layer, number)}
            delta = (f"delta{number}", f"rdelta{number}")
            if layer.max_over:
                for prefix in ("", "r"):
                    self._route(w, layer, number, prefix)
                names[L.delta] = f"dz{number}"
                delta = (f"dz{number}", f"rdz{number}")
            directions = self._directions(layer, number, delta)
            vjps = backprop.vjps(layer, evaluation=training is False)
            for base in layer.parameter_shapes:
                indices, expr = vjps[base]
                self._r_assign(w, backprop.jvp(_arrays(expr, names), directions), f"hv_{base}{number}", indices,
                               allocate=False)
            if number == 1:
                continue
            indices, expr = vjps[L.a]
            mapped = _arrays(expr, names)
            below = number - 1
            self._r_assign(w, mapped, f"u{below}", indices, allocate=True, alias=delta[0])
            self._r_assign(w, backprop.jvp(mapped, directions), f"ru{below}", indices, allocate=True,
                           alias=delta[1])
            f = model.layers[below - 1].activation
            if f.expr == f.variable:
                w(f"delta{below}, rdelta{below} = u{below}, ru{below}   # f is the identity")
                continue
            self.buffer(w, f"delta{below}", self.shapes[f"delta{below}"])
            self.buffer(w, f"rdelta{below}", self.shapes[f"rdelta{below}"])
            w(f"# delta{below} = u{below} f'(z{below}); rdelta{below} = ru{below} f'(z{below}) + u{below} f''(z{below}) "
              f"rz{below}")
            self._activation_loop(w, below, lambda cell, first, second: [
                f"{cell(f'delta{below}')} = {cell(f'u{below}')} * {first}",
                f"{cell(f'rdelta{below}')} = {cell(f'ru{below}')} * {first} + {cell(f'u{below}')} * {second} * "
                f"{cell(f'rz{below}')}"])

    def hv_weight_decay(self, w):
        """(H v)_W += λ v_W: the Hessian of ½λ‖W‖² is λ I on the weights."""
        decay = self.model.weight_decay
        if not decay:
            return
        w(f"# weight decay: H v += λ v on the weights, λ = {decay}")
        weights = set(self._weight_names())
        for name, start, stop, _ in self.layout:
            if name in weights:
                w(f"for k in range({start}, {stop}):")
                with w.block():
                    w(f"hv[k] += {self.p(exact_number(decay))} * v[k]")
