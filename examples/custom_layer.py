"""A layer and an activation of your own, declared in SymPy: a residual layer z = a + W a + b and the Mish
activation t·tanh(log(1 + eᵗ)). symnet derives the layer's vector-Jacobian products and f', prints them, and
trains the network on the spirals.

    python examples/custom_layer.py [--quick] [--out DIR]
"""

import sympy as sp

import symnet as sn
from symnet.backprop import symbolic_vjps
from symnet.layers import J_SIZE, Layer, a, i, j, n
from symnet.train.loop import accuracy
from common import arguments


class Residual(Layer):
    """z[n,i] = a[n,i] + Σ_j W[i,j] a[n,j] + b[i]."""

    W, b = sp.IndexedBase("W", real=True), sp.IndexedBase("b", real=True)
    forward_map = a[n, i] + sp.Sum(W[i, j] * a[n, j], (j, 0, J_SIZE - 1)) + b[i]
    parameter_shapes = {W: ("out", "in"), b: ("out",)}


def main(argv=None):
    args = arguments(__doc__, argv)
    t = sn.activations.t
    mish = sn.Activation("mish", t * sp.tanh(sp.log(1 + sp.exp(t))))
    print(f"mish: f(t) = {mish.expr}\n      f'(t) = {mish.derivative}")
    for base, (indices, expr) in symbolic_vjps(Residual(16, 16)).items():
        print(f"residual layer, derived: ∂L/∂{base}{list(indices)} = {expr}")
    model = sn.Sequential([sn.Dense(2, 16, mish), Residual(16, 16, mish), sn.Dense(16, 1)],
                          loss="binary_cross_entropy")
    data = sn.datasets.load("spirals")
    net = model.compile(optimizer=sn.optim.Adam(lr=0.01))
    params = net.init(seed=0)
    sn.fit(net, params, data.X, data.Y, epochs=20 if args.quick else 300, batch_size=32, seed=0)
    result = accuracy(net, params, data.X, data.Y)
    print(f"spirals, training accuracy {result:.3f}; generated module: {net.path}")
    return result


if __name__ == "__main__":
    main()
