"""Networks: a sequence of layers and a loss, compiled into one generated Numba module.

>>> import symnet as sn
>>> model = sn.Sequential([sn.Dense(2, 16, activation="tanh"), sn.Dense(16, 1)], loss="mse")
>>> net = model.compile(optimizer=sn.optim.SGD(lr=0.1))
>>> params = net.init(seed=0)                      # {"W1", "b1", "W2", "b2"}: views of one flat array
>>> loss, grads = net.loss_and_grad(params, X, Y)
>>> loss = net.step(params, X, Y)                  # in place
"""

import math
from collections.abc import Mapping, MutableMapping
from functools import cached_property

import numpy as np
import sympy as sp

from symnet.declare import layers as L
from symnet.declare import losses
from symnet.declare.layers import (INITIALISERS, Dense, Layer, SizedByPredecessor, is_weight, parameter_layout,
                                   trainable_size)
from symnet.declare.parse import exact_number
from symnet.errors import ConfigurationError, NonFiniteError, ShapeError, quoted
from symnet.generate import modules
from symnet.generate.network import A_SCALAR, NetworkModule, signatures
from symnet.generate.second_order import activation_derivatives, gradient_jvp
from symnet.generate.printer import check_dtype
from symnet import backprop, rewrites
from symnet.latex import aligned, display, latex
from symnet.rewrites import stable
from symnet.simplify import derivative_from_output
from symnet.declare.optimizers import STEP, Optimizer

RELU_FAMILY = ("relu", "leaky_relu", "elu")


def check_seed(seed, name="seed"):
    """Return ``seed`` if it is an integer ≥ 0 (what NumPy's generators accept), else raise a clear error."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigurationError(f"{name} must be an integer ≥ 0, got {quoted(seed)}")
    return int(seed)


class Parameters(MutableMapping):
    """``{"W1": array, "b1": array, ...}``: views into one flat array :attr:`flat`.

    :attr:`layout` is the network's ``((name, start, stop, shape), ...)``: what each slice of :attr:`flat` means,
    so a network can tell its own parameters from another network's of the same size.  The views are made when
    first asked for (a gradient that is never looked at costs no views); ``params["W1"] = value`` copies into one.
    """

    __slots__ = ("flat", "layout", "_views")

    def __init__(self, flat, layout):
        self.flat, self.layout, self._views = flat, layout, None

    def _all(self):
        if self._views is None:
            self._views = {name: self.flat[start:stop].reshape(shape) for name, start, stop, shape in self.layout}
        return self._views

    def __getitem__(self, name):
        return self._all()[name]

    def __setitem__(self, name, value):
        self._all()[name][...] = value

    def __delitem__(self, name):
        raise TypeError("parameters keep their network's layout; a name cannot be removed")

    def __iter__(self):
        return (name for name, *_ in self.layout)

    def __len__(self):
        return len(self.layout)

    def __contains__(self, name):
        return name in self._all()

    def __repr__(self):
        return "Parameters(" + ", ".join(f"{name}: {shape}" for name, _, _, shape in self.layout) + ")"


def copy_back(packed, params):
    """Write ``packed``'s values into the caller's ``params`` when :meth:`CompiledNetwork.pack` made a copy."""
    if packed is not params:
        for name in packed:
            params[name][...] = packed[name]


def _check_second_order(model):
    """Refuse a model whose Hessian-vector product the second-order module cannot generate yet."""
    learned = [f"layer {number}'s {layer.activation.name}" for number, layer in enumerate(model.layers, 1)
               if layer.activation.parameters]
    if learned:
        raise ConfigurationError(f"Hessian-vector products of activations with trainable parameters "
                                 f"({', '.join(learned)}) are not supported yet")
    recurrent = [f"layer {number} ({layer!r})" for number, layer in enumerate(model.layers, 1)
                 if layer.step_index is not None]
    if recurrent:
        raise ConfigurationError(f"Hessian-vector products through recurrent layers ({', '.join(recurrent)}) are not "
                                 "supported yet; use a first-order optimizer")


class Sequential:
    """Layers applied in order, then a loss averaged over the batch (plus ½λ Σ‖W‖_F² with ``weight_decay=λ``).

    ``input_shape``: the shape of one sample, e.g. ``(1, 8, 8)`` (channels, height, width) for a convolution
    first; by default the first layer's own (``Dense(64, …)`` takes vectors of 64).  Each layer's input shape is
    the output shape of the layer before it."""

    def __init__(self, layers, loss="mse", weight_decay=0.0, input_shape=None):
        if isinstance(layers, (str, Layer)) or not hasattr(layers, "__iter__"):
            raise ConfigurationError(f"Sequential takes a list of layers, got {quoted(layers)}; "
                                     "e.g. sn.Sequential([sn.Dense(2, 16, activation='tanh'), sn.Dense(16, 1)])")
        self.layers = list(layers)
        if not self.layers:
            raise ConfigurationError("Sequential needs at least one layer")
        for number, layer in enumerate(self.layers, start=1):
            if not isinstance(layer, Layer):
                raise ConfigurationError(f"layer {number} is {quoted(layer)} ({type(layer).__name__}), not a layer; "
                                         "give layer objects such as sn.Dense(2, 16, activation='tanh')")
        self._shape_layers(input_shape)
        self.loss = losses.get(loss)
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) \
                or not math.isfinite(weight_decay) or weight_decay < 0:
            raise ConfigurationError(f"weight_decay must be a finite number ≥ 0, got {quoted(weight_decay)}")
        self.weight_decay = float(weight_decay)

    def _shape_layers(self, input_shape):
        """Give each layer the output shape of the one before (the first ``input_shape``), or say what does not
        fit."""
        if input_shape is not None:
            if isinstance(input_shape, int) and not isinstance(input_shape, bool):
                input_shape = (input_shape,)
            if not (isinstance(input_shape, (tuple, list)) and input_shape and all(
                    isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in input_shape)):
                raise ConfigurationError(f"input_shape must be a tuple of positive integers (one sample's shape, "
                                         f"e.g. (1, 8, 8)), got {quoted(input_shape)}")
        shape = None if input_shape is None else tuple(input_shape)
        for number, layer in enumerate(self.layers, start=1):
            given = "input_shape" if number == 1 else f"layer {number - 1} ({self.layers[number - 2]!r})"
            if shape is None:
                if layer.input_shape is None:
                    raise ConfigurationError(f"layer 1 ({layer!r}) does not know its input's shape: give the model "
                                             f"input_shape=… (one sample's shape)" + (
                                                 f" or {layer.kind}(..., size=n_inputs)"
                                                 if isinstance(layer, SizedByPredecessor) else ""))
            elif not layer.shaped(shape):
                wanted = layer.input_shape
                if len(shape) == 1 and wanted is not None and len(wanted) == 1:
                    raise ConfigurationError(f"layer {number} ({layer!r}) takes {wanted[0]} inputs but {given} "
                                             f"gives {shape[0]}; make them equal")
                hint = (f"; put sn.Flatten() before it (it takes {math.prod(shape)} then)"
                        if wanted is not None and len(wanted) == 1 and len(shape) > 1 else "")
                raise ConfigurationError(f"layer {number} ({layer!r}) takes inputs of shape "
                                         f"{_shape(wanted) if wanted else 'channels × height × width'} but {given} "
                                         f"gives {_shape(shape)}{hint}")
            shape = layer.output_shape
        if len(shape) != 1:
            raise ConfigurationError(f"the last layer ({self.layers[-1]!r}) gives outputs of shape {_shape(shape)}; "
                                     "the loss takes vectors: end with sn.Flatten() and a Dense layer")
        if self.layers[-1].step_index is not None:   # the loss's δ would skip the steps' f' and recurrence
            raise ConfigurationError(f"the last layer ({self.layers[-1]!r}) is recurrent; end with a read-out layer "
                                     f"such as sn.Dense({shape[0]}, n_outputs)")
        self.input_shape = self.layers[0].input_shape

    def __repr__(self):
        decay = f", weight_decay={self.weight_decay!r}" if self.weight_decay else ""
        shape = f", input_shape={self.input_shape}" if len(self.input_shape) > 1 else ""
        return f"Sequential([{', '.join(map(repr, self.layers))}], loss={self.loss.name!r}{decay}{shape})"

    def _repr_latex_(self):
        """The equations of :meth:`latex` for Jupyter, aligned at their first equals sign."""
        return display(aligned([line.partition(" = ") for line in self.latex().splitlines()]))

    def stability_rewrites(self):
        """Each numerically stable rewrite the generated code uses, as :class:`~symnet.rewrites.Rewrite` objects (the
        form before and after, checked equal at the points they name; they render in Jupyter): in the activations,
        in the f' a layer evaluates from its input, in the derivatives of trainable activation parameters, and in the
        loss and its gradient."""
        found = []
        for number, layer in enumerate(self.layers, start=1):
            f = layer.activation
            forms = [(f"layer {number}: {f.name}", f.expr)]
            if self.fprime_form(number - 1)[0] == "input":
                forms.append((f"layer {number}: {f.name}'", f.derivative))
            forms += [(f"layer {number}: ∂f/∂{symbol}", derivative)
                      for symbol, derivative in f.parameter_derivatives.items()]
            found += [rewrites.of_one_variable(name, expr, f.variable, f.initial_values) for name, expr in forms]
        name = self.loss.rewrite.partition(":")[0] or "stable form"
        found.append(rewrites.rewrite(f"{self.loss.name}: {name}", self.loss.declared, self.loss.stable_value,
                                      *rewrites.loss_points(losses.o, losses.y, losses.K)))
        found.append(rewrites.rewrite(f"{self.loss.name}: ∂ℓ/∂o_j", self.loss.gradient, self.loss.stable_gradient,
                                      *rewrites.loss_points(losses.o, losses.y, losses.K, index=losses.j)))
        return [rewrite for rewrite in found if rewrite is not None]

    @property
    def noisy(self):
        """True when a layer draws noise in training (Dropout)."""
        return any(layer.noise is not None for layer in self.layers)

    @property
    def has_evaluation_maps(self):
        """True when a layer has a map of its own outside training (BatchNorm's running statistics)."""
        return any(layer.evaluation_map is not None for layer in self.layers)

    @property
    def training_mode(self):
        """True when a layer computes differently in training (Dropout's noise, BatchNorm's batch statistics): the
        generated functions then take a noise seed, ≥ 0 for training, −1 outside it."""
        return any(layer.training_mode for layer in self.layers)

    @property
    def min_training_batch(self):
        """The fewest samples a training step takes (2 with BatchNorm: its running variance is unbiased)."""
        return max(layer.min_training_batch for layer in self.layers)

    @property
    def parameter_count(self):
        """How many numbers the network learns (the trainable prefix of the flat parameter vector; non-trainable
        state such as BatchNorm's running statistics follows it)."""
        return trainable_size(self.layers)

    def describe(self):
        """Sizes, activations, loss and weight decay in one line, e.g. ``2-16-1 (tanh, identity; mse)``."""
        sizes = "-".join(_shape(shape) for shape in [self.input_shape] + [layer.output_shape for layer in self.layers])
        decay = f", weight decay {self.weight_decay}" if self.weight_decay else ""
        return f"{sizes} ({', '.join(layer.activation.name for layer in self.layers)}; {self.loss.name}{decay})"

    def architecture(self):
        """The layers and the loss as text: what a checkpoint's parameters must fit (weight decay may differ)."""
        return "|".join([*(layer.definition() for layer in self.layers), self.loss.name,
                         sp.srepr(self.loss.evaluated)])

    def definition(self):
        """Everything the generated code depends on, as text (for the content hash)."""
        return f"{self.architecture()}|{self.weight_decay!r}"

    def summary(self):
        lines = [f"Network {self.describe()}"]
        for number, layer in enumerate(self.layers, start=1):
            lines.append(f"  layer {number}: {layer!r}; f(t) = {layer.activation.expr}; "
                         f"f'(t) = {layer.activation.derivative}")
            for symbol, derivative in layer.activation.parameter_derivatives.items():
                spec = dict(layer.activation.parameters)[symbol]
                lines.append(f"    trainable {symbol}{number} ({'shared' if spec.shared else 'per neuron'}, "
                             f"starts at {spec.initial}); ∂f/∂{symbol} = {derivative}")
        lines.append(f"  loss: {self.loss.name}, ℓ = {self.loss.declared}; "
                     f"∂ℓ/∂o_j = {losses.named(self.loss.gradient)}")
        if self.weight_decay:
            lines.append(f"  weight decay λ = {self.weight_decay}")
        return "\n".join(lines)

    def activation_value(self, position):
        """The stable form of layer ``position``'s activation (in its input symbol)."""
        return stable(self.layers[position].activation.expr)

    @cached_property
    def _fprime_forms(self):
        forms = []
        for layer in self.layers:
            f = layer.activation
            if f.expr == f.variable:
                forms.append(("one", sp.Integer(1)))
                continue
            from_output = None if f.parameters else derivative_from_output(f.expr, f.derivative, f.variable, A_SCALAR)
            from_input = stable(f.derivative)
            if from_output is not None and sp.count_ops(from_output) <= sp.count_ops(from_input):
                forms.append(("output", from_output))
            else:
                forms.append(("input", from_input))
        return forms

    def fprime_form(self, position):
        """How layer ``position``'s f' is computed: ("one", 1), ("output", g(a)) or ("input", f'(z))."""
        return self._fprime_forms[position]

    def latex(self):
        """What symnet derived for this model, one LaTeX equation per line, in index notation with the names of
        the generated code (the input X; layer l's z_l, a_l, its parameters W_l, b_l, …, and δ_l = ∂L/∂z_l).

        Forward: each layer's declared map and its activation; the loss.  Backward, from the loss down: δ of the
        last layer, then per layer the gradient of each parameter and the δ of the layer below, each the
        vector-Jacobian product SymPy derived from the layer's map (the expressions the generated code
        evaluates), times f' of the layer below in the form the code uses."""
        lines = []
        for number, layer in enumerate(self.layers, start=1):
            lines += self._latex_forward(layer, number)
        count = len(self.layers)
        last = self.layers[-1]
        rows = {losses.o: sp.IndexedBase(f"a{count}", real=True), losses.y: sp.IndexedBase("Y", real=True)}

        def per_row(expr):
            return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base in rows,
                                lambda e: rows[e.base][L.n, e.indices[0]]).xreplace({losses.K: last.n_out})

        decay = (rf" + \frac{{\lambda}}{{2}} \sum_{{l}} \lVert W_{{l}} \rVert^{{2}}, \quad \lambda = "
                 rf"{latex(exact_number(self.weight_decay))}" if self.weight_decay else "")
        lines.append(rf"L = \frac{{1}}{{N}} \sum_{{n=0}}^{{N - 1}} \ell_{{n}}{decay}, \quad "
                     rf"\ell_{{n}} = {latex(per_row(self.loss.declared))}")
        upstream = per_row(self.loss.gradient).xreplace({losses.j: L.i})
        shifts = losses.shift_names(upstream)
        lines.append(rf"{latex(self._latex_delta(count)[L.n, L.i])} = \frac{{1}}{{N}} "
                     rf"\left({latex(upstream.xreplace(shifts))}\right)" + self._latex_fprime(count, (L.n, L.i))
                     + "".join(rf", \quad {latex(name)} = {latex(shift)}" for shift, name in shifts.items()))
        for number in range(count, 0, -1):
            lines += self._latex_backward(self.layers[number - 1], number)
        return "\n".join(lines)

    def second_order_latex(self):
        """The equations of the exact Hessian-vector product (:meth:`CompiledNetwork.hvp`), one LaTeX line each:
        Pearlmutter's R-operator R{·} = d/dε (·)(θ + εv)|₀ applied to the forward pass (R{P} = v_P, the direction;
        R{X} = 0), to δ of the last layer, and to the backward pass, where (Hv)_P = R{∂L/∂P}.  Each right-hand side
        is what SymPy derived (:func:`~symnet.backprop.jvp` of the layer's map and VJPs) and the second-order module
        evaluates; f' and f'' in the pre-activation z (f'' = 0 at a kink).  Refused where the module would be
        (recurrent layers, trainable activation parameters)."""
        _check_second_order(self)

        def R(base):
            return sp.IndexedBase(rf"\mathcal{{R}}\{{{latex(base)}\}}", real=True)

        def activation(number, indices):
            layer = self.layers[number - 1]
            first, second = activation_derivatives(layer.activation)
            at = {layer.activation.variable: sp.IndexedBase(f"z{number}", real=True)[indices]}
            return first.xreplace(at), second.xreplace(at)

        lines = []
        for number, layer in enumerate(self.layers, start=1):
            names = self._latex_names(layer, number)
            directions = {names[base]: R(names[base]) for base in layer.parameter_shapes}
            if number > 1:
                directions[names[L.a]] = R(names[L.a])
            z, a = (sp.IndexedBase(f"{name}{number}", real=True) for name in "za")
            rz = backprop.jvp(layer.sized_map().xreplace(names), directions)
            lines.append(rf"{latex(R(z)[layer.output_indices])} = {latex(rz)}")
            out = tuple(index_ for index_ in layer.output_indices if index_ not in layer.max_over)
            if layer.max_over:
                lines.append(rf"{latex(R(a)[out])} = {latex(R(z)[layer.output_indices])} \text{{ at the winner}}")
            else:
                first, _ = activation(number, out)
                lines.append(rf"{latex(R(a)[out])} = {latex(first * R(z)[out])}")
        count = len(self.layers)
        output, direction = sp.IndexedBase(f"a{count}", real=True), sp.IndexedBase("R_o", real=True)
        rows = {losses.o: output, losses.y: sp.IndexedBase("Y", real=True), direction: R(output)}
        r_gradient = losses.named(gradient_jvp(self.loss.gradient, direction))
        r_gradient = r_gradient.replace(lambda e: isinstance(e, sp.Indexed) and e.base in rows,
                                        lambda e: rows[e.base][L.n, e.indices[0]])
        r_gradient = r_gradient.xreplace({losses.K: self.layers[-1].n_out, losses.j: L.i})
        first, second = activation(count, (L.n, L.i))
        gradient = sp.Symbol(r"\frac{\partial \ell_{n}}{\partial o_{i}}")
        delta = (r_gradient * first + gradient * second * R(sp.IndexedBase(f"z{count}", real=True))[L.n, L.i]) / L.N
        lines.append(rf"{latex(R(self._latex_delta(count))[L.n, L.i])} = {latex(delta)}")
        for number in range(count, 0, -1):
            layer = self.layers[number - 1]
            names = self._latex_names(layer, number)
            if layer.max_over:
                names[L.delta] = sp.IndexedBase(rf"\bar{{z}}_{{{number}}}", real=True)
            directions = {names[base]: R(names[base]) for base in (*layer.parameter_shapes, L.delta)}
            if number > 1:
                directions[names[L.a]] = R(names[L.a])
            vjps = backprop.vjps(layer)
            for base in layer.parameter_shapes:
                indices, expr = vjps[base]
                decay = (rf" + \lambda {latex(R(names[base])[indices])}"
                         if self.weight_decay and is_weight(layer, base) else "")
                lines.append(rf"\left(H v\right)_{{{latex(names[base][indices])}}} = "
                             rf"{latex(backprop.jvp(expr.xreplace(names), directions))}{decay}")
            if number > 1:
                indices, expr = vjps[L.a]
                vjp = expr.xreplace(names)
                first, second = activation(number - 1, indices)
                below = R(self._latex_delta(number - 1))[indices]
                rz = R(sp.IndexedBase(f"z{number - 1}", real=True))[indices]
                lines.append(rf"{latex(below)} = {latex(backprop.jvp(vjp, directions) * first + vjp * second * rz)}")
        return "\n".join(lines)

    def _latex_names(self, layer, number):
        """{declared symbol: generated name} for layer ``number``: its input, parameters, noise, δ and a recurrent
        layer's own output H (its steps h)."""
        names = {L.a: sp.IndexedBase("X" if number == 1 else f"a{number - 1}", real=True),
                 L.delta: self._latex_delta(number)}
        names.update({base: sp.IndexedBase(f"{base}{number}", real=True)
                      for base, _ in (*layer.parameters, *layer.state)})
        if layer.noise is not None:
            names[layer.noise] = sp.IndexedBase(f"{layer.noise}{number}", real=True)
        if layer.step_index is not None:
            names[L.H] = sp.IndexedBase(f"h{number}", real=True)
        return names

    @staticmethod
    def _latex_delta(number):
        return sp.IndexedBase(rf"\delta_{{{number}}}", real=True)

    def _latex_activation(self, layer, number, indices):
        """Layer ``number``'s activation at z[indices], its parameters named as in the generated code."""
        f = layer.activation
        at = {f.variable: sp.IndexedBase(f"z{number}", real=True)[indices]}
        at.update({symbol: sp.IndexedBase(f"{symbol.name}{number}", real=True)[0 if spec.shared else indices[-1]]
                   for symbol, spec in f.parameters})
        return f, at

    def _latex_forward(self, layer, number):
        names = self._latex_names(layer, number)
        indices = tuple(index_ for index_ in layer.output_indices if index_ not in layer.max_over
                        and not (layer.last_step_only and index_ == layer.step_index))
        output = sp.IndexedBase(f"a{number}", real=True)[indices]
        declared = latex(layer.sized_map().xreplace(names))
        z = sp.IndexedBase(f"z{number}", real=True)
        lines = [rf"{latex(z[layer.output_indices])} = {declared}"]
        if layer.evaluation_map is not None:
            outside = latex(layer.sized_map(evaluation=True).xreplace(names))
            lines[0] += r" \text{ in training}"
            lines.append(rf"{latex(z[layer.output_indices])} = {outside} \text{{ outside training}}")
        for base, _ in layer.state:
            update = latex(layer.sized(layer.state_updates[base]).xreplace(names))
            lines.append(rf"{latex(names[base][layer.output_indices[1:]])} = {update} "
                         r"\text{ after each training step}")
        if layer.noise is not None:
            mask = latex(names[layer.noise][L.n, L.i])
            lines.append(rf"{mask} = {latex(layer.noise_sample())} \text{{ in training, }} {latex(L.UNIFORM)} "
                         rf"\sim U[0, 1) \text{{ per entry; }} {layer.noise_off} \text{{ otherwise}}")
        if layer.max_over:
            lines.append(rf"{latex(output)} = \max_{{{', '.join(map(str, layer.max_over))}}} "
                         rf"{latex(z[layer.output_indices])}")
            return lines
        f, at = self._latex_activation(layer, number, layer.output_indices)
        if layer.step_index is None:
            lines.append(rf"{latex(output)} = {latex(f.expr.xreplace(at))}")
            return lines
        steps = names[L.H]
        lines.append(rf"{latex(steps[layer.output_indices])} = {latex(f.expr.xreplace(at))}, \quad "
                     rf"{latex(steps[layer.output_indices].xreplace({layer.step_index: -1}))} = 0")
        last = sp.Integer(layer.z_shape[layer.output_indices.index(layer.step_index) - 1] - 1)
        lines.append(rf"{latex(output)} = " + latex(steps[layer.output_indices].xreplace({layer.step_index: last})
                                                    if layer.last_step_only else steps[indices]))
        return lines

    def _latex_fprime(self, number, indices):
        """`` · f'`` of layer ``number`` at [indices] in the form the generated code evaluates ('' when f' = 1)."""
        kind, form = self.fprime_form(number - 1)
        if kind == "one":
            return ""
        layer = self.layers[number - 1]
        f, at = self._latex_activation(layer, number, indices)
        if kind == "output":
            at[A_SCALAR] = sp.IndexedBase(f"{'a' if layer.step_index is None else 'h'}{number}", real=True)[indices]
        return rf" \cdot \left({latex(form.xreplace(at))}\right)"

    def _latex_backward(self, layer, number):
        names = self._latex_names(layer, number)
        lines = []
        if layer.max_over:                                        # δ reaches the winning entry only
            routed = sp.IndexedBase(rf"\bar{{z}}_{{{number}}}", real=True)
            out = tuple(index_ for index_ in layer.output_indices if index_ not in layer.max_over)
            over = ", ".join(map(str, layer.max_over))
            winner = latex(sp.IndexedBase(f"z{number}", real=True)[layer.output_indices])
            chosen = over if len(layer.max_over) == 1 else f"({over})"
            lines.append(rf"{latex(routed[layer.output_indices])} = {latex(names[L.delta][out])} "
                         rf"\left[{chosen} = \operatorname{{argmax}}_{{{over}}} {winner}\right]")
            names[L.delta] = routed
        vjps = backprop.vjps(layer)
        if layer.step_index is not None:                          # back-propagation through time
            indices, expr = vjps[L.H]
            step = indices[layer.output_indices.index(layer.step_index)]
            kept = tuple(index_ for index_ in indices if index_ != step)
            above = self._latex_upstream(number)
            last = sp.Integer(layer.z_shape[layer.output_indices.index(layer.step_index) - 1] - 1)
            upstream = (rf"{latex(above[kept])} \left[{latex(step)} = {latex(last)}\right]" if layer.last_step_only
                        else latex(above[indices]))
            lines.append(rf"{latex(names[L.delta][indices])} = \left({upstream} + {latex(expr.xreplace(names))}\right)"
                         + self._latex_fprime(number, indices))
        for base, shape in layer.parameter_shapes.items():
            indices, expr = vjps[base]
            parameter = names[base][indices]
            decay = rf" + \lambda {latex(parameter)}" if self.weight_decay and is_weight(layer, base) else ""
            lines.append(rf"\frac{{\partial L}}{{\partial {latex(parameter)}}} = "
                         rf"{latex(expr.xreplace(names))}{decay}")
        f = layer.activation
        out = layer.output_indices
        for symbol, spec in f.parameters:
            column = sp.Integer(0) if spec.shared else out[-1]
            parameter = sp.IndexedBase(f"{symbol.name}{number}", real=True)[column]
            _, at = self._latex_activation(layer, number, out)
            summed = out if spec.shared else (L.n,)
            upstream = rf"\frac{{\partial L}}{{\partial {latex(sp.IndexedBase(f'a{number}', real=True)[out])}}}"
            lines.append(rf"\frac{{\partial L}}{{\partial {latex(parameter)}}} = \sum_{{{', '.join(map(str, summed))}}} "
                         rf"{upstream} \left({latex(f.parameter_derivatives[symbol].xreplace(at))}\right)")
        if number > 1 and self.layers[number - 2].step_index is not None:   # ∂L/∂a below: it goes through time
            indices, expr = vjps[L.a]
            lines.append(rf"{latex(self._latex_upstream(number - 1)[indices])} = {latex(expr.xreplace(names))}")
        elif number > 1:
            indices, expr = vjps[L.a]
            below, fprime = self._latex_delta(number - 1)[indices], self._latex_fprime(number - 1, indices)
            vjp = latex(expr.xreplace(names))
            lines.append(rf"{latex(below)} = " + (rf"\left({vjp}\right){fprime}" if fprime else vjp))
        return lines

    @staticmethod
    def _latex_upstream(number):
        """∂L/∂a of layer ``number`` (a recurrent layer's, before it goes through time)."""
        return sp.IndexedBase(rf"\bar{{a}}_{{{number}}}", real=True)

    def compile(self, optimizer=None, dtype="float64", directory=None, parallel=False):
        """Generate (or reuse) this model's module and return a :class:`CompiledNetwork`.

        Large matrix products use OpenBLAS's threads.  ``parallel=True`` also runs the activation loops of wide
        layers with transcendental activations on every core (``numba.prange``; rows are independent, so the
        results are identical).  Off by default: its threads and OpenBLAS's fight over the cores
        (docs/performance.md)."""
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            given = f"the class {optimizer.__name__}" if isinstance(optimizer, type) else quoted(optimizer)
            raise ConfigurationError(f"optimizer must be an optimizer object, got {given}; pass an instance such as "
                                     "optimizer=sn.optim.Adam(lr=0.01)")
        if optimizer is not None:
            for layer in self.layers:
                layer.activation.check_trainable()
        if not isinstance(parallel, bool):
            raise ConfigurationError(f"parallel must be True or False, got {parallel!r}")
        try:
            return CompiledNetwork(self, optimizer, check_dtype(dtype), directory, parallel)
        except MemoryError:
            raise ConfigurationError(f"{self.describe()} has {self.parameter_count:,} parameters; their arrays do "
                                     "not fit in this machine's memory") from None


class CompiledNetwork:
    """A model backed by one generated module: ``init``, ``loss``, ``loss_and_grad``, ``predict``, ``step``; and by a
    second one, written on first use, for ``hvp`` and ``hessian``."""

    def __init__(self, model, optimizer, dtype, directory, parallel):
        self.model, self.optimizer, self.dtype = model, optimizer, dtype
        self._directory, self._second_order, self._newton_gradient = directory, None, None
        self.layout = parameter_layout(model.layers)
        # a second-order optimizer (Newton-CG) runs in Python around the compiled gradient and H·v: no step is
        # generated for it
        generated = None if getattr(optimizer, "second_order", False) else optimizer
        if generated is not optimizer and L.state_names(model.layers):
            raise ConfigurationError(f"{type(optimizer).__name__} does not update layer state (BatchNorm's running "
                                     "statistics); use a first-order optimizer with this model")
        if generated is not optimizer:
            _check_second_order(model)
        self.signatures = signatures(model, generated)   # the generated functions' arguments, in order
        self.size = self.layout[-1][2] if self.layout else 0
        self.digest = modules.content_hash("network", model.definition(),
                                           generated.definition() if generated else "", dtype, f"parallel={parallel}")
        self.module, self.path, self.written = modules.load(
            "network", self.digest, lambda: NetworkModule(model, generated, dtype, self.digest, parallel).text(),
            directory)
        self._np_dtype, self._training_mode, self._sealed = np.dtype(dtype), model.training_mode, set()
        self._min_batch = model.min_training_batch
        self._sample_shape = model.input_shape if len(model.input_shape) > 1 else None   # images: read as rows
        self.optimizer_state = {}
        if optimizer is not None:
            # one work array and one scalars array, bound once: the generated step takes them as two arguments
            buffers = optimizer.buffer_names()
            self._work = np.zeros(len(buffers) * self.size, dtype=dtype)
            self._scalars = np.zeros(len(optimizer.scalar_names()), dtype=np.float64)
            views = {name: self._work[k * self.size:(k + 1) * self.size] for k, name in enumerate(buffers)}
            self.optimizer_state = {symbol.name: views[symbol.name] for symbol in optimizer.state}
            if optimizer.counts_steps:
                self.optimizer_state[STEP] = self._scalars[0:1]
            if generated is None:                          # Newton-CG: its current damping λ
                self.optimizer_state["damping"] = np.array([optimizer.damping])
            self._bound = {"work": self._work, "scalars": self._scalars}   # after theta, X, Y and the seed
            self._synced = None
            self._step_tail = tuple(self._bound[name] for name in self.signatures.get("train_step", ())
                                    if name in self._bound)
        self._noise_seeds = np.random.default_rng(0)

    def __repr__(self):
        """The summary: network, dtype, parameters, optimizer and generated module."""
        state = set(L.state_names(self.model.layers))

        def listed(in_state):
            return ", ".join(f"{name} {shape}" for name, _, _, shape in self.layout if (name in state) == in_state)
        trainable = self.model.parameter_count
        return "\n".join([f"CompiledNetwork {self.model.describe()}, {self.dtype}",
                          f"  parameters: {trainable:,} ({listed(False)})",
                          *([f"  state: {self.size - trainable:,} ({listed(True)})"] if state else []),
                          f"  optimizer: {self.optimizer!r}" if self.optimizer is not None else "  optimizer: none",
                          f"  module: {self.path}"])

    def _repr_latex_(self):
        """One training step as formulas: the model's equations, then the optimizer's rule."""
        rows = [line.partition(" = ") for line in self.model.latex().splitlines()]
        if self.optimizer is not None:
            rows += [(target, r"\leftarrow", value) for target, value in self.optimizer.latex_rows()]
        return display(aligned(rows))

    def reset_state(self):
        """Start the optimizer afresh: its state arrays and the step count to zero, Newton-CG's damping at its start
        (the parameters stay)."""
        self._work[...] = 0
        self._scalars[0] = 0
        if "damping" in self.optimizer_state:
            self.optimizer_state["damping"][0] = self.optimizer.damping

    def bound_arguments(self):
        """``{"work": …, "scalars": …}``: the arrays the generated ``train_step`` and ``train_epoch`` take after the
        data (:func:`~symnet.generate.network.signatures`), bound once: the gradient buffer, look-ahead point and
        optimizer state in one, the step count and the optimizer's current hyper-parameters in the other.  Updated
        in place by the step."""
        if self._synced != self.optimizer.version:
            self._scalars[1:] = self.optimizer.values()
            self._synced = self.optimizer.version
        return self._bound

    def step_arguments(self):
        """:meth:`bound_arguments` in the order ``train_step`` takes them, after ``(theta, X, Y[, noise_seed])``."""
        self.bound_arguments()
        return self._step_tail

    # --- parameters ---------------------------------------------------------

    def init(self, seed=0, scheme=None):
        """Fresh parameters: weights (rank ≥ 2, or as the layer names them) by ``scheme`` (default per activation: He for the ReLU family,
        Xavier/Glorot uniform otherwise), biases 0, trainable activation parameters at their initial values, state at
        its declared start (BatchNorm's running mean 0, running variance 1).
        Seeded and reproducible.

        Xavier normal: σ² = 2/(n_in + n_out); Xavier uniform: U(±√(6/(n_in + n_out))); He normal: σ² = 2/n_in,
        with n_in, n_out the fans of a weight entry (for a convolution, channels × kernel height × kernel width).
        """
        rng = np.random.default_rng(check_seed(seed))
        try:
            flat = np.zeros(self.size, dtype=self.dtype)
        except MemoryError:
            raise ConfigurationError(f"{self.size:,} parameters do not fit in this machine's memory") from None
        params = Parameters(flat, self.layout)
        for number, layer in enumerate(self.model.layers, start=1):
            chosen = scheme or layer.init or _default_scheme(layer.activation.name)
            for base, shape in layer.parameters:
                if is_weight(layer, base):
                    params[f"{base}{number}"][...] = _initial_weights(rng, chosen, *layer.fans(), shape)
                elif base in layer.initial:
                    params[f"{base}{number}"][...] = layer.initial[base]
            for base, _ in layer.state:
                params[f"{base}{number}"][...] = layer.initial.get(base, 0)
            for symbol, spec in layer.activation.parameters:
                params[f"{symbol.name}{number}"][...] = spec.initial
        return params

    def pack(self, params):
        """Parameters as :class:`Parameters` of this network's layout and dtype: returned as they are when they
        already are, else (a mapping of arrays, or another network's parameters) checked by name and shape and
        copied in."""
        if params.__class__ is Parameters and (params.layout is self.layout or params.layout == self.layout) \
                and params.flat.dtype is self._np_dtype and params.flat.flags.c_contiguous:
            return params
        if not isinstance(params, Mapping):
            raise ShapeError(f"parameters must be a mapping of names to arrays (as net.init() returns), "
                             f"got {type(params).__name__}")
        missing = [name for name, *_ in self.layout if name not in params]
        if missing:
            raise ShapeError(f"parameters lack {', '.join(missing)}; this network's are "
                             f"{', '.join(n for n, *_ in self.layout)}")
        flat = np.zeros(self.size, dtype=self.dtype)
        packed = Parameters(flat, self.layout)
        for name, _, _, shape in self.layout:
            value = np.asarray(params[name])
            if value.shape != shape:
                raise ShapeError(f"parameter {name} has shape {value.shape}; expected {shape}")
            packed[name] = value
        return packed

    # --- evaluation ---------------------------------------------------------

    def _as_array(self, values, name):
        """``values`` as a writeable C-contiguous array of the network's dtype, or a clear error (text, complex)."""
        if np.iscomplexobj(values):
            raise ShapeError(f"{name} holds complex numbers; the network computes in real {self.dtype}")
        try:
            array = np.ascontiguousarray(values, dtype=self.dtype)
        except (TypeError, ValueError) as error:
            raise ShapeError(f"{name} must be an array of numbers ({type(values).__name__} given: "
                             f"{quoted(str(error))})") from None
        return array if array.flags.writeable else array.copy()   # Numba types read-only arrays apart

    def _inputs(self, X, Y=None):
        first, last = self.model.layers[0], self.model.layers[-1]
        X = self._as_array(X, "X")
        shape = self.model.input_shape
        if X.ndim == len(shape) + 1 and X.shape[1:] == shape and len(shape) > 1:
            X = X.reshape(len(X), -1)     # the generated code reads samples as rows (a view: X is C-contiguous)
        elif X.ndim != 2 or X.shape[1] != first.n_in:     # (batch, entries) rows are taken as they are
            raise ShapeError(f"layer 1 {first!r} got input with shape {X.shape}; X must have shape "
                             f"(batch, {', '.join(map(str, shape))})")
        if X.shape[0] == 0:
            raise ShapeError("X has no rows; the batch must hold at least one sample")
        if not np.isfinite(X).all():
            row = int(np.argwhere(~np.isfinite(X))[0, 0])
            raise NonFiniteError(f"X contains NaN or infinity (first in row {row})")
        if Y is None:
            return X
        Y = self._as_array(Y, "Y")
        if Y.ndim == 1 and last.n_out == 1:
            Y = Y.reshape(-1, 1)
        if Y.shape != (X.shape[0], last.n_out):
            raise ShapeError(f"Y has shape {Y.shape}; expected ({X.shape[0]}, {last.n_out}) to match X and "
                             f"the last layer {last!r}")
        if not np.isfinite(Y).all():
            row = int(np.argwhere(~np.isfinite(Y))[0, 0])
            raise NonFiniteError(f"Y contains NaN or infinity (first in row {row})")
        return X, Y

    def _call(self, function, theta, inputs, tail, path=None):
        """``function(theta, *inputs, *tail)`` of the generated module, checking X and Y (``inputs``) at no cost
        when they are right.

        The first call converts them (:meth:`_inputs`), compiles ``function`` for exactly those types and then
        seals it: from then on Numba's own dispatch refuses any other types (a list, another dtype, a strided
        view, a 1-D Y) with a TypeError, and only then are they converted here.  Shapes and NaN/inf are checked
        inside the compiled code, which raises ValueError before any work; :meth:`_inputs` then says what is
        wrong.  Nothing is checked twice on the fast path.
        """
        if self._sample_shape is not None and getattr(inputs[0], "shape", ())[1:] == self._sample_shape:
            inputs = (inputs[0].reshape(len(inputs[0]), -1), *inputs[1:])   # a view when X is contiguous
        if function not in self._sealed:
            inputs = self._inputs(*inputs)
            inputs = inputs if isinstance(inputs, tuple) else (inputs,)
            modules.compile_once(function, path or self.path, (theta, *inputs, *tail))
            result = function(theta, *inputs, *tail)
            function.disable_compile()
            self._sealed.add(function)
            return result
        try:
            return function(theta, *inputs, *tail)
        except TypeError:             # types the compiled function was not made for: convert, then call
            converted = self._inputs(*inputs)
            return function(theta, *(converted if isinstance(converted, tuple) else (converted,)), *tail)
        except ValueError:
            self._inputs(*inputs)     # raises the precise ShapeError or NonFiniteError
            raise

    def _packed(self, params):
        if params.__class__ is Parameters and params.layout is self.layout and params.flat.flags.c_contiguous:
            return params
        return self.pack(params)

    def predict(self, params, X):
        """The network's output a_L for inputs X (batch, in)."""
        return self._call(self.module.predict, self._packed(params).flat, (X,), ())

    def noise(self, noise_seed):
        """The generated functions' noise argument: ``()`` for a network without a training mode (Dropout,
        BatchNorm); else ``(seed,)``, −1 (outside training) for None."""
        if noise_seed is None:
            return (-1,) if self._training_mode else ()
        if isinstance(noise_seed, bool) or not isinstance(noise_seed, (int, np.integer)) or not 0 <= noise_seed < 2**31:
            raise ConfigurationError(f"noise_seed must be an integer in [0, 2**31), got {quoted(noise_seed)}")
        return (int(noise_seed),) if self._training_mode else ()

    def loss(self, params, X, Y, noise_seed=None):
        """Mean loss over the batch (with the weight-decay term).  With ``noise_seed`` the network runs as in training:
        dropout masks drawn from it, BatchNorm's batch statistics; without, as outside training."""
        noise = self.noise(noise_seed)
        return self._call(self.module.loss_value, self._packed(params).flat, (X, Y), noise)

    def loss_and_grad(self, params, X, Y, noise_seed=None, out=None):
        """``(loss, grads)``; grads has the same keys and shapes as params.  ``noise_seed`` as in :meth:`loss`.

        ``out``: the grads of an earlier call (Parameters of this network not sharing memory with ``params``) to
        write this gradient into and return, so a loop of calls allocates nothing."""
        noise = self.noise(noise_seed)
        packed = self._packed(params)
        if out is None:
            out = Parameters(np.empty(self.size, self._np_dtype), self.layout)   # every entry is written
        elif not (out.__class__ is Parameters and (out.layout is self.layout or out.layout == self.layout)
                  and out.flat.dtype is self._np_dtype and out.flat.flags.c_contiguous):
            raise ConfigurationError(f"out must be {self.dtype} Parameters of this network, as net.loss_and_grad "
                                     f"returns them (same layout, dtype, one contiguous array); got "
                                     f"{type(out).__name__}")
        elif np.may_share_memory(out.flat, packed.flat):
            raise ConfigurationError("out shares memory with the parameters: the gradient would overwrite them "
                                     "while they are read; pass the grads of an earlier call")
        loss = self._call(self.module.loss_and_gradient, packed.flat, (X, Y), (*noise, out.flat))
        return loss, out

    # --- second order ------------------------------------------------------------

    def _second_order_module(self):
        """The module of ``hessian_vector_product`` (``hessian_<hash>.py``), written and loaded on first use: its
        derivation (the R-images of every map and VJP) is not paid by networks that never ask for it."""
        if self._second_order is None:
            _check_second_order(self.model)
            digest = modules.content_hash("hessian", self.model.definition(), self.dtype)
            module, path, _ = modules.load(
                "hessian", digest,
                lambda: NetworkModule(self.model, None, self.dtype, digest, False).text(second_order=True),
                self._directory)
            self._second_order = (module, path)
        return self._second_order

    def _direction(self, v):
        """``v`` as a flat contiguous array of this network's layout and dtype, and whether it came as parameters."""
        if isinstance(v, Mapping):
            flat = self.pack(v).flat
        else:
            flat = np.asarray(v)
            if flat.shape != (self.size,):
                raise ShapeError(f"v must be parameters of this network (a mapping such as net.init() returns) or a "
                                 f"flat array of {self.size} entries in their layout; got shape {flat.shape}")
            if not np.issubdtype(flat.dtype, np.number) or np.iscomplexobj(flat):
                raise ShapeError(f"v must hold real numbers, got dtype {flat.dtype}")
            flat = np.ascontiguousarray(flat, dtype=self._np_dtype)
        if not np.isfinite(flat).all():
            raise NonFiniteError(f"v contains NaN or infinity (first at flat index "
                                 f"{int(np.argmax(~np.isfinite(flat)))})")
        return flat, isinstance(v, Mapping)

    def hvp(self, params, X, Y, v, noise_seed=None):
        """H·v: the Hessian of the mean loss (with the weight-decay term) at ``params`` times ``v``, exact to
        rounding, for the cost of about two gradients: Pearlmutter's R-operator, each layer's forward map and VJPs
        differentiated once more by SymPy in the direction v (:mod:`symnet.generate.second_order`).

        ``v``: parameters of this network (a mapping such as ``net.init()`` returns) or a flat array in their
        layout; the result comes back in the same form.  State entries (BatchNorm's running statistics) of ``v``
        are ignored and those of the result are 0.  ``noise_seed`` as in :meth:`loss`.  Piecewise activations
        count as having f'' = 0 at their kinks."""
        module, path = self._second_order_module()
        direction, as_parameters = self._direction(v)
        noise = self.noise(noise_seed)
        result = np.empty(self.size, self._np_dtype)
        self._call(module.hessian_vector_product, self._packed(params).flat, (X, Y), (*noise, direction, result),
                   path=path)
        return Parameters(result, self.layout) if as_parameters else result

    def _second_order_step(self, params, X, Y, noise_seed):
        """One step of a second-order optimizer (:class:`~symnet.declare.optimizers.NewtonCG`): the gradient, the
        direction from Hessian-vector products on the same batch, θ ← θ + η p on the trainable parameters.
        Returns the loss before the step."""
        packed = self._packed(params)
        X, Y = self._inputs(X, Y)
        if self._newton_gradient is None:
            self._newton_gradient = Parameters(np.empty(self.size, self._np_dtype), self.layout)
        loss, gradient = self.loss_and_grad(packed, X, Y, noise_seed, out=self._newton_gradient)
        count = self.model.parameter_count
        padded = np.zeros(self.size, self._np_dtype)

        def curvature(d):
            padded[:count] = d
            return self.hvp(packed, X, Y, padded, noise_seed)[:count]
        optimizer, state = self.optimizer, self.optimizer_state["damping"]
        if np.isfinite(loss):
            g = gradient.flat[:count].astype(np.float64)
            direction, along = optimizer.step_direction(g, curvature, float(state[0]))
            step = optimizer.lr * direction
            predicted = float(g @ step) + 0.5 * optimizer.lr * optimizer.lr * along
            before = packed.flat[:count].copy()
            packed.flat[:count] += step.astype(self._np_dtype)
            reduction = self.loss(packed, X, Y, noise_seed) - loss
            if not reduction < 0:                       # the loss did not fall (or is not finite): no step
                packed.flat[:count] = before
            state[0] = optimizer.adapted(float(state[0]), reduction, predicted)
        if packed is not params:
            copy_back(packed, params)
        return loss

    def hessian(self, params, X, Y, noise_seed=None):
        """The dense Hessian of the mean loss over the trainable parameters, ``(P, P)`` with P =
        ``model.parameter_count``, rows and columns in the order of ``params.flat``: one :meth:`hvp` per column.
        For small networks (P ≤ :data:`HESSIAN_MAX`)."""
        count = self.model.parameter_count
        if count > HESSIAN_MAX:
            raise ConfigurationError(f"the dense Hessian of {count:,} parameters has {count * count:,} entries; "
                                     f"net.hessian stops at {HESSIAN_MAX:,} parameters: use net.hvp(params, X, Y, v)")
        packed = self._packed(params)
        X, Y = self._inputs(X, Y)
        unit = np.zeros(self.size, self._np_dtype)
        matrix = np.empty((count, count), self._np_dtype)
        for column in range(count):
            unit[column] = 1
            matrix[:, column] = self.hvp(packed, X, Y, unit, noise_seed)[:count]
            unit[column] = 0
        return matrix

    def step(self, params, X, Y, noise_seed=None):
        """One training step in place (forward, back-propagation, optimizer update); returns the loss before it.

        Dropout is active: its masks are drawn from ``noise_seed``, or from the network's own seeded sequence;
        BatchNorm normalises with the batch's statistics and updates its running statistics.
        """
        if self.optimizer is None:
            raise ConfigurationError("this network was compiled without an optimizer; "
                                     "use model.compile(optimizer=sn.optim.SGD(lr=0.1))")
        if self._synced != self.optimizer.version:
            self.bound_arguments()
        if self._min_batch > 1 and hasattr(X, "__len__") and len(X) < self._min_batch:
            raise ShapeError(f"a training step of {self.model.describe()} takes at least {self._min_batch} samples "
                             f"(BatchNorm's running variance is unbiased: N − 1 divides it); got {len(X)}")
        if noise_seed is None and self._training_mode:
            noise_seed = int(self._noise_seeds.integers(2**31))
        if "train_step" not in self.signatures:
            return self._second_order_step(params, X, Y, noise_seed)
        tail = self._step_tail if noise_seed is None else (*self.noise(noise_seed), *self._step_tail)
        packed = self._packed(params)
        loss = self._call(self.module.train_step, packed.flat, (X, Y), tail)
        if packed is not params:
            copy_back(packed, params)
        return loss


HESSIAN_MAX = 4096
"""The most parameters :meth:`CompiledNetwork.hessian` builds a dense Hessian for (16.8 M entries, 134 MB)."""


def _shape(shape):
    """A per-sample shape as text: ``64`` or ``1×8×8``."""
    return "×".join(map(str, shape))


def _default_scheme(activation_name):
    return "he_normal" if activation_name.split("(")[0] in RELU_FAMILY + ("prelu",) else "xavier_uniform"


def _initial_weights(rng, scheme, n_in, n_out, shape):
    if scheme == "xavier_normal":
        return rng.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), size=shape)
    if scheme == "xavier_uniform":
        limit = np.sqrt(6.0 / (n_in + n_out))
        return rng.uniform(-limit, limit, size=shape)
    if scheme == "he_normal":
        return rng.normal(0.0, np.sqrt(2.0 / n_in), size=shape)
    raise ConfigurationError(f"unknown initialisation {scheme!r}; known: {', '.join(INITIALISERS)}")


UNROLLED_LIMIT = 100  # parameters up to which the whole loss may be unrolled into one expression


def unrolled_loss(model, X, Y):
    """The whole mean loss on (X, Y) as one scalar SymPy expression in the parameter symbols.

    For small networks only: it exists to print complete formulas, to show the
    swell of the full gradient and to cross-check the layer-level gradients.
    Returns ``(expression, symbols)`` with symbols ordered like the flat
    parameter vector (``W1_0_0, W1_0_1, ..., b1_0, ...``). Networks of more than
    :data:`UNROLLED_LIMIT` parameters are refused: the naive gradient of the
    unrolled loss grows exponentially with depth.
    """
    if model.parameter_count > UNROLLED_LIMIT:
        raise ConfigurationError(f"{model.describe()} has {model.parameter_count} parameters; unrolling the whole "
                                 f"loss into one expression is for networks of at most {UNROLLED_LIMIT}")
    symbols, weights = [], []
    for number, layer in enumerate(model.layers, start=1):
        if not isinstance(layer, Dense):
            raise ConfigurationError(f"unrolled mode handles Dense layers only, not {layer!r}")
        W = sp.Matrix(layer.n_out, layer.n_in, lambda r, c: sp.Symbol(f"W{number}_{r}_{c}", real=True))
        b = sp.Matrix(layer.n_out, 1, lambda r, _: sp.Symbol(f"b{number}_{r}", real=True))
        symbols += list(W) + list(b)
        learned = {}
        for symbol, spec in layer.activation.parameters:
            cells = [sp.Symbol(f"{symbol.name}{number}_{r}", real=True) for r in range(1 if spec.shared else layer.n_out)]
            symbols += cells
            learned[symbol] = cells
        weights.append((W, b, learned))
    total = sp.Integer(0)
    K = model.layers[-1].n_out
    for x, target in zip(np.asarray(X), np.asarray(Y).reshape(len(X), -1)):
        activation = sp.Matrix([exact_number(float(v)) for v in x])
        for layer, (W, b, learned) in zip(model.layers, weights):
            z = W * activation + b
            f = layer.activation
            activation = sp.Matrix([f.expr.xreplace({f.variable: z[r], **{s: cells[min(r, len(cells) - 1)]
                                                                           for s, cells in learned.items()}})
                                    for r in range(layer.n_out)])
        per_sample = model.loss.declared.xreplace({losses.K: K}).doit()
        per_sample = per_sample.xreplace({losses.o[k]: activation[k] for k in range(K)})
        per_sample = per_sample.xreplace({losses.y[k]: exact_number(float(target[k])) for k in range(K)})
        total += per_sample
    total = total / len(X)
    if model.weight_decay:
        total += exact_number(model.weight_decay) / 2 * sum(w**2 for W, _, _ in weights for w in W)
    return total, symbols
