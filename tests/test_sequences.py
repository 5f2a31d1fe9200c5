"""Sequence data: the adding problem and the noisy sines, deterministic per seed, their targets recomputed
independently.  (LayerNorm after SelfAttention is checked against NumPy in tests/test_attention.py, the built-in
adding_rnn's learning in tests/test_rnn.py; sines_attention's accuracy is measured by hand, docs/training.md: a test
that trains it costs over a minute of Numba compile on a cold cache.)"""

import numpy as np
import pytest

import symnet as sn


@pytest.mark.parametrize("name", ["adding", "sines"])
def test_sequence_sets_are_drawn_from_the_seed(name):
    first, again, other = sn.datasets.load(name, seed=3), sn.datasets.load(name, seed=3), sn.datasets.load(name, seed=4)
    assert np.array_equal(first.X, again.X) and np.array_equal(first.Y, again.Y)
    assert not np.array_equal(first.X, other.X)
    assert first.X.ndim == 3 and len(first.Y) == len(first.X) and np.isfinite(first.X).all()


def test_adding_target_is_the_sum_of_the_two_marked_values():
    data = sn.datasets.adding(samples=300, length=12, seed=5)
    assert data.X.shape == (300, 12, 2) and data.Y.shape == (300, 1) and data.task == "regression"
    assert 0 <= data.X[:, :, 0].min() and data.X[:, :, 0].max() < 1
    for sequence, target in zip(data.X, data.Y[:, 0]):
        marked = [step for step in range(12) if sequence[step, 1] == 1]
        assert set(sequence[:, 1]) == {0.0, 1.0} and len(marked) == 2
        assert marked[0] < 6 <= marked[1]                               # one marker in each half
        assert target == sequence[marked[0], 0] + sequence[marked[1], 0]
    assert "12 steps" in data.description


def test_sines_classes_are_their_frequencies():
    """Balanced one-hot labels; each step is (value, cos 2πt/T, sin 2πt/T); and the class is the sequence's number
    of cycles: the largest bin of the value's spectrum (noise 0.5 moves it in a few per cent of the samples)."""
    data = sn.datasets.sines(samples=600, length=16, seed=2)
    assert data.X.shape == (600, 16, 3) and data.Y.shape == (600, 3) and data.classes == 3
    assert np.array_equal(data.Y.sum(axis=0), [200, 200, 200]) and np.array_equal(data.Y.sum(axis=1), np.ones(600))
    angle = 2 * np.pi * np.arange(16) / 16
    assert np.allclose(data.X[:, :, 1], np.cos(angle)) and np.allclose(data.X[:, :, 2], np.sin(angle))
    cycles = np.argmax(np.abs(np.fft.rfft(data.X[:, :, 0], axis=1))[:, 1:], axis=1) + 1
    assert np.mean(cycles == np.argmax(data.Y, axis=1) + 1) > 0.9
