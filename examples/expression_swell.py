"""Expression swell: the logistic map l₁ = x, lₙ₊₁ = 4lₙ(1 − lₙ) (Baydin et al., Table 1), its derivative
differentiated naively, after CSE and in reverse mode on the DAG; then the same for a small network's whole
loss, unrolled into one expression, against symnet's layer-level derivation.

    python examples/expression_swell.py [--quick] [--out DIR]
"""

import symnet as sn
from symnet.swell import logistic_map_swell, network_swell
from symnet.text import format_table
from common import arguments, pyplot, save


def main(argv=None):
    args = arguments(__doc__, argv)
    rows = logistic_map_swell(8 if args.quick else 12)
    print(format_table(rows, ["n", "forward_ops", "forward_dag_ops", "naive_ops", "cse_ops", "reverse_ops"]))
    data = sn.datasets.xor()
    widths = (2, 3) if args.quick else (2, 3, 4, 6)
    networks = []
    for width in widths:
        model = sn.Sequential([sn.Dense(2, width, "tanh"), sn.Dense(width, 1, "sigmoid")], loss="mse")
        networks.append(network_swell(model, data.X, data.Y))
    print("\nthe whole loss of 2-h-1 networks on XOR's 4 samples, unrolled, against the layer-level derivation:")
    print(format_table(networks, list(networks[0])))
    plt = pyplot()
    if plt:
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        n = [r["n"] for r in rows]
        for key in ("naive_ops", "cse_ops", "reverse_ops", "forward_dag_ops"):
            left.semilogy(n, [max(r[key], 1) for r in rows], marker="o", label=key)
        left.set_xlabel("n")
        left.set_title("logistic map: operations of d lₙ/dx")
        params = [r["parameters"] for r in networks]
        for key in ("naive_ops", "cse_ops", "reverse_ops", "layered_ops"):
            right.semilogy(params, [r[key] for r in networks], marker="o", label=key)
        right.set_xlabel("parameters of the 2-h-1 network")
        right.set_title("unrolled network loss: gradient operations")
        for axes in (left, right):
            axes.legend(fontsize=8)
            axes.grid(alpha=0.3)
        save(figure, args.out, "expression_swell.png")
    return rows, networks


if __name__ == "__main__":
    main()
