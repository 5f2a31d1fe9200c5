"""Write the generated module of a network: forward, loss, back-propagation and training step.

Every piece of code text comes from :class:`~symnet.generate.printer.NumbaPrinter`
applied to SymPy expressions the earlier stages derived:

* contractions of a layer's forward map and of its derived VJPs become
  ``np.dot`` (two 2-D factors, one summed index; transposes are views, so no
  copies) or explicit loops (anything else);
  Sums over the batch run row by row, in memory order;
* elementwise work (bias, activation, f') is one fused loop per layer, over the
  batch on every core (``numba.prange``) for wide transcendental layers;
* the loss's sums over classes become loops per sample, keeping a summand the
  gradient uses again (softmax's e^(o_k − m)); the exps of Σ_k e^(…) run in
  one flat loop over batch × classes, which LLVM vectorises;
* exp and tanh are evaluated with the kernels of
  :mod:`~symnet.generate.kernels` for the module's dtype in loops of at least 8 elements;
* the optimizer's update rule is one loop over the flat parameter vector;
* matrices are views of the flat theta and gradient, and every batch-sized array (z, a, f', δ, the loss's kept
  terms, masks) is a view into one ``scratch`` array, made once per public call and once per ``train_epoch``,
  so a training step allocates nothing but Maxout's winning-piece indices.

The parts: :mod:`~symnet.generate.writer` (indented lines, compiled functions), :mod:`~symnet.generate.contractions`
(index expressions as loops or ``np.dot``, scratch buffers), :mod:`~symnet.generate.layers_code` (forward and backward
per layer), :mod:`~symnet.generate.loss_code` (loss, δ of the last layer, weight decay),
:mod:`~symnet.generate.optimizer_code` (the update step); :class:`NetworkModule` here assembles them into the
module's functions, with their checks and the training epoch.
"""

import sympy as sp

from symnet.declare import layers as L
from symnet.generate import kernels, modules
from symnet.generate.layers_code import A_SCALAR
from symnet.generate.loss_code import LossCode
from symnet.generate.optimizer_code import OptimizerCode
from symnet.generate.printer import NumbaPrinter
from symnet.generate.second_order import SecondOrderCode
from symnet.generate.writer import JIT, _Writer

__all__ = ["A_SCALAR", "JIT", "NetworkModule"]   # A_SCALAR and JIT: importers read them from here


def signatures(model, optimizer):
    """``{function: its arguments in order}`` for the generated module's public functions: the one definition that
    the generator writes and that :class:`~symnet.network.CompiledNetwork` and the training loop call them by.

    ``noise_seed`` (``noise_seeds``: one per step) only for a network with a training mode (Dropout, BatchNorm);
    ``work`` holds the gradient, the look-ahead point and the optimizer's state arrays one after another,
    ``scalars`` the step count and the hyper-parameters (float64)."""
    seed = ["noise_seed"] if model.training_mode else []
    result = {"predict": ["theta", "X"], "loss_value": ["theta", "X", "Y", *seed],
              "loss_and_gradient": ["theta", "X", "Y", *seed, "gradient"]}
    if optimizer is not None:
        result["train_step"] = ["theta", "X", "Y", *seed, "work", "scalars"]
        result["train_epoch"] = ["theta", "X", "Y", "order", "batch_size", "first", "last",
                                 *(["noise_seeds"] if seed else []), "losses", "work", "scalars"]
    return result


def hvp_arguments(model):
    """The arguments of the second-order module's ``hessian_vector_product``, in order (as :func:`signatures`)."""
    return ["theta", "X", "Y", *(["noise_seed"] if model.training_mode else []), "v", "hv"]


class NetworkModule(LossCode, OptimizerCode, SecondOrderCode):
    """Generates the module text of one compiled network."""

    def __init__(self, model, optimizer, dtype, digest, parallel):
        self.model, self.optimizer, self.dtype, self.digest = model, optimizer, dtype, digest
        self.parallel = parallel
        self.itemsize = 8 if dtype == "float64" else 4   # bytes per element: the strides written in views
        self.layout = L.parameter_layout(model.layers)
        self.signatures = signatures(model, optimizer)
        self.size = self.layout[-1][2] if self.layout else 0
        self.trainable = L.trainable_size(model.layers)   # the prefix of theta the optimizer updates
        self.scratch_width = 0   # scratch cells per batch row of the function being written
        self.kernels_used = set()   # kernels the code written here calls directly (the printer records its own)
        self.views_pending, self.uses_blas, self.sum_count = [], False, 0   # of the function being written
        self.hoisted = {}   # {a sum with its indices renamed: the array cell this function computed it into}
        self.flat = {}   # {buffer name: its slice of scratch}
        self.keep_z = False   # keep every layer's z apart from its a (the Hessian-vector product reads both)
        self.kernels = kernels.FUNCTIONS
        self.printer = NumbaPrinter(dtype, {L.N: "samples"}, kernels=self.kernels)
        # the arrays' shapes; per-sample tensors of rank > 1 are stored as rows of the batch (printer.flat_rows)
        self.shapes = {"X": ("batch", *model.layers[0].input_shape), "Y": ("batch", model.layers[-1].n_out)}
        for number, layer in enumerate(model.layers, start=1):
            for base, shape in layer.parameters:
                for prefix in ("", "grad_", "v_", "hv_"):
                    self.shapes[f"{prefix}{base}{number}"] = shape
            for prefix in ("z", "a", "delta", "fprime", "rz", "ra", "rdelta", "u", "ru"):   # r: R-images (H·v)
                self.shapes[f"{prefix}{number}"] = ("batch", *layer.output_shape)
            if layer.noise is not None:
                self.shapes[f"{layer.noise}{number}"] = ("batch", *layer.output_shape)
            if layer.max_over:
                for prefix in ("z", "dz", "rz", "rdz"):
                    self.shapes[f"{prefix}{number}"] = ("batch", *layer.z_shape)
                self.shapes[f"piece{number}"] = ("batch", *layer.output_shape)   # int64: the winner of each max
            if layer.step_index is not None:   # every step's z, H, f' and dz, whatever the layer outputs
                for prefix in ("z", "h", "fprime", "dz"):
                    self.shapes[f"{prefix}{number}"] = ("batch", *layer.z_shape)
        pieces = {f"{prefix}{number}" for number, layer in enumerate(model.layers, start=1)
                  if layer.max_over for prefix in ("z", "dz", "rz", "rdz")}   # over the max's indices: views of the shape
        self.printer.flat_rows = {name: shape[1:] for name, shape in self.shapes.items()
                                  if shape[0] == "batch" and len(shape) > 2 and name not in pieces}

    def scratch_allocation(self, batch, width):
        """The line that makes ``scratch`` for ``batch`` rows of buffers ``width`` cells wide."""
        return f"scratch = np.empty({batch} * {max(width, 1)}, dtype=np.{self.dtype})"

    def views(self, w, source, prefix="", state=True):
        """Each parameter (``prefix`` + its name) as a view of the flat array ``source``; the state's too with
        ``state``."""
        for name, start, stop, shape in self.layout:
            if state or start < self.trainable:
                self.view(w, prefix + name, f"{source}[{start}:{stop}]", shape)

    # --- functions -------------------------------------------------------------

    def function(self, w, name, arguments, docstring, with_loss, with_gradient, step=False, body=None):
        """``name``: forward (and loss, and back-propagation, and with ``step`` the optimizer's update), after the
        input checks and making its own scratch array unless ``scratch`` is one of its arguments.  Returns the
        scratch width per batch row its buffers take.

        ``loss_and_gradient`` and ``_train_step`` each hold their own copy of the forward and backward code: Numba
        links a called function's code into each caller and optimises it again there, at about half the cost of
        compiling it, so a shared function would make the first gradient and the first epoch slower to compile
        (docs/performance.md).

        A network with a layer that has a map of its own outside training (BatchNorm) gets its body written once
        per mode: ``_train_step`` trains, ``predict`` evaluates, and the functions with a noise seed test its sign
        once, then run the body of that mode.  ``body``: writes the work between the checks and the return
        (:meth:`_body` unless given; the Hessian-vector product has its own)."""
        body = body or self._body
        with w.function(name, arguments):
            lines = docstring.split("\n")
            for number, line in enumerate(lines):
                w(('"""' if number == 0 else "") + line + ('"""' if number == len(lines) - 1 else ""))
            w("batch = X.shape[0]")
            checked = "scratch" not in arguments
            if checked:
                self.input_checks(w, with_loss, arguments)
            self.scratch_width, self.views_pending, self.uses_blas, self.sum_count = 0, [], False, 0
            self.hoisted, self.printer.names_used = {}, set()
            scratch_at = len(w.lines)
            point = self.step_prologue(w) if step else "theta"
            branched = self.model.has_evaluation_maps and "noise_seed" in arguments and not step
            if not self.model.has_evaluation_maps:
                self._seed(w, arguments)
                body(w, arguments, with_loss, with_gradient, point)
            elif not branched:
                if step:
                    self._seed(w, arguments)
                body(w, arguments, with_loss, with_gradient, point, training=step)
            else:
                self._seed(w, arguments)
                start, widths = self.scratch_width, []
                for training, test in ((True, "if noise_seed >= 0:   # training"), (False, "else:   # evaluation")):
                    self.scratch_width, self.hoisted = start, {}
                    w(test)
                    with w.block():
                        body(w, arguments, with_loss, with_gradient, point, training)
                        if with_loss:
                            w("return loss")
                    widths.append(self.scratch_width)
                self.scratch_width = max(widths)
            if step:
                self.state_update(w)
                self.step_update(w)
            if with_loss and not branched:
                w("return loss")
            self.resolve_views(w)
            if L.N in self.printer.names_used:
                w.insert(scratch_at, f"samples = np.{self.dtype}(batch)   # N, the batch's size, as a number")
            if checked:
                w.insert(scratch_at, self.scratch_allocation("batch", self.scratch_width))
        return self.scratch_width

    def _seed(self, w, arguments):
        """With Dropout: the seed of its masks in training, or ``noise_seed = −1`` where there is no training."""
        if not self.model.noisy:
            return
        if "noise_seed" in arguments:
            w("if noise_seed >= 0:")
            with w.block():
                w("np.random.seed(noise_seed)")
        else:
            w("noise_seed = -1   # no dropout outside training")

    def _body(self, w, arguments, with_loss, with_gradient, point="theta", training=None):
        """Forward (and loss, and back-propagation into ``gradient``) at the parameters in the flat array
        ``point``; leaves the loss in ``loss``, or returns the output without ``with_loss``.  ``training``: True or
        False when the function's mode is known here (BatchNorm's maps), None when only Dropout's masks depend on it
        and test the noise seed themselves."""
        if with_loss:
            self.loss_prologue(w)
        self.views(w, point, state=training is False)   # only the maps outside training read the state
        if with_gradient:
            self.views(w, "gradient", prefix="grad_", state=False)
            if self.trainable < self.size:
                w(f"gradient[{self.trainable}:] = {self.p(sp.Float(0))}   # the state's: it is not trained")
        self.forward(w, store_fprime=with_gradient, training=training)
        if not with_loss:
            w(f"return a{len(self.model.layers)}.copy()   # not a view: it would keep the whole scratch alive")
            return
        with self.innermost(self.model.layers[-1].n_out):
            self.loss(w, with_gradient)
        self._flat_weight_views(w, with_gradient, point)
        if with_gradient:
            self.backward(w, training)
        self.weight_decay(w, with_gradient)

    def loss_prologue(self, w):
        """``inv_batch`` = 1/N in the module's dtype, the loss's mean."""
        w(f"inv_batch = {self.p(sp.Integer(1))} / batch" if self.dtype == "float64"
          else f"inv_batch = {self.p(sp.Integer(1))} / np.{self.dtype}(batch)")

    def checked(self, w, name, arguments, scratch_width):
        """``name(...)``: :meth:`input_checks`, then the scratch array, then ``_name(..., scratch)``, the unchecked
        function that train_epoch calls (``fit`` checks its data once, not every batch again)."""
        with w.function(name, arguments):
            w(f'"""_{name} after checking the shapes of X and Y and that they hold no NaN or infinity."""')
            w("batch = X.shape[0]")
            self.input_checks(w, True, arguments)
            w(self.scratch_allocation("batch", scratch_width))
            w(f"return _{name}({', '.join(arguments)}, scratch)")

    def flat_checks(self, w, arguments):
        """Refuse flat arrays (theta, gradient, work) of the wrong length or not contiguous in the module's dtype:
        their views are written with fixed strides and read without bounds checks."""
        size = self.size
        lengths = {"theta": size, "gradient": size, "v": size, "hv": size}
        if self.optimizer is not None:
            lengths["work"] = size * len(self.optimizer.buffer_names())
        flats = [name for name in lengths if name in arguments]
        # an empty array's stride is whatever NumPy chose, and no view reads it
        wrong = [f"{name}.shape[0] != {lengths[name]}"
                 + (f" or {name}.strides[0] != {self.itemsize}" if lengths[name] else "") for name in flats]
        w(f"if {' or '.join(wrong)}:")
        with w.block():
            w(f'raise ValueError("{", ".join(flats)}: wrong length, or not a contiguous {self.dtype} array")')

    def input_checks(self, w, with_targets, arguments):
        """Refuse inputs of the wrong shape or with NaN/inf before any work (the caller in Python then says
        exactly what is wrong): the loops below index without bounds checks."""
        self.flat_checks(w, arguments)
        shapes = [f"batch == 0 or X.shape[1] != {self.model.layers[0].n_in}"]
        if with_targets:
            shapes.append(f"Y.shape[0] != batch or Y.shape[1] != {self.model.layers[-1].n_out}")
        w(f"if {' or '.join(shapes)}:")
        with w.block():
            w('raise ValueError("X or Y has the wrong shape")')
        self.kernels_used.add("finite")
        w("if not (_finite(X) and _finite(Y)):" if with_targets else "if not _finite(X):")
        with w.block():
            w('raise ValueError("X or Y holds NaN or infinity")')

    def _mode_sentence(self, step=False):
        """What the noise seed does, for the docstrings of the functions that take it (``step``: of the training
        step, which always trains)."""
        if step and self.model.has_evaluation_maps:
            return " noise_seed seeds the dropout masks; the step trains with the batch's statistics whatever it is." \
                if self.model.noisy else " noise_seed is not read: the step trains with the batch's statistics."
        if not self.model.has_evaluation_maps:
            return " With noise_seed ≥ 0 the dropout masks are drawn from it (training); −1 turns them off." \
                if self.model.noisy else ""
        masks = ", the dropout masks drawn from it" if self.model.noisy else ""
        return (f" With noise_seed ≥ 0 the network runs as in training (batch statistics{masks}); with −1 as "
                "outside it (running statistics).")

    def text(self, second_order=False):
        """The module's text: predict, loss_value, loss_and_gradient and, with an optimizer, the training step and
        epoch; with ``second_order`` instead the second-order module, ``hessian_vector_product``."""
        model = self.model
        description = "\n" + "\n".join(modules.literal_text(line) for line in model.summary().split("\n")) + "\n"
        w = _Writer()
        title = "Second-order functions of network" if second_order else "Compiled network"
        for line in modules.header(f"{title} {modules.literal_text(model.describe())}", self.digest,
                                   description).rstrip("\n").split("\n"):
            w(line)
        kernel_at = len(w.lines)
        if second_order:
            self.function(w, "hessian_vector_product", hvp_arguments(model),
                          "Mean loss; fills hv (flat, same layout as theta) with H·v, the Hessian of the mean loss "
                          "(with weight decay) at theta times v, by the R-operator." + self._mode_sentence(),
                          with_loss=True, with_gradient=False, body=self.hvp_body)
            return self._with_kernels(w, kernel_at)
        self.function(w, "predict", self.signatures["predict"], "Network output a_L for inputs X (batch, in).",
                      with_loss=False, with_gradient=False)
        noise = self._mode_sentence()
        self.function(w, "loss_value", self.signatures["loss_value"], "Mean loss over the batch." + noise,
                      with_loss=True, with_gradient=False)
        self.function(w, "loss_and_gradient", self.signatures["loss_and_gradient"],
                      "Mean loss; fills gradient (flat, same layout as theta) by back-propagation." + noise,
                      with_loss=True, with_gradient=True)
        if self.optimizer is not None:
            self.optimizer_functions(w)
            step_arguments = self.signatures["train_step"]
            step_width = self.function(w, "_train_step", [*step_arguments, "scratch"], self.step_docstring() + self._mode_sentence(step=True),
                                       with_loss=True, with_gradient=True, step=True)
            self.checked(w, "train_step", step_arguments, step_width)
            self.epoch(w, step_width)
        return self._with_kernels(w, kernel_at)

    def _with_kernels(self, w, kernel_at):
        """The module's text with the kernels its code calls inserted at line ``kernel_at``."""
        w.lines[kernel_at:kernel_at] = [line for text in kernels.texts_for(self.printer.used | self.kernels_used)
                                        for line in text.rstrip("\n").split("\n")]
        return "\n".join(w.lines) + "\n"

    def epoch(self, w, step_width):
        """``train_epoch``: many steps in one compiled call, so no Python runs between steps."""
        arguments = self.signatures["train_epoch"]
        step = [{"X": "Xk", "Y": "Yk", "noise_seed": "noise_seeds[k]"}.get(name, name)
                for name in self.signatures["train_step"]]
        with w.function("train_epoch", arguments):
            w('"""Steps first … last − 1 of an epoch in one call: step k trains on the rows order[k·B : (k+1)·B]')
            w("(B = batch_size; the last batch may be smaller) and stores its loss in losses[k].")
            w('Returns the first step whose loss is not finite (its update is done), or last."""')
            self.flat_checks(w, arguments)
            w("rows = order.shape[0]")
            w("Xb = np.empty((batch_size, X.shape[1]), dtype=X.dtype)")
            w("Yb = np.empty((batch_size, Y.shape[1]), dtype=Y.dtype)")
            w(self.scratch_allocation("batch_size", step_width))
            w("for k in range(first, last):")
            with w.block():
                w("low = k * batch_size")
                w("size = min(batch_size, rows - low)")
                w("for row in range(size):")
                with w.block():
                    w("source = order[low + row]")
                    for whole, batch in (("X", "Xb"), ("Y", "Yb")):
                        with w.loops(("column", f"{whole}.shape[1]")):
                            w(f"{batch}[row, column] = {whole}[source, column]")
                w("Xk, Yk = Xb, Yb")
                w("if size < batch_size:  # the short last batch")
                with w.block():
                    w("Xk, Yk = np.ascontiguousarray(Xb[:size]), np.ascontiguousarray(Yb[:size])")
                w(f"loss = _train_step({', '.join(step)}, scratch)")
                w("losses[k] = loss")
                w("if not np.isfinite(loss):")
                with w.block():
                    w("return k")
            w("return last")
