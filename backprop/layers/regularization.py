"""Regularization layers: ``Dropout``, which zeroes inputs at random while training.

Built on :mod:`backprop.layers.core` (the base class ``Layer``); reached as ``bp.layers.Dropout``.
"""

from __future__ import annotations

from .._checks import as_float
from .core import Layer


class Dropout(Layer):
    """Inverted dropout: zero each input with probability ``rate`` while training.

    forward (training):  m = (u >= rate) / (1 - rate),  u ~ U[0, 1);   y = x * m
    forward (inference): y = x
    backward:            dx = dy * m

    Scaling the kept units by 1/(1 - rate) while training keeps E[y] = x, so inference needs
    no rescaling.

    Parameters
    ----------
    rate : float
        Fraction of inputs to drop, in [0, 1).
    name : str, optional
        The layer's name (``dropout``, ``dropout_1``, ... when omitted).
    trainable : bool, default True
        Kept for Keras's API: Dropout has no weights.
    input_shape : tuple of int, optional
        Shape of one sample without the batch axis, when Dropout is the model's first layer
        (as in Keras: dropout on the inputs), e.g. ``input_shape=(784,)``.
    """

    def __init__(
        self,
        rate: float,
        name: str | None = None,
        trainable: bool = True,
        input_shape: tuple[int, ...] | None = None,
    ):
        value = as_float(rate)
        if value is None or not 0 <= value < 1:
            raise ValueError(f"Dropout rate must be a float in [0, 1), received rate={rate!r}.")
        super().__init__(name, trainable, input_shape)
        self.rate = value

    def forward(self, x, training=False):
        self._check_built()
        self._has_forward = True
        if not training or self.rate == 0.0:
            self.mask = None
            return x
        u = self.backend.random_uniform(self.rng, tuple(x.shape), x.dtype)
        self.mask = self.xp.astype(u >= self.rate, x.dtype) / (1.0 - self.rate)
        return x * self.mask

    def backward(self, dy):
        self._check_forward_done()
        return dy if self.mask is None else dy * self.mask

    def get_config(self):
        return self._with_trainable({"name": self.name, "rate": self.rate})
