"""Universal approximation: a sum of sigmoids, y ≈ Σ_i v_i σ(w_i x + b_i) + c (one hidden layer of sigmoid
units, linear output), fits a 1-D curve better as the number of hidden units grows.

    python examples/universal_approximation.py [--quick] [--out DIR]
"""

import numpy as np

import symnet as sn
from common import arguments, pyplot, save


def target(x):
    return np.sin(3 * x) + 0.3 * x**2


def main(argv=None):
    args = arguments(__doc__, argv)
    x = np.linspace(-2, 2, 200).reshape(-1, 1)
    y = target(x)
    fits = {}
    for hidden in ((1, 4) if args.quick else (1, 2, 4, 8, 16)):
        net = sn.Sequential([sn.Dense(1, hidden, "sigmoid"), sn.Dense(hidden, 1)], loss="mse").compile(
            optimizer=sn.optim.Adam(lr=0.02))
        params = net.init(seed=0)
        sn.fit(net, params, x, y, epochs=100 if args.quick else 1500, batch_size=50, seed=0)
        fits[hidden] = (net.loss(params, x, y), net.predict(params, x))
        print(f"{hidden:2d} sigmoid units: mean ½(ŷ − y)² = {fits[hidden][0]:.2e}")
    plt = pyplot()
    if plt:
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.plot(x, y, "k", linewidth=2, label="sin(3x) + 0.3x²")
        for hidden, (_, prediction) in fits.items():
            axes.plot(x, prediction, label=f"{hidden} units")
        axes.legend(fontsize=8)
        axes.set_title("sums of sigmoids")
        save(figure, args.out, "universal_approximation.png")
    return fits


if __name__ == "__main__":
    main()
