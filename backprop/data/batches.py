"""``check_batch``: one batch from a generator or a PyDataset, checked as in-memory data is.

A streamed input cannot be checked once up front, as arrays are: each batch is checked when it
arrives, with the same checks (:func:`~backprop.data.checks.check_X`, the finiteness check,
:func:`~backprop.data.checks.check_sample_weight`) and the same messages, prefixed with the
batch they concern: ``batch 7 of the generator: x contains NaN ...``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .checks import check_sample_weight, check_targets, check_X


def _items(batch: Any, what: str, step: int) -> tuple[Any, Any, Any]:
    """``(x, y, w)`` of a batch given as ``(x,)``, ``(x, y)``, ``(x, y, w)`` or a bare ``x``."""
    if hasattr(batch, "shape") and not isinstance(batch, tuple | list):
        return batch, None, None  # a bare array: x only (prediction), as Keras takes it
    if not isinstance(batch, tuple | list) or not 1 <= len(batch) <= 3:
        received = (
            f"a {type(batch).__name__} of length {len(batch)}"
            if isinstance(batch, tuple | list)
            else f"{type(batch).__name__}"
        )
        raise TypeError(
            f"batch {step} of {what}: expected a tuple (x,), (x, y) or (x, y, sample_weight), "
            f"received {received}. Make it yield (x, y) batches."
        )
    x, y, w = (*batch, None, None)[:3]
    return x, y, w


def check_batch(
    batch: Any,
    step: int,
    sample_shape: tuple[int, ...] | None,
    *,
    needs_y: bool,
    what: str = "the generator",
    dtype: str = "float64",
) -> tuple[Any, Any, np.ndarray | None]:
    """Normalise and check one batch of a generator or a PyDataset.

    Parameters
    ----------
    batch : tuple or list or array
        ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` (a bare array is ``(x,)``).
    step : int
        The batch's number, as the messages show it.
    sample_shape : tuple of int or None
        The shape of one sample of ``x`` the model expects (None: any, rank >= 2 overall).
    needs_y : bool
        Whether targets are required (``fit``, ``evaluate``).
    what : str, default "the generator"
        What the batch came from, for the messages (``"the PyDataset"``).
    dtype : str, default "float64"
        The model's dtype; values beyond its range are refused.

    Returns
    -------
    (x, y, w)
        ``x`` of shape ``(n, *sample_shape)`` and ``y`` of ``n`` rows as
        :func:`~backprop.data.checks.check_X` returns them (NumPy for host data, else the
        array itself); ``w`` a float64 NumPy vector of ``n`` weights. ``y`` and ``w`` are None
        where the batch has none.

    Raises
    ------
    TypeError
        If the batch is not a tuple of 1 to 3 items, or an item is not numeric.
    ValueError
        If ``x`` is empty or its samples are not of ``sample_shape``, ``y`` or ``w`` have
        other row counts, any value is NaN or infinite, a weight is negative, or ``y`` is
        missing where ``needs_y``. Every message starts with ``batch {step} of {what}:``.

    Examples
    --------
    >>> import numpy as np
    >>> x, y, w = check_batch((np.ones((2, 3)), np.zeros(2)), 0, (3,), needs_y=True)
    >>> x.shape, y.shape, w
    ((2, 3), (2,), None)
    >>> check_batch((np.ones((2, 4)),), 7, (3,), needs_y=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: batch 7 of the generator: The model expects x with 3 features, received ...
    """
    x, y, w = _items(batch, what, step)
    if y is None and needs_y:
        raise ValueError(
            f"batch {step} of {what}: has no targets, but training and evaluation need them. "
            "Yield (x, y) or (x, y, sample_weight) batches."
        )
    try:
        x = check_X(x, name="x", dtype=dtype, input_shape=sample_shape)
        n = int(x.shape[0])
        if y is not None:
            y = check_targets(y, n, dtype=dtype, x_name="x")[0]
        if w is not None:
            w = check_sample_weight(w, n, "sample_weight")
    except (TypeError, ValueError) as e:
        # the same error as for in-memory data, which also says which batch it is
        raise type(e)(f"batch {step} of {what}: {e}") from None
    return x, y, w
