"""The notes' logistic neuron f(x; w, b) = 1/(exp(−(wx + b)) + 1) as a computational graph of six elementary
steps h1…h6: the forward-mode trace (value and ∂/∂w, ∂/∂b of every step) and the reverse-mode trace (adjoints),
at x = 1, w = 0, b = 0, where ∂f/∂w = ∂f/∂b = 0.25.

    python examples/logistic_neuron_graph.py
"""

from symnet.compare import compare
from symnet.text import format_table
from common import arguments, pyplot, save


def draw(graph, out, plt):
    """The DAG: inputs on the left, steps to the right, an arrow per dependency."""
    figure, axes = plt.subplots(figsize=(9, 3))
    places = {("input", k): (0, 2 - k) for k in range(len(graph.inputs))}
    for k in range(len(graph.nodes)):
        places[("node", k)] = (k + 1, 1 + 0.6 * (k % 2) - 0.3)
    for k, node in enumerate(graph.nodes):
        for argument in node.args:
            if argument in places:
                (x0, y0), (x1, y1) = places[argument], places[("node", k)]
                axes.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color="grey"))
    for (kind, k), (x, y) in places.items():
        label = graph.inputs[k].name if kind == "input" else f"h{k + 1}\n{graph.describe(k)}"
        axes.text(x, y, label, ha="center", va="center", fontsize=9,
                  bbox=dict(boxstyle="round", facecolor="lightyellow" if kind == "node" else "lightblue"))
    axes.set_xlim(-0.6, len(graph.nodes) + 0.6)
    axes.set_ylim(-0.5, 2.6)
    axes.axis("off")
    return save(figure, out, "logistic_neuron_graph.png")


def main(argv=None):
    args = arguments(__doc__, argv)
    comparison = compare("1/(exp(-(w*x+b))+1)", "w,b", {"x": 1, "w": 0, "b": 0}, timings=False)
    print("forward mode: each step's value and its derivative along w and along b (one pass each)")
    print(format_table(comparison.forward_trace(), list(comparison.forward_trace()[0])))
    print("\nreverse mode: one forward pass, then adjoints ∂f/∂h_k from the output back")
    print(format_table(comparison.reverse_trace(), list(comparison.reverse_trace()[0])))
    print(f"\n∂f/∂w: forward AD {comparison.forward_ad['w']}, reverse AD {comparison.reverse_ad['w']}, "
          f"symbolic {comparison.symbolic['w']}, mpmath {comparison.reference['w']}")
    plt = pyplot()
    if plt:
        draw(comparison.graph, args.out, plt)
    return comparison


if __name__ == "__main__":
    main()
