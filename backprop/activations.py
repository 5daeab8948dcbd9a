"""Activation functions g(z) and their derivatives g'(z), in Array API code.

Each activation is a small object with

- ``forward(z, xp) -> y = g(z)``
- ``derivative(z, y, xp) -> g'(z)`` (elementwise; softmax has no elementwise derivative)
- ``backward(dy, z, y, xp) -> dz = dy * g'(z)`` (the vector-Jacobian product; softmax's
  couples the units of a row).

``z`` and ``y`` are both handed to ``derivative``/``backward`` so each function uses whichever
is cheaper: sigmoid and tanh reuse their output, ReLU its input.

Examples
--------
>>> import array_api_compat.numpy as xp
>>> get("relu")(xp.asarray([-1.0, 2.0]))
array([0., 2.])
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace

from . import backend as _backend
from ._checks import as_float
from .registry import build

Array = Any


class ActivationFunction:
    """Base class: an elementwise g(z) with its derivative g'(z)."""

    name = "activation"

    def forward(self, z: Array, xp: Any) -> Array:
        """The activation: ``y = g(z)``.

        Parameters
        ----------
        z : array, shape (n, k)
            Pre-activations (any shape for the elementwise activations).
        xp : namespace
            The Array API namespace of ``z``.

        Returns
        -------
        y : array, shape (n, k)
            ``g(z)``, the shape and dtype of ``z``.
        """
        raise NotImplementedError

    def derivative(self, z: Array, y: Array, xp: Any) -> Array:
        """g'(z), elementwise; ``y`` is ``g(z)``, already computed by ``forward``.

        Parameters
        ----------
        z : array, shape (n, k)
            Pre-activations.
        y : array, shape (n, k)
            ``g(z)``, from ``forward``.
        xp : namespace
            The Array API namespace of ``z``.

        Returns
        -------
        array, shape (n, k)
            ``g'(z)``, elementwise.

        Raises
        ------
        NotImplementedError
            For softmax, whose Jacobian is not diagonal (use ``backward``).
        """
        raise NotImplementedError

    def backward(self, dy: Array, z: Array, y: Array, xp: Any) -> Array:
        """The vector-Jacobian product: ``dz = dy * g'(z)``.

        Parameters
        ----------
        dy : array, shape (n, k)
            ``dL/dy``, the gradient of the loss with respect to the output.
        z : array, shape (n, k)
            Pre-activations given to ``forward``.
        y : array, shape (n, k)
            ``g(z)``, from ``forward``.
        xp : namespace
            The Array API namespace of the arrays.

        Returns
        -------
        dz : array, shape (n, k)
            ``dL/dz``.
        """
        return dy * self.derivative(z, y, xp)

    def __call__(self, z: Array, xp: Any = None) -> Array:
        """Apply the activation: ``y = g(z)``.

        Parameters
        ----------
        z : array, shape (n, k)
            Pre-activations.
        xp : namespace, optional
            Their namespace (looked up from ``z`` when omitted).

        Returns
        -------
        array, shape (n, k)
            ``g(z)``, on ``z``'s device.
        """
        return self.forward(z, xp or array_namespace(z))

    def get_config(self) -> dict[str, Any]:
        """The arguments that rebuild this activation with :func:`get`.

        Returns
        -------
        dict
            ``{"name": ...}`` plus the constructor arguments, if any.
        """
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class Linear(ActivationFunction):
    """g(z) = z, g'(z) = 1."""

    name = "linear"

    def forward(self, z, xp):
        return z

    def derivative(self, z, y, xp):
        return xp.ones_like(z)

    def backward(self, dy, z, y, xp):
        return dy


class ReLU(ActivationFunction):
    """g(z) = max(z, 0), g'(z) = 1 if z > 0 else 0 (0 at the kink, as every framework)."""

    name = "relu"

    def forward(self, z, xp):
        return xp.maximum(z, 0.0)

    def derivative(self, z, y, xp):
        return xp.astype(z > 0, z.dtype)

    def backward(self, dy, z, y, xp):
        fused = _backend.fused(xp, "relu_backward", dy, z)
        if fused is not None:  # the line below in one kernel (CuPy)
            return fused(dy, z)
        # dy * g'(z), not the selection where(z > 0, dy, 0.0): the same numbers, but NumPy's
        # where with a scalar is 4-6x slower (27 us vs 7 us on 64 x 128 float32, 3.5 ms vs
        # 0.6 ms on 512 x 1024)
        return dy * self.derivative(z, y, xp)


class LeakyReLU(ActivationFunction):
    """g(z) = z if z > 0 else alpha * z, g'(z) = 1 if z > 0 else alpha.

    Parameters
    ----------
    alpha : float, default 0.01
        Slope for ``z <= 0``; a number >= 0.

    Raises
    ------
    ValueError
        If ``alpha`` is not a finite number >= 0.
    """

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01):
        value = as_float(alpha)
        if value is None or not 0 <= value < math.inf:
            raise ValueError(f"leaky_relu alpha must be a number >= 0, received {alpha!r}.")
        self.alpha = value

    def forward(self, z, xp):
        return xp.where(z > 0, z, self.alpha * z)

    def derivative(self, z, y, xp):
        return xp.where(z > 0, 1.0, xp.full_like(z, self.alpha))

    def backward(self, dy, z, y, xp):
        return xp.where(z > 0, dy, self.alpha * dy)

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha}


class ELU(ActivationFunction):
    """g(z) = z if z > 0 else alpha (e^z - 1), g'(z) = 1 if z > 0 else g(z) + alpha.

    Parameters
    ----------
    alpha : float, default 1.0
        Saturation value ``-alpha`` for very negative ``z``; a number >= 0.

    Raises
    ------
    ValueError
        If ``alpha`` is not a finite number >= 0.
    """

    name = "elu"

    def __init__(self, alpha: float = 1.0):
        value = as_float(alpha)
        if value is None or not 0 <= value < math.inf:
            raise ValueError(f"elu alpha must be a number >= 0, received {alpha!r}.")
        self.alpha = value

    def forward(self, z, xp):
        # expm1 of min(z, 0): exact near 0 and never overflows on the branch where() discards.
        return xp.where(z > 0, z, self.alpha * xp.expm1(xp.minimum(z, 0.0)))

    def derivative(self, z, y, xp):
        return xp.where(z > 0, 1.0, y + self.alpha)

    def backward(self, dy, z, y, xp):
        return xp.where(z > 0, dy, dy * (y + self.alpha))

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha}


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


class GELU(ActivationFunction):
    """The tanh form: g(z) = z/2 (1 + tanh(u)), u = sqrt(2/pi) (z + 0.044715 z^3).

    g'(z) = (1 + t)/2 + z/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 z^2), with t = tanh(u).
    """

    name = "gelu"

    def forward(self, z, xp):
        return 0.5 * z * (1.0 + xp.tanh(_SQRT_2_OVER_PI * (z + _GELU_C * z * z * z)))

    def derivative(self, z, y, xp):
        z2 = z * z
        t = xp.tanh(_SQRT_2_OVER_PI * z * (1.0 + _GELU_C * z2))
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * z2)
        return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du


class Sigmoid(ActivationFunction):
    """g(z) = 1 / (1 + e^-z), g'(z) = y (1 - y)."""

    name = "sigmoid"

    def forward(self, z, xp):
        # e = exp(-|z|) never overflows; each branch is the exact sigmoid on its half-line.
        e = xp.exp(-xp.abs(z))
        return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def derivative(self, z, y, xp):
        return y * (1.0 - y)


class Tanh(ActivationFunction):
    """g(z) = tanh(z), g'(z) = 1 - y^2."""

    name = "tanh"

    def forward(self, z, xp):
        return xp.tanh(z)

    def derivative(self, z, y, xp):
        return 1.0 - y * y


class Softmax(ActivationFunction):
    """y_i = e^{z_i} / sum_j e^{z_j} over the last axis.

    Its Jacobian is diag(y) - y y^T, so the backward pass is dz = y * (dy - sum(dy * y)).
    """

    name = "softmax"

    def forward(self, z, xp):
        # Shifting by the row maximum leaves softmax unchanged and keeps exp() from overflowing.
        e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
        return e / xp.sum(e, axis=-1, keepdims=True)

    def derivative(self, z, y, xp):
        raise NotImplementedError(
            "softmax has no elementwise derivative (its Jacobian couples a row); "
            "use backward(dy, z, y, xp) for the vector-Jacobian product."
        )

    def backward(self, dy, z, y, xp):
        return y * (dy - xp.sum(dy * y, axis=-1, keepdims=True))


_REGISTRY: dict[str, type[ActivationFunction]] = {
    cls.name: cls for cls in (Linear, ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softmax)
}

linear = Linear()
relu = ReLU()
leaky_relu = LeakyReLU()
elu = ELU()
gelu = GELU()
sigmoid = Sigmoid()
tanh = Tanh()
softmax = Softmax()


def names() -> list[str]:
    """The names :func:`get` accepts.

    Returns
    -------
    list of str
        The registered activation names, sorted.
    """
    return sorted(_REGISTRY)


def get(identifier: str | ActivationFunction | dict | None) -> ActivationFunction:
    """An activation from a name (``"relu"``), a config dict, an instance, or None (linear).

    Parameters
    ----------
    identifier : str, dict, ActivationFunction or None
        A name from :func:`names`, a dict from ``get_config``, an instance (returned as is) or
        None (``Linear``).

    Returns
    -------
    ActivationFunction

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.
    """
    if isinstance(identifier, ActivationFunction):
        return identifier
    if identifier is None:
        return Linear()
    if isinstance(identifier, str | dict):
        return build("activation", identifier, _REGISTRY)
    raise TypeError(
        "activation must be a name such as 'relu', an ActivationFunction or None; "
        f"received {type(identifier).__name__}."
    )
