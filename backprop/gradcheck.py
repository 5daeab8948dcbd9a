"""Finite-difference gradient checking, for tests and for users writing their own layers.

For each weight array, the analytic gradient ``g`` (backpropagation) is compared with the
central difference ``g_num[i] = (L(w + h e_i) - L(w - h e_i)) / (2 h)`` through the relative
error ``norm(g - g_num) / max(norm(g) + norm(g_num), tiny)``.

ReLU-like activations have kinks; a central difference that straddles one measures neither
side's slope. Entries whose one-sided differences disagree (a kink within ``h``) are retried
with a ten times smaller step, and left out if the kink is still inside it: the check then
compares the gradient where it is defined.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_TINY = 1e-300


def gradcheck(
    model: Any,
    X: Any,
    y: Any,
    eps: float = 1e-6,
    return_all: bool = False,
) -> float | list[float]:
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
    float or list of float
        ~1e-8 or smaller for a correct float64 backward pass.
    """
    from .io import _clone

    m = _clone(model, dtype="float64")
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
    errors = []
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
        diff = np.linalg.norm(g[keep] - g_num[keep])
        errors.append(
            float(diff / max(np.linalg.norm(g[keep]) + np.linalg.norm(g_num[keep]), _TINY))
        )
    return errors if return_all else max(errors)
