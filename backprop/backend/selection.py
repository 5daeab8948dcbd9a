"""Which backend a name means, and which one is current: resolve, set/get/use_backend.

Precedence of the backend choice, highest first: an explicit ``backend=``/``device=`` argument;
``with use_backend(...)``; ``set_backend(...)``; the environment variable ``BACKPROP_BACKEND``
(``"cupy"``, ``"torch:cuda:0"``, ``"array_api_strict:device1"``); the default ``"numpy"``.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from .arrays import array_backend_name, device_of
from .core import Backend, BackendError, BackendNotInstalledError
from .namespaces import _cupy_namespace, _numpy_namespace, _torch_namespace

Array = Any

BACKENDS = ("numpy", "cupy", "torch", "jax", "array_api_strict")
ENV_VAR = "BACKPROP_BACKEND"

# The module to import for each backend, and how to install it when it is missing.
_MODULES = {
    "numpy": "numpy",
    "cupy": "cupy",
    "torch": "torch",
    "jax": "jax",
    "array_api_strict": "array_api_strict",
}
_INSTALL = {
    "numpy": "pip install numpy",
    "cupy": "pip install 'backprop[cuda12]' or 'backprop[cuda13]' (cupy-cuda12x / cupy-cuda13x, "
    "matching your CUDA driver)",
    "torch": "pip install torch",
    "jax": "pip install jax",
    "array_api_strict": "pip install array-api-strict (or 'backprop[test]')",
}
_ALIASES = {"np": "numpy", "cp": "cupy", "pytorch": "torch", "strict": "array_api_strict"}


def _import(name: str) -> ModuleType:
    module = _MODULES[name]
    if importlib.util.find_spec(module) is None:
        raise BackendNotInstalledError(
            f"Backend {name!r} needs the package {module!r}, which is not installed. "
            f"Install it with: {_INSTALL[name]}."
        )
    return importlib.import_module(module)


def _parse(spec: str) -> tuple[str, str | None]:
    name, _, device = spec.strip().partition(":")
    name = _ALIASES.get(name.lower(), name.lower())
    return name, (device or None)


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(
            f"backend must be a string, one of {list(BACKENDS)}; received {type(name).__name__}."
        )
    if name not in BACKENDS:
        raise BackendError(
            f"Unknown backend {name!r}. Expected one of {list(BACKENDS)} "
            "(optionally with a device, e.g. 'torch:cuda:0')."
        )
    return name


def _cuda_index(device: Any, name: str) -> int:
    if isinstance(device, bool):
        raise BackendError(f"device for {name} must be an int or 'cuda:N', received {device!r}.")
    if isinstance(device, int):
        return device
    text = str(device).lower()
    for prefix in ("cuda:", "gpu:", "cuda", "gpu"):
        if text.startswith(prefix):
            text = text[len(prefix) :] or "0"
            break
    if not text.isdigit():
        raise BackendError(
            f"device {device!r} is not valid for the {name} backend; expected None, an int "
            "or 'cuda:N'."
        )
    return int(text)


def _jax_device(jax: ModuleType, device: str | int) -> Any:
    """The ``jax.Device`` that ``device`` names: ``"cpu"``, ``"gpu:1"``, ``"cuda:0"`` or ``1``.

    An index alone counts on the default platform. Like the cupy and torch backends, a device
    whose index is not a non-negative integer is refused (not read from the end of the list).
    """
    default = jax.default_backend()
    there = [
        f"{p}:{i}" for p in dict.fromkeys([default, "cpu"]) for i in range(len(jax.devices(p)))
    ]
    text = str(device).lower()
    platform, _, index = text.partition(":")
    if platform.lstrip("-").isdigit():  # an index alone: on the default platform
        platform, index = default, text
    platform = "gpu" if platform in ("cuda", "gpu") else platform
    if isinstance(device, bool) or (index and not (index.isascii() and index.isdigit())):
        raise BackendError(
            f"device {device!r} is not valid for the jax backend; expected None, a jax.Device, "
            f"an index N or 'platform:N' with N = 0, 1, ...: one of {there}."
        )
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        raise BackendError(f"jax has no {platform!r} devices here; it has {there}.") from None
    i = int(index or 0)
    if i >= len(devices):
        raise BackendError(
            f"jax device {device!r} does not exist: {len(devices)} visible, {there}."
        )
    return devices[i]


def _make(name: str, device: Any) -> Backend:
    """Build a Backend for a validated name and a raw device specification."""
    if name == "numpy":
        _import("numpy")
        xp = _numpy_namespace()

        if device not in (None, "cpu", "CPU"):
            raise BackendError(f"The numpy backend has only the device 'cpu'; received {device!r}.")
        return Backend("numpy", xp, "cpu")
    if name == "array_api_strict":
        strict = _import("array_api_strict")
        if device is None or (isinstance(device, str) and device.lower() == "cpu"):
            device = "CPU_DEVICE"
        if isinstance(device, strict.Device):
            return Backend(name, strict, device)
        valid = [d._device for d in strict.__array_namespace_info__().devices()]
        if str(device) not in valid:
            raise BackendError(
                f"array_api_strict has no device {device!r}; expected one of {valid}."
            )
        return Backend(name, strict, strict.Device(str(device)))
    if name == "torch":
        torch = _import("torch")
        xp = _torch_namespace()

        try:
            dev = torch.device("cpu" if device is None else device)
        except (RuntimeError, TypeError) as exc:
            raise BackendError(f"Invalid torch device {device!r}: {exc}") from None
        if dev.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0:
                raise BackendError(
                    f"torch device {device!r} requested but torch sees no CUDA GPU "
                    "(CPU-only build or no driver). Use device='cpu'."
                )
            index = 0 if dev.index is None else dev.index
            if index >= count:
                raise BackendError(
                    f"torch device {device!r} does not exist: {count} CUDA device(s) visible."
                )
            dev = torch.device("cuda", index)
        return Backend(name, xp, dev)
    if name == "jax":
        jax = _import("jax")
        # float64 is part of what backprop promises on every backend (gradient checks, parity).
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as xp

        if device is None:
            return Backend(name, xp, jax.devices()[0])
        if not isinstance(device, str | int):
            return Backend(name, xp, device)
        return Backend(name, xp, _jax_device(jax, device))
    # cupy: check the GPU before importing the namespace wrapper, so errors name the cause
    cupy = _import("cupy")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError when there is no driver or no GPU
        raise BackendError(
            f"CuPy is installed but no usable CUDA GPU answers ({exc}). Check the NVIDIA driver "
            "with nvidia-smi, or choose another backend, e.g. backend='numpy'."
        ) from None
    if count == 0:
        raise BackendError("CuPy is installed but no CUDA GPU is visible.")
    if device is None:
        dev = cupy.cuda.Device()
    elif isinstance(device, cupy.cuda.Device):
        dev = device
    else:
        index = _cuda_index(device, "cupy")
        if index >= count:
            raise BackendError(
                f"cupy device {device!r} does not exist: {count} CUDA device(s) visible "
                f"(valid indices 0..{count - 1})."
            )
        dev = cupy.cuda.Device(index)
    return Backend(name, _cupy_namespace(), dev)


def backend_of(x: Array) -> Backend:
    """The :class:`Backend` an array lives on (NumPy for lists and other host data).

    Parameters
    ----------
    x : array_like
        An array of any supported library, or host data.

    Returns
    -------
    Backend
        The backend of ``x``'s library on ``x``'s device; the NumPy backend for host data.
    """
    name = array_backend_name(x)
    if name is None or name == "numpy":
        return resolve("numpy")
    return _make(name, device_of(x))


# ---------------------------------------------------------------------------------------------
# The current backend: explicit > context manager > set_backend > environment > default

_context: contextvars.ContextVar[Backend | None] = contextvars.ContextVar(
    "backprop_backend", default=None
)
_global: Backend | None = None


def resolve(backend: str | Backend | None = None, device: Any = None) -> Backend:
    """Resolve a backend name (and device) into a :class:`Backend`, following the precedence.

    Parameters
    ----------
    backend : str or Backend, optional
        ``"numpy"``, ``"cupy"``, ``"torch"``, ``"jax"``, ``"array_api_strict"``, optionally
        with ``":device"``; None means "whatever is current" (context, set_backend, env, numpy).
    device : optional
        Device for that backend: None (library default), ``"cpu"``, ``"cuda:1"``, an int
        (CuPy), ``"device1"``/``"no_float64"`` (array_api_strict), a torch device string.

    Returns
    -------
    Backend
        The backend and device to use.

    Raises
    ------
    TypeError
        If ``backend`` is neither a string, a Backend nor None.
    BackendError
        If the backend name is unknown or the device does not exist or cannot be used.
    BackendNotInstalledError
        If the backend's array library is not installed.
    """
    if isinstance(backend, Backend):
        if isinstance(device, np.integer):
            device = int(device)
        return backend if device is None else _make(backend.name, device)
    if backend is None:
        current = _context.get() or _global
        if current is not None:
            return current if device is None else _make(current.name, device)
        backend = os.environ.get(ENV_VAR) or "numpy"
    name, spec_device = _parse(_check_name_type(backend))
    if isinstance(device, np.integer):  # a device index from NumPy (np.arange over GPUs)
        device = int(device)
    return _make(_check_name(name), device if device is not None else spec_device)


def _check_name_type(backend: Any) -> str:
    if not isinstance(backend, str):
        raise TypeError(
            f"backend must be a string such as 'numpy' or 'torch:cuda:0', one of "
            f"{list(BACKENDS)}; received {type(backend).__name__}."
        )
    return backend


def set_backend(name: str | None, device: Any = None) -> Backend:
    """Set the process-wide default backend (below ``use_backend`` and explicit arguments).

    ``set_backend(None)`` removes it again: ``BACKPROP_BACKEND`` and then NumPy apply.

    Parameters
    ----------
    name : str or None
        A backend name, optionally with ``":device"`` (see :func:`resolve`), or None to clear.
    device : optional
        Device for that backend (see :func:`resolve`).

    Returns
    -------
    Backend
        The backend now current (:func:`get_backend`).

    Raises
    ------
    TypeError
        If ``name`` is neither a string nor None.
    BackendError
        If the backend name is unknown or the device cannot be used.
    BackendNotInstalledError
        If the backend's array library is not installed.
    """
    global _global
    _global = None if name is None else resolve(_check_name_type(name), device)
    return get_backend()


def get_backend() -> Backend:
    """The backend a new model would use now.

    Returns
    -------
    Backend
        From ``use_backend``, else ``set_backend``, else ``BACKPROP_BACKEND``, else NumPy.

    Raises
    ------
    BackendError
        If ``BACKPROP_BACKEND`` names an unknown backend or an unusable device.
    BackendNotInstalledError
        If ``BACKPROP_BACKEND`` names a backend whose library is not installed.
    """
    return resolve(None)


@contextlib.contextmanager
def use_backend(name: str, device: Any = None) -> Iterator[Backend]:
    """Use a backend inside a ``with`` block (overrides ``set_backend`` and the environment).

    Parameters
    ----------
    name : str
        A backend name, optionally with ``":device"`` (see :func:`resolve`).
    device : optional
        Device for that backend (see :func:`resolve`).

    Yields
    ------
    Backend
        The backend in use inside the block.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    BackendError
        If the backend name is unknown or the device cannot be used.
    BackendNotInstalledError
        If the backend's array library is not installed.

    Examples
    --------
    >>> with use_backend("numpy") as b:
    ...     b.device
    'cpu'
    """
    token = _context.set(resolve(_check_name_type(name), device))
    try:
        yield _context.get()
    finally:
        _context.reset(token)


def available_backends() -> list[str]:
    """Backends that are installed and usable on this machine (cupy only when a GPU answers).

    Returns
    -------
    list of str
        Names from ``BACKENDS``, in that order, whose library imports and whose default
        device can be used.
    """
    usable = []
    for name in BACKENDS:
        if importlib.util.find_spec(_MODULES[name]) is None:
            continue
        try:
            _make(name, None)
        except Exception:
            continue
        usable.append(name)
    return usable
