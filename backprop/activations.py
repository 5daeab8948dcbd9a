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


# -- the error function -----------------------------------------------------------------------
#
# The Array API standard has no erf, so the exact GELU brings its own: W. J. Cody's rational
# Chebyshev approximations ("Rational Chebyshev approximations for the error function", Math.
# Comp. 23 (1969) 631-637; netlib specfun CALERF), built from +, *, / and exp only:
#
#   |x| <= 0.46875:      erf(x)  = x R1(x^2)
#   0.46875 < y <= 4:    erfc(y) = exp(-y^2) R2(y)
#   y > 4:               erfc(y) = exp(-y^2) (1/sqrt(pi) - R3(1/y^2) / y^2) / y
#
# Cody bounds the relative error of each rational function below 6e-19, far under float64's
# rounding. What is left is the rounding of the evaluation, and of exp(-y^2): y^2 rounded
# carries a relative error of eps * y^2 into the exponent (~1.6e-13 at y = 26). CALERF's cure,
# used here: y = s + d with s = trunc(16 y) / 16 a number of few bits, so s^2 is exact, and
# exp(-y^2) = exp(-s^2) exp(-d (y + s)) with d (y + s) <= y / 8 small. tests/test_activations.py
# measures the result against math.erf/math.erfc: at most 2e-16 absolute for erf, and within
# 1e-15 relative for erf on the whole line and for erfc where it is a normal number.

_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)  # fmt: skip
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)  # fmt: skip
_ERFC_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
           2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
           2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)  # fmt: skip
_ERFC_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
           1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
           3.43936767414372164e03, 1.23033935480374942e03)  # fmt: skip
_ERFC_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
           1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)  # fmt: skip
_ERFC_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
           6.05183413124413191e-2, 2.33520497626869185e-3)  # fmt: skip
_ONE_OVER_SQRT_PI = 5.6418958354775628695e-1
_ERF_SMALL = 0.46875  # where Cody's first interval ends
# erfc(y) = 0 in float64 (subnormals included) from y ~ 27.3 on: clamping y at 30 changes no
# result and keeps y^2 and 1/y^2 finite for any input, inf included
_ERFC_ZERO = 30.0


def _erf_small(x: Array) -> Array:
    """erf(x) for |x| <= 0.46875: x R1(x^2)."""
    t = x * x
    num, den = _ERF_A[4] * t, t
    for a, b in zip(_ERF_A[:3], _ERF_B[:3], strict=True):
        num, den = (num + a) * t, (den + b) * t
    return x * (num + _ERF_A[3]) / (den + _ERF_B[3])


def _erfc_scaled(y: Array, xp: Any) -> Array:
    """exp(y^2) erfc(y) for 0.46875 <= y <= 30 (both of Cody's outer intervals)."""
    # each branch sees an argument inside its own interval, so the one where() discards
    # computes nothing that overflows or divides by zero
    m = xp.minimum(y, 4.0)
    num, den = _ERFC_C[8] * m, m
    for c, d in zip(_ERFC_C[:7], _ERFC_D[:7], strict=True):
        num, den = (num + c) * m, (den + d) * m
    middle = (num + _ERFC_C[7]) / (den + _ERFC_D[7])
    b = xp.maximum(y, 4.0)
    t = 1.0 / (b * b)
    num, den = _ERFC_P[5] * t, t
    for p, q in zip(_ERFC_P[:4], _ERFC_Q[:4], strict=True):
        num, den = (num + p) * t, (den + q) * t
    tail = (_ONE_OVER_SQRT_PI - t * (num + _ERFC_P[4]) / (den + _ERFC_Q[4])) / b
    return xp.where(y <= 4.0, middle, tail)


def _exp_neg_square(a: Array, xp: Any, scale: float = 1.0) -> Array:
    """exp(-scale a^2) for a >= 0 without the rounding of a^2 (scale 1 or 0.5: exact).

    s = trunc(16 a) / 16 has few significant bits, so s * s is exact; the rest of the
    exponent, (a - s)(a + s) <= a / 8, is small and its rounding is harmless.
    """
    s = xp.trunc(16.0 * a) / 16.0
    return xp.exp(-scale * (s * s)) * xp.exp(-scale * ((a - s) * (a + s)))


def _erfc_abs(y: Array, xp: Any) -> Array:
    """erfc(y) for y = |x| >= 0.46875 (values below are clamped, so only use it there)."""
    y = xp.clip(y, _ERF_SMALL, _ERFC_ZERO)
    return _exp_neg_square(y, xp) * _erfc_scaled(y, xp)


def erf(x: Array, /, *, xp: Any = None) -> Array:
    """The error function erf(x) = 2/sqrt(pi) int_0^x e^(-t^2) dt, elementwise.

    Cody's rational Chebyshev approximations (1969) in Array API code: within 1e-15 relative
    of ``math.erf`` in float64 over the whole real line (tests/test_activations.py measures it).

    Parameters
    ----------
    x : array
        A real floating array (any shape).
    xp : namespace, optional
        Its namespace (looked up from ``x`` when omitted).

    Returns
    -------
    array
        ``erf(x)``, the shape, dtype and device of ``x``; +-1 for +-inf, NaN for NaN.

    Examples
    --------
    >>> import array_api_compat.numpy as xp
    >>> import math
    >>> float(erf(xp.asarray(0.5))) == math.erf(0.5)
    True
    """
    xp = xp or array_namespace(x)
    y = xp.abs(x)
    small = _erf_small(xp.clip(x, -_ERF_SMALL, _ERF_SMALL))
    large = xp.sign(x) * (1.0 - _erfc_abs(y, xp))
    return xp.where(y <= _ERF_SMALL, small, large)


def erfc(x: Array, /, *, xp: Any = None) -> Array:
    """The complementary error function erfc(x) = 1 - erf(x), without the cancellation.

    For large x, erfc(x) ~ e^(-x^2) / (x sqrt(pi)) is computed directly (not as 1 - erf(x),
    which is 0 from x ~ 6 on): within 1e-15 relative of ``math.erfc`` wherever the result is
    a normal float64, and 0 from x ~ 27.3 on, where it underflows.

    Parameters
    ----------
    x : array
        A real floating array (any shape).
    xp : namespace, optional
        Its namespace (looked up from ``x`` when omitted).

    Returns
    -------
    array
        ``erfc(x)``, the shape, dtype and device of ``x``.

    Examples
    --------
    >>> import array_api_compat.numpy as xp
    >>> f"{float(erfc(xp.asarray(10.0))):.12e}"  # 1 - erf(10) would be 0
    '2.088487583763e-45'
    """
    xp = xp or array_namespace(x)
    y = xp.abs(x)
    small = 1.0 - _erf_small(xp.clip(x, -_ERF_SMALL, _ERF_SMALL))
    tail = _erfc_abs(y, xp)
    return xp.where(y <= _ERF_SMALL, small, xp.where(x > 0, tail, 2.0 - tail))


_SQRT_HALF = math.sqrt(0.5)
_ONE_OVER_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Phi(z) = 0 in float64 from z ~ -38.5 on: |z| is clamped at 40 in the exponentials
_PHI_ZERO = 40.0


def _normal_cdf_pdf(z: Array, xp: Any) -> tuple[Array, Array]:
    """Phi(z) and phi(z) of the standard normal, accurate in the tails too.

    Phi(z) = erfc(-z / sqrt 2) / 2, with exp(-u^2), u = |z| / sqrt 2, taken as exp(-z^2 / 2)
    from z itself: u's own rounding would otherwise cost eps * u^2 relative in the far tail.
    """
    a = xp.minimum(xp.abs(z), _PHI_ZERO)
    e = _exp_neg_square(a, xp, 0.5)  # exp(-z^2 / 2), the Gaussian's shape
    u = xp.clip(_SQRT_HALF * a, _ERF_SMALL, _ERFC_ZERO)
    q = 0.5 * e * _erfc_scaled(u, xp)  # the tail probability Phi(-|z|)
    small = 0.5 + 0.5 * _erf_small(xp.clip(_SQRT_HALF * z, -_ERF_SMALL, _ERF_SMALL))
    cdf = xp.where(_SQRT_HALF * a <= _ERF_SMALL, small, xp.where(z > 0, 1.0 - q, q))
    return cdf, _ONE_OVER_SQRT_2PI * e


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


class GELU(ActivationFunction):
    """g(z) = z Phi(z), Phi the standard normal CDF; g'(z) = Phi(z) + z phi(z).

    Keras's default, the exact form: Phi(z) = (1 + erf(z / sqrt 2)) / 2, with :func:`erf`'s
    rational approximation, and the tails from erfc so that g(z) keeps its relative accuracy
    for negative z too.

    With ``approximate=True``, the tanh form (Hendrycks & Gimpel; backprop's ``gelu`` before
    it took ``approximate``): g(z) = z/2 (1 + tanh(u)) = z s, u = sqrt(2/pi) (z + 0.044715
    z^3), s = sigmoid(2u); g'(z) = s + 2 z s (1 - s) sqrt(2/pi) (1 + 3 * 0.044715 z^2).
    It differs from the exact form by at most ~5e-4.

    Parameters
    ----------
    approximate : bool, default False
        Whether to use the tanh form, as Keras's ``gelu(x, approximate=...)``.

    Raises
    ------
    TypeError
        If ``approximate`` is not a bool.
    """

    name = "gelu"

    def __init__(self, approximate: bool = False):
        if not isinstance(approximate, bool):
            raise TypeError(
                f"gelu approximate must be True (the tanh form) or False (the exact form), "
                f"received {approximate!r}."
            )
        self.approximate = approximate

    def forward(self, z, xp):
        if self.approximate:
            # (1 + tanh(u)) / 2 as sigmoid(2u): the same number, without 1 + tanh(u)'s
            # cancellation for negative z (1e-9 relative at z = -5)
            return z * _sigmoid(2.0 * _SQRT_2_OVER_PI * (z + _GELU_C * z * z * z), xp)
        return z * _normal_cdf_pdf(z, xp)[0]

    def derivative(self, z, y, xp):
        if self.approximate:
            z2 = z * z
            s = _sigmoid(2.0 * _SQRT_2_OVER_PI * z * (1.0 + _GELU_C * z2), xp)
            du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * z2)
            # (1 - t^2) / 2 = 2 s (1 - s) with t = tanh(u) = 2 s - 1
            return s + 2.0 * z * s * (1.0 - s) * du
        cdf, pdf = _normal_cdf_pdf(z, xp)
        # phi(z) = 0 where |z| > 40, and z is clamped there so that inf * 0 makes no NaN
        return cdf + xp.clip(z, -_PHI_ZERO, _PHI_ZERO) * pdf

    def get_config(self):
        # always written: a config without it comes from a file saved when gelu was the tanh
        # form, and get() reads it so (see _is_legacy_gelu)
        return {"name": self.name, "approximate": self.approximate}


class SiLU(ActivationFunction):
    """Swish / SiLU: g(z) = z sigmoid(z), g'(z) = s (1 + z (1 - s)) with s = sigmoid(z).

    Keras's ``silu``, also known by the name ``"swish"`` (Ramachandran et al., 2017).
    """

    name = "silu"

    def forward(self, z, xp):
        return z * _sigmoid(z, xp)

    def derivative(self, z, y, xp):
        s = _sigmoid(z, xp)
        return s * (1.0 + z * (1.0 - s))


class Softplus(ActivationFunction):
    """g(z) = log(1 + e^z) = max(z, 0) + log(1 + e^-|z|), g'(z) = sigmoid(z)."""

    name = "softplus"

    def forward(self, z, xp):
        # the second form never overflows and keeps log1p's accuracy where e^-|z| is tiny
        return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))

    def derivative(self, z, y, xp):
        return _sigmoid(z, xp)


class Softsign(ActivationFunction):
    """g(z) = z / (1 + |z|), g'(z) = 1 / (1 + |z|)^2."""

    name = "softsign"

    def forward(self, z, xp):
        return z / (1.0 + xp.abs(z))

    def derivative(self, z, y, xp):
        d = 1.0 + xp.abs(z)
        return 1.0 / (d * d)


# Klambauer et al. (2017), to the digits of their paper's fixed point; tf.nn.selu, jax.nn.selu
# and torch.selu use these (Keras's docstring rounds them to 1.67326324 and 1.05070098)
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class SELU(ActivationFunction):
    """g(z) = scale z if z > 0 else scale alpha (e^z - 1); g'(z) = scale, or scale alpha e^z.

    ``alpha = 1.67326...`` and ``scale = 1.05070...`` are the fixed constants of Klambauer et
    al. (2017), as in Keras (use it with the ``lecun_normal`` initializer).
    """

    name = "selu"

    def forward(self, z, xp):
        # expm1 of min(z, 0): exact near 0 and never overflows on the branch where() discards
        neg = (_SELU_SCALE * _SELU_ALPHA) * xp.expm1(xp.minimum(z, 0.0))
        return xp.where(z > 0, _SELU_SCALE * z, neg)

    def derivative(self, z, y, xp):
        # scale alpha e^z directly, not y + scale alpha, which cancels as z -> -inf
        neg = (_SELU_SCALE * _SELU_ALPHA) * xp.exp(xp.minimum(z, 0.0))
        return xp.where(z > 0, _SELU_SCALE, neg)


class HardSigmoid(ActivationFunction):
    """Keras 3's hard sigmoid: g(z) = relu6(z + 3) / 6, i.e. clip(z / 6 + 1/2, 0, 1).

    g'(z) = 1/6 for -3 < z < 3, else 0 (0 at the kinks). Keras 2 used clip(0.2 z + 0.5, 0, 1).
    """

    name = "hard_sigmoid"

    def forward(self, z, xp):
        return xp.clip(z + 3.0, 0.0, 6.0) / 6.0

    def derivative(self, z, y, xp):
        inside = (z > -3.0) & (z < 3.0)
        return xp.where(inside, xp.full_like(z, 1.0 / 6.0), 0.0)


class Exponential(ActivationFunction):
    """g(z) = e^z, g'(z) = e^z = y (inf beyond z ~ 709 in float64, ~ 88 in float32)."""

    name = "exponential"

    def forward(self, z, xp):
        return xp.exp(z)

    def derivative(self, z, y, xp):
        return y


def _sigmoid(z: Array, xp: Any) -> Array:
    # e = exp(-|z|) never overflows; each branch is the exact sigmoid on its half-line
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


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
    cls.name: cls
    for cls in (
        Linear,
        ReLU,
        LeakyReLU,
        ELU,
        GELU,
        SiLU,
        Softplus,
        Softsign,
        SELU,
        HardSigmoid,
        Exponential,
        Sigmoid,
        Tanh,
        Softmax,
    )
}
# Keras's other name for the same function; the instance calls itself "silu", as Keras saves it
_REGISTRY["swish"] = SiLU

linear = Linear()
relu = ReLU()
leaky_relu = LeakyReLU()
elu = ELU()
gelu = GELU()
silu = swish = SiLU()
softplus = Softplus()
softsign = Softsign()
selu = SELU()
hard_sigmoid = HardSigmoid()
exponential = Exponential()
sigmoid = Sigmoid()
tanh = Tanh()
softmax = Softmax()


def _is_legacy_gelu(config: dict) -> bool:
    """A gelu config written before GELU took ``approximate``: the tanh form then."""
    name = config.get("name")
    return isinstance(name, str) and name.lower() == "gelu" and "approximate" not in config


def names() -> list[str]:
    """The names :func:`get` accepts.

    Returns
    -------
    list of str
        The registered activation names and the alias ``"swish"``, sorted.
    """
    return sorted(_REGISTRY)


def get(identifier: str | ActivationFunction | dict | None) -> ActivationFunction:
    """An activation from a name (``"relu"``), a config dict, an instance, or None (linear).

    Parameters
    ----------
    identifier : str, dict, ActivationFunction or None
        A name from :func:`names`, a dict from ``get_config``, an instance (returned as is) or
        None (``Linear``). The name ``"gelu"`` is the exact GELU, as in Keras; a config dict
        ``{"name": "gelu"}`` without ``"approximate"`` is what files saved before GELU took
        that argument hold, when gelu was the tanh form: it gives that form
        (``approximate=True``), so that old models load to the function they were trained
        with.

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
    if isinstance(identifier, dict) and _is_legacy_gelu(identifier):
        identifier = {**identifier, "approximate": True}
    if isinstance(identifier, str | dict):
        return build("activation", identifier, _REGISTRY)
    raise TypeError(
        "activation must be a name such as 'relu', an ActivationFunction or None; "
        f"received {type(identifier).__name__}."
    )
