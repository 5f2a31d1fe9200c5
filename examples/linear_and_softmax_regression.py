"""Linear regression in closed form, θ = (XᵀX)⁻¹Xᵀy (the notes drop the Xᵀ on the right; this is the correct
normal equation), against gradient descent on the same mean squared error; then softmax regression (one
linear layer, softmax cross-entropy) on digits.

    python examples/linear_and_softmax_regression.py [--quick] [--out DIR]
"""

import numpy as np

import symnet as sn
from symnet.train.loop import accuracy
from common import arguments


def main(argv=None):
    args = arguments(__doc__, argv)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([[1.5], [-2.0], [0.5]]) + 0.7 + rng.normal(0, 0.1, size=(200, 1))
    design = np.column_stack([X, np.ones(len(X))])
    closed = np.linalg.solve(design.T @ design, design.T @ y).ravel()
    print(f"closed form (XᵀX)⁻¹Xᵀy: w = {np.round(closed[:3], 5)}, b = {closed[3]:.5f}")
    net = sn.Sequential([sn.Dense(3, 1)], loss="mse").compile(optimizer=sn.optim.GD(lr=0.3))
    params = net.init(seed=0)
    sn.fit(net, params, X, y, epochs=100 if args.quick else 500)
    learned = np.append(params["W1"].ravel(), params["b1"])
    print(f"gradient descent:        w = {np.round(learned[:3], 5)}, b = {learned[3]:.5f}; "
          f"largest difference {np.abs(learned - closed).max():.1e}")
    data = sn.datasets.load("digits")
    X_train, Y_train, X_test, Y_test = sn.datasets.split(data.X, data.Y, 0.2, seed=0)
    scale = sn.datasets.Standardizer.fit(X_train)
    softmax = sn.Sequential([sn.Dense(64, 10)], loss="softmax_cross_entropy").compile(optimizer=sn.optim.Adam(lr=0.01))
    weights = softmax.init(seed=0)
    sn.fit(softmax, weights, scale(X_train), Y_train, epochs=3 if args.quick else 30, batch_size=32, seed=0)
    test = accuracy(softmax, weights, scale(X_test), Y_test)
    print(f"softmax regression on digits: test accuracy {test:.3f}")
    return closed, learned, test


if __name__ == "__main__":
    main()
