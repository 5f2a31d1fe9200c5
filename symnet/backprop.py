"""The backward pass of a layer, derived from its declaration: vector-Jacobian products.

For a layer's forward map ``z[n, …]`` and each of its input ``a`` and parameters ``P``,

.. math:: \\bar P[p, q, …] = \\sum_{n, i, …} \\delta[n, i, …] \\, \\partial z[n, i, …] / \\partial P[p, q, …]

is differentiated by SymPy and reduced by :func:`symnet.indexed.contract` (Kronecker deltas eliminated, guards
left for index ranges), once per layer type and sizes-as-symbols (cached), then given one layer's sizes.
"""

from functools import lru_cache

import sympy as sp

from symnet.declare.layers import NAMED_SIZES, VJP_INDICES, H, N, a, delta, n, q, r
from symnet.indexed import contract, settle, tidy


def vjp_targets(layer):
    """``{base: (indices, symbolic extents)}``: where each VJP is taken, for the input ``a``, every forward-map
    parameter and, for a recurrent layer, its own output ``H`` (indices the forward map does not use; the input's
    start with r, q as Dense's δ_prev[r, q])."""
    used = {symbol for e in layer.forward_map.atoms(sp.Indexed) for symbol in e.free_symbols}
    free = [index_ for index_ in VJP_INDICES if index_ not in used]
    first = [index_ for index_ in (r, q) if index_ in free]
    targets = {a: ((*first, *[f for f in free if f not in first]), (N, *layer.input_extents))}
    if layer.step_index is not None:      # a recurrent map's own output: its VJP carries δ back one step
        targets[H] = (targets[a][0], (N, *(layer.extents[index_] for index_ in layer.output_indices[1:])))
    for base, shape in layer.parameter_shapes.items():
        targets[base] = (tuple(free), tuple(NAMED_SIZES.get(extent, extent) for extent in shape))
    return {base: (indices[:len(extents)], extents) for base, (indices, extents) in targets.items()}


def symbolic_vjps(layer, evaluation=False):
    """``{base: (indices, contracted expression)}`` for the input ``a`` and every forward-map parameter of
    ``layer``, in its declared size symbols; with ``evaluation``, of the map outside training (when the layer
    declares one: BatchNorm's running statistics)."""
    targets = tuple((base, *target) for base, target in vjp_targets(layer).items())
    ranges = tuple((index_, layer.extents[index_]) for index_ in layer.output_indices[1:])
    chosen = layer.evaluation_map if evaluation and layer.evaluation_map is not None else layer.forward_map
    return _derived(chosen, targets, layer.output_indices, ranges)


def vjps(layer, evaluation=False):
    """:func:`symbolic_vjps` with ``layer``'s sizes put in, the guards they decide settled and the sums tidied
    (:func:`~symnet.indexed.tidy`): what the generated code evaluates and ``model.latex()`` prints."""
    values = layer.size_values()
    derived = symbolic_vjps(layer, evaluation)
    result = {}
    for base, (indices, extents) in vjp_targets(layer).items():
        ranges = {index_: (0, sp.Integer(extent) - 1 if isinstance(extent, int) else extent.xreplace(values) - 1)
                  for index_, extent in zip(indices, extents)}
        derived_indices, expr = derived[base]
        result[base] = (derived_indices, tidy(settle(expr.xreplace(values), ranges)))
    return result


@lru_cache(maxsize=None)
def _derived(forward_map, targets, output_indices, output_ranges):
    """``{base: (indices, Σ_out δ[out] ∂z[out]/∂base[indices] reduced)}`` for each ``(base, indices, extents)`` of
    ``targets``; ``output_ranges``: the extent of each output index after n."""
    result = {}
    limits = [(n, 0, N - 1)] if output_indices[0] == n else []
    extents = dict(output_ranges)
    limits += [(index_, 0, extents[index_] - 1) for index_ in output_indices[1:]]
    for base, indices, base_extents in targets:
        total = sp.Sum(delta[output_indices] * sp.diff(forward_map, base[indices]), *limits)
        ranges = {index_: (0, extent - 1) for index_, extent in zip(indices, base_extents)}
        result[base] = (indices, contract(total, ranges))
    return result


def jvp(expr, directions):
    """The directional derivative of the index expression ``expr`` (Pearlmutter's R-operator):
    ``Σ_B Σ_idx ∂expr/∂B[idx] · D_B[idx]`` for each IndexedBase ``B`` of ``directions`` = ``{B: D_B}``, every read
    ``B[idx]`` moved to ``B[idx] + ε·D_B[idx]`` and differentiated at ε = 0.  Sums stay sums (their summands
    differentiated), so the result is again an index expression the generator evaluates."""
    step = sp.Dummy("epsilon")
    moved = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base in directions,
                         lambda e: e + step * directions[e.base][e.indices])
    return tidy(sp.diff(moved, step).xreplace({step: 0}))
