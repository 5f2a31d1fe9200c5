"""Expression swell: the logistic map (naive vs CSE vs reverse mode) and small networks' unrolled gradients
against the layer-level derivation.

Run: python benchmarks/swell_scaling.py
"""

import time

import symnet as sn
from symnet.swell import logistic_map_swell, network_swell
from symnet.text import format_table


def main():
    rows = logistic_map_swell(12)
    print(format_table(rows, ["n", "forward_dag_ops", "naive_ops", "cse_ops", "reverse_ops"]))
    data = sn.datasets.xor()
    table = []
    for hidden in ((2,), (3,), (4,), (4, 4)):
        sizes = (2, *hidden, 1)
        layers = [sn.Dense(a, b, "tanh" if k < len(sizes) - 2 else "sigmoid")
                  for k, (a, b) in enumerate(zip(sizes, sizes[1:]))]
        began = time.perf_counter()
        row = network_swell(sn.Sequential(layers, loss="mse"), data.X, data.Y)
        row["seconds"] = round(time.perf_counter() - began, 2)
        table.append(row)
    print()
    print(format_table(table, list(table[0])))


if __name__ == "__main__":
    main()
