"""The learning slowdown of the quadratic loss on a saturated sigmoid, and its absence with cross-entropy.

One sigmoid neuron, input x = 1, target y = 0, starting saturated at w = b = 2 (output σ(4) ≈ 0.98). With
ℓ = ½(σ(z) − y)², ∂ℓ/∂z = (σ(z) − y)·σ'(z) is tiny while σ'(z) ≈ 0; with cross-entropy the σ' cancels:
∂ℓ/∂z = σ(z) − y (derived below by SymPy). Plain gradient descent, η = 0.15, as in the notes.

    python examples/cross_entropy_vs_quadratic.py [--quick] [--out DIR]
"""

import numpy as np
import sympy as sp

import symnet as sn
from common import arguments, plot_curves


def main(argv=None):
    args = arguments(__doc__, argv)
    z, y = sp.symbols("z y", real=True)
    sigma = 1 / (1 + sp.exp(-z))
    quadratic = sp.simplify(sp.diff((sigma - y) ** 2 / 2, z))
    cross_entropy = sp.simplify(sp.diff(-(y * sp.log(sigma) + (1 - y) * sp.log(1 - sigma)), z))
    print(f"quadratic:     ∂ℓ/∂z = {quadratic}")
    print(f"cross-entropy: ∂ℓ/∂z = {cross_entropy}   (= σ(z) − y: {sp.simplify(cross_entropy - (sigma - y)) == 0})")
    X, Y = np.array([[1.0]]), np.array([[0.0]])
    steps = 60 if args.quick else 300
    outputs = {}
    for label, model in (("quadratic", sn.Sequential([sn.Dense(1, 1, "sigmoid")], loss="mse")),
                         ("cross-entropy", sn.Sequential([sn.Dense(1, 1)], loss="binary_cross_entropy"))):
        net = model.compile(optimizer=sn.optim.GD(lr=0.15))
        params = net.init(seed=0)
        params["W1"][...], params["b1"][...] = 2.0, 2.0
        history = []
        for _ in range(steps):
            logit = float(params["W1"][0, 0] + params["b1"][0])
            history.append(1 / (1 + np.exp(-logit)))
            net.step(params, X, Y)
        outputs[label] = history
        print(f"{label}: output σ(z) after {steps // 6} steps {history[steps // 6]:.3f}, after {steps - 1} "
              f"steps {history[-1]:.3f}")
    plot_curves(args.out, "cross_entropy_vs_quadratic.png", outputs, "step", "output σ(wx + b), target 0")
    return outputs


if __name__ == "__main__":
    main()
