"""Layers and the index symbols to declare new ones (see :mod:`symnet.declare.layers`).

A new layer is a subclass of :class:`Layer` with a ``forward_map`` in the
input ``a[n, j]`` and ``parameter_shapes``; its backward pass is derived::

    from symnet.layers import Layer, a, n, i, j, J_SIZE

    class Residual(Layer):
        W, b = sp.IndexedBase("W", real=True), sp.IndexedBase("b", real=True)
        forward_map = a[n, i] + sp.Sum(W[i, j] * a[n, j], (j, 0, J_SIZE - 1)) + b[i]
        parameter_shapes = {W: ("out", "in"), b: ("out",)}
"""

from symnet.declare.layers import (I_SIZE, J_SIZE, K_SIZE, MOMENTUM, RNN, T_SIZE, AvgPool2D, BatchNorm, Conv2D, Dense,
                                   Dropout, Flatten, H, Layer, LayerNorm, Maxout, MaxPool2D, N, SelfAttention, Softmax, a,
                                   causal_mask, delta, f, h, i, j, k, n, p, padded, q, r, t)
from symnet.indexed import InRange, index

__all__ = ["Layer", "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "Flatten", "LayerNorm", "BatchNorm", "Dropout", "Maxout",
           "Softmax", "SelfAttention", "RNN", "a", "H", "t", "delta", "n", "i", "j", "k", "p", "q", "r", "f", "h", "N", "MOMENTUM", "I_SIZE",
           "J_SIZE", "K_SIZE", "T_SIZE", "index", "InRange", "padded", "causal_mask"]
