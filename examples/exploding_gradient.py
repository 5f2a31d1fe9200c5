"""Exploding products: the norm of a product of 100 random 4×4 standard Gaussian matrices (the notes' ~1e23),
and the same with Xavier scaling (entries of variance 2/(n_in + n_out) = 1/4). Xavier removes the growth of
about √n per matrix; what is left is the slow drift of random products (a factor of about 0.88 per matrix for
4×4 here), 30 orders of magnitude less over 100 matrices.

    python examples/exploding_gradient.py [--out DIR]
"""

import numpy as np

from common import arguments, pyplot, save


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
    plt = pyplot()
    if plt:
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.semilogy(range(1, 101), np.median(raw, axis=0), label="N(0, 1)")
        axes.semilogy(range(1, 101), np.median(xavier, axis=0), label="Xavier")
        axes.set_xlabel("matrices multiplied")
        axes.set_ylabel("‖product‖₂ (median of 20 seeds)")
        axes.legend()
        axes.grid(alpha=0.3)
        save(figure, args.out, "exploding_gradient.png")
    return raw, xavier


if __name__ == "__main__":
    main()
