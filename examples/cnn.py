"""A convolutional network on the digits (8×8 images): the built-in ``digits_cnn`` (8 filters of 3×3 with
'same' padding and ReLU, 2×2 max pooling, a linear read-out to 10 classes, softmax cross-entropy).  Prints the
convolution's and the pooling's forward maps and the vector-Jacobian products SymPy derived from them, trains
the network as ``symnet train digits_cnn`` does (Adam, lr 0.01, batch 32, 20 epochs, the same split and
standardisation) and plots the training curves and the 8 learned kernels.

    python examples/cnn.py [--quick] [--out DIR]
"""

import numpy as np

import symnet as sn
from symnet.models import builtin
from common import arguments, plot_curves, pyplot, save


def equations(model):
    """The conv and pool layers' forward maps and the VJPs SymPy derived from them, as text lines (the expressions
    ``sn.vjps`` returns, which the generated code evaluates and ``model.latex()`` prints with its names)."""
    conv, pool = model.layers[0], model.layers[1]
    derived = {str(base): (indices, expr) for base, (indices, expr) in sn.vjps(conv).items()}

    def vjp(base, name):
        indices, expr = derived[base]
        return f"  {name}[{', '.join(map(str, indices))}] = {expr}"

    lines = [f"layer 1: {conv!r}, input a, output δ = ∂L/∂z",
             f"  z[n, c, y, x] = {conv.sized_map()},  then ReLU",
             vjp("W", "∂L/∂W"), vjp("b", "∂L/∂b"), vjp("a", "∂L/∂a"),
             "  ∂L/∂W is a correlation of the input with δ; ∂L/∂a a full convolution of δ with the flipped",
             "  kernel (W[c, q, p - y + 1, t - x + 1]: the kernel index runs against y, x).  As the first layer,",
             "  whose input is X, the generated code never evaluates ∂L/∂a.",
             f"layer 2: {pool!r}",
             f"  z[n, c, y, x, u, v] = {pool.sized_map()},  a[n, c, y, x] = max over u, v",
             "  δ reaches only each window's winner (delta[n, c, y, x, u, v] below); the input's δ gathers it",
             "  back onto the 8×8 grid:"]
    for base, (indices, expr) in sn.vjps(pool).items():
        lines.append(f"  ∂L/∂a[{', '.join(map(str, indices))}] = {expr}")
    return lines


def plot_kernels(out, kernels):
    """The (8, 1, 3, 3) kernels as eight small images on one colour scale; nothing without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(1, len(kernels), figsize=(1.4 * len(kernels), 1.9))
    limit = float(np.abs(kernels).max())
    for number, (axis, kernel) in enumerate(zip(axes, kernels), start=1):
        axis.imshow(kernel[0], cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_title(f"filter {number}", fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"learned 3×3 kernels W1 (colour scale ±{limit:.2f})", fontsize=9)
    return save(figure, out, "cnn_kernels.png")


def main(argv=None):
    args = arguments(__doc__, argv)
    recipe = builtin("digits_cnn")
    epochs = 3 if args.quick else recipe.epochs
    print(f"network {recipe.model.describe()}")
    print("\n".join(equations(recipe.model)))
    X_train, Y_train, X_test, Y_test, _ = recipe.prepared_data(seed=0)
    # the recipe's model, optimizer and dtype: the generated module is the one `symnet train digits_cnn` uses
    net = recipe.model.compile(optimizer=recipe.make_optimizer())
    params = net.init(seed=0)
    history = sn.fit(net, params, X_train, Y_train, epochs=epochs, batch_size=recipe.batch_size, seed=0,
                     validation=(X_test, Y_test), verbose=False)
    print(f"\n{net.optimizer!r}, batch {recipe.batch_size}, {len(X_train)} training and {len(X_test)} test digits:")
    for record in history.records:
        print(f"  epoch {record['epoch']:2d}: loss {record['loss']:.4f}, train accuracy {record['accuracy']:.3f}, "
              f"test loss {record['val_loss']:.4f}, test accuracy {record['val_accuracy']:.3f}")
    test_accuracy = history.val_accuracy[-1]
    print(f"test accuracy after {len(history)} epochs: {test_accuracy:.3f}")
    plot_curves(args.out, "cnn_loss.png", {"training (mean over the epoch's batches)": history.loss,
                                           "test": history.val_loss}, "epoch", "loss", x=history.epoch, log=True,
                marker="o")
    plot_curves(args.out, "cnn_accuracy.png", {"training": history.accuracy, "test": history.val_accuracy},
                "epoch", "accuracy", x=history.epoch, marker="o")
    kernels = np.array(params["W1"])
    plot_kernels(args.out, kernels)
    return history, kernels


if __name__ == "__main__":
    main()
