"""Expression swell on the logistic map (Baydin et al., JMLR 2018, Table 1) and on small networks."""

import json

import sympy as sp

import symnet as sn

from symnet.declare.parse import symbol
from symnet.swell import logistic_map_swell

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
    rows = logistic_map_swell(10)      # n = 12 takes 30 s; the trend is clear by 10
    for row in rows:
        assert row["reverse_ops"] <= 5 * row["forward_dag_ops"] + 5, row
    ratios = [r["reverse_ops"] / r["forward_dag_ops"] for r in rows[3:]]
    assert max(ratios) - min(ratios) < 0.2          # flat in n
    assert max(ratios) < 3
    naive = [r["naive_ops"] for r in rows]
    assert all(b > 2 * a for a, b in zip(naive[3:], naive[4:]))   # grows exponentially
    assert rows[-1]["naive_ops"] > 100 * rows[-1]["reverse_ops"]


def test_network_swell_layered_derivation_does_not_grow_with_width():
    from symnet.swell import network_swell

    data = sn.datasets.load("xor")
    rows = [network_swell(sn.Sequential([sn.Dense(2, width, "tanh"), sn.Dense(width, 1, "sigmoid")], loss="mse"),
                          data.X, data.Y) for width in (2, 3)]
    assert rows[0]["parameters"] == 9 and rows[1]["parameters"] == 13
    assert rows[0]["layered_ops"] == rows[1]["layered_ops"]
    assert rows[1]["naive_ops"] > 1.5 * rows[0]["naive_ops"]       # 1027 → 1889 measured
    for row in rows:
        assert row["cse_ops"] < row["naive_ops"] and row["reverse_ops"] < row["naive_ops"]


def test_cli_network_swell(capsys):
    from symnet.cli import main

    assert main(["swell", "--network", "xor", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["parameters"] == 9 and row["samples"] == 4 and row["naive_ops"] > row["cse_ops"]
    assert main(["swell", "--network", "digits"]) == 2
    assert "2410 parameters" in capsys.readouterr().err
