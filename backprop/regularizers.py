"""Weight penalties added to the loss: R(W) and its gradient dR/dW.

Examples
--------
>>> import array_api_compat.numpy as xp
>>> r = L2(0.5)
>>> float(r.penalty(xp.asarray([1.0, 2.0]), xp)), r.gradient(xp.asarray([1.0, 2.0]), xp)
(2.5, array([1., 2.]))
"""

from __future__ import annotations

from math import inf
from typing import Any

from ._checks import as_float

Array = Any


class Regularizer:
    """R(W) = l1 * sum|W| + l2 * sum W^2, dR/dW = l1 * sign(W) + 2 * l2 * W (Keras's form).

    Parameters
    ----------
    l1 : float, default 0.0
        Weight of the L1 term, >= 0.
    l2 : float, default 0.0
        Weight of the L2 term, >= 0.

    Raises
    ------
    ValueError
        If ``l1`` or ``l2`` is not a finite number >= 0.
    """

    name = "l1_l2"

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        weights = []
        for arg, value in (("l1", l1), ("l2", l2)):
            number = as_float(value)
            if number is None or not 0 <= number < inf:
                raise ValueError(f"{arg} must be a number >= 0, received {value!r}.")
            weights.append(number)
        self.l1, self.l2 = weights

    def penalty(self, W: Array, xp: Any) -> Array:
        """R(W), a 0-d array on W's device.

        Parameters
        ----------
        W : array, shape (d_in, d_out)
            A weight matrix.
        xp : namespace
            The Array API namespace of ``W``.

        Returns
        -------
        array, shape ()
        """
        out = 0.0
        if self.l1:
            out = out + self.l1 * xp.sum(xp.abs(W))
        if self.l2:
            out = out + self.l2 * xp.sum(W * W)
        return out

    def gradient(self, W: Array, xp: Any) -> Array:
        """dR/dW, the shape of W.

        Parameters
        ----------
        W : array, shape (d_in, d_out)
            A weight matrix.
        xp : namespace
            The Array API namespace of ``W``.

        Returns
        -------
        array, shape (d_in, d_out)
        """
        out = 0.0
        if self.l1:
            out = out + self.l1 * xp.sign(W)
        if self.l2:
            out = out + (2.0 * self.l2) * W
        return out

    def get_config(self) -> dict:
        """The arguments that rebuild this regularizer with :func:`get`.

        Returns
        -------
        dict
            ``{"name": "l1_l2", "l1": ..., "l2": ...}``.
        """
        return {"name": "l1_l2", "l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"Regularizer(l1={self.l1}, l2={self.l2})"


def L1(l1: float = 0.01) -> Regularizer:
    """R(W) = l1 * sum|W| (Keras default 0.01).

    Parameters
    ----------
    l1 : float, default 0.01
        Weight of the L1 term, >= 0.

    Returns
    -------
    Regularizer
    """
    return Regularizer(l1=l1)


def L2(l2: float = 0.01) -> Regularizer:
    """R(W) = l2 * sum W^2 (Keras default 0.01).

    Parameters
    ----------
    l2 : float, default 0.01
        Weight of the L2 term, >= 0.

    Returns
    -------
    Regularizer
    """
    return Regularizer(l2=l2)


def get(identifier: str | dict | Regularizer | None) -> Regularizer | None:
    """A regularizer from ``"l1"``, ``"l2"``, ``"l1_l2"``, a config dict, an instance or None.

    Parameters
    ----------
    identifier : str, dict, Regularizer or None
        ``"l1"``, ``"l2"``, ``"l1_l2"``, a dict from ``get_config``, an instance (returned as
        is) or None.

    Returns
    -------
    Regularizer or None
    """
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        config.pop("name", None)
        return Regularizer(**config)
    if isinstance(identifier, str):
        makers = {"l1": L1, "l2": L2, "l1_l2": lambda: Regularizer(0.01, 0.01)}
        if identifier.lower() not in makers:
            raise ValueError(
                f"Unknown regularizer {identifier!r}. Expected one of {sorted(makers)} "
                "or a Regularizer(l1=..., l2=...)."
            )
        return makers[identifier.lower()]()
    raise TypeError(
        f"kernel_regularizer must be 'l1', 'l2', a Regularizer or None; received "
        f"{type(identifier).__name__}."
    )
