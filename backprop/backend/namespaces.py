"""Each library's Array API namespace, with the functions a recorded step needs replaced.

array-api-compat's namespaces, copied once per library, with a few functions made faster
(NumPy) or safe to record as a CUDA graph (torch, CuPy: no Python number copied to the device,
no host read-back; CuPy's ``matmul`` goes to the recording's cuBLAS product while one is
recorded).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from .capture import _CAPTURE

_NAMESPACES: dict[str, ModuleType] = {}  # backend name -> its namespace, made once


def _copy_namespace(compat: ModuleType, name: str) -> ModuleType:
    """A copy of array-api-compat's namespace whose functions can be replaced one by one."""
    ns = ModuleType(name, compat.__doc__)
    ns.__dict__.update({k: v for k, v in vars(compat).items() if not k.startswith("__")})
    return ns


def _numpy_namespace() -> ModuleType:
    """array-api-compat's NumPy namespace, with faster versions of four hot functions.

    On the small arrays of a training step, NumPy's Python-level wrappers cost more than the
    arithmetic: ``sum`` of floats 5.6 us against 3.0 us for the ufunc reduction it calls,
    ``reshape`` 2.0 us against 0.5 us for the method, ``all`` of booleans 3.6 us against
    2.2 us; ``matmul`` only forwards to ``np.matmul``. The replacements compute the same
    results (the same pairwise summation) and fall back to the originals for every other case.
    """
    if "numpy" not in _NAMESPACES:
        import array_api_compat.numpy as compat

        fast = _copy_namespace(compat, "backprop._numpy_namespace")
        float_kinds = ("f", "c")

        def sum(x, /, *, axis=None, dtype=None, keepdims=False):
            if dtype is None and x.dtype.kind in float_kinds:
                return np.add.reduce(x, axis=axis, keepdims=keepdims)
            return compat.sum(x, axis=axis, dtype=dtype, keepdims=keepdims)

        def reshape(x, /, shape, *, copy=None):
            if copy is None and isinstance(x, np.ndarray):
                return x.reshape(shape)
            return compat.reshape(x, shape, copy=copy)

        def all(x, /, *, axis=None, keepdims=False):
            if x.dtype == np.bool_ and isinstance(x, np.ndarray):
                return np.logical_and.reduce(x, axis=axis, keepdims=keepdims)
            return compat.all(x, axis=axis, keepdims=keepdims)

        fast.sum, fast.reshape, fast.all = sum, reshape, all
        fast.matmul = np.matmul  # what array-api-compat's wrapper calls, without the wrapper
        _NAMESPACES["numpy"] = fast
    return _NAMESPACES["numpy"]


def _number(x: Any) -> bool:
    """A Python (or NumPy) real number that is not NaN: what a clamp can take as a bound."""
    return isinstance(x, int | float | np.number) and not isinstance(x, bool) and not math.isnan(x)


def _torch_namespace() -> ModuleType:
    """array-api-compat's torch namespace, with ``maximum``/``minimum`` of a Python number.

    array-api-compat turns the number in ``maximum(z, 0.0)`` into a tensor made on the host
    and copied to the device: a copy per call, and one that ``torch.cuda.graph`` refuses to
    record. ``torch.clamp`` takes the number as an argument of the kernel; it gives the
    same values, NaN included.
    """
    if "torch" not in _NAMESPACES:
        import array_api_compat.torch as compat
        import torch

        ns = _copy_namespace(compat, "backprop._torch_namespace")

        def clamped(bound: str, fallback: Any) -> Any:
            """``fallback`` (maximum or minimum), as a clamp when one side is a number."""

            def f(x1, x2, /):
                for x, number in ((x1, x2), (x2, x1)):
                    if _number(number) and isinstance(x, torch.Tensor) and x.is_floating_point():
                        return torch.clamp(x, **{bound: number})
                return fallback(x1, x2)

            return f

        ns.maximum, ns.minimum = clamped("min", compat.maximum), clamped("max", compat.minimum)
        _NAMESPACES["torch"] = ns
    return _NAMESPACES["torch"]


def _cupy_namespace() -> ModuleType:
    """array-api-compat's CuPy namespace, with ``clip``, ``sign`` and ``matmul`` a graph can record.

    array-api-compat's ``clip`` copies Python-number bounds to the device (a host copy a
    capture refuses); ``cupy.clip`` takes them as kernel arguments. ``matmul`` of two
    matrices goes to the capture's own cuBLAS handle while a step is recorded (see
    :meth:`Backend.capture`), to CuPy's otherwise.
    """
    if "cupy" not in _NAMESPACES:
        import array_api_compat.cupy as compat
        import cupy

        ns = _copy_namespace(compat, "backprop._cupy_namespace")

        def clip(x, /, min=None, max=None):
            if min is None and max is None:
                return compat.clip(x, min, max)
            bounds = [b for b in (min, max) if b is not None]
            if all(_number(b) for b in bounds) and x.dtype.kind == "f":
                return cupy.clip(x, min, max)
            return compat.clip(x, min, max)

        def matmul(x1, x2, /):
            gemm = getattr(_CAPTURE, "gemm", None)  # set in the recording thread only
            if gemm is not None and gemm.takes(x1, x2):
                return gemm(x1, x2)
            return compat.matmul(x1, x2)

        def sign(x, /):
            # array-api-compat puts NaN back with a boolean-mask write, which reads a count
            # back to the host (refused while recording); cupy.sign gives 0 for NaN
            if x.dtype.kind == "f":
                return cupy.where(cupy.isnan(x), x, cupy.sign(x))
            return compat.sign(x)

        ns.clip, ns.matmul, ns.sign = clip, matmul, sign
        _NAMESPACES["cupy"] = ns
    return _NAMESPACES["cupy"]
