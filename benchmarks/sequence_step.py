"""Per-step time of symnet's `net.step` on small sequence models against a hand-written vectorised NumPy step
(forward, back-propagation, SGD update) of the same network: an RNN (back-propagation through time) and a
self-attention model.  Medians of interleaved rounds in one process; the two steps' losses are compared first.

Run: python benchmarks/sequence_step.py [--rounds 5]
"""

import argparse

import numpy as np

import symnet as sn
from symnet.bench import processor
from symnet.timing import interleaved_medians

BATCH, LR = 32, 0.05


def numpy_rnn_step(p, X, Y):
    """RNN(tanh) → Dense, MSE, one SGD step in place; returns the loss before it."""
    W, U, b, V, c = p["W1"], p["U1"], p["b1"], p["W2"], p["b2"]
    batch, length, _ = X.shape
    states = np.zeros((length + 1, batch, len(b)))     # states[t + 1] = h_t, states[0] = 0
    for step in range(length):
        states[step + 1] = np.tanh(X[:, step] @ W.T + states[step] @ U.T + b)
    o = states[-1] @ V.T + c
    loss = 0.5 * ((o - Y) ** 2).sum() / batch
    delta_o = (o - Y) / batch
    gV, gc = delta_o.T @ states[-1], delta_o.sum(axis=0)
    gW, gU, gb = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    upstream = delta_o @ V
    for step in range(length - 1, -1, -1):
        dz = upstream * (1 - states[step + 1] ** 2)
        gW += dz.T @ X[:, step]
        gU += dz.T @ states[step]
        gb += dz.sum(axis=0)
        upstream = dz @ U
    for name, grad in (("W1", gW), ("U1", gU), ("b1", gb), ("W2", gV), ("b2", gc)):
        p[name] -= LR * grad
    return loss


def numpy_attention_step(p, X, Y, heads):
    """SelfAttention(heads) → Flatten → Dense, softmax cross-entropy, one SGD step in place; returns the loss."""
    Wq, Wk, Wv, Wo, V, c = (p[name] for name in ("Wq1", "Wk1", "Wv1", "Wo1", "W3", "b3"))
    batch, length, d_model = X.shape
    d_head = d_model // heads
    Q, K, Vals = X @ Wq.T, X @ Wk.T, X @ Wv.T
    split = (batch, length, heads, d_head)
    Qh, Kh, Vh = (M.reshape(split).transpose(0, 2, 1, 3) for M in (Q, K, Vals))
    S = Qh @ Kh.transpose(0, 1, 3, 2) / np.sqrt(d_head)
    P = np.exp(S - S.max(axis=3, keepdims=True))
    P /= P.sum(axis=3, keepdims=True)
    heads_out = (P @ Vh).transpose(0, 2, 1, 3).reshape(batch, length, d_model)
    A = heads_out @ Wo.T
    flat = A.reshape(batch, -1)
    o = flat @ V.T + c
    shifted = o - o.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    loss = (np.log(e.sum(axis=1)) - (Y * shifted).sum(axis=1)).mean()
    delta_o = (e / e.sum(axis=1, keepdims=True) - Y) / batch
    gV, gc = delta_o.T @ flat, delta_o.sum(axis=0)
    dA = (delta_o @ V).reshape(batch, length, d_model)
    gWo = np.einsum("nti,ntj->ij", dA, heads_out)
    dH = (dA @ Wo).reshape(split).transpose(0, 2, 1, 3)
    dP = dH @ Vh.transpose(0, 1, 3, 2)
    dVh = P.transpose(0, 1, 3, 2) @ dH
    dS = P * (dP - (dP * P).sum(axis=3, keepdims=True)) / np.sqrt(d_head)
    dQh, dKh = dS @ Kh, dS.transpose(0, 1, 3, 2) @ Qh
    dQ, dK, dVals = (M.transpose(0, 2, 1, 3).reshape(batch, length, d_model) for M in (dQh, dKh, dVh))
    grads = {"Wq1": np.einsum("nti,ntj->ij", dQ, X), "Wk1": np.einsum("nti,ntj->ij", dK, X),
             "Wv1": np.einsum("nti,ntj->ij", dVals, X), "Wo1": gWo, "W3": gV, "b3": gc}
    for name, grad in grads.items():
        p[name] -= LR * grad
    return loss


def compare(name, model, numpy_step, X, Y, rounds):
    net = model.compile(optimizer=sn.optim.SGD(lr=LR))
    params = net.init(seed=0)
    reference = {key: np.array(params[key]) for key in params}
    ours, theirs = net.step(params, X, Y), numpy_step(reference, X, Y)
    assert abs(ours - theirs) <= 1e-9 * max(1.0, abs(theirs)), (name, ours, theirs)
    for key in reference:
        assert np.allclose(params[key], reference[key], rtol=1e-9, atol=1e-12), (name, key)
    times = interleaved_medians({"symnet": lambda: net.step(params, X, Y), "numpy": lambda: numpy_step(reference, X, Y)},
                                rounds=rounds)
    ours, theirs = 1e6 * times["symnet"], 1e6 * times["numpy"]
    print(f"{name:<44} net.step {ours:8.1f} µs   NumPy {theirs:8.1f} µs   ratio {ours / theirs:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{processor()}, batch {BATCH}, SGD; medians of {arguments.rounds} interleaved rounds (symnet.timing)")
    length, features, hidden = 20, 2, 32
    X, Y = rng.random((BATCH, length, features)), rng.random((BATCH, 1))
    compare(f"RNN({features}, {hidden}) → Dense, T={length}",
            sn.Sequential([sn.RNN(features, hidden), sn.Dense(hidden, 1)], input_shape=(length, features)),
            numpy_rnn_step, X, Y, arguments.rounds)
    length, d_model, heads, classes = 8, 8, 2, 10
    X, Y = rng.normal(size=(BATCH, length, d_model)), np.eye(classes)[rng.integers(0, classes, BATCH)]
    compare(f"SelfAttention({d_model}, heads={heads}) → Dense, T={length}",
            sn.Sequential([sn.SelfAttention(d_model, heads=heads), sn.Flatten(), sn.Dense(length * d_model, classes)],
                          loss="softmax_cross_entropy", input_shape=(length, d_model)),
            lambda p, X, Y: numpy_attention_step(p, X, Y, heads), X, Y, arguments.rounds)


if __name__ == "__main__":
    main()
