"""Which library an array belongs to, its device, and its copy on the host.

The questions asked of an array of any supported library (or of host data) that need no
:class:`~backprop.backend.Backend`: below the Backend class, which asks them.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

Array = Any


def array_backend_name(x: Any) -> str | None:
    """The backend name of an array (``"numpy"``, ``"torch"``, ...) or None for host data.

    Parameters
    ----------
    x : object
        Any value.

    Returns
    -------
    str or None
        One of ``BACKENDS`` for a NumPy (array or scalar), CuPy, torch, JAX or array_api_strict
        array; None for anything else (lists, Python scalars, ...).
    """
    import array_api_compat as compat

    if isinstance(x, np.ndarray | np.generic):
        return "numpy"
    if compat.is_cupy_array(x):
        return "cupy"
    if compat.is_torch_array(x):
        return "torch"
    if compat.is_jax_array(x):
        return "jax"
    if type(x).__module__.startswith("array_api_strict"):
        return "array_api_strict"
    return None


def device_of(x: Array) -> Any:
    """The device of an array of any supported library (NumPy: ``"cpu"``).

    Parameters
    ----------
    x : array
        An array of any supported library.

    Returns
    -------
    object
        The library's device object, as given by ``array_api_compat.device``.
    """
    import array_api_compat as compat

    return compat.device(x)


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any supported library (or host data) to a NumPy array.

    Parameters
    ----------
    x : array_like
        An array of any supported library, or host data (lists, scalars, NumPy arrays).

    Returns
    -------
    numpy.ndarray
        A writable host array of the same shape as ``x``, a copy that shares no memory with
        ``x`` (NumPy input is returned without a copy).

    Examples
    --------
    >>> to_numpy([1.0, 2.0])
    array([1., 2.])
    """
    name = array_backend_name(x)
    if name is None or name == "numpy":
        return np.asarray(x)
    if name == "cupy":
        return x.get()
    # CPU tensors and array_api_strict arrays would share memory with their NumPy view: the
    # caller gets a copy of its own, as from a GPU
    if name == "torch":
        x = x.detach()
        return x.numpy().copy() if x.device.type == "cpu" else x.cpu().numpy()
    if name == "array_api_strict":
        strict = importlib.import_module("array_api_strict")
        return np.array(x.to_device(strict.Device("CPU_DEVICE")), copy=True)
    host = np.asarray(x)
    # JAX (on CPU) hands out read-only views of its buffers: users get writable arrays of
    # their own, as from every other backend
    return host if host.flags.writeable else host.copy()
