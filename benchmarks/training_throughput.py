"""Training throughput of `symnet train digits`'s model: samples per second of sn.fit (whole epochs run in one
compiled call each), after a warm-up epoch that compiles the module.

Run: python benchmarks/training_throughput.py
"""

import time

import symnet as sn
from symnet import models


def main():
    recipe = models.builtin("digits")
    X_train, Y_train, *_ = recipe.prepared_data(seed=0)
    net = recipe.model.compile(optimizer=recipe.make_optimizer())
    params = net.init(seed=0)
    sn.fit(net, params, X_train, Y_train, epochs=1, batch_size=recipe.batch_size, verbose=False)   # compile
    epochs = 50
    began = time.perf_counter()
    history = sn.fit(net, params, X_train, Y_train, epochs=epochs, batch_size=recipe.batch_size, verbose=False)
    seconds = time.perf_counter() - began
    print(f"digits {recipe.model.describe()}, batch {recipe.batch_size}: {epochs} epochs of {len(X_train)} samples "
          f"in {seconds:.2f} s = {epochs * len(X_train) / seconds:,.0f} samples/s "
          f"(median epoch {sorted(history.seconds)[len(history.seconds) // 2] * 1e3:.1f} ms incl. metrics)")


if __name__ == "__main__":
    main()
