"""Layer normalisation against the vanishing gradient: a deep tanh network (64-64-64-64-64-10) on the digits,
with and without a LayerNorm after every hidden layer.  Prints ‖∂L/∂W_l‖ of each Dense layer at initialisation
(the notes' vanishing gradient: δ shrinks on its way down) and trains both with plain SGD, printing the loss and
test accuracy per epoch.  LayerNorm's backward pass through μ and σ² is derived by SymPy from its map.

    python examples/layer_norm.py [--quick] [--out DIR]
"""

import numpy as np

import symnet as sn
from symnet.models import builtin
from symnet.text import format_table
from common import arguments, plot_curves


def network(hidden, width, normalised):
    layers = []
    for k in range(hidden):
        layers.append(sn.Dense(64 if k == 0 else width, width, "tanh"))
        if normalised:
            layers.append(sn.LayerNorm(width))
    return sn.Sequential(layers + [sn.Dense(width, 10)], loss="softmax_cross_entropy")


def main(argv=None):
    args = arguments(__doc__, argv)
    hidden, epochs = (1, 3) if args.quick else (5, 30)
    X, Y, X_test, Y_test, _ = builtin("digits").prepared_data()
    norms, losses, accuracy = {}, {}, {}
    for label, normalised in (("tanh", False), ("tanh + LayerNorm", True)):
        model = network(hidden, 64, normalised)
        net = model.compile(optimizer=sn.optim.SGD(lr=0.05))
        params = net.init(seed=0)
        _, grads = net.loss_and_grad(params, X[:256], Y[:256])
        dense = [number for number, layer in enumerate(model.layers, start=1) if isinstance(layer, sn.Dense)]
        norms[label] = [float(np.linalg.norm(grads[f"W{number}"])) for number in dense]
        history = sn.fit(net, params, X, Y, epochs=epochs, batch_size=32, seed=0, verbose=False)
        losses[label] = list(history.loss)
        accuracy[label] = float((net.predict(params, X_test).argmax(axis=1) == Y_test.argmax(axis=1)).mean())
    rows = [{"Dense layer": k, **{label: f"{values[k - 1]:.2e}" for label, values in norms.items()}}
            for k in range(1, hidden + 2)]
    print(f"‖∂L/∂W_l‖ at initialisation ({hidden} hidden tanh layers of 64, Xavier; 256 digits):")
    print(format_table(rows, list(rows[0])))
    for label, values in norms.items():
        print(f"{label}: first / last Dense layer = {values[0] / values[-1]:.2e}")
    print(f"\nplain SGD (lr 0.05, batch 32), {epochs} epochs:")
    rows = [{"epoch": e + 1, **{label: f"{curve[e]:.4f}" for label, curve in losses.items()}} for e in range(epochs)]
    print(format_table(rows, list(rows[0])))
    print("test accuracy: " + ", ".join(f"{label} {value:.3f}" for label, value in accuracy.items()))
    plot_curves(args.out, "layer_norm_loss.png", losses, "epoch", "training loss", log=True)
    return norms, losses, accuracy


if __name__ == "__main__":
    main()
