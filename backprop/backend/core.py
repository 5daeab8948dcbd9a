"""Array backends: names -> (Array API namespace, device), and moves between host and device.

This is the only module of backprop that names an array library. Everything else receives a
:class:`Backend` (or an ``xp`` namespace taken from one) and speaks the Python Array API standard.

Precedence of the backend choice, highest first: an explicit ``backend=``/``device=`` argument;
``with use_backend(...)``; ``set_backend(...)``; the environment variable ``BACKPROP_BACKEND``
(``"cupy"``, ``"torch:cuda:0"``, ``"array_api_strict:device1"``); the default ``"numpy"``.

Examples
--------
>>> import backprop as bp
>>> with bp.use_backend("numpy"):
...     bp.get_backend().name
'numpy'
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import importlib.util
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

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


class BackendError(ValueError):
    """A backend or device that cannot be used here (unknown, not installed, no such device)."""


class BackendNotInstalledError(BackendError, ImportError):
    """The array library of a backend is not installed."""


@dataclass(frozen=True)
class Backend:
    """An array namespace and a device: where a model's arrays live.

    Attributes
    ----------
    name : str
        One of ``BACKENDS``.
    xp : module
        The Array API namespace (array-api-compat's wrapper where the library needs one).
    device : object
        The library's device object; every array the model makes goes there.
    """

    name: str
    xp: ModuleType
    device: Any

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={_device_str(self)!r})"

    # -- dtypes ---------------------------------------------------------------------------
    def dtype(self, name: str | Any) -> Any:
        """The namespace's floating dtype for ``"float32"``/``"float64"`` (or a dtype object).

        Parameters
        ----------
        name : str or dtype
            ``"float32"`` or ``"float64"``, or a dtype object of any library whose string form
            names one of them.

        Returns
        -------
        dtype
            ``xp.float32`` or ``xp.float64`` of this backend's namespace.

        Raises
        ------
        ValueError
            If ``name`` is not float32 or float64.
        BackendError
            If float64 is asked for on a device without float64 support.
        """
        if not isinstance(name, str):
            name = _dtype_name(name)
        if name not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', received {name!r}.")
        if name == "float64" and not self.supports_float64:
            raise BackendError(
                f"{self!r} does not support float64; use dtype='float32' for this device."
            )
        return getattr(self.xp, name)

    @property
    def supports_float64(self) -> bool:
        """Whether arrays of dtype float64 can live on this device."""
        if self.name == "array_api_strict":
            return not any(tag in repr(self.device) for tag in ("no_float64", "no_x64"))
        if self.name == "torch":
            return self.device.type != "mps"
        return True

    @property
    def int_dtype(self) -> Any:
        """The integer dtype used for labels and indices on this device."""
        if self.name == "array_api_strict" and "no_x64" in repr(self.device):
            return self.xp.int32
        return self.xp.int64

    # -- host <-> device --------------------------------------------------------------------
    def asarray(self, x: Any, dtype: Any = None) -> Array:
        """Put ``x`` (host data or an array of any supported library) on this backend/device.

        Parameters
        ----------
        x : array_like
            NumPy array, list, scalar, or an array of any supported library.
        dtype : str or dtype, optional
            ``"float32"``, ``"float64"``, a dtype of this namespace, or None to keep the kind.

        Returns
        -------
        array
            An array of this backend's library on its device, same shape as ``x``; ``x``
            itself when it is already there with the requested dtype.

        Raises
        ------
        ValueError
            If ``dtype`` is a float name other than ``"float32"``/``"float64"``.
        BackendError
            If ``dtype`` is ``"float64"`` and the device has no float64 support.
        """
        if isinstance(dtype, str):
            dtype = self.dtype(dtype) if dtype.startswith("float") else getattr(self.xp, dtype)
        if self.owns(x):
            if self.name == "torch" and x.requires_grad:
                # data, not a variable: the model's arrays never carry autograd history
                x = x.detach()
            if dtype is not None and x.dtype != dtype:
                with self.activate():
                    x = self.xp.astype(x, dtype)
            return x
        host = to_numpy(x)
        if self.name == "numpy":
            return np.asarray(host, dtype=None if dtype is None else dtype)
        if self.name == "cupy":
            with self.device:
                return self.xp.asarray(host, dtype=dtype)
        if self.name == "jax":
            import jax

            # one host conversion, then one transfer (jnp.asarray of host data costs more)
            host = np.asarray(host, dtype=None if dtype is None else np.dtype(dtype))
            return jax.device_put(host, self.device)
        return self.xp.asarray(host, dtype=dtype, device=self.device)

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this backend's library on this backend's device.

        Parameters
        ----------
        x : object
            Any value; host data and arrays of other libraries give False.

        Returns
        -------
        bool
            True when ``x`` belongs to this backend's library and lives on ``self.device``.
        """
        return array_backend_name(x) == self.name and _same_device(device_of(x), self.device)

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> Array:
        """A zero array on this device.

        Parameters
        ----------
        shape : tuple of int
            Shape of the array.
        dtype : dtype
            A dtype of this backend's namespace, e.g. from :meth:`dtype`.

        Returns
        -------
        array of shape ``shape``
            Zeros of ``dtype`` on ``self.device``.
        """
        if self.name == "cupy":
            with self.device:
                return self.xp.zeros(shape, dtype=dtype)
        return self.xp.zeros(shape, dtype=dtype, device=self.device)

    def random_uniform(self, rng: Any, shape: tuple[int, ...], dtype: Any) -> Array:
        """U[0, 1) draws of ``shape`` on this device.

        ``rng`` is a seeded host ``numpy.random.Generator`` (the draws are moved to the device:
        the stream is identical on every backend, which parity tests need) or a generator of
        this device from :meth:`device_generator` (no host round trip).

        Parameters
        ----------
        rng : numpy.random.Generator or device generator
            A host generator, or the generator returned by :meth:`device_generator`.
        shape : tuple of int
            Shape of the draws.
        dtype : dtype or str
            Floating dtype of the result (a dtype of this namespace, or its name).

        Returns
        -------
        array of shape ``shape``
            Uniform draws in [0, 1) of ``dtype`` on ``self.device``.
        """
        if isinstance(rng, np.random.Generator):
            return self.asarray(rng.random(shape), dtype=dtype)
        with self.device:
            return rng.random(shape, dtype=dtype)

    def device_generator(self, seed: int) -> Any:
        """A generator that draws on the device itself, or None where the host path is used.

        Only CuPy gets one: a host draw per dropout step would cost a transfer per step.

        Parameters
        ----------
        seed : int
            Seed of the generator.

        Returns
        -------
        cupy.random.Generator or None
            A CuPy generator on ``self.device`` for the cupy backend, else None.
        """
        if self.name != "cupy":
            return None
        cupy = importlib.import_module("cupy")
        with self.device:
            return cupy.random.default_rng(seed)

    def compile(self, fn: Any) -> Any:
        """``fn`` compiled as one program where the library can (``jax.jit``), else None.

        Parameters
        ----------
        fn : callable
            A function of arrays of this backend.

        Returns
        -------
        callable or None
            ``jax.jit(fn)`` for the jax backend, else None.
        """
        if self.name != "jax":
            return None
        return importlib.import_module("jax").jit(fn)

    def scan(self, step: Any, carry: Any, xs: tuple) -> tuple:
        """Loop ``step`` over the leading axis of ``xs``, carrying ``carry`` (``lax.scan``).

        On JAX this is ``jax.lax.scan``: inside a compiled function, the loop becomes one
        compiled loop instead of one copy of the step per iteration. Elsewhere, a Python loop
        with the same result.

        Parameters
        ----------
        step : callable
            ``step(carry, inputs) -> (carry, outputs)``; ``inputs`` is a tuple of the ``i``-th
            rows of ``xs``, ``outputs`` a tuple of arrays.
        carry : pytree of arrays
            The state threaded through the loop.
        xs : tuple of arrays, each of shape (steps, ...)
            The per-iteration inputs.

        Returns
        -------
        carry : pytree of arrays
            The final state.
        outputs : tuple of arrays, each of shape (steps, ...)
            Each output of ``step``, stacked over the iterations.
        """
        if self.name == "jax":
            return importlib.import_module("jax").lax.scan(step, carry, xs)
        outs = []
        for i in range(xs[0].shape[0]):
            carry, out = step(carry, tuple(x[i, ...] for x in xs))
            outs.append(out)
        return carry, tuple(self.xp.stack([o[j] for o in outs]) for j in range(len(outs[0])))

    def describe(self) -> str:
        """A line naming the device, e.g. ``cuda:0 (NVIDIA H100, 79.6 GiB)`` or ``cpu``.

        Returns
        -------
        str
            The device name; for CUDA devices (cupy, torch) followed by the GPU's name and
            total memory in GiB.
        """
        name = _device_str(self)
        if self.name == "cupy":
            cupy = importlib.import_module("cupy")
            props = cupy.cuda.runtime.getDeviceProperties(self.device.id)
            gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            return f"{name} ({gpu}, {props['totalGlobalMem'] / 2**30:.1f} GiB)"
        if self.name == "torch" and self.device.type == "cuda":
            torch = importlib.import_module("torch")
            props = torch.cuda.get_device_properties(self.device)
            return f"{name} ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
        return name

    def to_numpy(self, x: Array) -> np.ndarray:
        """Copy an array of this backend to a NumPy array on the host.

        Parameters
        ----------
        x : array
            An array of this backend (host data is accepted too).

        Returns
        -------
        numpy.ndarray
            A host array of the same shape and dtype as ``x``.
        """
        return to_numpy(x)

    @property
    def mutable(self) -> bool:
        """Whether arrays can be updated in place (False for JAX: updates rebind)."""
        return self.name != "jax"

    def activate(self) -> Any:
        """A context in which this backend's device is the current one.

        CuPy launches kernels and allocates results on the *current* GPU, whatever GPU the
        operands live on; the model's work runs inside this context so that a model on
        ``cuda:1`` computes on GPU 1. Other libraries place results by their operands.

        Returns
        -------
        context manager
            ``with backend.activate(): ...``
        """
        return self.device if self.name == "cupy" else _NO_CONTEXT

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on synchronous CPU libraries)."""
        if self.name == "cupy":
            self.device.synchronize()
        elif self.name == "torch" and self.device.type == "cuda":
            importlib.import_module("torch").cuda.synchronize(self.device)

    # -- recorded steps (CUDA graphs) -------------------------------------------------------
    @property
    def can_capture(self) -> bool:
        """Whether :meth:`capture` can record work on this device (CuPy, torch on CUDA)."""
        return self.name == "cupy" or (self.name == "torch" and self.device.type == "cuda")

    def capture(self, fn: Any) -> Any:
        """Run ``fn()`` once, then record it as a CUDA graph; returns the graph's replay.

        ``fn`` takes no arguments, reads and writes only arrays that outlive it (the model's
        flat vectors, static input buffers), reads nothing back to the host and turns no
        Python number into a device array: a replay repeats its device work on whatever those
        arrays hold then. The first call is real work (it compiles kernels and creates
        library handles, which a capture cannot do); the recording runs nothing. The graph
        replays on the current stream, after the work queued before it.

        CuPy refuses its own cuBLAS calls during a capture, so ``xp.matmul`` is routed to
        cuBLAS through nvmath-python on a handle bound to the capturing stream; the
        temporaries come from a memory pool kept with the graph, so no other work reuses the
        memory the graph writes. torch records with ``torch.cuda.graph`` (its own pool).

        Parameters
        ----------
        fn : callable
            The step, as a function of no arguments.

        Returns
        -------
        callable or None
            ``replay()``; None (without calling ``fn``) where the backend cannot capture.

        Raises
        ------
        CaptureError
            If the recording failed (after the first, real, call of ``fn``).
        """
        if not self.can_capture:
            return None
        if self.name == "cupy":
            return _cupy_capture(self, fn)
        return _torch_capture(self, fn)

    @property
    def spec(self) -> str:
        """``"name"`` or ``"name:device"``: the string form accepted by :func:`resolve`."""
        dev = _device_str(self)
        return self.name if dev in ("cpu", "CPU_DEVICE") else f"{self.name}:{dev}"


# ---------------------------------------------------------------------------------------------
# Which library does an array belong to?


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


_NO_CONTEXT = contextlib.nullcontext()  # reusable: activate() on CPU libraries costs nothing


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


# ---------------------------------------------------------------------------------------------
# Resolving names and devices


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


# ---------------------------------------------------------------------------------------------
# Fused kernels (CuPy): one pass over the arrays instead of one per operation

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


# ---------------------------------------------------------------------------------------------
# Recording a step as a CUDA graph


class CaptureError(RuntimeError):
    """A step could not be recorded as a CUDA graph (it still ran once, for real)."""


_CAPTURE = threading.local()  # .gemm: the recording's cuBLAS product, while one is recorded
_GEMMS: dict[int, Any] = {}
_CUBLAS_OP_N, _CUBLAS_OP_T = 0, 1
_WORKSPACE_BYTES = 32 * 2**20  # cuBLAS's recommended workspace on Hopper


class _Gemm:
    """Row-major ``x1 @ x2`` with cuBLAS (nvmath-python's bindings) on a handle of our own.

    cuBLAS is column-major: the row-major product ``C = A @ B`` is the column-major
    ``C^T = B^T A^T``, so the operands go in swapped. A C-contiguous matrix is read as it is
    (``N``, leading dimension its row length); an F-contiguous one (a transpose view such as
    ``x.T``) is read transposed (``T``, leading dimension its column length).
    """

    def __init__(self, device: Any):
        try:
            self.cublas = importlib.import_module("nvmath.bindings.cublas")
        except ImportError as exc:
            raise CaptureError(
                "recording a CuPy step needs cuBLAS bindings that work during a capture: "
                "pip install nvmath-python"
            ) from exc
        cupy = importlib.import_module("cupy")
        self.cupy = cupy
        with device:
            self.handle = self.cublas.create()
            self.workspace = cupy.empty(_WORKSPACE_BYTES, dtype=cupy.uint8)
        # alpha and beta are read from the host when the call is recorded
        self.scalars = {
            np.dtype(t): (np.ones(1, dtype=t), np.zeros(1, dtype=t)) for t in ("f4", "f8")
        }
        self.routines = {np.dtype("f4"): self.cublas.sgemm, np.dtype("f8"): self.cublas.dgemm}

    def bind(self, stream: Any) -> None:
        """Issue the calls on ``stream`` (setting a stream resets the workspace: set both)."""
        self.cublas.set_stream(self.handle, stream.ptr)
        self.cublas.set_workspace(self.handle, self.workspace.data.ptr, _WORKSPACE_BYTES)

    def takes(self, a: Any, b: Any) -> bool:
        return (
            a.ndim == 2
            and b.ndim == 2
            and a.dtype == b.dtype
            and np.dtype(a.dtype) in self.routines
            and a.shape[1] == b.shape[0]
            and 0 not in (*a.shape, b.shape[1])
        )

    def _operand(self, x: Any) -> tuple[Any, int, int]:
        if not (x.flags.c_contiguous or x.flags.f_contiguous):
            x = self.cupy.ascontiguousarray(x)
        if x.flags.c_contiguous:
            return x, _CUBLAS_OP_N, x.shape[1]
        return x, _CUBLAS_OP_T, x.shape[0]

    def __call__(self, a: Any, b: Any) -> Any:
        (m, k), n = a.shape, b.shape[1]
        a, op_a, lda = self._operand(a)
        b, op_b, ldb = self._operand(b)
        c = self.cupy.empty((m, n), dtype=a.dtype)
        one, zero = self.scalars[np.dtype(a.dtype)]
        self.routines[np.dtype(a.dtype)](
            self.handle, op_b, op_a, n, m, k, one.ctypes.data, b.data.ptr, ldb,
            a.data.ptr, lda, zero.ctypes.data, c.data.ptr, n,
        )  # fmt: skip
        return c


def _cupy_capture(backend: Backend, fn: Any) -> Any:
    cupy = importlib.import_module("cupy")
    with backend.device:
        try:
            if backend.device.id not in _GEMMS:
                _GEMMS[backend.device.id] = _Gemm(backend.device)
            gemm = _GEMMS[backend.device.id]
            gemm.bind(cupy.cuda.get_current_stream())
        except Exception as exc:
            fn()  # the step still runs once, as the caller counts on
            if isinstance(exc, CaptureError):
                raise
            raise CaptureError(f"no cuBLAS handle to record with: {exc!r}") from exc
        # The real first call, with the products the recording will use: it compiles the
        # kernels and makes cuBLAS's first calls on the handle outside the recording.
        _CAPTURE.gemm = gemm
        try:
            fn()
        finally:
            _CAPTURE.gemm = None
        try:
            stream = cupy.cuda.Stream(non_blocking=True)  # the legacy stream cannot record
            pool = cupy.cuda.MemoryPool()
            gemm.bind(stream)
            with cupy.cuda.using_allocator(pool.malloc), stream:
                # CuPy's default mode is relaxed: the pool may cudaMalloc during the recording
                stream.begin_capture()
                _CAPTURE.gemm = gemm
                try:
                    fn()
                except BaseException:
                    with contextlib.suppress(Exception):  # the step's error is the one to tell
                        stream.end_capture()
                    raise
                finally:
                    _CAPTURE.gemm = None
                graph = stream.end_capture()
        except Exception as exc:
            raise CaptureError(f"CuPy could not record the step: {exc!r}") from exc

    def replay() -> None:
        graph.launch()  # on the current stream

    replay.keep = (graph, pool, stream, gemm)  # what the graph's addresses belong to
    return replay


def _torch_capture(backend: Backend, fn: Any) -> Any:
    torch = importlib.import_module("torch")
    with torch.cuda.device(backend.device):
        # torch asks for the warm-up on a side stream (lazy initialisations stay off the graph)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):  # a side stream and a private memory pool
                fn()
        except Exception as exc:
            raise CaptureError(f"torch could not record the step: {exc!r}") from exc
    return graph.replay


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
        text = str(device).lower()
        platform, _, index = text.partition(":")
        platform = "gpu" if platform in ("cuda", "gpu") else platform
        if platform.isdigit():
            platform, index = jax.default_backend(), platform
        try:
            devices = jax.devices(platform)
        except RuntimeError:
            raise BackendError(f"jax has no {platform!r} devices here.") from None
        i = int(index or 0)
        if i >= len(devices):
            raise BackendError(f"jax device {device!r} does not exist: {len(devices)} visible.")
        return Backend(name, xp, devices[i])
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


def _dtype_name(dtype: Any) -> str:
    text = str(dtype)
    for name in ("float64", "float32", "float16", "int64", "int32", "bool"):
        if name in text:
            return name
    return text


def _device_str(b: Backend) -> str:
    d = b.device
    if b.name == "array_api_strict":
        return d._device
    if b.name == "cupy":
        return f"cuda:{d.id}"
    return str(d)


def _same_device(a: Any, b: Any) -> bool:
    return a == b or str(a) == str(b)


# ---------------------------------------------------------------------------------------------
# NCCL (CuPy's binding): sums between GPUs for backprop.distributed


def nccl_module() -> ModuleType:
    """CuPy's NCCL binding (``cupy.cuda.nccl``).

    Returns
    -------
    module

    Raises
    ------
    BackendNotInstalledError
        If CuPy is not installed or was built without NCCL.
    """
    cupy = _import("cupy")
    nccl = importlib.import_module("cupy.cuda.nccl")
    if not getattr(nccl, "available", False):
        raise BackendNotInstalledError(
            f"CuPy {cupy.__version__} has no NCCL: install NCCL for its CUDA version "
            "(e.g. pip install nvidia-nccl-cu12), or use the MPI communicator, which copies "
            "through host memory (communicator='mpi')."
        )
    return nccl


def nccl_communicator(size: int, uid: Any, rank: int, device: int) -> Any:
    """An NCCL communicator for this rank on GPU ``device``.

    Parameters
    ----------
    size, rank : int
        Number of ranks and this rank's index.
    uid : tuple
        The id from ``nccl_module().get_unique_id()`` on rank 0, shared with every rank.
    device : int
        This rank's GPU.

    Returns
    -------
    cupy.cuda.nccl.NcclCommunicator
    """
    cupy, nccl = _import("cupy"), nccl_module()
    with cupy.cuda.Device(device):
        return nccl.NcclCommunicator(size, uid, rank)


def _nccl_args(x: Array) -> tuple[int, int, int]:
    nccl = nccl_module()
    dtypes = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
    if str(x.dtype) not in dtypes:
        raise TypeError(f"NCCL sums float32 or float64 arrays, received {x.dtype}.")
    stream = _import("cupy").cuda.get_current_stream().ptr
    return x.data.ptr, dtypes[str(x.dtype)], stream


def nccl_allreduce(comm: Any, x: Array) -> None:
    """Sum a contiguous CuPy array over all ranks, in place, on the current stream.

    Parameters
    ----------
    comm : cupy.cuda.nccl.NcclCommunicator
    x : cupy.ndarray, shape (n,)
        float32 or float64, C-contiguous.
    """
    ptr, dtype, stream = _nccl_args(x)
    comm.allReduce(ptr, ptr, x.size, dtype, nccl_module().NCCL_SUM, stream)


def nccl_broadcast(comm: Any, x: Array, root: int) -> None:
    """Rank ``root``'s values of a contiguous CuPy array on every rank, in place.

    Parameters
    ----------
    comm : cupy.cuda.nccl.NcclCommunicator
    x : cupy.ndarray, shape (n,)
        float32 or float64, C-contiguous.
    root : int
        The sending rank.
    """
    ptr, dtype, stream = _nccl_args(x)
    comm.bcast(ptr, x.size, dtype, root, stream)
