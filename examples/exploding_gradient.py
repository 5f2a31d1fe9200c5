"""Exploding products: the norm of a product of 100 random 4×4 standard Gaussian matrices (the notes' ~1e23),
and the same with Xavier scaling (entries of variance 2/(n_in + n_out) = 1/4). Xavier removes the growth of
about √n per matrix; what is left is the slow drift of random products (a factor of about 0.88 per matrix for
4×4 here), 30 orders of magnitude less over 100 matrices.

    python examples/exploding_gradient.py [--out DIR]
"""

import numpy as np

from common import arguments, plot_curves


def product_norms(scale, seed, count=100, size=4):
    rng = np.random.default_rng(seed)
    product, norms = np.eye(size), []
    for _ in range(count):
        product = product @ (scale * rng.normal(size=(size, size)))
        norms.append(np.linalg.norm(product, 2))
    return norms


def main(argv=None):
    args = arguments(__doc__, argv)
    seeds = range(20)
    raw = [product_norms(1.0, seed) for seed in seeds]
    xavier = [product_norms(np.sqrt(2 / (4 + 4)), seed) for seed in seeds]
    print("spectral norm of the product of 100 random 4×4 matrices, median over 20 seeds:")
    print(f"  N(0, 1) entries:            {np.median([r[-1] for r in raw]):.2e}")
    print(f"  Xavier, N(0, 2/(4+4)):      {np.median([x[-1] for x in xavier]):.2e}")
    for label, runs in (("N(0, 1)", raw), ("Xavier", xavier)):
        print(f"  {label}: factor per matrix (geometric mean) {np.median([r[-1] for r in runs]) ** (1 / 100):.3f}")
    plot_curves(args.out, "exploding_gradient.png", {"N(0, 1)": np.median(raw, axis=0),
                                                     "Xavier": np.median(xavier, axis=0)},
                "matrices multiplied", "‖product‖₂ (median of 20 seeds)", x=range(1, 101), log=True)
    return raw, xavier


if __name__ == "__main__":
    main()
