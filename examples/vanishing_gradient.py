"""Vanishing gradients: per-layer gradient norms ‖∂L/∂W_l‖ at initialisation for deep sigmoid, tanh and ReLU
networks. σ' ≤ 0.25, so every sigmoid layer shrinks the back-propagated δ by about 4× or more; tanh' ≤ 1 and
ReLU' ∈ {0, 1} do not.

    python examples/vanishing_gradient.py [--quick] [--out DIR]
"""

import numpy as np

import symnet as sn
from symnet.text import format_table
from common import arguments, plot_curves


def main(argv=None):
    args = arguments(__doc__, argv)
    depth, width = (5, 16) if args.quick else (10, 32)
    chosen = ("sigmoid", "tanh") if args.quick else ("sigmoid", "tanh", "relu")   # --quick: the two the test compares
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, width))
    Y = np.eye(10)[rng.integers(0, 10, 256)]
    norms = {}
    for activation in chosen:
        layers = [sn.Dense(width, width, activation) for _ in range(depth)] + [sn.Dense(width, 10)]
        net = sn.Sequential(layers, loss="softmax_cross_entropy").compile()
        _, grads = net.loss_and_grad(net.init(seed=0), X, Y)
        norms[activation] = [float(np.linalg.norm(grads[f"W{l}"])) for l in range(1, depth + 2)]
    rows = [{"layer": l, **{a: f"{norms[a][l - 1]:.2e}" for a in norms}} for l in range(1, depth + 2)]
    print(f"‖∂L/∂W_l‖ at initialisation, {depth} hidden layers of {width}, Xavier (He for ReLU):")
    print(format_table(rows, list(rows[0])))
    for a in norms:
        print(f"{a}: first layer / last hidden layer = {norms[a][0] / norms[a][depth - 1]:.2e}")
    plot_curves(args.out, "vanishing_gradient.png", norms, "layer l (1 = input side)", "‖∂L/∂W_l‖",
                x=range(1, depth + 2), log=True, marker="o")
    return norms


if __name__ == "__main__":
    main()
