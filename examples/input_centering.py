"""Exercise 4-1: inputs that are always positive make gradient descent converge more slowly than zero-mean
inputs. The same logistic regression on the same points, once with inputs shifted to be all positive and
once centred; steps of gradient descent until the loss is within 1 % of its optimum.

    python examples/input_centering.py [--quick] [--out DIR]
"""

import numpy as np

import symnet as sn
from common import arguments, plot_curves


def steps_to_converge(X, Y, steps):
    net = sn.Sequential([sn.Dense(2, 1)], loss="binary_cross_entropy").compile(optimizer=sn.optim.GD(lr=0.5))
    params = net.init(seed=0)
    return [net.step(params, X, Y) for _ in range(steps)]


def main(argv=None):
    args = arguments(__doc__, argv)
    data = sn.datasets.load("moons")
    centred = (data.X - data.X.mean(axis=0)) / data.X.std(axis=0)
    positive = centred - centred.min(axis=0) + 1.0          # the same points moved to x₁, x₂ ≥ 1
    steps = 200 if args.quick else 2000
    curves = {"centred": steps_to_converge(centred, data.Y, steps),
              "all positive": steps_to_converge(positive, data.Y, steps)}
    best = min(min(curve) for curve in curves.values())
    for label, curve in curves.items():
        reached = next((k for k, loss in enumerate(curve) if loss <= 1.01 * best), None)
        print(f"{label:13s}: loss {curve[-1]:.4f} after {steps} steps; within 1 % of the best after "
              f"{reached if reached is not None else '>' + str(steps)} steps")
    gaps = {label: np.array(curve) - best + 1e-6 for label, curve in curves.items()}
    plot_curves(args.out, "input_centering.png", gaps, "gradient-descent step", "loss − best", log=True)
    return curves


if __name__ == "__main__":
    main()
