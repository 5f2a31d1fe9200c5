"""A few fixed networks that tests share when the architecture is not their subject.

Every distinct network definition (layers, loss, weight decay, dtype, optimizer class, options) is its own generated
module, and each of its functions costs a Numba compile of seconds on a cold cache; the same definition compiled
by two tests in the test cache (tests/conftest.py) is compiled once.  The learning rate and other hyperparameters
are not part of a module's definition, so tests may choose them freely.  ``SYMNET_COMPILE_REPORT=<path>`` lists
which test compiles which module (tests/_compile_report.py); reuse one of these before declaring a new network.

* :func:`digits_small` -- 64 → 8 (tanh) → 10, softmax cross-entropy: test_train (Adam, SGD), test_network (SGD).
* :func:`linear` -- 3 → 2 linear with MSE, one module per optimizer: test_optim, test_train (GD, SGD).
* :func:`dropout_small` -- 4 → 6 (tanh) → Dropout(0.25) → 3, softmax cross-entropy, SGD: test_layers, test_check.
* the 2 → 3 (tanh) → 1 MSE network without an optimizer: test_trust_training, test_compare.
"""

import symnet as sn


def digits_small(optimizer=None, hidden=8):
    """64 → hidden (tanh) → 10 with softmax cross-entropy, for the digits set; Adam(lr=0.01) unless given."""
    model = sn.Sequential([sn.Dense(64, hidden, "tanh"), sn.Dense(hidden, 10)], loss="softmax_cross_entropy")
    return model.compile(optimizer=optimizer or sn.optim.Adam(lr=0.01))


HYPER = {
    "GD": dict(lr=0.1), "SGD": dict(lr=0.1), "Momentum": dict(lr=0.05, momentum=0.9),
    "Nesterov": dict(lr=0.05, momentum=0.8), "AdaGrad": dict(lr=0.1, eps=1e-7),
    "RMSProp": dict(lr=0.01, decay=0.9, eps=1e-7), "RMSPropNesterov": dict(lr=0.01, decay=0.95, momentum=0.9, eps=1e-7),
    "Adam": dict(lr=0.02, beta1=0.9, beta2=0.999, eps=1e-7),
}
"""The hyperparameters of :func:`linear`'s optimizers (test_optim checks each step against NumPy with them)."""


def linear(name, **hyper):
    """The 3 → 2 linear layer with MSE trained by optimizer ``name`` (``HYPER[name]`` updated by ``hyper``)."""
    return sn.Sequential([sn.Dense(3, 2)], loss="mse").compile(
        optimizer=getattr(sn.optim, name)(**{**HYPER[name], **hyper}))


def dropout_model():
    return sn.Sequential([sn.Dense(4, 6, "tanh"), sn.Dropout(0.25), sn.Dense(6, 3)], loss="softmax_cross_entropy")


def dropout_small(**options):
    """:func:`dropout_model` compiled with SGD(lr=0.1) (``options`` go to ``compile``, e.g. ``directory``)."""
    return dropout_model().compile(optimizer=sn.optim.SGD(lr=0.1), **options)
