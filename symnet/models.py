"""Built-in models for ``symnet train``: a network, its data and the training defaults that suit them.

A user model is a Python file that defines ``model`` (a :class:`~symnet.Sequential`) and optionally
``data`` (a built-in dataset name, a :class:`~symnet.datasets.Dataset`, ``(X, Y)`` or
``(X_train, Y_train, X_test, Y_test)``) and ``optimizer`` (an optimizer instance).
"""

import runpy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symnet import datasets
from symnet.declare.layers import RNN, Conv2D, Dense, Flatten, LayerNorm, MaxPool2D, SelfAttention
from symnet.errors import ConfigurationError
from symnet.network import Sequential, check_seed
from symnet.train.loop import accuracy, fit, is_classification
from symnet.declare import optimizers

TEST_FRACTION = 0.2
MIN_SPLIT_SAMPLES = 10     # fewer samples (XOR) are trained and tested on all of them


@dataclass
class Recipe:
    """A model with its data and training defaults."""

    name: str
    model: Sequential
    data: object                    # dataset name, Dataset, (X, Y) or (X, Y, X_test, Y_test)
    optimizer: str = "Adam"
    lr: float = 0.01
    epochs: int = 20
    batch_size: int = 32
    standardize: bool = True
    hyperparameters: dict = field(default_factory=dict)

    def train(self, optimizer=None, lr=None, seed=0, epochs=None, batch_size=None, directory=None, verbose=False,
              checkpoint=None, resume=None, allow_changes=False):
        """One training run, what ``symnet train`` (and each run of ``symnet sweep``) does: prepare the data with
        ``seed``, compile the model with the optimizer (``optimizer``/``lr`` override the recipe's), initialise
        from ``seed``, :func:`~symnet.train.loop.fit` with the test split as validation.  Returns the dict
        ``symnet train --json`` prints.  ``directory``: the generated folder (None: the default)."""
        began = time.perf_counter()
        seed = check_seed(seed)
        X_train, Y_train, X_test, Y_test, note = self.prepared_data(seed=seed)
        net = self.model.compile(optimizer=self.make_optimizer(optimizer, lr), directory=directory)
        compiled = time.perf_counter()
        params = net.init(seed=seed)
        history = fit(net, params, X_train, Y_train, epochs=self.epochs if epochs is None else epochs,
                      batch_size=self.batch_size if batch_size is None else batch_size, seed=seed,
                      validation=(X_test, Y_test), verbose=verbose, checkpoint=checkpoint, resume=resume,
                      allow_changes=allow_changes)
        trained = time.perf_counter()
        result = {
            "model": self.name, "network": self.model.describe(), "optimizer": repr(net.optimizer),
            "epochs": len(history), "final_loss": net.loss(params, X_train, Y_train),
            "test_loss": net.loss(params, X_test, Y_test),
            "seconds": trained - compiled, "compile_seconds": compiled - began, "generated_module": str(net.path),
            "stopped": history.stopped, "new_module": bool(net.written),
        }
        if is_classification(net, Y_train):
            result["train_accuracy"] = accuracy(net, params, X_train, Y_train)
            result["test_accuracy"] = accuracy(net, params, X_test, Y_test)
        if note:
            result["note"] = note
        if checkpoint:
            result["checkpoint"] = checkpoint
        return result

    def make_optimizer(self, name=None, lr=None):
        return optimizers.get(name or self.optimizer, lr=self.lr if lr is None else lr, **self.hyperparameters)

    def prepared_data(self, seed=0):
        """``(X_train, Y_train, X_test, Y_test, note)`` with the inputs standardised by the training set's statistics."""
        data = datasets.load(self.data, seed=seed) if isinstance(self.data, str) else self.data
        note = ""
        if isinstance(data, datasets.Dataset):
            data = (data.X, data.Y)
        if isinstance(data, tuple) and len(data) == 2:
            X, Y = (np.asarray(part, dtype=np.float64) for part in data)
            if len(X) < MIN_SPLIT_SAMPLES:
                parts, note = (X, Y, X, Y), f"only {len(X)} samples: trained and tested on all of them"
            else:
                parts = datasets.split(X, Y, TEST_FRACTION, seed=seed, stratify=bool(np.isin(Y, (0, 1)).all()))
        elif isinstance(data, tuple) and len(data) == 4:
            parts = data
        else:
            raise ConfigurationError("data must be a dataset name, a Dataset, (X, Y) or (X_train, Y_train, X_test, "
                                     f"Y_test); got {type(data).__name__}")
        X_train, Y_train, X_test, Y_test = (np.asarray(part, dtype=np.float64) for part in parts)
        if self.standardize and len(X_train) >= MIN_SPLIT_SAMPLES:
            scale = datasets.Standardizer.fit(X_train)
            X_train, X_test = scale(X_train), scale(X_test)
        return X_train, Y_train, X_test, Y_test, note


BUILT_IN = {  # name → a function that makes the recipe
    # the notes' exercise 4-2: two ReLU hidden units, one output, MSE, Adam(lr=0.05), 2,000 full-batch steps
    "xor": lambda: Recipe("xor", Sequential([Dense(2, 2, "relu"), Dense(2, 1)], loss="mse"), "xor",
                          lr=0.05, epochs=2000, batch_size=4, standardize=False),
    "spirals": lambda: Recipe("spirals", Sequential([Dense(2, 32, "tanh"), Dense(32, 32, "tanh"), Dense(32, 1)],
                                                    loss="binary_cross_entropy"), "spirals", epochs=300),
    "moons": lambda: Recipe("moons", Sequential([Dense(2, 16, "tanh"), Dense(16, 1)], loss="binary_cross_entropy"),
                            "moons", epochs=100),
    "circles": lambda: Recipe("circles", Sequential([Dense(2, 16, "tanh"), Dense(16, 1)],
                                                    loss="binary_cross_entropy"), "circles", epochs=100),
    "regression": lambda: Recipe("regression", Sequential([Dense(1, 32, "tanh"), Dense(32, 1)], loss="mse"),
                                 "regression", epochs=300),
    "digits": lambda: Recipe("digits", Sequential([Dense(64, 32, "sigmoid"), Dense(32, 10)],
                                                  loss="softmax_cross_entropy"), "digits", epochs=20),
    # the same digits as 1×8×8 images: 8 filters of 3×3 ('same' padding), 2×2 max pooling, a linear read-out
    "digits_cnn": lambda: Recipe("digits_cnn", Sequential([Conv2D(1, 8, 3, padding=1, activation="relu"), MaxPool2D(2),
                                                          Flatten(), Dense(128, 10)],
                                                         loss="softmax_cross_entropy", input_shape=(1, 8, 8)),
                                 "digits", epochs=20),
    # self-attention over the 16 steps (value, cos, sin of the step's angle) of the noisy sines, each step
    # layer-normalised, then a tanh read-out of the flattened sequence; not standardised, which would zero the
    # position columns (the same in every sample)
    "sines_attention": lambda: Recipe("sines_attention", Sequential([SelfAttention(3), LayerNorm(3), Flatten(),
                                                                     Dense(48, 16, "tanh"), Dense(16, 3)],
                                                                    loss="softmax_cross_entropy", input_shape=(16, 3)),
                                      "sines", epochs=20, standardize=False),
    # the adding problem (10 steps of a value and a marker; the target is the sum of the two marked values): a tanh
    # RNN reads the sequence and a linear read-out of its last state answers
    "adding_rnn": lambda: Recipe("adding_rnn", Sequential([RNN(2, 16), Dense(16, 1)], loss="mse", input_shape=(10, 2)),
                                 "adding", epochs=30),
}


def builtin(name):
    """The built-in recipe ``name``."""
    if name not in BUILT_IN:
        raise ConfigurationError(f"unknown model {name!r}; built in: {', '.join(BUILT_IN)}, or a path to a .py file")
    return BUILT_IN[name]()


def _default_data(model):
    sizes = (model.layers[0].n_in, model.layers[-1].n_out)
    return {(64, 10): "digits", (2, 1): "moons", (1, 1): "regression"}.get(sizes)


def from_file(path):
    """The recipe of a user's model file (it is run as Python: only train files you trust)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"unknown model {str(path)!r}: not a built-in ({', '.join(BUILT_IN)}) and no such "
                                 "file; give a built-in name or a .py file that defines `model`")
    namespace = runpy.run_path(str(path))
    model = namespace.get("model")
    if not isinstance(model, Sequential):
        raise ConfigurationError(f"{str(path)!r} must define `model = sn.Sequential([...], loss=...)`")
    data = namespace.get("data", _default_data(model))
    if data is None:
        raise ConfigurationError(f"{str(path)!r} defines no `data` and no built-in dataset fits a "
                                 f"{model.describe()} network; define data = (X, Y)")
    recipe = Recipe(path.stem, model, data)
    chosen = namespace.get("optimizer")
    if chosen is not None:
        if not isinstance(chosen, optimizers.Optimizer):
            raise ConfigurationError(f"{str(path)!r}: `optimizer` must be an optimizer such as sn.optim.Adam(lr=0.01)")
        recipe.optimizer, recipe.lr = type(chosen).__name__, chosen.lr
        recipe.hyperparameters = {h.name: v for h, v in zip(chosen.hyperparameters, chosen.values()) if h.name != "lr"}
    return recipe


def recipe(spec):
    """A built-in name or a path to a model file."""
    return builtin(spec) if spec in BUILT_IN else from_file(spec)
