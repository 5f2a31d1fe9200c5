"""The expression toolkit: one scalar SymPy expression → gradient → CSE → LaTeX → compiled code.

>>> import symnet as sn
>>> d = sn.derive("1/(exp(-(w*x+b))+1)", wrt="w,b")
>>> d.gradient_at({"x": 1, "w": 0, "b": 0})
{'w': 0.25, 'b': 0.25}
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import sympy as sp

from symnet.declare.parse import as_expression, parse_names
from symnet.calculus import normalize
from symnet.differentiate import check_variables, count_ops, naive_gradient, reverse_program
from symnet.errors import ExpressionError, quoted
from symnet.generate import modules
from symnet.generate.printer import NumbaPrinter, check_dtype, python_name
from symnet.latex import aligned, display, latex, text
from symnet.text import shorten
from symnet.simplify import cse_program, simplest

COMMENT_WIDTH = 100


def as_symbols(wrt):
    """Accept ``"w,b"``, a symbol, or a list of symbols/names."""
    if isinstance(wrt, str):
        return parse_names(wrt)
    if isinstance(wrt, sp.Symbol):
        return [wrt]
    if not isinstance(wrt, (list, tuple)) or not all(isinstance(v, (str, sp.Symbol)) for v in wrt):
        raise ExpressionError(f"wrt must be names such as 'w,b', a SymPy Symbol or a list of them, got {quoted(wrt)}")
    return [parse_names(v)[0] if isinstance(v, str) else v for v in wrt]


def derive(expr, wrt):
    """Derive the gradient of ``expr`` with respect to ``wrt`` in every form symnet knows."""
    expr = normalize(as_expression(expr))
    names = [s.name for s in expr.free_symbols]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ExpressionError(f"the expression has two different symbols named {quoted(twice[0])} (e.g. one real, "
                              "one not); give each symbol its own name")
    return Derivation(expr, tuple(check_variables(expr, as_symbols(wrt))))


@dataclass(frozen=True)
class Derivation:
    """The gradient of one expression: naive, CSE'd and reverse-mode, with their sizes."""

    expr: sp.Expr
    wrt: tuple

    @cached_property
    def naive(self):
        """``[diff(f, v) for v in wrt]``: trees that repeat shared subexpressions."""
        return naive_gradient(self.expr, self.wrt)

    @cached_property
    def cse(self):
        """``sympy.cse`` of the naive derivatives, as a program."""
        return cse_program(self.naive)

    @cached_property
    def forward_and_gradient_cse(self):
        """``sympy.cse`` of ``f`` and its naive derivatives together."""
        return cse_program([self.expr, *self.naive])

    @cached_property
    def forward_cse(self):
        """``sympy.cse`` of ``f`` alone: the size of its DAG."""
        return cse_program([self.expr])

    @cached_property
    def reverse(self):
        """The forward-plus-adjoint program of reverse mode (outputs ``f, ∂f/∂v...``)."""
        return reverse_program(self.expr, self.wrt)

    @cached_property
    def ops(self):
        """Operation counts: trees, after CSE, and of the reverse-mode program."""
        return {
            "forward": count_ops(self.expr),
            "forward_dag": self.forward_cse.ops,
            "naive": sum(count_ops(d) for d in self.naive),
            "cse": self.cse.ops,
            "forward_and_gradient_naive": count_ops(self.expr) + sum(count_ops(d) for d in self.naive),
            "forward_and_gradient_cse": self.forward_and_gradient_cse.ops,
            "reverse": self.reverse.ops,
        }

    @cached_property
    def simplified(self):
        """Each partial derivative in the cheapest form found quickly (see :func:`simplest`)."""
        return [simplest(d) for d in self.naive]

    @property
    def names(self):
        return [v.name for v in self.wrt]

    def latex(self):
        """``{var: LaTeX of ∂f/∂var}`` in the simplified form."""
        return {v.name: latex(d) for v, d in zip(self.wrt, self.simplified)}

    def _cse_rows(self):
        rows = [(latex(name), latex(rhs)) for name, rhs in self.cse.assignments]
        return rows + [(_partial(v), latex(out)) for v, out in zip(self.wrt, self.cse.outputs)]

    def cse_latex(self):
        """The CSE'd derivatives as LaTeX lines ``x_0 = …``, then ``∂f/∂v = …``."""
        return [f"{left} = {right}" for left, right in self._cse_rows()]

    def __repr__(self):
        """f, each ∂f/∂v (simplified), the CSE'd program and the operation counts, as plain text."""
        lines = [f"Derivation of f = {self.expr} with respect to {', '.join(self.names)}"]
        lines += [f"  ∂f/∂{v.name} = {d}" for v, d in zip(self.wrt, self.simplified)]
        lines.append("  after common-subexpression elimination:")
        lines += [f"    {name} = {rhs}" for name, rhs in self.cse.assignments]
        lines += [f"    ∂f/∂{v.name} = {out}" for v, out in zip(self.wrt, self.cse.outputs)]
        ops = self.ops
        lines.append(f"  operations: naive {ops['naive']}, after CSE {ops['cse']}, reverse mode {ops['reverse']}")
        return "\n".join(lines)

    def _repr_latex_(self):
        """f and its gradient (simplified), then the CSE'd form, aligned at their equals signs (Jupyter)."""
        rows = [("f", "=", latex(self.expr))]
        rows += [(_partial(v), "=", formula) for v, formula in zip(self.wrt, self.latex().values())]
        rows.append(("", r"\quad", text("after common-subexpression elimination:")))
        rows += [(left, "=", right) for left, right in self._cse_rows()]
        return display(aligned(rows))

    def gradient_at(self, point):
        """Evaluate the gradient at ``point`` (``{name or symbol: number}``) in float64 via the generated code."""
        compiled = self.compile()
        values = compiled(**{str(k): v for k, v in point.items()})
        return {v.name: float(g) for v, g in zip(self.wrt, values[1])}

    def compile(self, dtype="float64", directory=None):
        """Generate (or reuse) the Numba module for value and gradient; return a callable."""
        return CompiledExpression(self, check_dtype(dtype), directory)

    def hessian(self):
        """The Hessian ∂²f/∂v_k∂v_l: the Jacobian of the gradient, symmetric (each pair derived once)."""
        return Jacobian(tuple(self.naive), self.wrt, of=self.expr)


def jacobian(exprs, wrt):
    """The Jacobian ∂f_i/∂v_k of the functions ``exprs`` (text or SymPy, a list) with respect to ``wrt``."""
    if isinstance(exprs, (str, sp.Basic)) or not hasattr(exprs, "__iter__"):
        raise ExpressionError(f"jacobian takes a list of expressions, got {quoted(exprs)}; for one expression use "
                              "sn.derive(expr, wrt)")
    functions = tuple(normalize(as_expression(e)) for e in exprs)
    if not functions:
        raise ExpressionError("jacobian needs at least one expression")
    joint = sp.Add(*(sp.Dummy() * f for f in functions))      # every symbol of every function, for the checks
    return Jacobian(functions, tuple(check_variables(joint, as_symbols(wrt))))


@dataclass(frozen=True)
class Jacobian:
    """∂f_i/∂v_k of functions f_i with respect to v_k: symbolic, CSE'd, LaTeX, compiled.  With ``of`` = f and the
    functions f's gradient it is f's Hessian (symmetric: the entries below the diagonal are those above)."""

    functions: tuple
    wrt: tuple
    of: sp.Expr = None

    @property
    def symmetric(self):
        return self.of is not None

    @cached_property
    def matrix(self):
        """The entries as a SymPy Matrix (functions × variables)."""
        rows, columns = len(self.functions), len(self.wrt)
        entries = {}
        for i in range(rows):
            for k in range(columns):
                entries[i, k] = (entries[k, i] if self.symmetric and k < i
                                 else sp.diff(self.functions[i], self.wrt[k]))
        return sp.Matrix(rows, columns, lambda i, k: entries[i, k])

    def pairs(self):
        """``[(i, k)]`` of the entries derived (the upper triangle of a Hessian)."""
        return [(i, k) for i in range(self.matrix.rows) for k in range(self.matrix.cols)
                if not (self.symmetric and k < i)]

    @cached_property
    def cse(self):
        """``sympy.cse`` of the functions and the derived entries together, as a program."""
        return cse_program([*self.functions, *(self.matrix[i, k] for i, k in self.pairs())])

    @cached_property
    def simplified(self):
        """Each entry in the cheapest form found quickly (see :func:`simplest`)."""
        cells = {(i, k): simplest(self.matrix[i, k]) for i, k in self.pairs()}
        return sp.Matrix(self.matrix.rows, self.matrix.cols, lambda i, k: cells[(i, k) if (i, k) in cells else (k, i)])

    @property
    def ops(self):
        """Operation counts of the derived entries: as trees, and after CSE (with the functions)."""
        return {"naive": sum(count_ops(self.matrix[i, k]) for i, k in self.pairs()), "cse": self.cse.ops}

    def _label(self, i, k):
        if self.symmetric:
            return (rf"\frac{{\partial^{{2}} f}}{{\partial {latex(self.wrt[i])} \partial {latex(self.wrt[k])}}}"
                    if i != k else rf"\frac{{\partial^{{2}} f}}{{\partial {latex(self.wrt[i])}^{{2}}}}")
        return rf"\frac{{\partial f_{{{i}}}}}{{\partial {latex(self.wrt[k])}}}"

    def latex(self):
        """The matrix in LaTeX (a pmatrix-like ``\\left[\\begin{matrix}…``), entries simplified."""
        return latex(self.simplified)

    def __repr__(self):
        title = (f"Hessian of f = {self.of}" if self.symmetric else
                 f"Jacobian of ({', '.join(map(str, self.functions))})")
        lines = [f"{title} with respect to {', '.join(v.name for v in self.wrt)}"]
        for i, k in self.pairs():
            name = (f"∂f{i}/∂{self.wrt[k].name}" if not self.symmetric else f"∂²f/∂{self.wrt[i].name}²" if i == k
                    else f"∂²f/∂{self.wrt[i].name}∂{self.wrt[k].name}")
            lines.append(f"  {name} = {self.simplified[i, k]}")
        lines.append(f"  operations: naive {self.ops['naive']}, after CSE {self.ops['cse']}")
        return "\n".join(lines)

    def _repr_latex_(self):
        symbol = r"\nabla^{2} f" if self.symmetric else "J"
        rows = [(symbol, "=", self.latex())]
        rows += [(self._label(i, k), "=", latex(self.simplified[i, k])) for i, k in self.pairs()]
        return display(aligned(rows))

    def at(self, point):
        """The matrix at ``point`` (``{name or symbol: number}``) in float64, via the generated code."""
        compiled = self.compile()
        _, matrix = compiled(**{str(k): v for k, v in point.items()})
        return np.asarray(matrix, dtype=float)

    def compile(self, dtype="float64", directory=None):
        """Generate (or reuse) the Numba module for the functions and the matrix; return a callable."""
        return CompiledJacobian(self, check_dtype(dtype), directory)


def _partial(variable):
    r"""``\frac{\partial f}{\partial v}`` for the variable ``v``."""
    return rf"\frac{{\partial f}}{{\partial {latex(variable)}}}"


def _formula(expr):
    """``expr`` as text for a comment or docstring of the generated module: escaped and cut to one line."""
    return modules.literal_text(shorten(str(expr), COMMENT_WIDTH))


class CompiledExpression:
    """Value and gradient of a :class:`Derivation`, vectorised over points by generated Numba code.

    Call it with one keyword argument per symbol of the expression (numbers
    or arrays, broadcast together); it returns ``(value, gradient)`` where
    ``gradient[k]`` is ``∂f/∂wrt[k]``.
    """

    def __init__(self, derivation, dtype, directory):
        self.derivation = derivation
        self.dtype = dtype
        self.inputs = sorted(derivation.expr.free_symbols, key=lambda s: s.name)
        digest = modules.content_hash("expression", sp.srepr(derivation.expr),
                                      [sp.srepr(v) for v in derivation.wrt], dtype)
        module, self.path, self.written = modules.load("expression", digest, lambda: self._source(digest), directory)
        self.function = module.value_and_gradient

    def _source(self, digest):
        d = self.derivation
        names, printer = _pointwise_names(self.inputs, d.reverse.assignments, self.dtype)
        formulas = [f"    f = {_formula(d.expr)}"]
        formulas += [f"    ∂f/∂{_formula(v)} = {_formula(g)}" for v, g in zip(d.wrt, d.simplified)]
        description = "\nValue and gradient of\n\n" + "\n".join(formulas) + "\n"
        forward_count = d.reverse.forward_length
        wrt = ", ".join(_formula(v) for v in d.wrt)
        docstring = (f'inputs[k, i] is point i of ({", ".join(names[s] for s in self.inputs)}); returns f[i] and '
                     f"gradient[k, i] = ∂f/∂({wrt})[k].")
        lines = _pointwise_head(modules.header(f"Value and gradient of f = {_formula(d.expr)}", digest, description),
                                "value_and_gradient", docstring, {"value": "n", "gradient": f"({len(d.wrt)}, n)"},
                                self.inputs, names, self.dtype)
        lines.append(f"        # forward pass: f = {_formula(d.expr)}")
        for target, rhs in d.reverse.assignments[:forward_count]:
            lines.append(f"        {names[target]} = {printer.doprint(rhs)}")
        lines.append("        # reverse pass: adj_t = ∂f/∂t, summed over the uses of t")
        for target, rhs in d.reverse.assignments[forward_count:]:
            lines.append(f"        {names[target]} = {printer.doprint(rhs)}")
        lines.append(f"        value[i] = {printer.doprint(d.reverse.outputs[0])}")
        for k, (var, out) in enumerate(zip(d.wrt, d.reverse.outputs[1:])):
            lines.append(f"        # ∂f/∂{_formula(var)} = {_formula(d.simplified[k])}")
            lines.append(f"        gradient[{k}, i] = {printer.doprint(out)}")
        lines.append("    return value, gradient")
        return "\n".join(lines) + "\n"

    def __repr__(self):
        return (f"CompiledExpression(value and gradient of f = {shorten(str(self.derivation.expr), COMMENT_WIDTH)} "
                f"with respect to {', '.join(self.derivation.names)}; call with "
                f"{', '.join(f'{s.name}=...' for s in self.inputs)}; {self.dtype}, module {self.path})")

    def __call__(self, **values):
        inputs, shape = _points(self.inputs, values, self.dtype)
        value, gradient = self.function(inputs)
        return value.reshape(shape), gradient.reshape((len(self.derivation.wrt), *shape))


def _pointwise_names(inputs, assignments, dtype):
    """Python names for the input symbols and the assignments' targets (escaped, distinct), and a printer using
    them."""
    taken = set()
    names = {s: python_name(s.name, taken) for s in inputs}
    for target, _ in assignments:
        names[target] = python_name(target.name, taken)
    return names, NumbaPrinter(dtype, names)


def _pointwise_head(header, name, docstring, outputs, inputs, names, dtype):
    """A pointwise module's lines up to the body of its loop over points: the header, ``def name(inputs)``, the
    output arrays (``{name: shape text}``) and each input read from ``inputs[k, i]``."""
    lines = [header, "", "@numba.njit(cache=True, error_model=\"numpy\")   # x/0 gives inf or nan, as in NumPy",
             f"def {name}(inputs):", f'    """{docstring}"""', "    n = inputs.shape[1]"]
    lines += [f"    {output} = np.empty({shape}, dtype=np.{dtype})" for output, shape in outputs.items()]
    lines.append("    for i in range(n):")
    lines += [f"        {names[s]} = inputs[{k}, i]" for k, s in enumerate(inputs)]
    return lines


def _points(symbols, values, dtype):
    """``(inputs, shape)``: the values of ``symbols`` (keyword arguments: numbers or arrays, broadcast together) as
    rows of one contiguous array, and the shape they broadcast to."""
    missing = [s.name for s in symbols if s.name not in values]
    unknown = sorted(set(values) - {s.name for s in symbols})
    if missing or unknown:
        raise ExpressionError(
            f"expected values for {', '.join(s.name for s in symbols)}; "
            f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}")
    arrays = np.broadcast_arrays(*[np.asarray(values[s.name], dtype=dtype) for s in symbols])
    shape = arrays[0].shape if arrays else ()
    inputs = np.ascontiguousarray(np.stack([a.ravel() for a in arrays]) if arrays else np.empty((0, 1)))
    return inputs, shape


class CompiledJacobian:
    """The functions and their Jacobian (or a Hessian with the gradient) of a :class:`Jacobian`, vectorised over
    points by generated Numba code: called like :class:`CompiledExpression`, it returns ``(values, matrix)`` with
    ``values[i]`` = f_i and ``matrix[i, k]`` = ∂f_i/∂v_k at every point."""

    def __init__(self, jacobian, dtype, directory):
        self.jacobian = jacobian
        self.dtype = dtype
        self.inputs = sorted(set().union(*(f.free_symbols for f in jacobian.functions)), key=lambda s: s.name)
        digest = modules.content_hash("jacobian", [sp.srepr(f) for f in jacobian.functions],
                                      [sp.srepr(v) for v in jacobian.wrt], jacobian.symmetric, dtype)
        module, self.path, self.written = modules.load("jacobian", digest, lambda: self._source(digest), directory)
        self.function = module.values_and_matrix

    def _source(self, digest):
        j = self.jacobian
        names, printer = _pointwise_names(self.inputs, j.cse.assignments, self.dtype)
        what = f"Hessian of f = {_formula(j.of)}" if j.symmetric else "Jacobian of the functions"
        description = "\n" + what + "\n\n" + "\n".join(f"    f{i} = {_formula(f)}" for i, f in enumerate(j.functions)) + "\n"
        rows, columns = j.matrix.shape
        wrt = ", ".join(_formula(v) for v in j.wrt)
        docstring = (f'inputs[k, i] is point i of ({", ".join(names[s] for s in self.inputs)}); returns values[r, i] '
                     f"= f_r and matrix[r, c, i] = ∂f_r/∂({wrt})[c].")
        lines = _pointwise_head(modules.header(what, digest, description), "values_and_matrix", docstring,
                                {"values": f"({rows}, n)", "matrix": f"({rows}, {columns}, n)"}, self.inputs, names,
                                self.dtype)
        lines += [f"        {names[target]} = {printer.doprint(rhs)}" for target, rhs in j.cse.assignments]
        outputs = list(j.cse.outputs)
        for r in range(rows):
            lines.append(f"        values[{r}, i] = {printer.doprint(outputs[r])}")
        for (r, c), out in zip(j.pairs(), outputs[rows:]):
            lines.append(f"        # ∂f{r}/∂{_formula(j.wrt[c])} = {_formula(j.simplified[r, c])}")
            lines.append(f"        matrix[{r}, {c}, i] = {printer.doprint(out)}")
            if j.symmetric and r != c:
                lines.append(f"        matrix[{c}, {r}, i] = matrix[{r}, {c}, i]")
        lines.append("    return values, matrix")
        return "\n".join(lines) + "\n"

    def __repr__(self):
        return (f"CompiledJacobian({'Hessian' if self.jacobian.symmetric else 'Jacobian'} with respect to "
                f"{', '.join(v.name for v in self.jacobian.wrt)}; call with "
                f"{', '.join(f'{s.name}=...' for s in self.inputs)}; {self.dtype}, module {self.path})")

    def __call__(self, **values):
        inputs, shape = _points(self.inputs, values, self.dtype)
        values_out, matrix = self.function(inputs)
        rows, columns = self.jacobian.matrix.shape
        return values_out.reshape((rows, *shape)), matrix.reshape((rows, columns, *shape))
