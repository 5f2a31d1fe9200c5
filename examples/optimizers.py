"""The eight optimizers of the notes on the same problems: trajectories on a 2-D loss surface (a linear model
y = w·x + b fitted to inputs that are all positive, which makes the bowl long and narrow), and loss curves
on digits.

    python examples/optimizers.py [--quick] [--out DIR]
"""

import numpy as np

import symnet as sn
from symnet import models
from common import arguments, pyplot, save

SETTINGS = {"GD": dict(lr=0.2), "SGD": dict(lr=0.2), "Momentum": dict(lr=0.05), "Nesterov": dict(lr=0.05),
            "AdaGrad": dict(lr=1.0), "RMSProp": dict(lr=0.05), "RMSPropNesterov": dict(lr=0.01),
            "Adam": dict(lr=0.2)}
START = (-2.0, 3.0)


def trajectory(name, X, Y, steps):
    """(w, b) after every step from START; SGD sees batches of 8, the others the whole set."""
    net = sn.Sequential([sn.Dense(1, 1)], loss="mse").compile(optimizer=getattr(sn.optim, name)(**SETTINGS[name]))
    params = net.init(seed=0)
    params["W1"][...], params["b1"][...] = START
    path, rng = [START], np.random.default_rng(0)
    for _ in range(steps):
        rows = rng.choice(len(X), 8, replace=False) if name == "SGD" else slice(None)
        net.step(params, X[rows], Y[rows])
        path.append((float(params["W1"][0, 0]), float(params["b1"][0])))
    return np.array(path)


def main(argv=None):
    args = arguments(__doc__, argv)
    rng = np.random.default_rng(1)
    X = rng.uniform(1, 3, size=(64, 1))
    Y = 1.5 * X - 0.5 + rng.normal(0, 0.1, size=(64, 1))
    steps = 40 if args.quick else 150
    paths = {name: trajectory(name, X, Y, steps) for name in (("GD", "Nesterov", "Adam") if args.quick else SETTINGS)}
    exact = np.linalg.lstsq(np.column_stack([X, np.ones(len(X))]), Y, rcond=None)[0].ravel()
    print(f"least squares: w = {exact[0]:.4f}, b = {exact[1]:.4f}; after {steps} steps:")
    for name, path in paths.items():
        print(f"  {name:16s} w = {path[-1, 0]:8.4f}, b = {path[-1, 1]:8.4f}, "
              f"distance {np.linalg.norm(path[-1] - exact):.2e}")
    names = ["Adam"] if args.quick else list(SETTINGS)
    recipe = models.builtin("digits")
    X_train, Y_train, X_test, Y_test, _ = recipe.prepared_data()
    curves = {}
    for name in names:
        net = recipe.model.compile(optimizer=getattr(sn.optim, name)(lr=0.01 if "Adam" in name or "RMS" in name
                                                                     else 0.1))
        history = sn.fit(net, net.init(seed=0), X_train, Y_train, epochs=2 if args.quick else 15, batch_size=32,
                         seed=0, validation=(X_test, Y_test))
        curves[name] = history
        print(f"digits, {name}: test accuracy {history.val_accuracy[-1]:.3f} after {len(history)} epochs")
    plt = pyplot()
    if plt:
        figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
        w, b = np.meshgrid(np.linspace(-2.5, 3, 120), np.linspace(-3, 4, 120))
        loss = np.mean((w[..., None] * X[:, 0] + b[..., None] - Y[:, 0]) ** 2, axis=-1) / 2
        left.contour(w, b, np.log(loss), levels=25, cmap="Greys", alpha=0.6)
        for name, path in paths.items():
            left.plot(path[:, 0], path[:, 1], label=name, linewidth=1.2)
        left.plot(*exact, "k*", markersize=12)
        left.set_xlabel("w")
        left.set_ylabel("b")
        left.set_title("trajectories on ½·mean (w·x + b − y)²")
        left.legend(fontsize=7)
        for name, history in curves.items():
            right.semilogy(history.epoch, history.loss, label=name)
        right.set_xlabel("epoch")
        right.set_title("digits: training loss")
        right.legend(fontsize=7)
        save(figure, args.out, "optimizers.png")
    return paths, curves


if __name__ == "__main__":
    main()
