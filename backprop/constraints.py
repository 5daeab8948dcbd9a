"""Weight constraints: a projection ``W <- c(W)`` applied after each optimizer step.

Given to a layer as ``kernel_constraint=`` or ``bias_constraint=``, as in Keras 3: after the
optimizer's update, the weight is replaced by ``constraint(weight)``. A constraint is not part
of the loss, so it never enters the backward pass (the gradient is the unconstrained one).

Keras 3's names, defaults and formulas (``keras/src/constraints/constraints.py``), with the
norm of each slice along ``axis`` computed as ``sqrt(sum(w**2, axis, keepdims=True))`` and
Keras's ``epsilon = 1e-7`` added to it in the denominator:

- ``MaxNorm(max_value=2, axis=0)``: ``w * clip(norm, 0, max_value) / (eps + norm)``;
- ``NonNeg()``: ``maximum(w, 0)``;
- ``UnitNorm(axis=0)``: ``w / (eps + norm)``;
- ``MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0)``:
  ``w * (rate * clip(norm, min_value, max_value) + (1 - rate) * norm) / (eps + norm)``.

``axis=0`` is, for a Dense kernel ``(in, out)``, one norm per unit (the weights coming into
it). Keras keeps ``axis=0`` as the default for a Conv2D kernel ``(kh, kw, c_in, filters)`` too,
where it means one norm per kernel column ``W[:, j, c, f]``; Keras's documentation advises
``axis=[0, 1, 2]`` there, one norm per filter. We follow Keras: the default is 0 for every
layer, and ``axis=[0, 1, 2]`` gives the per-filter norm.

Examples
--------
>>> import array_api_compat.numpy as xp
>>> w = xp.asarray([[3.0, 0.3], [4.0, -0.4]])
>>> MaxNorm(1.0)(w).round(4).tolist()
[[0.6, 0.3], [0.8, -0.4]]
>>> NonNeg()(w).tolist()
[[3.0, 0.3], [4.0, 0.0]]
>>> get("unit_norm").get_config()
{'name': 'unit_norm', 'axis': 0}
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import Any

from array_api_compat import array_namespace

from ._checks import as_float, as_int

__all__ = [
    "Constraint",
    "MaxNorm",
    "MinMaxNorm",
    "NonNeg",
    "UnitNorm",
    "get",
    "get_config",
    "max_norm",
    "min_max_norm",
    "names",
    "non_neg",
    "unit_norm",
]

Array = Any

# Keras's backend.epsilon(): what keeps w / norm finite where a slice is all zeros
EPSILON = 1e-7


def _snake(name: str) -> str:
    """Keras's to_snake_case: MaxNorm -> max_norm, MinMaxNorm -> min_max_norm."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Constraint:
    """Base class: a stateless projection of a weight array, ``c(W) -> W'`` of W's shape.

    Subclass it and override ``__call__`` (and ``get_config`` if the constructor takes
    arguments): a subclass defined in this process is found by its class name (or its snake
    case, as Keras finds its own), so a saved model or a clone can name it. A plain function
    ``w -> w'`` works too, but a model file cannot hold it (:func:`get`).
    """

    def __call__(self, w: Array) -> Array:
        """The projected weight (the base class returns ``w`` unchanged).

        Parameters
        ----------
        w : array
            A weight array of any namespace (found from ``w``).

        Returns
        -------
        array
            Same shape, namespace and device as ``w``.
        """
        return w

    def get_config(self) -> dict[str, Any]:
        """The arguments that rebuild this constraint with :func:`get`.

        Returns
        -------
        dict
            ``{"name": ...}`` plus the constructor arguments (Keras's values).
        """
        return {"name": _snake(type(self).__name__)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Constraint:
        """Rebuild from ``get_config()`` (the ``"name"`` key is ignored).

        Parameters
        ----------
        config : dict
            As :meth:`get_config` returns it.

        Returns
        -------
        Constraint
        """
        config = dict(config)
        config.pop("name", None)
        return cls(**config)

    def check(self, shape: tuple[int, ...], what: str) -> None:
        """Refuse a weight shape this constraint cannot act on (an axis it does not have).

        Called when the layer is built, so the error comes before anything trains.

        Parameters
        ----------
        shape : tuple of int
            The weight's shape.
        what : str
            The weight, for the message (e.g. ``"dense.kernel_constraint"``).

        Raises
        ------
        ValueError
            If ``axis`` names an axis outside ``shape``.
        """
        axis = getattr(self, "axis", None)
        if axis is None:
            return
        axes = axis if isinstance(axis, list) else [axis]
        if any(not -len(shape) <= a < len(shape) for a in axes):
            raise ValueError(
                f"{what}: {type(self).__name__}(axis={axis!r}) names an axis the weight does "
                f"not have: it has shape {shape} ({len(shape)} axes, so axis must be in "
                f"[{-len(shape)}, {len(shape) - 1}]). For a Dense kernel (in, units) use "
                "axis=0 (one norm per unit); for a Conv2D kernel (kh, kw, c_in, filters) "
                "axis=[0, 1, 2] (one norm per filter); for a bias, axis=0."
            )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _check_axis(axis: Any, cls: str) -> int | list[int]:
    """``axis`` as an int or a list of distinct ints (how Keras's configs hold it)."""
    if isinstance(axis, list | tuple):
        axes = [as_int(a) for a in axis]
        if axes and None not in axes and len(set(axes)) == len(axes):
            return axes
    elif as_int(axis) is not None:
        return as_int(axis)
    raise ValueError(
        f"{cls}: expected axis to be an integer or a list of distinct integers (e.g. 0, or "
        f"[0, 1, 2] for a Conv2D kernel), received axis={axis!r}."
    )


def _check_bound(value: Any, name: str, cls: str) -> int | float:
    """A finite number >= 0; ints stay ints (Keras's ``max_value=2`` saves as 2)."""
    number = as_float(value)
    if number is None or not 0 <= number < math.inf:
        raise ValueError(f"{cls}: expected {name} to be a number >= 0, received {value!r}.")
    n = as_int(value)
    return n if n is not None else number


def _norms(w: Array, axis: int | list[int], xp: Any) -> Array:
    """The Euclidean norm of each slice of ``w`` along ``axis``, kept as a broadcastable axis."""
    axes = tuple(axis) if isinstance(axis, list) else axis
    return xp.sqrt(xp.sum(w * w, axis=axes, keepdims=True))


class MaxNorm(Constraint):
    """The norm of each slice along ``axis`` at most ``max_value`` (Keras's ``MaxNorm``).

    ``w * clip(norm, 0, max_value) / (1e-7 + norm)``: slices already within the bound are left
    as they are, up to the factor ``norm / (1e-7 + norm)`` (as in Keras).

    Parameters
    ----------
    max_value : float, default 2
        The largest norm, >= 0.
    axis : int or list of int, default 0
        The axes each norm runs over: 0 for a Dense kernel ``(in, units)`` (one norm per
        unit), ``[0, 1, 2]`` for a Conv2D kernel (one norm per filter).
    """

    def __init__(self, max_value: float = 2, axis: int | list[int] = 0):
        self.max_value = _check_bound(max_value, "max_value", "MaxNorm")
        self.axis = _check_axis(axis, "MaxNorm")

    def __call__(self, w: Array) -> Array:
        xp = array_namespace(w)
        norms = _norms(w, self.axis, xp)
        desired = xp.clip(norms, min=0.0, max=float(self.max_value))
        return w * (desired / (EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {"name": "max_norm", "max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Every weight ``>= 0``: ``maximum(w, 0)`` (Keras's ``NonNeg``)."""

    def __call__(self, w: Array) -> Array:
        return array_namespace(w).maximum(w, 0.0)


class UnitNorm(Constraint):
    """The norm of each slice along ``axis`` equal to 1: ``w / (1e-7 + norm)`` (Keras's).

    Parameters
    ----------
    axis : int or list of int, default 0
        As for :class:`MaxNorm`.
    """

    def __init__(self, axis: int | list[int] = 0):
        self.axis = _check_axis(axis, "UnitNorm")

    def __call__(self, w: Array) -> Array:
        xp = array_namespace(w)
        return w / (EPSILON + _norms(w, self.axis, xp))

    def get_config(self) -> dict[str, Any]:
        return {"name": "unit_norm", "axis": self.axis}


class MinMaxNorm(Constraint):
    """The norm of each slice along ``axis`` moved into ``[min_value, max_value]`` (Keras's).

    ``w * desired / (1e-7 + norm)`` with ``desired = rate * clip(norm, min_value, max_value)
    + (1 - rate) * norm``: ``rate=1`` enforces the bounds at every step, a smaller rate moves
    the norm part of the way towards them.

    Parameters
    ----------
    min_value : float, default 0.0
        The smallest norm, >= 0.
    max_value : float, default 1.0
        The largest norm, >= ``min_value``.
    rate : float, default 1.0
        In ``[0, 1]``.
    axis : int or list of int, default 0
        As for :class:`MaxNorm`.
    """

    def __init__(
        self,
        min_value: float = 0.0,
        max_value: float = 1.0,
        rate: float = 1.0,
        axis: int | list[int] = 0,
    ):
        self.min_value = _check_bound(min_value, "min_value", "MinMaxNorm")
        self.max_value = _check_bound(max_value, "max_value", "MinMaxNorm")
        if self.min_value > self.max_value:
            raise ValueError(
                f"MinMaxNorm: expected min_value <= max_value, received min_value={min_value!r}"
                f" and max_value={max_value!r}."
            )
        number = as_float(rate)
        if number is None or not 0.0 <= number <= 1.0:
            raise ValueError(f"MinMaxNorm: expected rate in [0, 1], received rate={rate!r}.")
        self.rate = number
        self.axis = _check_axis(axis, "MinMaxNorm")

    def __call__(self, w: Array) -> Array:
        xp = array_namespace(w)
        norms = _norms(w, self.axis, xp)
        bounded = xp.clip(norms, min=float(self.min_value), max=float(self.max_value))
        desired = self.rate * bounded + (1.0 - self.rate) * norms
        return w * (desired / (EPSILON + norms))

    def get_config(self) -> dict[str, Any]:
        return {
            "name": "min_max_norm",
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            "axis": self.axis,
        }


# Keras's function-style names (keras.constraints.max_norm is the class MaxNorm)
max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_BUILTIN = (MaxNorm, NonNeg, UnitNorm, MinMaxNorm)


def _known() -> dict[str, type[Constraint]]:
    """Snake-case names, then class names, to classes: the built-ins and every subclass.

    A subclass of :class:`Constraint` defined in this process is found by its class name or
    its snake case (loading never imports or runs code); a built-in's name means the built-in.
    """
    found: dict[str, type[Constraint]] = {}
    todo = [*_BUILTIN, *Constraint.__subclasses__()]
    while todo:
        cls = todo.pop(0)
        found.setdefault(_snake(cls.__name__), cls)
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


def names() -> list[str]:
    """The names :func:`get` takes, in snake case (Keras's class names work too).

    Returns
    -------
    list of str
    """
    return sorted(_snake(cls.__name__) for cls in _BUILTIN)


def _unknown(name: Any, argument: str) -> ValueError:
    known = _known()
    snake = sorted({k for k in known if k == k.lower()})
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.5)
    hint = f" - did you mean {_snake(close[0])!r}?" if close else "."
    return ValueError(
        f"Unknown {argument} {name!r}{hint} Expected one of {snake} (or the class names "
        f"{sorted(cls.__name__ for cls in _BUILTIN)}), a config dict such as "
        "{'name': 'max_norm', 'max_value': 2.0}, a bp.constraints.Constraint, or None."
    )


def get(
    identifier: str | dict | Constraint | Callable | None, argument: str = "constraint"
) -> Constraint | Callable | None:
    """A constraint from a name, a config dict, an instance, a callable or None.

    Parameters
    ----------
    identifier : str, dict, Constraint, callable or None
        ``"max_norm"`` (or ``"MaxNorm"``), ``{"name": "max_norm", "max_value": 3.0}``, an
        instance (returned as is), a subclass (its default instance), a function ``w -> w'``
        (returned as is, as Keras takes it) or None.
    argument : str, default "constraint"
        The argument it was given as, for the messages (``"kernel_constraint"``).

    Returns
    -------
    Constraint, callable or None

    Raises
    ------
    ValueError
        For an unknown name (the message names the closest known one), or a config that
        names a function (a model file holds no code).
    TypeError
        For anything else.
    """
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Constraint):
        return identifier()  # a class stands for its default instance, as in Keras
    if isinstance(identifier, str):
        cls = _known().get(identifier)
        if cls is None:
            raise _unknown(identifier, argument)
        return cls()
    if isinstance(identifier, dict):
        name = identifier.get("name")
        if name == "custom":
            raise ValueError(
                f"The {argument} was the function {identifier.get('function', '?')!r}, which a "
                "config or a model file cannot hold (it holds no code). Pass the function "
                f"again ({argument}=...), or write it as a subclass of "
                "bp.constraints.Constraint with a get_config(): a config names such a class, "
                "and from_config and bp.load find it."
            )
        cls = _known().get(name) if isinstance(name, str) else None
        if cls is None:
            raise _unknown(name, argument)
        return cls.from_config(identifier)
    if callable(identifier) and not isinstance(identifier, type):
        return identifier
    raise TypeError(
        f"{argument} must be a constraint name such as 'max_norm', a config dict, a "
        f"bp.constraints.Constraint, a function w -> w, or None; received "
        f"{type(identifier).__name__} {identifier!r}."
    )


def get_config(constraint: Constraint | Callable | None) -> dict[str, Any] | None:
    """The config a layer records for its constraint (None for None).

    A function, which no config can hold, is recorded by name only: ``{"name": "custom",
    "function": ...}``; :func:`get` refuses to rebuild it with a message saying why.

    Parameters
    ----------
    constraint : Constraint, callable or None

    Returns
    -------
    dict or None
    """
    if constraint is None:
        return None
    if isinstance(constraint, Constraint):
        return constraint.get_config()
    return {"name": "custom", "function": getattr(constraint, "__name__", repr(constraint))}
