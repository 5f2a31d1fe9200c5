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
"""

import math
from contextlib import contextmanager

import sympy as sp

from symnet.declare import layers as L
from symnet.declare import losses, optimizers
from symnet.declare.parse import exact_number
from symnet.generate import kernels, modules
from symnet.generate.printer import NumbaPrinter
from symnet.indexed import affine_interval, terms
from symnet.rewrites import stable

INDENT = "    "
JIT = '@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})'
"""Every generated function's decorator. NumPy's error model (x/0 gives inf or nan) lets LLVM vectorise loops that
divide; ``contract`` allows FMA and no other fast-math licence (measurements: docs/performance.md)."""
SMALL_PRODUCT = 64
PARALLEL_MIN_WIDTH = 64
"""With ``parallel``, only layers this wide with a transcendental activation run their activation loop on all
cores: cheaper loops lose more to starting threads than they gain (docs/performance.md)."""
ROW_MIN_EXTENT = 4
"""Loops that fill a target of rank > 2 whose last extent is at least this long add row by row
(:meth:`NetworkModule._row_loops`)."""
KERNEL_MIN_EXTENT = 8
"""Loops whose innermost extent is shorter call libm instead of the kernels: LLVM's vector loop never runs there,
and the kernels' scalar code is slower than libm (docs/performance.md)."""
VIEW = "np.lib.stride_tricks.as_strided"
"""How a flat array with short rows (< KERNEL_MIN_EXTENT) becomes a matrix in a function without BLAS calls: a view
with the strides written in the code, cheaper than Numba's reshape. Its layout is unknown to Numba, which costs
vector loops over longer rows (with older LLVMs); ``np.dot`` needs C order: those use ``reshape``
(docs/performance.md)."""
CHEAP_FUNCTIONS = (sp.Max, sp.Min, sp.Heaviside, sp.Abs, sp.sign, sp.Piecewise)
Z, A_SCALAR = sp.Symbol("z", real=True), sp.Symbol("a", real=True)


class _Writer:
    """Collects indented lines."""

    def __init__(self):
        self.lines = []
        self.depth = 0
        self.prange = False   # whether the function being written has a numba.prange loop

    def __call__(self, text=""):
        """Add one line; user text in it (names, formulas) cannot start another: line breaks are escaped."""
        if not text.isprintable():
            text = "".join(character if character.isprintable() else modules.literal_text(character)
                           for character in text)
        self.lines.append(INDENT * self.depth + text if text else "")

    @contextmanager
    def block(self):
        """The lines written inside are indented one level more."""
        self.depth += 1
        yield
        self.depth -= 1

    @contextmanager
    def loops(self, *ranges, parallel=False):
        """Nested ``for index in range(extent):`` lines for each ``(index, extent)``; the body goes inside.
        With ``parallel`` the outer loop is ``numba.prange``: its iterations must not depend on each other."""
        self.prange |= bool(parallel and ranges)
        for number, (index, extent) in enumerate(ranges):
            self(f"for {index} in {'numba.prange' if parallel and number == 0 else 'range'}({extent}):")
            self.depth += 1
        yield
        self.depth -= len(ranges)

    def insert(self, at, text):
        """Add one line at position ``at`` (a ``len(lines)`` taken earlier at the current depth)."""
        self.lines.insert(at, INDENT * self.depth + text)

    @contextmanager
    def function(self, name, arguments):
        """A compiled function: the JIT line, ``def``, and the body inside; ``parallel=True`` is added to the JIT
        line when the body has a ``numba.prange`` loop."""
        self("")
        self("")
        decorator = len(self.lines)
        self.prange = False
        self(JIT)
        self(f"def {name}({', '.join(arguments)}):")
        with self.block():
            yield
        if self.prange:
            self.lines[decorator] = JIT[:-1] + ", parallel=True)"


def _arrays(expr, names):
    """Rename the IndexedBases of ``expr`` to the generated arrays' names."""
    return expr.xreplace({base: sp.IndexedBase(name, real=True) for base, name in names.items()})


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


def _canonical(total, depth=0):
    """``total`` with its summed indices renamed by nesting depth, so sums that differ only in those names match."""
    renamed = {}
    for index_, _, _ in total.limits:
        renamed[index_] = sp.Symbol(f"_s{depth}_{len(renamed)}", integer=True)
    function = total.function.replace(lambda e: isinstance(e, sp.Sum), lambda inner: _canonical(inner, depth + 1))
    return sp.Sum(function.xreplace(renamed), *((renamed[i], low, high) for i, low, high in total.limits))


def _nonlinear(term_list):
    """True when a sum stands inside another function (a normalisation), not only in products: not a contraction."""
    return any(t.rest.has(sp.Sum) for t in term_list)


def _interval_of(bound, known):
    """(lowest, highest) of an integer bound ``ceiling(e/c)``, ``floor(e/c) + k`` or affine ``e`` over ``known``."""
    offset, parts = bound.as_coeff_Add()
    rounding = type(parts) if isinstance(parts, (sp.ceiling, sp.floor)) else None
    inner = parts.args[0] if rounding else parts
    interval = affine_interval(sp.expand(inner), known)
    if interval is None:
        return None
    if rounding:
        interval = tuple(rounding(end) for end in interval)
    return tuple(end + offset for end in interval)


def _is_matmul(term, target):
    if term.guards or len(term.factors) != 2 or len(term.summed) != 1 or len(target) != 2 or term.coefficient != 1 or term.rest != 1:
        return False
    (s,) = term.summed
    return all(len(f.indices) == 2 and s in f.indices and len(set(f.indices) & set(target)) == 1
               for f in term.factors) and set(target) <= set().union(*(f.indices for f in term.factors))


def _matmul(term, target):
    """``np.dot`` operands for out[u, v] = Σ_s F1 F2 (transposes are free views)."""
    u, v = target
    (s,) = term.summed
    left = next(f for f in term.factors if u in f.indices)
    right = next(f for f in term.factors if f is not left)
    left_text = str(left.base) + ("" if left.indices == (u, s) else ".T")
    right_text = str(right.base) + ("" if right.indices == (s, v) else ".T")
    return left_text, right_text


class NetworkModule:
    """Generates the module text of one compiled network."""

    def __init__(self, model, optimizer, dtype, digest, parallel):
        self.model, self.optimizer, self.dtype, self.digest = model, optimizer, dtype, digest
        self.parallel = parallel
        self.itemsize = 8 if dtype == "float64" else 4   # bytes per element: the strides written in views
        self.layout = L.parameter_layout(model.layers)
        # scratch cells per batch row: of the function being written, and of _loss_and_gradient
        self.scratch_width = self.gradient_width = 0
        self.kernels_used = set()   # kernels the code written here calls directly (the printer records its own)
        self.views_pending, self.uses_blas, self.sum_count = [], False, 0   # of the function being written
        self.hoisted = {}   # {a sum with its indices renamed: the array cell this function computed it into}
        self.flat = {}   # {buffer name: its slice of scratch}
        self.kernels = kernels.FUNCTIONS
        self.printer = NumbaPrinter(dtype, kernels=self.kernels)
        # the arrays' shapes; per-sample tensors of rank > 1 are stored as rows of the batch (printer.flat_rows)
        self.shapes = {"X": ("batch", *model.layers[0].input_shape), "Y": ("batch", model.layers[-1].n_out)}
        for number, layer in enumerate(model.layers, start=1):
            for base, shape in layer.parameters:
                self.shapes[f"{base}{number}"] = shape
                self.shapes[f"grad_{base}{number}"] = shape
            for prefix in ("z", "a", "delta", "fprime"):
                self.shapes[f"{prefix}{number}"] = ("batch", *layer.output_shape)
            if layer.noise is not None:
                self.shapes[f"{layer.noise}{number}"] = ("batch", *layer.output_shape)
            if layer.max_over:
                self.shapes[f"z{number}"] = self.shapes[f"dz{number}"] = ("batch", *layer.z_shape)
        pieces = {f"{prefix}{number}" for number, layer in enumerate(model.layers, start=1)
                  if layer.max_over for prefix in ("z", "dz")}   # z over the max's indices: a view of its shape
        self.printer.flat_rows = {name: shape[1:] for name, shape in self.shapes.items()
                                  if shape[0] == "batch" and len(shape) > 2 and name not in pieces}

    def p(self, expr):
        return self.printer.doprint(expr)

    @contextmanager
    def innermost(self, extent):
        """Code printed inside calls libm rather than the kernels when the innermost loop runs ``extent`` <
        :data:`KERNEL_MIN_EXTENT` times."""
        kernels = self.printer.kernels
        if isinstance(extent, int) and extent < KERNEL_MIN_EXTENT:
            self.printer.kernels = set()
        try:
            yield
        finally:
            self.printer.kernels = kernels

    def _size(self, index, factors):
        """The extent of ``index`` from the first factor that has it as a plain index (a rows array read as
        ``a[n, i]`` has ``i`` over all its entries)."""
        for factor in factors:
            if index in factor.indices:
                shape = self.shapes[str(factor.base)]
                if len(factor.indices) == 2 and len(shape) > 2:
                    shape = (shape[0], math.prod(shape[1:]))
                return shape[factor.indices.index(index)]
        raise ValueError(f"index {index} has no size")

    def _loops(self, w, term_list, target, target_indices, accumulate=False):
        """Explicit loops: target[idx] (+)= Σ_summed Σ_terms coefficient * rest * Π factors, where the guards hold.

        A guard on a summed index bounds that index's loop (:meth:`_bounded`), so a convolution's loops never
        visit the padding; a guard on the target's indices only is an ``if``.  A single sum over the batch index
        (∂L/∂b = Σ_n δ[n, p]) puts the batch loop outside, so rows are read in memory order
        (docs/performance.md); each cell still adds in batch order from 0: the same bits."""
        shape = self.shapes[target]
        if len(target_indices) == 2 and len(shape) > 2:
            shape = (shape[0], math.prod(shape[1:]))
        cell = self.p(sp.IndexedBase(target, real=True)[target_indices])
        ranges = list(zip(target_indices, shape))
        if (not accumulate and len(term_list) == 1 and len(term_list[0].summed) == 1 and not term_list[0].guards
                and self._size(term_list[0].summed[0], term_list[0].factors) == "batch"):
            t = term_list[0]
            with w.loops(*ranges):
                w(f"{cell} = {self.p(sp.Float(0))}")
            with w.loops((t.summed[0], "batch"), *ranges):
                w(f"{cell} += {self.p(t.summand)}")
            return
        if (len(term_list) == 1 and term_list[0].summed and len(ranges) > 2 and isinstance(ranges[-1][1], int)
                and ranges[-1][1] >= ROW_MIN_EXTENT):
            self._row_loops(w, term_list[0], target, ranges, accumulate)
            return
        with w.loops(*ranges):
            w(f"total = {self.p(sp.Float(0))}")
            for t in term_list:
                known = {index_: (0, extent - 1) for index_, extent in ranges if extent != "batch"}
                conditions, bounds = [], {index_: [] for index_ in t.summed}
                for guard in t.guards:
                    inner = [index_ for index_ in t.summed if guard.args[0].has(index_)]
                    if inner:
                        bounds[inner[-1]].append(guard)
                    else:
                        low, high = (self.index_text(e) for e in guard.args[1:])
                        conditions.append(f"{low} <= {self.index_text(guard.args[0])} <= {high}")
                if conditions:
                    w(f"if {' and '.join(conditions)}:")
                    w.depth += 1
                depth = w.depth
                for index_, low, high in t.limits:
                    extent = "batch" if high.free_symbols else int(high - low) + 1
                    w(f"for {index_} in range({self._range(index_, extent, bounds[index_], known)}):")
                    w.depth += 1
                    if extent != "batch":
                        known[index_] = (0, extent - 1)
                w(f"total += {self.p(t.summand)}")
                w.depth = depth - bool(conditions)
            w(f"{cell} {'+=' if accumulate else '='} total")

    def _row_loops(self, w, t, target, ranges, accumulate):
        """target[…, x] (+)= Σ_summed summand with the target's last index x innermost: each step adds one
        product to a row of cells, a loop LLVM vectorises (a sum into one cell is not vectorised without
        reassociation).  Every cell still adds its terms in the order of the summed loops."""
        cell = self.p(sp.IndexedBase(target, real=True)[tuple(index_ for index_, _ in ranges)])
        if not accumulate:
            w(f"{target}[:] = {self.p(sp.Float(0))}")
        order = [index_ for index_, _ in ranges[:-1]] + list(t.summed) + [ranges[-1][0]]
        bounds = {index_: [] for index_ in order}
        conditions = []
        for guard in t.guards:
            inner = [index_ for index_ in order if guard.args[0].has(index_)]
            if inner and inner[-1] in bounds and inner[-1] not in dict(ranges[:-1]):
                bounds[inner[-1]].append(guard)
            else:
                conditions.append(guard)
        extents = {**dict(ranges), **{index_: "batch" if high.free_symbols else int(high - low) + 1
                                      for index_, low, high in t.limits}}
        depth, known = w.depth, {}
        for index_ in order:
            if conditions and index_ == t.summed[0]:
                w(f"if {' and '.join(self._condition(guard) for guard in conditions)}:")
                w.depth += 1
            w(f"for {index_} in range({self._range(index_, extents[index_], bounds[index_], known)}):")
            w.depth += 1
            if extents[index_] != "batch":
                known[index_] = (0, extents[index_] - 1)
        w(f"{cell} += {self.p(t.summand)}")
        w.depth = depth

    def _condition(self, guard):
        e, low, high = guard.args
        return f"{self.index_text(low)} <= {self.index_text(e)} <= {self.index_text(high)}"

    def index_text(self, expr):
        return self.printer.index_text(expr)

    def _bounded(self, index_, extent, guards, known):
        """The (lower, upper) bounds as text of ``index_`` over ``0 … extent − 1`` where every guard
        ``[low ≤ c·index_ + rest ≤ high]`` holds (c a nonzero integer, rest in the outer loops' indices, whose ranges
        ``known`` gives: a bound those ranges always satisfy is left out)."""
        lower, upper = [sp.Integer(0)], [extent if extent == "batch" else sp.Integer(extent)]
        for guard in guards:
            e, low, high = guard.args
            coefficient = e.coeff(index_)
            rest = sp.expand(e - coefficient * index_)
            if not coefficient.is_Integer or coefficient == 0 or rest.has(index_):
                raise ValueError(f"guard {guard} is not affine in {index_}")
            if coefficient < 0:
                coefficient, rest, low, high = -coefficient, -rest, -high, -low
            lower.append(sp.ceiling((low - rest) / coefficient))
            upper.append(sp.floor((high - rest) / coefficient) + 1)
        return self._extreme(max, lower, known), self._extreme(min, upper, known)

    def _extreme(self, pick, bounds, known):
        """``max(…)``/``min(…)`` of the bounds as text, leaving out those the others always dominate over the
        ``known`` ranges (the loop's own extent is the first bound)."""
        first, kept = bounds[0], []
        for bound in bounds[1:]:
            interval = _interval_of(bound, known)
            if interval is not None and first != "batch" and (
                    (pick is max and interval[1] <= first) or (pick is min and interval[0] >= first)):
                continue
            kept.append(bound)
        texts = [str(first) if first == "batch" else self.index_text(first)] + [self._floor_text(b) for b in kept]
        return texts[0] if len(texts) == 1 else f"{pick.__name__}({', '.join(texts)})"

    def _range(self, index_, extent, guards, known):
        """``range(…)``'s arguments (``lower, upper``, or ``upper`` alone when the lower bound is 0)."""
        lower, upper = self._bounded(index_, extent, guards, known)
        return upper if lower == "0" else f"{lower}, {upper}"

    def _floor_text(self, bound):
        """A bound ``ceiling(e/c)`` or ``floor(e/c) + k`` printed in integer arithmetic (``//`` floors)."""
        offset, parts = bound.as_coeff_Add()
        if isinstance(parts, sp.ceiling):
            numerator, denominator = sp.fraction(sp.together(parts.args[0]))
            text = f"-(({self.index_text(sp.expand(-numerator))}) // {denominator})"
        elif isinstance(parts, sp.floor):
            numerator, denominator = sp.fraction(sp.together(parts.args[0]))
            text = f"({self.index_text(sp.expand(numerator))}) // {denominator}"
        else:
            return self.index_text(bound)
        return text if offset == 0 else f"{text} + {self.index_text(offset)}"

    def _small(self, term):
        """True when the fixed (non-batch) extents of a product multiply to at most SMALL_PRODUCT: plain loops
        then beat a BLAS call's overhead (docs/performance.md)."""
        extents = {index: self._size(index, term.factors) for f in term.factors for index in f.indices
                   if isinstance(index, sp.Symbol)}
        fixed = 1
        for extent in extents.values():
            if extent != "batch":
                fixed *= extent
        return fixed <= SMALL_PRODUCT

    def evaluate(self, w, expr, target, target_indices, allocate):
        """target[target_indices] = expr, an index expression with sums inside other functions (a normalisation's
        √(Σ_j (a[n,j] − μ[n])² / J + ε)).  Each distinct sum (up to the names of its indices) is computed first,
        innermost first, into an array over its free indices (``sigma<k>[n]``); then one loop over the target's cells
        evaluates the rest."""
        ranges = dict(zip(target_indices, self._extents(target, target_indices)))
        for total in expr.atoms(sp.Sum):
            ranges.update({index_: "batch" if high.free_symbols else int(high - low) + 1
                           for index_, low, high in total.limits})
        body = expr.replace(lambda e: isinstance(e, sp.Sum), lambda total: self._hoisted(w, total, ranges))
        if allocate:
            self.buffer(w, target, self.shapes[target])
        cell = self.p(sp.IndexedBase(target, real=True)[target_indices])
        with w.loops(*((index_, ranges[index_]) for index_ in target_indices)):
            w(f"{cell} = {self.p(body)}")

    def _hoisted(self, w, total, ranges):
        """The array cell that holds ``total``: ``sigma<k>[free indices]``, computed here unless this function has
        computed the same sum before (up to the names of its indices: μ[n] of the forward pass serves the
        backward's μ[r]; the arrays it reads are not written in between)."""
        free = sorted((symbol for symbol in total.free_symbols if symbol in ranges),
                      key=lambda symbol: (ranges[symbol] != "batch", symbol.name))
        key = _canonical(total.xreplace({index_: sp.Symbol(f"_f{k}", integer=True) for k, index_ in enumerate(free)}))
        if key in self.hoisted:
            base = self.hoisted[key]
            return base[tuple(free)] if free else base[0]
        name = f"sigma{self.sum_count}"
        self.sum_count += 1
        shape = tuple(ranges[index_] for index_ in free)
        w(f"# {name}{list(free)} = {total}")
        if shape and shape[0] == "batch":
            self.buffer(w, name, shape)
        else:
            w(f"{name} = np.empty(({', '.join(map(str, shape or (1,)))},), dtype=np.{self.dtype})")
        base = self.hoisted[key] = sp.IndexedBase(name, real=True)
        cell = base[tuple(free)] if free else base[0]
        with w.loops(*((index_, ranges[index_]) for index_ in free)):
            w(f"total = {self.p(sp.Float(0))}")
            with w.loops(*((index_, ranges[index_]) for index_, _, _ in total.limits)):
                w(f"total += {self.p(total.function)}")
            w(f"{self.p(cell)} = total")
        return cell

    def _extents(self, target, indices):
        """The extents of ``target``'s indices (a rows array indexed [n, i] runs over all its entries)."""
        shape = self.shapes[target]
        if len(indices) == 2 and len(shape) > 2:
            shape = (shape[0], math.prod(shape[1:]))
        return shape

    def _assign(self, w, expr, target, target_indices, allocate):
        """target[target_indices] = expr: as a contraction (np.dot or loops), or by :meth:`evaluate` when a sum
        stands inside another function."""
        term_list = terms(expr)
        if _nonlinear(term_list):
            self.evaluate(w, expr, target, target_indices, allocate)
        else:
            self.contraction(w, term_list, target, target_indices, allocate)

    def contraction(self, w, term_list, target, target_indices, allocate):
        """Emit code for target[target_indices] = Σ terms (read from a contracted index expression)."""
        matmuls = [t for t in term_list if _is_matmul(t, target_indices) and not self._small(t)]
        others = [t for t in term_list if t not in matmuls]
        shape = self.shapes[target]
        for number, t in enumerate(matmuls):
            left, right = _matmul(t, target_indices)
            self.uses_blas = True
            if number == 0 and allocate:
                self.buffer(w, target, shape)
                w(f"np.dot({left}, {right}, {target})")
            elif number == 0:
                w(f"np.dot({left}, {right}, {target})")
            else:
                w(f"{target} += np.dot({left}, {right})")
        if others:
            if not matmuls and allocate:
                self.buffer(w, target, shape)
            self._loops(w, others, target, target_indices, accumulate=bool(matmuls))

    def view(self, w, name, flat, shape):
        """``name = flat`` (a 1-D slice, C order) seen with ``shape``; the line is printed by :meth:`resolve_views`
        once the function is written, when it is known whether it calls BLAS."""
        if len(shape) == 1:
            w(f"{name} = {flat}")
            return
        self.views_pending.append((len(w.lines), w.depth, name, flat, shape))
        w(f"{name} = ...")

    def resolve_views(self, w):
        """Print the pending views of one function: :data:`VIEW` with the strides the shape gives (its axes after
        the first are fixed numbers) for short rows in a function without BLAS calls, else ``reshape``."""
        for at, depth, name, flat, shape in self.views_pending:
            shape_text = ", ".join(map(str, shape))
            if self.uses_blas or shape[-1] >= KERNEL_MIN_EXTENT:
                view = f"{flat}.reshape(({shape_text}))"
            else:
                strides = ", ".join(str(self.itemsize * math.prod(shape[axis + 1:])) for axis in range(len(shape)))
                view = f"{VIEW}({flat}, ({shape_text}), ({strides}))"
            w.lines[at] = INDENT * depth + f"{name} = {view}"

    def buffer(self, w, name, shape, zero=False):
        """``name`` = the next cells of ``scratch``, shaped ``shape`` = (batch, …), zero-filled if ``zero``.
        Offsets are multiples of ``batch``, so a shorter last batch fits the scratch of a full one."""
        assert shape[0] == "batch", shape
        width = math.prod(shape[1:])
        start, self.scratch_width = self.scratch_width, self.scratch_width + width
        self.flat[name] = f"scratch[{f'{start} * batch' if start else ''}:{start + width} * batch]"
        self.view(w, name, self.flat[name], ("batch", width) if name in self.printer.flat_rows else shape)
        if zero:
            w(f"{name}[:] = {self.p(sp.Float(0))}")

    def scratch_allocation(self, batch, width):
        """The line that makes ``scratch`` for ``batch`` rows of buffers ``width`` cells wide."""
        return f"scratch = np.empty({batch} * {max(width, 1)}, dtype=np.{self.dtype})"

    # --- blocks -----------------------------------------------------------------

    def views(self, w, source="theta"):
        for name, start, stop, shape in self.layout:
            self.view(w, name if source == "theta" else f"grad_{name}", f"{source}[{start}:{stop}]", shape)

    def forward(self, w, store_fprime):
        for number, layer in enumerate(self.model.layers, start=1):
            previous = "X" if number == 1 else f"a{number - 1}"
            names = {L.a: previous, **self._parameter_names(layer, number)}
            sized = layer.sized_map()
            mapped = _arrays(sized, names)
            f = layer.activation
            out = layer.output_indices
            w(f"# layer {number}: z{number}{list(out)} = {sized}   (a = {previous}); a{number} = f(z{number}), "
              f"f(t) = {f.expr}")
            if sized == L.a[out] and f.expr == f.variable:
                w(f"a{number} = z{number} = {previous}   # the map is its input: the same memory")
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
                self._draw_noise(w, layer, number)
            if getattr(layer, "output", None) is not None:
                with self.innermost(layer.n_out):
                    self._softmax(w, layer, number, previous)
                continue
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
            keep_z = identity or bool(f.parameters)          # ∂f/∂γ of trainable parameters reads z backwards
            if keep_z and not identity:
                self.buffer(w, f"a{number}", ("batch", *layer.z_shape))
            else:
                w(f"a{number} = z{number}" + ("" if identity else "   # a = f(z) is written over z (not needed later)"))
            fprime = self.model.fprime_form(number - 1)
            if store_fprime and fprime[0] == "input":
                self.buffer(w, f"fprime{number}", ("batch", *layer.z_shape))
            expensive = any(not isinstance(call, CHEAP_FUNCTIONS)
                            for call in self.model.activation_value(number - 1).atoms(sp.Function))
            parallel = self.parallel and expensive and layer.n_out >= PARALLEL_MIN_WIDTH
            loops = [("n", "batch"), *zip(map(str, out[1:]), layer.z_shape)]

            def cell(name):
                return self.p(sp.IndexedBase(name, real=True)[out])

            with w.loops(*loops, parallel=parallel), self.innermost(layer.z_shape[-1]):
                bias = sum((t.summand for t in elementwise), sp.Integer(0))
                w(f"z = {cell(f'z{number}')} + {self.p(bias)}")
                if keep_z:
                    w(f"{cell(f'z{number}')} = z")
                at_z = {f.variable: Z, **self._activation_parameters(layer, number, L.i)}
                if not identity:
                    w(f"{cell(f'a{number}')} = {self.p(self.model.activation_value(number - 1).xreplace(at_z))}")
                if store_fprime and fprime[0] == "input":
                    w(f"{cell(f'fprime{number}')} = {self.p(fprime[1].xreplace(at_z))}")

    def _softmax(self, w, layer, number, previous):
        """a[n, i] = exp(z[n, i] − m) / Σ_j exp(z[n, j] − m) with m = max_j z[n, j] (equal to the declared map)."""
        w(f"# evaluated with the max shift: a{number}[n, i] = exp(z − m) / Σ_j exp(z[n, j] − m), m = max_j z[n, j]")
        w(f"z{number} = {previous}")
        self.buffer(w, f"a{number}", ("batch", layer.n_out))
        w("for n in range(batch):")
        with w.block():
            w(f"m = z{number}[n, 0]")
            w(f"for i in range(1, {layer.n_out}):")
            with w.block():
                w(f"m = max(m, z{number}[n, i])")
            w(f"total = {self.p(sp.Float(0))}")
            w(f"for i in range({layer.n_out}):")
            with w.block():
                w(f"e = {self.p(sp.exp(sp.IndexedBase(f'z{number}', real=True)[L.n, L.i] - losses.row_max))}")
                w(f"a{number}[n, i] = e")
                w("total += e")
            w(f"for i in range({layer.n_out}):")
            with w.block():
                w(f"a{number}[n, i] /= total")

    def _max(self, w, layer, number, stored, elementwise):
        """a[n, …] = max over the layer's max indices of z[n, …] (the stored contraction, if ``stored``, plus the
        elementwise terms), remembering in piece[n, …] the first combination of those indices, in row-major order,
        that attains it."""
        over = layer.max_over
        out = tuple(index_ for index_ in layer.output_indices if index_ not in over)
        extents = [layer.z_shape[layer.output_indices.index(index_) - 1] for index_ in over]
        z = sp.IndexedBase(f"z{number}", real=True)[layer.output_indices] if stored else sp.Integer(0)
        value = z + sum((t.summand for t in elementwise), sp.Integer(0))
        piece = f"piece{number}"
        w(f"# a{number}{list(out)} = max over {', '.join(map(str, over))} of z{number}{list(layer.output_indices)}; "
          f"{piece}{list(out)} = the first (row-major) that attains it")
        self.buffer(w, f"a{number}", ("batch", *layer.output_shape))
        if len(layer.output_shape) > 1:
            self.printer.flat_rows[piece] = layer.output_shape
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
                w("if z > best:")
                with w.block():
                    w("best = z")
                    w(f"choice = {over[0] if len(over) == 1 else 'choice_k'}")
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
        w(f"# loss: L = (1/N) Σ_n ℓ_n,  ℓ = {loss.declared}")
        if loss.rewrite:
            w(f"# evaluated as ({loss.rewrite}): ℓ = {loss.evaluated}")
        if with_gradient:
            w(f"# delta{last}[n, j] = ∂L/∂z{last}[n, j] = (1/N) ∂ℓ/∂o_j ⊙ f'(z),  ∂ℓ/∂o_j = {loss.gradient}")
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
            self._exp_arguments(w, [(kept[t][0], t) for t in flat_exp], output, K, loss.uses_row_max)
        w(f"loss = {self.p(sp.Float(0))}")
        w("for n in range(batch):")
        with w.block():
            if loss.uses_row_max:
                self._row_max(w, output, K, stored=bool(flat_exp))
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

    def _row_max(self, w, output, K, stored):
        """m = max_k output[n, k] inside the loop over rows n (read back from row_max[n] when ``stored``)."""
        if stored:
            w("m = row_max[n]")
            return
        w(f"m = {output}[n, 0]")
        w(f"for k in range(1, {K}):")
        with w.block():
            w(f"m = max(m, {output}[n, k])")

    def _exp_arguments(self, w, buffers, output, K, uses_row_max):
        """buffer[n, k] = e^(argument) for each (buffer, Σ_k e^(argument)): the arguments row by row (after the row
        max m, then kept in row_max[n]), then ``_exp`` in one loop over the flat buffer."""
        w("# " + "; ".join(f"{buffer}[n, {total.limits[0][0]}] = {total.function}" for buffer, total in buffers)
          + " for the whole batch: arguments row by row, then exp in one loop over batch × classes (vectorised)")
        if uses_row_max:
            self.buffer(w, "row_max", ("batch",))
        w("for n in range(batch):")
        with w.block():
            if uses_row_max:
                self._row_max(w, output, K, stored=False)
                w("row_max[n] = m")
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

    def _fprime_factor(self, fprime, number, row, column):
        """Printed f'(z) of layer ``number`` at cell [row, column], or None when f' = 1."""
        kind, expr = fprime
        if kind == "one":
            return None
        if kind == "input":
            return f"fprime{number}[{row}, {column}]"
        output = sp.IndexedBase(f"a{number}", real=True)[sp.Symbol(row), sp.Symbol(column)]
        layer = self.model.layers[number - 1]
        at = {A_SCALAR: output, **self._activation_parameters(layer, number, sp.Symbol(column))}
        return f"({self.p(expr.xreplace(at))})"

    @staticmethod
    def _parameter_names(layer, number):
        """{base: generated array name} for the layer's parameters and its noise."""
        names = {base: f"{base}{number}" for base, _ in layer.parameters}
        if layer.noise is not None:
            names[layer.noise] = f"{layer.noise}{number}"
        if getattr(layer, "output", None) is not None:
            names[layer.output] = f"a{number}"
        return names

    def _draw_noise(self, w, layer, number):
        """Dropout's mask: 1/(1 − p) with probability 1 − p in training (noise_seed ≥ 0), else 1."""
        mask = f"{layer.noise}{number}"
        keep = self.p(exact_number(1 - layer.p))
        w(f"# inverted dropout, p = {layer.p}: in training {mask}[n, i] = 1/(1 − p) with probability 1 − p, else 0; "
          f"outside training {mask} = 1")
        self.buffer(w, mask, ("batch", layer.n_out))
        w("if noise_seed >= 0:")
        with w.block():
            with w.loops(("n", "batch"), ("i", layer.n_out)):
                w(f"{mask}[n, i] = {self.p(1 / exact_number(1 - layer.p))} if np.random.random() < {keep} "
                  f"else {self.p(sp.Float(0))}")
        w("else:")
        with w.block():
            w(f"{mask}[:] = {self.p(sp.Integer(1))}")

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

    def backward(self, w):
        model = self.model
        for number in range(len(model.layers), 0, -1):
            layer = model.layers[number - 1]
            previous = "X" if number == 1 else f"a{number - 1}"
            names = {L.a: previous, L.delta: f"delta{number}", **self._parameter_names(layer, number)}
            if layer.max_over:
                self._route(w, layer, number)
                names[L.delta] = f"dz{number}"
            vjps = layer.vjps()
            for base in layer.parameter_shapes:
                indices, expr = vjps[base]
                w(f"# grad_{base}{number}{list(indices)} = {expr}")
                self._assign(w, _arrays(expr, names), f"grad_{base}{number}", indices, allocate=False)
            if number > 1:
                indices, expr = vjps[L.a]
                target = f"delta{number - 1}"
                fprime = model.fprime_form(number - 2)
                w(f"# {target}{list(indices)} = ({expr}) ⊙ f'(z{number - 1}), f' = {fprime[1]}")
                if expr == L.delta[indices]:
                    w(f"{target} = delta{number}   # the same memory: δ is written over (not needed later)")
                else:
                    self._assign(w, _arrays(expr, names), target, indices, allocate=True)
                learned = model.layers[number - 2].activation.parameters
                if learned:
                    w(f"# ∂L/∂γ = Σ ∂L/∂a{number - 1} ⊙ ∂f/∂γ for the trainable activation parameters γ of layer "
                      f"{number - 1}")
                    self._zero_activation_gradients(w, number - 1)
                if fprime[0] != "one":
                    with w.loops(("n", "batch"), ("j", layer.n_in)), self.innermost(layer.n_in):
                        factor = self._fprime_factor(fprime, number - 1, 'n', 'j')
                        if learned:
                            w(f"upstream = {target}[n, j]")
                            self._activation_gradients(w, number - 1, "upstream", "n", "j")
                            w(f"{target}[n, j] = upstream * {factor}")
                        else:
                            w(f"{target}[n, j] *= {factor}")

    def _route(self, w, layer, number):
        """dz[n, …, max indices] = δ[n, …] at the combination that won, 0 elsewhere."""
        over = layer.max_over
        out = tuple(index_ for index_ in layer.output_indices if index_ not in over)
        extents = [layer.z_shape[layer.output_indices.index(index_) - 1] for index_ in over]
        piece = self.p(sp.IndexedBase(f"piece{number}", real=True)[out])
        w(f"# δ reaches only the winning entry: dz{number}{list(layer.output_indices)} = delta{number}{list(out)} "
          f"[{', '.join(map(str, over))} = piece{number}]")
        self.buffer(w, f"dz{number}", ("batch", *layer.z_shape), zero=True)
        with w.loops(("n", "batch"), *zip(map(str, out[1:]), layer.output_shape)):
            if len(over) == 1:
                chosen = [piece]
            else:
                w(f"choice = {piece}")
                chosen = self._decomposed("choice", extents)
            cell = ", ".join([*map(str, out), *chosen])
            w(f"dz{number}[{cell}] = {self.p(sp.IndexedBase(f'delta{number}', real=True)[out])}")

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

    def _flat_weight_views(self, w, with_gradient):
        if not self.model.weight_decay:
            return
        weights = set(self._weight_names())
        for name, start, stop, _ in self.layout:
            if name in weights:
                w(f"theta_{name} = theta[{start}:{stop}]")
                if with_gradient:
                    w(f"grad_theta_{name} = gradient[{start}:{stop}]")

    # --- functions -------------------------------------------------------------

    def function(self, w, name, arguments, docstring, with_loss, with_gradient, checked=True):
        """``name``: forward (and loss, and back-propagation); makes its own scratch array unless ``scratch`` is
        one of its arguments. Returns the scratch width per batch row its buffers take."""
        with w.function(name, arguments):
            w(f'"""{docstring}"""')
            w("batch = X.shape[0]")
            if checked:
                self.input_checks(w, with_loss, arguments)
            self.scratch_width, self.views_pending, self.uses_blas, self.sum_count = 0, [], False, 0
            self.hoisted = {}
            scratch_at = len(w.lines)
            self._body(w, arguments, with_loss, with_gradient)
            self.resolve_views(w)
            if "scratch" not in arguments:
                w.insert(scratch_at, self.scratch_allocation("batch", self.scratch_width))
        return self.scratch_width

    def _body(self, w, arguments, with_loss, with_gradient):
        if self.model.noisy:
            if "noise_seed" in arguments:
                w("if noise_seed >= 0:")
                with w.block():
                    w("np.random.seed(noise_seed)")
            else:
                w("noise_seed = -1   # no dropout outside training")
        if with_loss:
            w(f"inv_batch = {self.p(sp.Integer(1))} / batch" if self.dtype == "float64"
              else f"inv_batch = {self.p(sp.Integer(1))} / np.{self.dtype}(batch)")
        self.views(w)
        if with_gradient:
            self.views(w, source="gradient")
        self.forward(w, store_fprime=with_gradient)
        if not with_loss:
            w(f"return a{len(self.model.layers)}.copy()   # not a view: it would keep the whole scratch alive")
            return
        with self.innermost(self.model.layers[-1].n_out):
            self.loss(w, with_gradient)
        self._flat_weight_views(w, with_gradient)
        if with_gradient:
            self.backward(w)
        self.weight_decay(w, with_gradient)
        w("return loss")

    def checked(self, w, name, arguments):
        """``name(...)``: :meth:`input_checks`, then the scratch array, then ``_name(..., scratch)``, the unchecked
        function that train_epoch calls (``fit`` checks its data once, not every batch again)."""
        with w.function(name, arguments):
            w(f'"""_{name} after checking the shapes of X and Y and that they hold no NaN or infinity."""')
            w("batch = X.shape[0]")
            self.input_checks(w, True, arguments)
            w(self.scratch_allocation("batch", self.gradient_width))
            w(f"return _{name}({', '.join(arguments)}, scratch)")

    def flat_checks(self, w, arguments):
        """Refuse flat arrays (theta, gradient, work) of the wrong length or not contiguous in the module's dtype:
        their views are written with fixed strides and read without bounds checks."""
        size = self.layout[-1][2] if self.layout else 0
        lengths = {"theta": size, "gradient": size}
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

    def _noise_argument(self):
        return ["noise_seed"] if self.model.noisy else []

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

    def text(self):
        model = self.model
        description = "\n" + "\n".join(modules.literal_text(line) for line in model.summary().split("\n")) + "\n"
        w = _Writer()
        for line in modules.header(f"Compiled network {modules.literal_text(model.describe())}", self.digest,
                                   description).rstrip("\n").split("\n"):
            w(line)
        kernel_at = len(w.lines)
        self.function(w, "predict", ["theta", "X"], "Network output a_L for inputs X (batch, in).",
                      with_loss=False, with_gradient=False)
        noise = " With noise_seed ≥ 0 the dropout masks are drawn from it (training); −1 turns them off."
        noise = noise if self.model.noisy else ""
        self.function(w, "loss_value", ["theta", "X", "Y", *self._noise_argument()], "Mean loss over the batch." + noise,
                      with_loss=True, with_gradient=False)
        gradient_arguments = ["theta", "X", "Y", *self._noise_argument(), "gradient"]
        self.gradient_width = self.function(w, "_loss_and_gradient", [*gradient_arguments, "scratch"],
                                            "Mean loss; fills gradient (flat, same layout as theta) by "
                                            "back-propagation; scratch holds the batch-sized arrays." + noise,
                                            with_loss=True, with_gradient=True, checked=False)
        self.checked(w, "loss_and_gradient", gradient_arguments)
        if self.optimizer is not None:
            self.optimizer_step(w)
            self.checked(w, "train_step", ["theta", "X", "Y", *self._noise_argument(), *self._step_tail()])
            self.epoch(w)
        w.lines[kernel_at:kernel_at] = [line for text in kernels.texts_for(self.printer.used | self.kernels_used)
                                        for line in text.rstrip("\n").split("\n")]
        return "\n".join(w.lines) + "\n"

    def epoch(self, w):
        """``train_epoch``: many steps in one compiled call, so no Python runs between steps."""
        tail = self._step_tail()
        noise = ["noise_seeds"] if self.model.noisy else []
        with w.function("train_epoch", ['theta', 'X', 'Y', 'order', 'batch_size', 'first', 'last', *noise, 'losses',
                                        *tail]):
            w('"""Steps first … last − 1 of an epoch in one call: step k trains on the rows order[k·B : (k+1)·B]')
            w("(B = batch_size; the last batch may be smaller) and stores its loss in losses[k].")
            w('Returns the first step whose loss is not finite (its update is done), or last."""')
            self.flat_checks(w, ["theta", *tail])
            w("rows = order.shape[0]")
            w("Xb = np.empty((batch_size, X.shape[1]), dtype=X.dtype)")
            w("Yb = np.empty((batch_size, Y.shape[1]), dtype=Y.dtype)")
            w(self.scratch_allocation("batch_size", self.gradient_width))
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
                w(f"loss = _train_step(theta, Xk, Yk{', noise_seeds[k]' if noise else ''}, {', '.join(tail)}, scratch)")
                w("losses[k] = loss")
                w("if not np.isfinite(loss):")
                with w.block():
                    w("return k")
            w("return last")
