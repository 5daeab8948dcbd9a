"""Weight initializers, drawn on the host from a seeded ``numpy.random.Generator``.

Drawing on the host (in float64, then cast to the model's dtype when the arrays move to the
backend) is what makes a seed give the same initial weights on every backend and device.
The formulas and names follow Keras; the normal variants use a normal truncated at two standard
deviations, rescaled so the truncated draws have the nominal variance.

Examples
--------
>>> import numpy as np
>>> W = get("glorot_uniform")((2, 4), np.random.default_rng(0))
>>> W.shape, bool(abs(W).max() <= (6 / 6) ** 0.5)
((2, 4), True)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._checks import as_float
from .registry import build

# Standard deviation of a unit normal truncated to [-2, 2]; dividing by it restores variance 1.
_TRUNCATED_STD = 0.87962566103423978


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) as Keras counts them.

    A convolution kernel ``(kh, kw, c_in, c_out)`` feeds each output from ``kh * kw * c_in``
    inputs and each input to ``kh * kw * c_out`` outputs: the receptive field multiplies both.
    """
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():  # redraw the tails: the expected number of passes is ~1.05
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * (std / _TRUNCATED_STD)


class Initializer:
    """Base class: ``init(shape, rng) -> numpy.ndarray`` (float64, on the host)."""

    name = "initializer"

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draw initial values.

        Parameters
        ----------
        shape : tuple of int
            Shape of the array, ``(fan_in, fan_out)`` for a weight matrix.
        rng : numpy.random.Generator
            The seeded host generator to draw from.

        Returns
        -------
        numpy.ndarray of shape ``shape``, float64
            The values, on the host.
        """
        raise NotImplementedError

    def get_config(self) -> dict:
        """The arguments that rebuild this initializer with :func:`get`.

        Returns
        -------
        dict
            ``{"name": ...}`` plus the constructor arguments.
        """
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class VarianceScaling(Initializer):
    """Draws with variance ``scale / fan`` (fan = fan_in, fan_out or their mean).

    uniform: U(-limit, limit) with limit = sqrt(3 scale / fan);
    normal: truncated normal with std = sqrt(scale / fan).

    Parameters
    ----------
    scale : float, default 1.0
        The variance numerator.
    mode : {"fan_in", "fan_out", "fan_avg"}, default "fan_in"
        Which fan divides ``scale``.
    distribution : {"normal", "uniform"}, default "normal"
        Truncated normal or uniform draws.

    Raises
    ------
    ValueError
        For an unknown ``mode`` or ``distribution``.
    """

    name = "variance_scaling"

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "normal"):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg', received {mode!r}.")
        if distribution not in ("normal", "uniform"):
            raise ValueError(
                f"distribution must be 'normal' or 'uniform', received {distribution!r}."
            )
        scale_float = as_float(scale)
        if scale_float is None or not 0 < scale_float < math.inf:
            raise ValueError(f"scale must be a positive number, received scale={scale!r}.")
        self.scale, self.mode, self.distribution = scale_float, mode, distribution

    def __call__(self, shape, rng):
        fan_in, fan_out = _fans(tuple(shape))
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * self.scale / fan)
            return rng.uniform(-limit, limit, size=shape)
        return _truncated_normal(rng, shape, math.sqrt(self.scale / fan))

    def get_config(self):
        if type(self) is not VarianceScaling:
            return {"name": self.name}
        return {
            "name": self.name,
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
        }


def _preset(name: str, scale: float, mode: str, distribution: str, doc: str) -> type:
    def __init__(self):
        VarianceScaling.__init__(self, scale, mode, distribution)

    return type(name, (VarianceScaling,), {"__init__": __init__, "name": name, "__doc__": doc})


GlorotUniform = _preset(
    "glorot_uniform", 1.0, "fan_avg", "uniform", "U(-l, l), l = sqrt(6 / (fan_in + fan_out))."
)
GlorotNormal = _preset(
    "glorot_normal", 1.0, "fan_avg", "normal", "Truncated normal, std = sqrt(2/(fan_in+fan_out))."
)
HeUniform = _preset("he_uniform", 2.0, "fan_in", "uniform", "U(-l, l), l = sqrt(6 / fan_in).")
HeNormal = _preset("he_normal", 2.0, "fan_in", "normal", "Truncated normal, std = sqrt(2/fan_in).")
LecunUniform = _preset("lecun_uniform", 1.0, "fan_in", "uniform", "U(-l, l), l = sqrt(3/fan_in).")
LecunNormal = _preset(
    "lecun_normal", 1.0, "fan_in", "normal", "Truncated normal, std = sqrt(1 / fan_in)."
)


class Constant(Initializer):
    """Every entry equal to ``value``.

    Parameters
    ----------
    value : float, default 0.0
        The value of every entry.
    """

    name = "constant"

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"name": self.name, "value": self.value}


class Zeros(Constant):
    """All zeros (the Dense bias default)."""

    name = "zeros"

    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {"name": self.name}


class Ones(Constant):
    """All ones."""

    name = "ones"

    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {"name": self.name}


class RandomNormal(Initializer):
    """N(mean, stddev^2) (Keras defaults: mean 0, stddev 0.05).

    Parameters
    ----------
    mean : float, default 0.0
        Mean of the draws.
    stddev : float, default 0.05
        Standard deviation of the draws.
    """

    name = "random_normal"

    def __init__(self, mean: float = 0.0, stddev: float = 0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, rng):
        return rng.normal(self.mean, self.stddev, size=shape)

    def get_config(self):
        return {"name": self.name, "mean": self.mean, "stddev": self.stddev}


class RandomUniform(Initializer):
    """U(minval, maxval) (Keras defaults: -0.05, 0.05).

    Parameters
    ----------
    minval : float, default -0.05
        Lower bound.
    maxval : float, default 0.05
        Upper bound (excluded).
    """

    name = "random_uniform"

    def __init__(self, minval: float = -0.05, maxval: float = 0.05):
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {"name": self.name, "minval": self.minval, "maxval": self.maxval}


_REGISTRY: dict[str, type[Initializer]] = {
    cls.name: cls
    for cls in (
        GlorotUniform,
        GlorotNormal,
        HeUniform,
        HeNormal,
        LecunUniform,
        LecunNormal,
        VarianceScaling,
        Constant,
        Zeros,
        Ones,
        RandomNormal,
        RandomUniform,
    )
}

glorot_uniform, glorot_normal = GlorotUniform(), GlorotNormal()
he_uniform, he_normal = HeUniform(), HeNormal()
lecun_uniform, lecun_normal = LecunUniform(), LecunNormal()
zeros, ones = Zeros(), Ones()


def names() -> list[str]:
    """The names :func:`get` accepts.

    Returns
    -------
    list of str
        The registered initializer names, sorted.
    """
    return sorted(_REGISTRY)


def _known() -> dict[str, type[Initializer]]:
    """The built-in initializers, then every subclass of Initializer defined in this process.

    A subclass is found by the ``name`` it sets (lower case), as layers are by class name:
    defining it is what lets a saved or cloned config name it (loading never imports or runs
    code). A subclass that sets no name of its own, or a built-in's, is not found: that name
    means the built-in.

    Returns
    -------
    dict of str to type
        Names to classes.
    """
    found, todo = dict(_REGISTRY), list(Initializer.__subclasses__())
    while todo:
        cls = todo.pop()
        if isinstance(vars(cls).get("name"), str):  # its own name, not one it inherits
            found.setdefault(cls.name.lower(), cls)
        todo.extend(cls.__subclasses__())
    return found


def get(identifier: str | dict | Initializer | Callable) -> Initializer | Callable:
    """An initializer from a name (``"he_uniform"``), a config dict, an instance or a callable.

    A callable must take ``(shape, rng)`` and return a host array of that shape.

    Parameters
    ----------
    identifier : str, dict, Initializer or callable
        A name from :func:`names`, a dict from ``get_config``, an instance or a callable
        ``(shape, rng) -> numpy.ndarray`` (both returned as is).

    Returns
    -------
    Initializer or callable
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str | dict):
        return build("initializer", identifier, _known())
    if callable(identifier):
        return identifier
    raise TypeError(
        "initializer must be a name such as 'glorot_uniform', an Initializer or a callable "
        f"(shape, rng) -> array; received {type(identifier).__name__}."
    )
