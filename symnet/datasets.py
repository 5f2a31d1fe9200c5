"""Built-in datasets (none downloaded at run time) and the helpers to prepare them.

``load(name, seed=0)`` returns a :class:`Dataset` whose targets already have
the layout the losses expect: one-hot rows for several classes, one column of
0/1 for two classes, one column of values for regression.

=============  ===========================================================
``xor``        the four points of XOR, targets 0/1
``spirals``    two interleaved spirals in the plane (binary)
``moons``      two interleaving half circles (binary)
``circles``    a small circle inside a large one (binary)
``regression`` y = sin(3x) + x/2 + noise on [−2, 2]
``digits``     8×8 handwritten digits, 1,797 samples, 10 classes (shipped
               in ``symnet/data``; source and licence in its README.txt)
``adding``     the adding problem: sequences (T, 2) of values and two
               markers, target the sum of the two marked values
``sines``      noisy sines of 1, 2 or 3 cycles with a random phase,
               sequences (T, 3) with the step's position (3 classes)
=============  ===========================================================

Sequence sets have ``X`` of shape (samples, time, features): a model takes them with ``input_shape=(T, features)``.
"""

from dataclasses import dataclass
from importlib import resources

import numpy as np

from symnet.errors import ConfigurationError

@dataclass
class Dataset:
    """Inputs ``X`` (samples, features), or (samples, time, features) for sequences, targets ``Y`` (samples,
    outputs), and what they are."""

    name: str
    X: np.ndarray
    Y: np.ndarray
    task: str            # "classification" or "regression"
    description: str

    @property
    def classes(self):
        """Number of classes (0 for regression)."""
        if self.task != "classification":
            return 0
        return max(2, self.Y.shape[1])


def labels_of(Y):
    """Class labels from one-hot rows or from one 0/1 column."""
    Y = np.asarray(Y)
    return (Y[:, 0] > 0.5).astype(np.int64) if Y.shape[1] == 1 else np.argmax(Y, axis=1)


def one_hot(labels, classes):
    """Rows e_label of the identity, as float64."""
    labels = np.asarray(labels, dtype=np.int64)
    return np.eye(classes)[labels]


def _binary(name, X, labels, description):
    return Dataset(name, X, labels.reshape(-1, 1).astype(np.float64), "classification", description)


def xor():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return _binary("xor", X, np.array([0, 1, 1, 0]), "XOR of two bits (4 samples)")


def spirals(samples=400, noise=0.1, turns=1.75, seed=0):
    """Two spirals r = θ, θ in [0.25, 2π·turns], the second rotated by π; Gaussian noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    half = samples // 2
    angle = np.sqrt(rng.uniform(0, 1, half)) * 2 * np.pi * turns + 0.25
    arm = np.column_stack([angle * np.cos(angle), angle * np.sin(angle)]) / (2 * np.pi * turns)
    X = np.concatenate([arm, -arm]) * 2 + rng.normal(0, noise, (2 * half, 2))
    labels = np.repeat([0, 1], half)
    return _binary("spirals", X, labels, f"two interleaved spirals ({2 * half} samples, noise {noise})")


def moons(samples=400, noise=0.1, seed=0):
    """Two interleaving half circles (the upper one centred at 0, the lower at (1, 0.5))."""
    rng = np.random.default_rng(seed)
    half = samples // 2
    angle = rng.uniform(0, np.pi, 2 * half)
    upper = np.column_stack([np.cos(angle[:half]), np.sin(angle[:half])])
    lower = np.column_stack([1 - np.cos(angle[half:]), 0.5 - np.sin(angle[half:])])
    X = np.concatenate([upper, lower]) + rng.normal(0, noise, (2 * half, 2))
    return _binary("moons", X, np.repeat([0, 1], half), f"two moons ({2 * half} samples, noise {noise})")


def circles(samples=400, noise=0.05, factor=0.5, seed=0):
    """A circle of radius ``factor`` (class 1) inside the unit circle (class 0)."""
    rng = np.random.default_rng(seed)
    half = samples // 2
    angle = rng.uniform(0, 2 * np.pi, 2 * half)
    radius = np.repeat([1.0, factor], half)
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]) + rng.normal(0, noise, (2 * half, 2))
    return _binary("circles", X, np.repeat([0, 1], half), f"two circles ({2 * half} samples, noise {noise})")


def regression(samples=200, noise=0.1, seed=0):
    """y = sin(3x) + x/2 + N(0, noise²) for x uniform on [−2, 2]."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2, 2, samples))
    y = np.sin(3 * x) + x / 2 + rng.normal(0, noise, samples)
    return Dataset("regression", x.reshape(-1, 1), y.reshape(-1, 1), "regression",
                   f"y = sin(3x) + x/2 + noise ({samples} samples, noise {noise})")


def digits():
    """The 8×8 digits, pixels scaled to [0, 1], one-hot targets."""
    with resources.files("symnet").joinpath("data/digits.npz").open("rb") as stream:
        with np.load(stream, allow_pickle=False) as archive:
            images, labels = archive["images"], archive["labels"]
    return Dataset("digits", images.astype(np.float64) / 16.0, one_hot(labels, 10), "classification",
                   "8×8 handwritten digits (1,797 samples, 10 classes; Alpaydin & Kaynak, UCI, CC BY 4.0)")


def adding(samples=2000, length=10, seed=0):
    """The adding problem (Hochreiter & Schmidhuber, 1997): each step ``t`` of a sequence holds a value
    ``v_t ~ U[0, 1)`` and a marker ``m_t`` that is 1 at one step of the first half and one of the second half (0
    elsewhere); the target is ``y = Σ_t m_t v_t``, the sum of the two marked values.  Always answering 1 gives a
    mean squared error of Var(v_a + v_b) = 1/6; a model has to find the markers to do better."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 2:
        raise ConfigurationError(f"adding: length must be an integer ≥ 2 (one marker in each half), got {length!r}")
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (samples, length))
    half = length // 2
    markers = np.zeros((samples, length))
    rows = np.arange(samples)
    markers[rows, rng.integers(0, half, samples)] = 1.0
    markers[rows, rng.integers(half, length, samples)] = 1.0
    X = np.stack([values, markers], axis=2)
    return Dataset("adding", X, (values * markers).sum(axis=1, keepdims=True), "regression",
                   f"the adding problem: {samples} sequences of {length} steps (value in [0, 1), marker 0/1), "
                   "target the sum of the two marked values")


def sines(samples=1200, length=16, noise=0.5, seed=0):
    """Sequences of ``length`` steps of ``x_t = sin(2π·c·t/T + φ) + N(0, noise²)``, ``c`` = 1, 2 or 3 cycles (the
    class, one-hot; the classes' counts differ by at most one), ``φ ~ U[0, 2π)``.  Each step holds
    ``(x_t, cos 2πt/T, sin 2πt/T)``, the signal and the step's position, which self-attention does not see on its
    own.  The position columns are the same in every sample: standardising them per entry would zero them."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 6:
        raise ConfigurationError(f"sines: length must be an integer ≥ 6 (3 cycles need 2 steps each), got {length!r}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(samples) % 3)
    steps = np.arange(length)
    phase = 2 * np.pi * (labels[:, None] + 1) * steps / length + rng.uniform(0, 2 * np.pi, (samples, 1))
    signal = np.sin(phase) + rng.normal(0.0, noise, (samples, length))
    position = np.broadcast_to(2 * np.pi * steps / length, (samples, length))
    X = np.stack([signal, np.cos(position), np.sin(position)], axis=2)
    return Dataset("sines", X, one_hot(labels, 3), "classification",
                   f"noisy sines of 1, 2 or 3 cycles (the class) with a random phase: {samples} sequences of {length} "
                   f"steps (value, cos and sin of the step's angle 2πt/T), noise {noise}")


def load(name, seed=0):
    """A built-in dataset by name (``seed`` draws the generated ones)."""
    makers = {"xor": lambda: xor(), "spirals": lambda: spirals(seed=seed), "moons": lambda: moons(seed=seed),
              "circles": lambda: circles(seed=seed), "regression": lambda: regression(seed=seed),
              "digits": lambda: digits(), "adding": lambda: adding(seed=seed), "sines": lambda: sines(seed=seed)}
    if name not in makers:
        raise ConfigurationError(f"unknown dataset {name!r}; built in: {', '.join(makers)}")
    return makers[name]()


def split(X, Y, test_fraction=0.2, seed=0, stratify=True):
    """``(X_train, Y_train, X_test, Y_test)``: a seeded shuffle, then the last ``test_fraction`` of each class
    (``stratify``, for classification targets) or of all samples held out."""
    X, Y = np.asarray(X), np.asarray(Y)
    if len(X) != len(Y):
        raise ConfigurationError(f"X has {len(X)} rows but Y has {len(Y)}")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigurationError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    if stratify:
        labels = labels_of(Y)
        test = []
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            test.extend(members[: int(round(test_fraction * len(members)))])
        mask = np.zeros(len(X), dtype=bool)
        mask[test] = True
        order = rng.permutation(len(X))
        train_rows, test_rows = order[~mask[order]], order[mask[order]]
    else:
        order = rng.permutation(len(X))
        cut = len(X) - int(round(test_fraction * len(X)))
        train_rows, test_rows = order[:cut], order[cut:]
    if len(train_rows) == 0 or len(test_rows) == 0:
        raise ConfigurationError(f"test_fraction {test_fraction} leaves an empty part of {len(X)} samples")
    return X[train_rows], Y[train_rows], X[test_rows], Y[test_rows]


@dataclass
class Standardizer:
    """x ↦ (x − mean) / std with the training set's mean and std (features of std 0 are only centred)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X):
        X = np.asarray(X, dtype=np.float64)
        std = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(std > 0, std, 1.0))

    def __call__(self, X):
        return (np.asarray(X, dtype=np.float64) - self.mean) / self.std
