"""The generated functions' signatures have one definition (symnet.generate.network.signatures) that the module,
the compiled network and the training loop share; the bound optimizer arguments are read afresh each epoch."""

import inspect

import numpy as np

import symnet as sn


def test_generated_functions_take_the_declared_arguments():
    for layers in ([sn.Dense(3, 4, "tanh"), sn.Dense(4, 2)],
                   [sn.Dense(3, 4, "tanh"), sn.Dropout(0.2), sn.BatchNorm(4), sn.Dense(4, 2)]):
        model = sn.Sequential(layers, loss="mse")
        net = model.compile(optimizer=sn.optim.Nesterov(lr=0.1))
        for name, arguments in net.signatures.items():
            assert list(inspect.signature(getattr(net.module, name).py_func).parameters) == arguments, name
        assert ("noise_seed" in net.signatures["train_step"]) == model.training_mode
        assert net.step_arguments() == tuple(net.bound_arguments()[name] for name in ("work", "scalars"))


def test_fit_reads_a_changed_learning_rate_in_the_next_epoch():
    """A schedule in a callback: lr = 0 after the first epoch freezes the parameters from then on."""
    net = sn.Sequential([sn.Dense(2, 3, "tanh"), sn.Dense(3, 1)], loss="mse").compile(optimizer=sn.optim.SGD(lr=0.1))
    params = net.init(seed=0)
    X = np.random.default_rng(0).normal(size=(8, 2))
    snapshots = []

    def freeze(record, params):
        net.optimizer.lr = 0.0
        snapshots.append(params.flat.copy())

    history = sn.fit(net, params, X, 2 * X[:, :1], epochs=3, batch_size=4, seed=0, verbose=False, callbacks=[freeze])
    assert len(history.loss) == 3 and not np.array_equal(snapshots[0], net.init(seed=0).flat)   # epoch 1 trained
    assert np.array_equal(snapshots[0], snapshots[-1])                                        # epochs 2, 3 did not
