"""Normalisation against the vanishing gradient: a deep tanh network (64-64-64-64-64-10) on the digits, plain,
with a LayerNorm after every hidden layer, and with a BatchNorm there.  Prints ‖∂L/∂W_l‖ of each Dense layer at
initialisation (the notes' vanishing gradient: δ shrinks on its way down; BatchNorm in training mode, normalising
with the batch's statistics) and trains the three with plain SGD, printing the loss and test accuracy per epoch
(BatchNorm predicts with its running statistics).  The backward passes through μ and σ², per sample (LayerNorm)
and across the batch (BatchNorm), are derived by SymPy from the layers' maps.

    python examples/layer_norm.py [--quick] [--out DIR]
"""

import numpy as np

import symnet as sn
from symnet.models import builtin
from symnet.text import format_table
from common import arguments, plot_curves


def network(hidden, width, normalisation):
    layers = []
    for k in range(hidden):
        layers.append(sn.Dense(64 if k == 0 else width, width, "tanh"))
        if normalisation is not None:
            layers.append(normalisation(width))
    return sn.Sequential(layers + [sn.Dense(width, 10)], loss="softmax_cross_entropy")


def main(argv=None):
    args = arguments(__doc__, argv)
    hidden, epochs = (1, 3) if args.quick else (5, 30)
    X, Y, X_test, Y_test, _ = builtin("digits").prepared_data()
    norms, losses, accuracy = {}, {}, {}
    for label, normalisation in (("tanh", None), ("tanh + LayerNorm", sn.LayerNorm),
                                 ("tanh + BatchNorm", sn.BatchNorm)):
        model = network(hidden, 64, normalisation)
        net = model.compile(optimizer=sn.optim.SGD(lr=0.05))
        params = net.init(seed=0)
        _, grads = net.loss_and_grad(params, X[:256], Y[:256], noise_seed=0)   # as in training
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
