"""Expression swell on the logistic map (Baydin et al., JMLR 2018, Table 1)."""

import sympy as sp

from symnet.declare.parse import symbol
from symnet.expression import logistic_map_swell

x = symbol("x")

# Table 1 of Baydin et al.: simplified derivative of l_n, l_1 = x, l_{n+1} = 4 l_n (1 - l_n)
PAPER = {
    1: sp.Integer(1),
    2: 4 - 8 * x,
    3: 16 * (1 - 10 * x + 24 * x**2 - 16 * x**3),
    4: 64 * (1 - 42 * x + 504 * x**2 - 2640 * x**3 + 7040 * x**4 - 9984 * x**5 + 7168 * x**6 - 2048 * x**7),
}


def test_first_four_rows_match_the_paper():
    rows = logistic_map_swell(4)
    for row in rows:
        assert sp.expand(sp.sympify(row["simplified"], locals={"x": x}) - PAPER[row["n"]]) == 0


def test_reverse_mode_obeys_the_cheap_gradient_bound_while_naive_swells():
    rows = logistic_map_swell(12)
    for row in rows:
        assert row["reverse_ops"] <= 5 * row["forward_dag_ops"] + 5, row
    ratios = [r["reverse_ops"] / r["forward_dag_ops"] for r in rows[3:]]
    assert max(ratios) - min(ratios) < 0.2          # flat in n
    assert max(ratios) < 3
    naive = [r["naive_ops"] for r in rows]
    assert all(b > 2 * a for a, b in zip(naive[3:], naive[4:]))   # grows exponentially
    assert rows[-1]["naive_ops"] > 100 * rows[-1]["reverse_ops"]
