"""The notes' perceptron: weights −2, −2 and bias 3 with the step function compute NAND; and why the step
function cannot be trained by gradient descent (its derivative is 0 almost everywhere), which symnet says.

    python examples/perceptron_nand.py
"""

import itertools

import numpy as np

import symnet as sn
from common import arguments


def main(argv=None):
    arguments(__doc__, argv)
    model = sn.Sequential([sn.Dense(2, 1, "step")], loss="mse")
    net = model.compile()
    params = {"W1": np.array([[-2.0, -2.0]]), "b1": np.array([3.0])}
    X = np.array(list(itertools.product((0.0, 1.0), repeat=2)))
    output = net.predict(params, X)[:, 0]
    print("x1 x2 | step(−2·x1 − 2·x2 + 3) | NAND")
    for (x1, x2), y in zip(X, output):
        print(f" {x1:.0f}  {x2:.0f} | {y:.0f}                       | {int(not (x1 and x2))}")
    print(f"derived f'(t) of the step: {model.layers[0].activation.derivative}")
    try:
        model.compile(optimizer=sn.optim.SGD(lr=0.1))
    except sn.DifferentiationError as error:
        print(f"training it: DifferentiationError: {error}")
    return output


if __name__ == "__main__":
    main()
