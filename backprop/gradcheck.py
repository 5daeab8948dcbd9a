"""Finite-difference gradient checking, for tests and for users writing their own layers.

For each weight array, the analytic gradient ``g`` (backpropagation) is compared with the
central difference ``g_num[i] = (L(w + h e_i) - L(w - h e_i)) / (2 h)`` through the relative
error ``norm(g - g_num) / max(norm(G) + norm(G_num), tiny)``, where ``G`` and ``G_num`` are the
gradients of the whole model (every trainable array). The scale is the model's, not the
array's: a central difference is exact only to round-off (about ``1e-16 * |L| / h``, 1e-10 for
the default step), an absolute error. An array whose true gradient is 0 (a bias under MAE with
residuals of balanced sign) has a difference that is pure round-off, which its own size would
turn into an error of 1.0; measured against the model's gradient it is the 1e-10 it is. An
error as large as the gradients around it still shows (a wrong ``db`` of the size of ``dW``
gives an error near 1). If the whole model's gradient is 0 (an exact minimum), only round-off
is left to compare: check at another point.

ReLU-like activations have kinks; a central difference that straddles one measures neither
side's slope. Entries whose one-sided differences disagree (a kink within ``h``) are retried
with a ten times smaller step, and left out if the kink is still inside it: the check then
compares the gradient where it is defined.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .clone import _working_copy

_TINY = 1e-300


def gradcheck(
    model: Any,
    X: Any,
    y: Any,
    eps: float = 1e-6,
    return_all: bool = False,
) -> float | list[float | None]:
    """Largest relative error between analytic and central-difference gradients.

    The check runs in float64 on a copy of the model (on its backend when that supports
    float64, else on NumPy), in inference mode (dropout off), so the model is not changed.

    Parameters
    ----------
    model : Sequential
        A compiled, built model.
    X, y : array_like
        A small batch (each weight entry costs two loss evaluations).
    eps : float
        Finite-difference step.
    return_all : bool
        Return the error of every weight array instead of the largest.

    Returns
    -------
    float or list of (float or None)
        ~1e-8 or smaller for a correct float64 backward pass. With ``return_all``, one entry
        per array of ``model.get_weights()``, in that order; None for the arrays that are
        constants of the loss and have no gradient to check (BatchNormalization's moving
        statistics, the weights of frozen layers).
    """
    m = _working_copy(model, dtype="float64")
    weights = [w.astype(np.float64) for w in m.get_weights()]
    _, grads = m.loss_and_gradients(X, y)

    def loss_at(i: int, flat: int, delta: float) -> float:
        w = weights[i].reshape(-1)
        old = w[flat]
        w[flat] = old + delta
        m.set_weights(weights)
        value = m.loss_and_gradients(X, y)[0]
        w[flat] = old
        return value

    # the gradients are those of the trainable weights; moving statistics and frozen layers
    # are constants of the loss
    trainable = [i for i, t in enumerate(m._trainable_mask()) if t]
    checked = []  # (index in get_weights, analytic, numeric) over the entries kept
    for i, g in zip(trainable, grads, strict=True):
        w = weights[i]
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        g_num = np.empty_like(g)
        keep = np.ones(g.size, dtype=bool)
        base = m.loss_and_gradients(X, y)[0]
        for j in range(w.size):
            h = eps
            for _ in range(3):
                up, down = loss_at(i, j, h), loss_at(i, j, -h)
                fwd, bwd = (up - base) / h, (base - down) / h
                g_num[j] = (up - down) / (2 * h)
                # smooth here: one-sided slopes agree to O(h) (curvature), not O(1) (a kink)
                if abs(fwd - bwd) <= 1e-3 * max(1.0, abs(fwd) + abs(bwd)):
                    break
                h /= 10
            else:
                keep[j] = False
        m.set_weights(weights)
        checked.append((i, g[keep], g_num[keep]))
    # the norms of the whole gradient, from the arrays' norms: sqrt of the sum of squares
    scale = math.hypot(*(np.linalg.norm(g) for _, g, _ in checked)) + math.hypot(
        *(np.linalg.norm(g_num) for _, _, g_num in checked)
    )
    errors: list[float | None] = [None] * len(weights)
    for i, g, g_num in checked:
        errors[i] = float(np.linalg.norm(g - g_num) / max(scale, _TINY))
    if return_all:
        return errors
    return max(e for e in errors if e is not None)
