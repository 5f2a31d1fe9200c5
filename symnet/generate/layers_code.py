"""Layer code: each layer's forward pass (its contraction, then bias and activation in one fused loop; softmax with
the max shift; max over pieces; dropout's mask) and its back-propagation (the VJPs of parameters and input, δ routed to
the winning piece, f' and the gradients of trainable activation parameters)."""

import math
from contextlib import contextmanager

import sympy as sp

from symnet import backprop
from symnet.declare import layers as L
from symnet.generate.contractions import Contractions, _nonlinear
from symnet.indexed import terms
from symnet.rewrites import stable

PARALLEL_MIN_WIDTH = 64
"""With ``parallel``, only layers this wide with a transcendental activation run their activation loop on all
cores: cheaper loops lose more to starting threads than they gain (docs/performance.md)."""
CHEAP_FUNCTIONS = (sp.Max, sp.Min, sp.Heaviside, sp.Abs, sp.sign, sp.Piecewise)
Z, A_SCALAR = sp.Symbol("z", real=True), sp.Symbol("a", real=True)


def _max_indices(layer):
    """``(max indices, output indices, extents of the max indices)`` of a layer whose output is a max."""
    over = layer.max_over
    return (over, tuple(index_ for index_ in layer.output_indices if index_ not in over),
            [layer.z_shape[layer.output_indices.index(index_) - 1] for index_ in over])


def _arrays(expr, names):
    """Rename the IndexedBases of ``expr`` to the generated arrays' names."""
    return expr.xreplace({base: sp.IndexedBase(name, real=True) for base, name in names.items()})


class LayerCode(Contractions):
    """Writes the layers' forward and backward code (a mixin of :class:`~symnet.generate.network.NetworkModule`,
    which also gives ``model`` and ``parallel``)."""

    def forward(self, w, store_fprime, training=None):
        """Each layer's map and activation; ``training``: False for the maps outside training (BatchNorm's running
        statistics), None when only the noise seed tells (Dropout tests it)."""
        for number, layer in enumerate(self.model.layers, start=1):
            previous = "X" if number == 1 else f"a{number - 1}"
            names = {L.a: previous, **self._parameter_names(layer, number)}
            sized = layer.sized_map(evaluation=training is False)
            mapped = _arrays(sized, names)
            f = layer.activation
            out = layer.output_indices
            w(f"# layer {number}: z{number}{list(out)} = {sized}   (a = {previous}); a{number} = f(z{number}), "
              f"f(t) = {f.expr}")
            if sized == L.a[out] and f.expr == f.variable:
                w(f"a{number} = z{number} = {previous}   # the map is its input: the same memory")
                continue
            if layer.step_index is not None:
                self._steps(w, layer, number, mapped, store_fprime)
                continue
            summed = [t for t in terms(mapped) if t.summed]
            elementwise = [t for t in terms(mapped) if not t.summed]
            evaluated = _nonlinear(summed + elementwise)
            if evaluated:
                self.evaluate(w, mapped, f"z{number}", out, allocate=True)
                summed, elementwise = [], []
            if any(t.guards for t in elementwise):
                raise ValueError(f"layer {number}: a guard outside a sum is not supported: {sized}")
            if layer.noise is not None:
                self._draw_noise(w, layer, number, training)
            if layer.max_over:
                if summed:
                    self.contraction(w, summed, f"z{number}", out, allocate=True)
                self._max(w, layer, number, bool(summed), elementwise)
                continue
            if summed:
                self.contraction(w, summed, f"z{number}", out, allocate=True)
            elif not evaluated:
                self.buffer(w, f"z{number}", ("batch", *layer.z_shape), zero=True)
            identity = f.expr == f.variable
            keep_z = identity or bool(f.parameters) or self.keep_z   # ∂f/∂γ (and f'' in H·v) read z backwards
            if keep_z and not identity:
                self.buffer(w, f"a{number}", ("batch", *layer.z_shape))
            else:
                w(f"a{number} = z{number}" + ("" if identity else "   # a = f(z) is written over z (not needed later)"))
            if identity and not elementwise and not f.parameters:
                continue                                      # nothing left to add or apply
            fprime = self.model.fprime_form(number - 1)
            if store_fprime and fprime[0] == "input":
                self.buffer(w, f"fprime{number}", ("batch", *layer.z_shape))
            expensive = any(not isinstance(call, CHEAP_FUNCTIONS)
                            for call in self.model.activation_value(number - 1).atoms(sp.Function))
            parallel = self.parallel and expensive and layer.n_out >= PARALLEL_MIN_WIDTH
            loops = [("n", "batch"), *zip(map(str, out[1:]), layer.z_shape)]
            with w.loops(*loops, parallel=parallel):
                self._activate(w, layer, number, elementwise, keep_z, store_fprime, f"a{number}")

    def _steps(self, w, layer, number, mapped, store_fprime):
        """A recurrent layer's map along its step index t: the terms that do not read its own output H for every step
        at once (W·x_t: one contraction), then step by step in order the terms that read H at earlier steps
        (U·H_{t−1}) and the activation H_t = f(z_t), written over z_t unless z is kept (step t + 1 reads only H)."""
        step, out, f = layer.step_index, layer.output_indices, layer.activation
        hidden, z = f"h{number}", f"z{number}"
        parts = terms(mapped)
        recurrent = [t for t in parts if any(factor.base.name == hidden for factor in t.factors)]
        summed = [t for t in parts if t.summed and t not in recurrent]
        elementwise = [t for t in parts if not t.summed and t not in recurrent]
        if summed:
            self.contraction(w, summed, z, out, allocate=True)
        else:
            self.buffer(w, z, self.shapes[z], zero=True)
        identity = f.expr == f.variable
        keep_z = identity or self.keep_z
        if keep_z and not identity:
            self.buffer(w, hidden, self.shapes[hidden])
        else:
            w(f"{hidden} = {z}" + ("" if identity else f"   # H = f(z) is written over z (step {step} + 1 reads H)"))
        if store_fprime and self.model.fprime_form(number - 1)[0] == "input":
            self.buffer(w, f"fprime{number}", self.shapes[f"fprime{number}"])
        if layer.last_step_only:
            self.buffer(w, f"a{number}", self.shapes[f"a{number}"])
        else:
            w(f"a{number} = {hidden}   # the output is every step's H")
        extents = dict(zip(out, self.shapes[z]))
        w(f"for {step} in range({extents[step]}):   # in order: step {step} reads {hidden} at the steps before it")
        with w.block():
            self._loops(w, recurrent, z, out, accumulate=True, bound=(step,))
            with w.loops(*((str(index_), extent) for index_, extent in extents.items() if index_ != step)):
                self._activate(w, layer, number, elementwise, keep_z, store_fprime, hidden)
        if layer.last_step_only:
            kept = tuple(index_ for index_ in out if index_ != step)
            last = sp.IndexedBase(hidden, real=True)[out].xreplace({step: extents[step] - 1})
            w(f"# a{number}{list(kept)} = {hidden} at the last step")
            with w.loops(*((str(index_), extents[index_]) for index_ in kept)):
                w(f"{self.p(sp.IndexedBase(f'a{number}', real=True)[kept])} = {self.p(last)}")

    def _through_time(self, w, layer, number, vjp, names):
        """Back-propagation through time into dz = ∂L/∂z of a recurrent layer, from its last step down (step t needs
        dz at the steps after it): dz[n, t, …] = (δ from above at t + the VJP of the map's reads of H, which carries
        dz from the later steps) · f'(z[n, t, …]).  δ from above is delta<number> (the last step's only, for a layer
        that outputs its last step)."""
        indices, expr = vjp
        step = indices[layer.output_indices.index(layer.step_index)]
        dz, upstream = f"dz{number}", f"delta{number}"
        extents = dict(zip(indices, self.shapes[dz]))
        kept = tuple(index_ for index_ in indices if index_ != step)
        if layer.last_step_only:
            w(f"# {dz}{list(indices)} = {upstream}{list(kept)} at the last step, 0 before it; then through time")
            self.buffer(w, dz, self.shapes[dz], zero=True)
            last = sp.IndexedBase(dz, real=True)[indices].xreplace({step: extents[step] - 1})
            with w.loops(*((str(index_), extents[index_]) for index_ in kept)):
                w(f"{self.p(last)} = {self.p(sp.IndexedBase(upstream, real=True)[kept])}")
        else:
            w(f"{dz} = {upstream}   # the same memory: δ from above becomes dz step by step")
        factor = self._fprime_factor(self.model.fprime_form(number - 1), number, *map(str, indices))
        w(f"# {dz}{list(indices)} = ({dz}{list(indices)} + {expr}){f' · {factor}' if factor else ''}")
        w(f"for {step} in range({extents[step] - 1}, -1, -1):")
        with w.block():
            self._loops(w, terms(_arrays(expr, {**names, L.delta: dz})), dz, indices, accumulate=True, bound=(step,))
            if factor:
                with w.loops(*((str(index_), extents[index_]) for index_ in kept)):
                    w(f"{self.p(sp.IndexedBase(dz, real=True)[indices])} *= {factor}")

    def _activate(self, w, layer, number, elementwise, keep_z, store_fprime, output):
        """Inside the loops over the cells of z (one step's for a recurrent layer): ``output`` = f(z + the
        elementwise terms), z kept with ``keep_z``, f'(z) into fprime when it is read from the input."""
        out, f = layer.output_indices, layer.activation
        fprime = self.model.fprime_form(number - 1)

        def cell(name):
            return self.p(sp.IndexedBase(name, real=True)[out])

        with self.innermost(layer.z_shape[-1]):
            bias = sum((t.summand for t in elementwise), sp.Integer(0))
            w(f"z = {cell(f'z{number}')} + {self.p(bias)}")
            if keep_z:
                w(f"{cell(f'z{number}')} = z")
            at_z = {f.variable: Z, **self._activation_parameters(layer, number, L.i)}
            if f.expr != f.variable:
                w(f"{cell(output)} = {self.p(self.model.activation_value(number - 1).xreplace(at_z))}")
            if store_fprime and fprime[0] == "input":
                w(f"{cell(f'fprime{number}')} = {self.p(fprime[1].xreplace(at_z))}")

    def _max(self, w, layer, number, stored, elementwise):
        """a[n, …] = max over the layer's max indices of z[n, …] (the stored contraction, if ``stored``, plus the
        elementwise terms), remembering in piece[n, …] the first combination of those indices, in row-major order,
        that attains it."""
        over, out, extents = _max_indices(layer)
        z = sp.IndexedBase(f"z{number}", real=True)[layer.output_indices] if stored else sp.Integer(0)
        value = z + sum((t.summand for t in elementwise), sp.Integer(0))
        piece = f"piece{number}"
        w(f"# a{number}{list(out)} = max over {', '.join(map(str, over))} of z{number}{list(layer.output_indices)}; "
          f"{piece}{list(out)} = the first (row-major) that attains it")
        self.buffer(w, f"a{number}", ("batch", *layer.output_shape))
        w(f"{piece} = np.empty((batch, {layer.n_out}), dtype=np.int64)")
        loops = [("n", "batch"), *zip(map(str, out[1:]), layer.output_shape)]
        with w.loops(*loops):
            w(f"best = {self.p(value.xreplace({index_: 0 for index_ in over}))}")
            w("choice = 0")
            if len(over) == 1:
                w(f"for {over[0]} in range(1, {extents[0]}):")
            else:
                w(f"for choice_k in range(1, {math.prod(extents)}):")
            with w.block():
                if len(over) > 1:
                    for index_, text in zip(over, self._decomposed("choice_k", extents)):
                        w(f"{index_} = {text}")
                w(f"z = {self.p(value)}")
                w("# selects, not branches: the winner depends on the data, a branch would be mispredicted")
                w(f"choice = {over[0] if len(over) == 1 else 'choice_k'} if z > best else choice")
                w("best = z if z > best else best")
            w(f"{self.p(sp.IndexedBase(f'a{number}', real=True)[out])} = best")
            w(f"{self.p(sp.IndexedBase(piece, real=True)[out])} = choice")

    @staticmethod
    def _decomposed(flat, extents):
        """The indices (row-major) of the combination numbered ``flat`` over ``extents``, as text."""
        texts = []
        for axis, extent in enumerate(extents):
            stride = math.prod(extents[axis + 1:])
            text = f"{flat} // {stride}" if stride > 1 else flat
            texts.append(text if axis == 0 else f"{text} % {extent}" if stride > 1 else f"{flat} % {extent}")
        return texts

    def _fprime_factor(self, fprime, number, *indices):
        """Printed f'(z) of layer ``number`` at the cell [indices] (names; a recurrent layer's over every step, read
        from its sequence h), or None when f' = 1."""
        kind, expr = fprime
        if kind == "one":
            return None
        cell = tuple(map(sp.Symbol, indices))
        if kind == "input":
            return self.p(sp.IndexedBase(f"fprime{number}", real=True)[cell])
        layer = self.model.layers[number - 1]
        output = sp.IndexedBase(f"{'h' if layer.step_index is not None else 'a'}{number}", real=True)[cell]
        at = {A_SCALAR: output, **self._activation_parameters(layer, number, cell[-1])}
        return f"({self.p(expr.xreplace(at))})"

    @staticmethod
    def _parameter_names(layer, number):
        """{base: generated array name} for the layer's parameters, state, noise and (recurrent) own output H."""
        names = {base: f"{base}{number}" for base, _ in (*layer.parameters, *layer.state)}
        if layer.noise is not None:
            names[layer.noise] = f"{layer.noise}{number}"
        if layer.step_index is not None:
            names[L.H] = f"h{number}"
        return names

    def _draw_noise(self, w, layer, number, training):
        """The layer's noise: each entry its declared sample of a uniform draw u in training (noise_seed ≥ 0, or
        ``training``), else its value outside training."""
        mask = f"{layer.noise}{number}"
        sample = layer.noise_sample()
        w(f"# {mask}[n, i] = {sample} in training, uniform drawn from [0, 1) per entry; {layer.noise_off} otherwise")
        self.buffer(w, mask, ("batch", layer.n_out))

        def drawn():
            with w.loops(("n", "batch"), ("i", layer.n_out)):
                w(f"{L.UNIFORM} = np.random.random()")
                w(f"{mask}[n, i] = {self.p(sample)}")

        def off():
            w(f"{mask}[:] = {self.p(sp.Integer(layer.noise_off))}")

        if training is not None:
            (drawn if training else off)()
            return
        w("if noise_seed >= 0:")
        with w.block():
            drawn()
        w("else:")
        with w.block():
            off()

    def state_update(self, w):
        """After a training step's forward pass: each layer's state (BatchNorm's running statistics) to its declared
        new value, written into theta itself (reusing the batch's sums the forward pass computed)."""
        for number, layer in enumerate(self.model.layers, start=1):
            if not layer.state:
                continue
            previous = "X" if number == 1 else f"a{number - 1}"
            names = {L.a: previous, **self._parameter_names(layer, number),
                     **{base: f"state_{base}{number}" for base, _ in layer.state}}
            for base, shape in layer.state:
                start, stop = next((start, stop) for name, start, stop, _ in self.layout if name == f"{base}{number}")
                target = f"state_{base}{number}"
                self.shapes[target] = shape
                update = layer.sized(layer.state_updates[base])
                w(f"# {base}{number}[i] ← {update}")
                self.view(w, target, f"theta[{start}:{stop}]", shape)
                self.evaluate(w, _arrays(update, names), target, layer.output_indices[1:], allocate=False)

    @staticmethod
    def _activation_parameters(layer, number, column):
        """{parameter symbol: its generated array's cell} (column ``column`` per neuron, 0 when shared)."""
        return {symbol: sp.IndexedBase(f"{symbol.name}{number}", real=True)[0 if spec.shared else column]
                for symbol, spec in layer.activation.parameters}

    def _zero_activation_gradients(self, w, number):
        for symbol, _ in self.model.layers[number - 1].activation.parameters:
            w(f"grad_{symbol.name}{number}[:] = {self.p(sp.Float(0))}")

    def _activation_gradients(self, w, number, upstream, row, column):
        """grad_γ[column] += upstream · ∂f/∂γ(z[row, column]) for every trainable activation parameter γ."""
        layer = self.model.layers[number - 1]
        f = layer.activation
        at = {f.variable: sp.IndexedBase(f"z{number}", real=True)[sp.Symbol(row), sp.Symbol(column)],
              **self._activation_parameters(layer, number, sp.Symbol(column))}
        for symbol, spec in f.parameters:
            cell = f"grad_{symbol.name}{number}[{0 if spec.shared else column}]"
            derivative = stable(f.parameter_derivatives[symbol]).xreplace(at)
            w(f"{cell} += {upstream} * {self.p(derivative)}")

    def backward(self, w, training=None):
        """δ and the parameters' gradients, layer by layer from the last; ``training`` as in :meth:`forward`."""
        model = self.model
        for number in range(len(model.layers), 0, -1):
            layer = model.layers[number - 1]
            previous = "X" if number == 1 else f"a{number - 1}"
            names = {L.a: previous, L.delta: f"delta{number}", **self._parameter_names(layer, number)}
            scattered = False
            vjps = backprop.vjps(layer, evaluation=training is False)
            if layer.max_over:
                scattered = self._scatter_route(w, layer, number)
                if not scattered:
                    self._route(w, layer, number)
                names[L.delta] = f"dz{number}"
            if layer.step_index is not None:
                self._through_time(w, layer, number, vjps[L.H], names)
                names[L.delta] = f"dz{number}"
            for base in layer.parameter_shapes:
                indices, expr = vjps[base]
                w(f"# grad_{base}{number}{list(indices)} = {expr}")
                self._assign(w, _arrays(expr, names), f"grad_{base}{number}", indices, allocate=False)
            if number > 1:
                indices, expr = vjps[L.a]
                target = f"delta{number - 1}"
                fprime = model.fprime_form(number - 2)
                w(f"# {target}{list(indices)} = ({expr}) ⊙ f'(z{number - 1}), f' = {fprime[1]}"
                  if model.layers[number - 2].step_index is None else
                  f"# {target}{list(indices)} = {expr}: ∂L/∂a{number - 1}, which layer {number - 1} takes through time")
                if scattered:
                    w(f"# ({target} written above, δ at each winner)")
                elif expr == L.delta[indices]:
                    w(f"{target} = delta{number}   # the same memory: δ is written over (not needed later)")
                else:
                    self._assign(w, _arrays(expr, names), target, indices, allocate=True)
                learned = model.layers[number - 2].activation.parameters
                if learned:
                    w(f"# ∂L/∂γ = Σ ∂L/∂a{number - 1} ⊙ ∂f/∂γ for the trainable activation parameters γ of layer "
                      f"{number - 1}")
                    self._zero_activation_gradients(w, number - 1)
                if fprime[0] != "one" and model.layers[number - 2].step_index is None:   # a recurrent one: its own
                    with w.loops(("n", "batch"), ("j", layer.n_in)), self.innermost(layer.n_in):
                        factor = self._fprime_factor(fprime, number - 1, 'n', 'j')
                        if learned:
                            w(f"upstream = {target}[n, j]")
                            self._activation_gradients(w, number - 1, "upstream", "n", "j")
                            w(f"{target}[n, j] = upstream * {factor}")
                        else:
                            w(f"{target}[n, j] *= {factor}")

    def _scatter_route(self, w, layer, number):
        """When the layer's map only reads its input at index expressions (z[n, …, max indices] = a[n, e(…)], max
        pooling) and has no parameters, δ goes straight to the input entry each winner read:
        delta{number − 1}[n, e(…, winner)] += delta[n, …], into a zeroed array (+= for windows that overlap), with no
        dz over the max indices.  Returns False (nothing written) otherwise, and True when there is no input
        gradient to write (the first layer)."""
        sized = layer.sized_map()
        if (layer.parameter_shapes or layer.activation.expr != layer.activation.variable
                or not isinstance(sized, sp.Indexed) or sized.base != L.a):
            return False
        if number == 1:
            return True
        over, out, extents = _max_indices(layer)
        target = f"delta{number - 1}"
        read = _arrays(sized, {L.a: target})
        piece = self.p(sp.IndexedBase(f"piece{number}", real=True)[out])
        w(f"# δ reaches only the winning entry, which z{number}{list(layer.output_indices)} = {sized} read: "
          f"{read} += delta{number}{list(out)} at {', '.join(map(str, over))} = piece{number}")
        self.buffer(w, target, self.shapes[target], zero=True)
        with w.loops(("n", "batch"), *zip(map(str, out[1:]), layer.output_shape)):
            if len(over) == 1:
                w(f"{over[0]} = {piece}")
            else:
                w(f"choice = {piece}")
                for index_, text in zip(over, self._decomposed("choice", extents)):
                    w(f"{index_} = {text}")
            w(f"{self.p(read)} += {self.p(sp.IndexedBase(f'delta{number}', real=True)[out])}")
        return True

    @contextmanager
    def at_winners(self, w, layer, number):
        """Loops over the cells of a max layer's output; inside, gives the indices (as text) of the cell of z over
        the max's indices that won, its piece decoded."""
        over, out, extents = _max_indices(layer)
        piece = self.p(sp.IndexedBase(f"piece{number}", real=True)[out])
        with w.loops(("n", "batch"), *zip(map(str, out[1:]), layer.output_shape)):
            if len(over) == 1:
                chosen = [piece]
            else:
                w(f"choice = {piece}")
                chosen = self._decomposed("choice", extents)
            yield ", ".join([*map(str, out), *chosen])

    def _route(self, w, layer, number, prefix=""):
        """dz[n, …, max indices] = δ[n, …] at the combination that won, 0 elsewhere (``prefix`` + those names: the
        R-images' with "r")."""
        over, out, _ = _max_indices(layer)
        dz, delta = f"{prefix}dz{number}", f"{prefix}delta{number}"
        w(f"# δ reaches only the winning entry: {dz}{list(layer.output_indices)} = {delta}{list(out)} "
          f"[{', '.join(map(str, over))} = piece{number}]")
        self.buffer(w, dz, ("batch", *layer.z_shape), zero=True)
        with self.at_winners(w, layer, number) as cell:
            w(f"{dz}[{cell}] = {self.p(sp.IndexedBase(delta, real=True)[out])}")
