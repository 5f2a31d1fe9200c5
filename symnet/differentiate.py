"""Differentiate: naive symbolic gradients and reverse mode on the expression DAG.

Two ways to get ∂f/∂v_i of a scalar SymPy expression f:

* :func:`naive_gradient` calls ``sympy.diff`` once per variable.  The result
  is a tree in which shared subexpressions are written out again at every use,
  so it swells (the logistic map's derivative grows about 2.5x per level).
* :func:`reverse_program` is the symbolic twin of back-propagation.  The
  forward expression is first reduced to its DAG (``sympy.cse``, which also
  shares common sub-products of SymPy's n-ary ``Mul``/``Add``), split into
  elementary assignments ``t_k = op(children)``, and then walked once in
  reverse topological order, accumulating adjoints

  .. math:: \\bar t_j = \\sum_{k:\\, t_j \\in \\mathrm{children}(t_k)} \\bar t_k \\, \\partial t_k / \\partial t_j .

  The partial derivatives of an n-ary product come from prefix and suffix
  products, so the cost of the whole program stays within a small constant of
  the forward DAG (Griewank's cheap-gradient principle), instead of growing
  quadratically with the width of a product.
"""

from dataclasses import dataclass

import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

from symnet.calculus import local_derivative, normalize
from symnet.declare.parse import as_expression
from symnet.errors import ExpressionError


def count_ops(expr):
    """Number of operations in the expression *tree* (``sympy.count_ops``)."""
    return int(sp.count_ops(expr))


@dataclass(frozen=True)
class Program:
    """A straight-line program: ``assignments`` run in order, then ``outputs`` are read.

    ``assignments`` is a tuple of ``(symbol, expression)`` pairs; each
    expression uses only inputs and symbols assigned before it.  The first
    ``forward_length`` assignments compute the forward pass (all of them when
    it is ``None``).
    """

    assignments: tuple
    outputs: tuple
    forward_length: int | None = None

    @property
    def ops(self):
        """Operations of the program: ``count_ops`` summed over every right-hand side and output."""
        return sum(count_ops(rhs) for _, rhs in self.assignments) + sum(count_ops(out) for out in self.outputs)


def check_variables(expr, wrt):
    """Return ``wrt`` as a list of symbols, raising if one does not occur in ``expr``."""
    wrt = list(wrt)
    if not wrt:
        raise ExpressionError("no variables to differentiate with respect to")
    free = expr.free_symbols
    for var in wrt:
        if not isinstance(var, sp.Symbol):
            raise ExpressionError(f"can only differentiate with respect to symbols, got {var!r}")
        if var not in free:
            names = ", ".join(sorted(s.name for s in free)) or "none"
            raise ExpressionError(f"variable {var.name!r} does not occur in the expression; its symbols are: {names}")
    if len(set(wrt)) != len(wrt):
        raise ExpressionError("a variable is listed twice")
    return wrt


def naive_gradient(expr, wrt):
    """``[sympy.diff(expr, v) for v in wrt]``, with symnet's conventions applied."""
    wrt = check_variables(expr, wrt)
    return [local_derivative(expr, var) for var in wrt]


def _is_leaf(expr):
    return expr.is_Atom or isinstance(expr, (sp.logic.boolalg.Boolean, sp.core.relational.Relational))


def _reserved_names(expr):
    return {s.name for s in expr.free_symbols}


def fresh_symbols(prefix, taken):
    """``prefix0, prefix1, ...`` as real symbols, skipping the names in ``taken``."""
    index = 0
    while True:
        name = f"{prefix}{index}"
        index += 1
        if name not in taken:
            yield sp.Symbol(name, real=True)


class _ProgramBuilder:
    """Split expressions into elementary assignments, sharing equal subexpressions."""

    def __init__(self, taken):
        self.taken = taken
        self.node_names = fresh_symbols("t", taken)
        self.assignments = []          # (symbol, rhs) in topological order
        self.node_of = {}              # expression -> symbol holding its value
        self.rhs_of = {}               # symbol -> rhs (children are symbols)

    def add(self, expr):
        """Return a symbol or atom that holds ``expr``'s value, adding assignments as needed."""
        if _is_leaf(expr):
            return expr
        if expr in self.node_of:
            return self.node_of[expr]
        if isinstance(expr, sp.Piecewise):
            # conditions are piecewise constant: kept as written, never differentiated
            args = [ExprCondPair(self.add(value), cond) for value, cond in expr.args]
        elif isinstance(expr, sp.Add):
            # a term c*y (number times one factor) stays inside the sum: its
            # partial derivative is c, and count_ops counts it with the sum
            args = [self._scaled(term) for term in expr.args]
        else:
            args = [self.add(arg) for arg in expr.args]
        rhs = expr.func(*args)
        if _is_leaf(rhs):
            return rhs
        target = next(self.node_names)
        self.assignments.append((target, rhs))
        self.node_of[expr] = target
        self.rhs_of[target] = rhs
        return target

    def _scaled(self, term):
        coefficient, rest = term.as_coeff_Mul()
        if coefficient != 1 and coefficient.is_Number and not rest.is_Mul:
            return coefficient * self.add(rest)
        return self.add(term)


def forward_program(expr):
    """The forward pass of ``expr`` as elementary assignments on its CSE'd DAG.

    Returns ``(builder, root)`` where ``root`` holds the value of ``expr``.
    """
    taken = _reserved_names(expr)
    replacements, (reduced,) = sp.cse(expr, symbols=fresh_symbols("c", taken))
    builder = _ProgramBuilder(taken)
    alias = {}
    for name, rhs in replacements:
        alias[name] = builder.add(rhs.xreplace(alias))
    root = builder.add(reduced.xreplace(alias))
    return builder, root


def reverse_program(expr, wrt):
    """Value and gradient of ``expr`` as one straight-line program (reverse mode).

    The outputs are ``(f, ∂f/∂wrt[0], ∂f/∂wrt[1], ...)``.  The adjoint of
    assignment ``t`` is named ``adj_t``.
    """
    expr = normalize(as_expression(expr))
    wrt = check_variables(expr, wrt)
    builder, root = forward_program(expr)
    taken = builder.taken | {s.name for s, _ in builder.assignments}
    helper_names = fresh_symbols("p", taken)

    # which nodes depend on a variable we differentiate by (forward order)
    active = set(wrt)
    for target, rhs in builder.assignments:
        if rhs.free_symbols & active:
            active.add(target)

    contributions = {node: [] for node in active}
    if root in active:
        contributions[root].append(sp.Integer(1))
    adjoint_assignments = []

    def adjoint_symbol(node):
        return sp.Symbol(f"adj_{node.name}", real=True)

    for target, rhs in reversed(builder.assignments):
        if target not in active:
            continue
        terms = contributions.pop(target)
        if not terms:
            continue
        adjoint = sp.Add(*terms)
        if not adjoint.is_Atom:   # constants and single symbols are used in place
            adjoint_assignments.append((adjoint_symbol(target), adjoint))
            adjoint = adjoint_symbol(target)
        for child, partial_times_adjoint in _pullback(target, rhs, adjoint, active, helper_names,
                                                      adjoint_assignments):
            contributions[child].append(partial_times_adjoint)

    outputs = [root]
    for var in wrt:
        terms = contributions.get(var, [])
        if len(terms) > 1:
            adjoint = adjoint_symbol(var)
            adjoint_assignments.append((adjoint, sp.Add(*terms)))
            outputs.append(adjoint)
        else:
            outputs.append(sp.Add(*terms))
    return Program(tuple(builder.assignments + adjoint_assignments), tuple(outputs), len(builder.assignments))


def _pullback(target, rhs, adjoint, active, helper_names, assignments):
    """Yield ``(child, adjoint * ∂rhs/∂child)`` for every active child of ``rhs``.

    Products with three or more active factors get prefix and suffix products
    as extra assignments (appended to ``assignments``), so each partial costs
    one multiplication instead of a product of all the other factors.
    """
    if isinstance(rhs, sp.Mul):
        coefficient, factors = rhs.as_coeff_mul()
        if sum(1 for f in factors if f in active) >= 3:
            yield from _product_pullback(coefficient * adjoint, factors, active, helper_names, assignments)
            return
    children = _children(rhs)
    for child in children:
        if child not in active:
            continue
        if isinstance(rhs, sp.Pow) and rhs.exp == -1:
            partial = -target**2      # d(1/c)/dc = -(1/c)**2, from the stored reciprocal
        else:
            partial = local_derivative(rhs, child).xreplace({rhs: target})
        yield child, adjoint * partial


def _children(rhs):
    if isinstance(rhs, sp.Piecewise):
        return list(dict.fromkeys(value for value, _ in rhs.args if isinstance(value, sp.Symbol)))
    found = []
    for arg in rhs.args:
        if isinstance(arg, sp.Symbol):
            found.append(arg)
        elif isinstance(arg, sp.Mul):   # a scaled term c*y of a sum
            found.extend(a for a in arg.args if isinstance(a, sp.Symbol))
    return list(dict.fromkeys(found))


def _product_pullback(scaled_adjoint, factors, active, helper_names, assignments):
    """Adjoints of ``c * f_1 * ... * f_k``: ∂/∂f_i = c * (f_1...f_{i-1}) * (f_{i+1}...f_k)."""
    k = len(factors)
    prefix = [sp.Integer(1)] * (k + 1)   # prefix[i] = f_1 ... f_i
    for i in range(1, k):
        value = prefix[i - 1] * factors[i - 1]
        if i >= 2:
            name = next(helper_names)
            assignments.append((name, value))
            value = name
        prefix[i] = value
    suffix = [sp.Integer(1)] * (k + 1)   # suffix[i] = adjoint * f_{i+1} ... f_k
    suffix[k - 1] = scaled_adjoint
    for i in range(k - 2, -1, -1):
        if not any(f in active for f in factors[: i + 1]):
            break
        name = next(helper_names)
        assignments.append((name, factors[i + 1] * suffix[i + 1]))
        suffix[i] = name
    for i, factor in enumerate(factors):
        if factor in active:
            # a factor f**e is a separate assignment, so each factor is linear here
            yield factor, prefix[i] * suffix[i]
