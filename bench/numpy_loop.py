"""The "no library" baseline: the same MLP and Adam written directly in NumPy.

This is the most direct NumPy program for the benchmark's networks: ReLU hidden layers, a
sigmoid (binary cross-entropy) or softmax (categorical cross-entropy) output fused with its
loss, mini-batches from one shuffle per epoch, and Adam in Keras's form (eps beside sqrt(v),
bias corrections folded into the step size), with the moments updated in place. Nothing is
tuned beyond what a careful person writes in an afternoon: no flat buffers, no ``out=``
gymnastics, no flushing of subnormals.

It is checked against backprop (same weights, same loss, same gradients, same Adam step) in
``tests/test_bench.py``.
"""

from __future__ import annotations

import math

import numpy as np


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


class NumpyMLP:
    """ReLU MLP with a fused sigmoid/softmax + cross-entropy output, trained with Adam.

    Parameters
    ----------
    sizes : tuple of int
        Input, hidden..., output widths; an output of 1 means sigmoid + binary cross-entropy,
        more means softmax + categorical cross-entropy.
    dtype : str
        ``"float32"`` or ``"float64"``.
    weights : list of arrays, optional
        ``[W1, b1, W2, b2, ...]`` (backprop's ``get_weights()`` order); Glorot-uniform weights
        and zero biases drawn from ``seed`` otherwise.
    """

    def __init__(
        self,
        sizes: tuple[int, ...],
        dtype: str = "float32",
        weights: list[np.ndarray] | None = None,
        seed: int = 0,
        learning_rate: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-7,
    ):
        self.sizes = tuple(sizes)
        self.dtype = np.dtype(dtype)
        self.sigmoid = self.sizes[-1] == 1
        if weights is None:
            rng = np.random.default_rng(seed)
            weights = []
            for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
                weights += [glorot_uniform(rng, fan_in, fan_out), np.zeros(fan_out)]
        self.params = [np.array(w, dtype=self.dtype) for w in weights]  # W1, b1, W2, b2, ...
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.lr, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, epsilon
        self.t = 0

    # -- targets -------------------------------------------------------------------------------
    def targets(self, y: np.ndarray) -> np.ndarray:
        """Integer labels as the float targets the loss takes: (n, 1) 0/1 or one-hot (n, k)."""
        y = np.asarray(y)
        if self.sigmoid:
            return y.reshape(-1, 1).astype(self.dtype)
        Y = np.zeros((y.shape[0], self.sizes[-1]), dtype=self.dtype)
        Y[np.arange(y.shape[0]), y] = 1
        return Y

    # -- one step ------------------------------------------------------------------------------
    def loss_and_grads(self, x: np.ndarray, Y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """Forward, loss and backward on one batch; returns the loss and [dW1, db1, ...]."""
        Ws, bs = self.params[0::2], self.params[1::2]
        acts = [x]
        a = x
        for W, b in zip(Ws[:-1], bs[:-1], strict=True):
            a = a @ W
            a += b
            np.maximum(a, 0, out=a)  # relu, in place: the pre-activation is not needed again
            acts.append(a)
        z = a @ Ws[-1]
        z += bs[-1]
        n = x.shape[0]
        if self.sigmoid:  # fused sigmoid + binary cross-entropy, overflow-free
            e = np.exp(-np.abs(z))
            loss = np.mean(np.maximum(z, 0) - z * Y + np.log1p(e))
            p = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
            dz = (p - Y) / (n * z.shape[1])
        else:  # fused softmax + categorical cross-entropy
            m = z.max(axis=1, keepdims=True)
            e = np.exp(z - m)
            s = e.sum(axis=1, keepdims=True)
            loss = np.sum(np.log(s) + m - np.sum(Y * z, axis=1, keepdims=True)) / n
            dz = (e / s - Y) / n
        grads = [None] * len(self.params)
        for i in range(len(Ws) - 1, -1, -1):
            grads[2 * i] = acts[i].T @ dz
            grads[2 * i + 1] = dz.sum(axis=0)
            if i:
                dz = dz @ Ws[i].T
                dz *= acts[i] > 0  # relu'(z) from its output: z > 0 exactly where a > 0
        return float(loss), grads

    def adam(self, grads: list[np.ndarray]) -> None:
        """One Adam step, the moments and the weights updated in place."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        lr_t = self.lr * math.sqrt(1.0 - b2**self.t) / (1.0 - b1**self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            p -= lr_t * m / (np.sqrt(v) + self.eps)

    def train_step(self, x: np.ndarray, Y: np.ndarray) -> float:
        loss, grads = self.loss_and_grads(x, Y)
        self.adam(grads)
        return loss

    # -- epochs --------------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        epochs: int,
        batch_size: int,
        rng: np.random.Generator,
    ) -> list[float]:
        """Shuffled mini-batch epochs; returns the mean loss of each epoch."""
        X = np.asarray(X, dtype=self.dtype)
        Y = self.targets(y)
        n = X.shape[0]
        history = []
        for _ in range(epochs):
            order = rng.permutation(n)
            Xs, Ys = X[order], Y[order]  # one gather per epoch, then contiguous slices
            total = 0.0
            for lo in range(0, n, batch_size):
                hi = min(lo + batch_size, n)
                total += self.train_step(Xs[lo:hi], Ys[lo:hi]) * (hi - lo)
            history.append(total / n)
        return history

    def get_weights(self) -> list[np.ndarray]:
        return [p.copy() for p in self.params]
