"""Fused CuPy kernels: one pass over the arrays instead of one per operation.

Each kernel sits beside the portable Array API code it replaces, which stays its reference:
``bp.backend.FUSE = False`` runs the portable code everywhere.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from .namespaces import _NAMESPACES

FUSE = True  # False runs the portable Array API code everywhere (the kernels' reference)

# Each body computes what the portable code computes, operation by operation in the same order
# (``--fmad=false``: no multiply-add contraction), so the results agree to the last bit or two.
# ``c1`` and ``c2`` are ``1 - beta1`` and ``1 - beta2``, rounded to T as the portable code's
# Python numbers are.
_KERNELS = {
    "adam": (
        "T g, T lr_t, T b1, T c1, T b2, T c2, T eps",
        "T w, T m, T v",
        "m = m * b1; m = m + c1 * g; T g2 = g * g; g2 = g2 * c2; v = v * b2; v = v + g2;"
        "T d = sqrt(v); d = d + eps; T step = m / d; step = step * lr_t; w = w - step;",
    ),
    "sgd_momentum": (
        "T g, T lr, T mu, bool nesterov",
        "T w, T m",
        "m = m * mu; T s = lr * g; m = m - s;"
        "if (nesterov) { T a = mu * m; a = a - s; w = w + a; } else { w = w + m; }",
    ),
    # dy * astype(z > 0): a product, not a selection, so that inf and NaN in dy propagate alike
    "relu_backward": ("T dy, T z", "T dz", "dz = dy * (z > (T)0 ? (T)1 : (T)0);"),
}
_UPDATES = ("adam", "sgd_momentum")  # their second argument is the learning rate
_COMPILED: dict[tuple[str, bool], Any] = {}


def fused(xp: Any, name: str, *arrays: Any) -> Any:
    """A CuPy kernel doing ``name`` in one pass, or None (then the portable code runs).

    On CuPy each operation of the portable code is a kernel launch and a pass over the arrays:
    the optimizer updates (a dozen operations over the flat vector) and ReLU's backward pass
    (three) are one kernel each here. A learning rate held on the device (the captured
    engine's) is read by an update kernel from its one-element array.

    Parameters
    ----------
    xp : namespace
        The arrays' namespace.
    name : str
        ``"adam"``, ``"sgd_momentum"`` or ``"relu_backward"``.
    *arrays : arrays
        The arrays the kernel reads or updates: each must be C-contiguous.

    Returns
    -------
    callable or None
        ``kernel(g, lr, *scalars, w, m[, v])`` for an update (``w`` and the state updated in
        place); ``kernel(dy, z) -> dz`` for ``relu_backward``.
    """
    if not FUSE or xp is not _NAMESPACES.get("cupy"):
        return None
    if not all(a.flags.c_contiguous for a in arrays):
        return None
    return functools.partial(_launch, name)


def _launch(name: str, *args: Any) -> Any:
    """Run the kernel ``name`` (compiled on first use, per host or device learning rate)."""
    # an update's learning rate on the device: the kernel reads its one element
    raw = name in _UPDATES and not isinstance(args[1], int | float)
    if (name, raw) not in _COMPILED:
        params, out, body = _KERNELS[name]
        if raw:
            lr_name = params.split(", ")[1].split()[1]
            params = params.replace(f"T {lr_name}", f"raw T {lr_name}_")
            body = f"T {lr_name} = {lr_name}_[0];" + body
        _COMPILED[name, raw] = importlib.import_module("cupy").ElementwiseKernel(
            params, out, body, f"backprop_{name}", options=("--fmad=false",)
        )
    return _COMPILED[name, raw](*args)
