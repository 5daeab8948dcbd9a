"""What counts as an integer and as a real number in an argument: the one definition.

Hyper-parameters often come from NumPy (``np.arange``, ``np.logspace``, an array element), so
an argument check accepts every ``numbers.Integral`` (``int``, ``np.int64``, ...) where an
integer is expected and every ``numbers.Real`` (``float``, ``np.float32``, ``int``, ...) where
a real number is expected. Bools are refused in both: ``units=True`` or ``rate=False`` is
always a mistake. (``bool`` is an ``int`` subclass, so it is excluded by name; ``np.bool_`` is
neither ``Integral`` nor ``Real``, so it is excluded already.)

The normalisers return plain Python ``int``/``float``: objects store those, so that their
``get_config()`` stays JSON-serialisable (a model file holds its configs as JSON) and their
reprs read ``4``, not ``np.int64(4)``.

This module sits on the bottom floor: it imports nothing from ``backprop`` (nor NumPy, so the
math modules that use it stay free of array libraries). Each caller keeps its own error
message, naming its argument and echoing the value received.

Examples
--------
>>> import numpy as np
>>> as_int(np.int64(4)), as_float(np.float32(0.5)), as_int(True), as_float("0.5")
(4, 0.5, None, None)
"""

from __future__ import annotations

import numbers
from typing import Any


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer: any ``numbers.Integral`` except bools.

    Parameters
    ----------
    value : object
        The value to test.

    Returns
    -------
    bool
        True for ``int`` and NumPy integers (``np.int64``, ``np.uint8``, ...); False for
        ``bool``, ``np.bool_``, floats (even ``2.0``), strings and everything else.
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number: any ``numbers.Real`` except bools.

    NaN and infinities are real numbers here; range checks are the caller's.

    Parameters
    ----------
    value : object
        The value to test.

    Returns
    -------
    bool
        True for ``int``, ``float`` and NumPy integers and floats; False for ``bool``,
        ``np.bool_``, complex numbers, strings and everything else.
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_int(value: Any) -> int | None:
    """``value`` as a Python ``int`` when :func:`is_int` accepts it, else None.

    Parameters
    ----------
    value : object
        The value to convert.

    Returns
    -------
    int or None
        ``int(value)``, or None for anything that is not an integer.
    """
    return int(value) if is_int(value) else None


def as_float(value: Any) -> float | None:
    """``value`` as a Python ``float`` when :func:`is_real` accepts it, else None.

    Parameters
    ----------
    value : object
        The value to convert.

    Returns
    -------
    float or None
        ``float(value)`` (NaN and infinities included), or None for anything that is not a
        real number.
    """
    return float(value) if is_real(value) else None


def as_number(value: Any) -> int | float | None:
    """``value`` as a Python ``int`` if it is an integer, a ``float`` if it is real, else None.

    For arguments where both kinds are meaningful and the kind given is kept (a step count
    given as 1000 stays 1000, not 1000.0).

    Parameters
    ----------
    value : object
        The value to convert.

    Returns
    -------
    int, float or None
        ``int(value)``, ``float(value)``, or None for anything that is not a real number.
    """
    return int(value) if is_int(value) else as_float(value)


def as_bool(value: Any) -> bool | None:
    """``value`` as a Python ``bool`` if it is True or False (NumPy's included), else None.

    Integers are not truth values here: ``trainable=1`` is more likely a mistake than a choice.

    Parameters
    ----------
    value : object
        The value to convert.

    Returns
    -------
    bool or None
        The truth value, or None for anything that is not a boolean scalar.
    """
    if isinstance(value, bool):
        return value
    if getattr(value, "shape", None) == () and str(getattr(value, "dtype", "")) == "bool":
        return bool(value)  # a NumPy bool scalar (np.True_)
    return None


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a Python ``bool``; a TypeError naming ``name`` when it is not True or False.

    ``"False"`` is truthy and ``0`` is a number: taking ``bool(value)`` would turn a setting on
    that the caller meant off, or hide a slip.

    Parameters
    ----------
    value : object
        The argument.
    name : str
        Its name, for the message.

    Returns
    -------
    bool

    Raises
    ------
    TypeError
        If ``value`` is not True or False (NumPy's included).
    """
    flag = as_bool(value)
    if flag is None:
        raise TypeError(f"{name} must be True or False, received {name}={value!r}.")
    return flag
