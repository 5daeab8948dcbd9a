"""Reshaping layers: ``Flatten`` and ``Reshape``, which move no value, only the axes.

Built on :mod:`backprop.layers.core` (the base class ``Layer``); reached as ``bp.layers.Flatten``
and ``bp.layers.Reshape``. A reshape is a bijection between the entries of ``x`` and ``y``, so
its backward pass is the inverse reshape of ``dy``: ``dx = reshape(dy, x.shape)``.
"""

from __future__ import annotations

import math
from typing import Any

from .._checks import as_int
from .core import Layer


class _Reshaping(Layer):
    """What Flatten and Reshape share: the forward and backward reshapes, the input check."""

    def forward(self, x, training=False):
        self._check_built()
        if tuple(x.shape[1:]) != self.input_shape:
            expected = ", ".join(str(d) for d in ("n", *self.input_shape))
            raise ValueError(
                f"{self.name} expected input of shape ({expected}), "
                f"received shape {tuple(x.shape)}."
            )
        self._has_forward = True
        return self.xp.reshape(x, (x.shape[0], *self.compute_output_shape(self.input_shape)))

    def backward(self, dy):
        self._check_forward_done()
        # every entry of y is one entry of x: the gradient goes back to where it came from
        return self.xp.reshape(dy, (dy.shape[0], *self.input_shape)) if self.need_dx else None


class Flatten(_Reshaping):
    """Flattens each sample: ``(n, d1, ..., dk)`` to ``(n, d1 * ... * dk)``.

    forward:   y = reshape(x, (n, -1))           (row-major: the last axis varies fastest)
    backward:  dx = reshape(dy, x.shape)

    The order is Keras's (channels last): a ``(h, w, c)`` image becomes the row
    ``x[0, 0, :], x[0, 1, :], ...``, so the weights of a Dense layer after it match Keras's.

    Parameters
    ----------
    name : str, optional
        A name for summaries and saved files.
    input_shape : tuple of int, optional
        Shape of one input sample (the first layer only), e.g. ``(28, 28, 1)``.

    Examples
    --------
    >>> import backprop as bp
    >>> bp.layers.Flatten().compute_output_shape((28, 28, 1))
    (784,)
    """

    def __init__(
        self,
        name: str | None = None,
        trainable: bool = True,
        input_shape: tuple[int, ...] | None = None,
    ):
        super().__init__(name, trainable, input_shape)

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)


class Reshape(_Reshaping):
    """Gives each sample the shape ``target_shape``: ``(n, *input_shape)`` to ``(n, *target)``.

    forward:   y = reshape(x, (n, *target_shape))     (row-major, as NumPy and Keras)
    backward:  dx = reshape(dy, x.shape)

    Parameters
    ----------
    target_shape : tuple of int
        The shape of one output sample, no batch axis; one entry may be -1, inferred from the
        size of the input (as in Keras).
    name : str, optional
        A name for summaries and saved files.
    input_shape : tuple of int, optional
        Shape of one input sample (the first layer only).

    Raises
    ------
    ValueError
        If ``target_shape`` is not a tuple of positive integers with at most one -1, or (when
        the layer is built) holds another number of entries than the input.

    Examples
    --------
    >>> import backprop as bp
    >>> bp.layers.Reshape((-1, 4)).compute_output_shape((2, 6))
    (3, 4)
    """

    def __init__(
        self,
        target_shape: tuple[int, ...],
        name: str | None = None,
        trainable: bool = True,
        input_shape: tuple[int, ...] | None = None,
    ):
        entries = list(target_shape) if isinstance(target_shape, tuple | list) else None
        dims = None if entries is None else [as_int(d) for d in entries]
        bad = dims is None or any(d is None or (d <= 0 and d != -1) for d in dims)
        if not dims or bad or dims.count(-1) > 1:
            raise ValueError(
                "Reshape: Expected target_shape to be a non-empty tuple of positive integers "
                "(one of them may be -1, inferred from the input), the shape of one sample "
                f"without the batch axis; received target_shape={target_shape!r}."
            )
        super().__init__(name, trainable, input_shape)
        self.target_shape = tuple(dims)

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        size, known = math.prod(input_shape), math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape and size % known == 0:
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size or -1 in self.target_shape:
            raise ValueError(
                f"{self.name}: target_shape={self.target_shape} does not fit samples of shape "
                f"{tuple(input_shape)}: they hold {size} values, "
                + (
                    f"which {known} does not divide."
                    if -1 in self.target_shape
                    else f"the target shape {known}."
                )
                + " Give a target_shape whose entries multiply to that size (one may be -1)."
            )
        return self.target_shape

    def build_from_shape(self, input_shape, backend, rng, dtype):
        self.compute_output_shape(input_shape)  # refuse a target that does not fit, unbuilt
        super().build_from_shape(input_shape, backend, rng, dtype)

    def get_config(self) -> dict[str, Any]:
        return self._with_trainable({"name": self.name, "target_shape": list(self.target_shape)})
