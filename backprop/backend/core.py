"""The :class:`Backend` class: an array namespace and a device, where a model's arrays live.

A Backend puts data on its device and back, makes arrays there, compiles (JAX) or records
(CUDA graphs) steps. Which Backend a name means, and which one is current, is
:mod:`backprop.backend.selection`'s work, above this module.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .arrays import array_backend_name, device_of, to_numpy
from .capture import _cupy_capture, _torch_capture

Array = Any


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


_NO_CONTEXT = contextlib.nullcontext()  # reusable: activate() on CPU libraries costs nothing


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
