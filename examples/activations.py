"""Every activation of the notes with its derived derivative: the CSE'd LaTeX of f', and plots in the notes' groups.

    python examples/activations.py [--out DIR]
"""

import numpy as np

import symnet as sn
from symnet.latex import latex
from symnet.plotting import numpy_function
from common import arguments, pyplot, save

GROUPS = {
    "sigmoid family": ["sigmoid", "hard_sigmoid", "tanh", "hard_tanh"],
    "ReLU family": ["relu", "leaky_relu", "elu", "softplus", "prelu"],
    "Swish": [sn.activations.swish(beta) for beta in (0.5, 1, 2, 10)],
    "GELU": ["gelu", "relu"],
}


def main(argv=None):
    args = arguments(__doc__, argv)
    plt = pyplot()
    x = np.linspace(-4, 4, 401)
    for group, members in GROUPS.items():
        print(f"== {group}")
        figure, (left, right) = (plt.subplots(1, 2, figsize=(10, 3.8)) if plt else (None, (None, None)))
        for member in members:
            f = sn.activations.get(member)
            expr, derivative = f.expr.xreplace(f.initial_values), f.derivative.xreplace(f.initial_values)
            cse = sn.derive(expr, f.variable).cse_latex()
            print(f"{f.name}: f(t) = {latex(expr)}")
            print(f"    f'(t), CSE'd: {'; '.join(cse)}")
            if plt:
                left.plot(x, np.broadcast_to(numpy_function(expr, f.variable)(x), x.shape), label=f.name)
                right.plot(x, np.broadcast_to(numpy_function(derivative, f.variable)(x), x.shape), label=f.name)
        if plt:
            left.set_title(f"{group}: f")
            right.set_title(f"{group}: f' (derived)")
            for axes in (left, right):
                axes.grid(alpha=0.3)
                axes.legend(fontsize=8)
            save(figure, args.out, f"activations_{group.split()[0].lower()}.png")
    print("sigmoid' ≤ 0.25 everywhere:", float(np.max(numpy_function(sn.activations.get("sigmoid").derivative,
                                                                 sn.activations.t)(x))))


if __name__ == "__main__":
    main()
