"""Shared fixtures: one backend fixture over every backend usable here, and checked comparisons.

Backends: numpy; array_api_strict on CPU_DEVICE, on its fake device ``device1`` (refuses silent
host conversion and mixing devices, like a GPU) and, float32 only, ``no_float64``; torch (CPU)
and jax when installed; cupy when a GPU answers (marked ``gpu``).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import backprop as bp
from backprop.backend import Backend, resolve


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cupy_usable() -> bool:
    if not _has("cupy"):
        return False
    try:
        resolve("cupy")
    except Exception:
        return False
    return True


# The suite's matrices are small: one BLAS thread is fastest for them, and spares the 2-core
# machines the thread oversubscription that makes OpenBLAS 10-30x slower under load.
threadpool_limits(1)

HAS_TORCH = _has("torch")
if HAS_TORCH and os.environ.get("PYTEST_XDIST_WORKER"):
    # under pytest-xdist each core runs a worker: torch's own pool of one thread per core
    # would oversubscribe them as OpenBLAS's does
    import torch

    torch.set_num_threads(1)
HAS_JAX = _has("jax")
HAS_CUPY = _cupy_usable()

if HAS_JAX:
    # The suite builds hundreds of small models whose compiled programs repeat (the same
    # network, data shapes and settings in test after test): XLA's persistent cache compiles
    # each distinct program once per run instead of once per model.
    import atexit
    import shutil
    import tempfile

    import jax

    _JAX_CACHE = tempfile.mkdtemp(prefix="backprop-jax-")
    atexit.register(shutil.rmtree, _JAX_CACHE, ignore_errors=True)
    jax.config.update("jax_compilation_cache_dir", _JAX_CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

# (name, device, supports float64)
_SPECS = [
    ("numpy", None, True),
    ("array_api_strict", "CPU_DEVICE", True),
    ("array_api_strict", "device1", True),
    ("array_api_strict", "no_float64", False),
]
if HAS_TORCH:
    _SPECS.append(("torch", "cpu", True))
if HAS_JAX:
    _SPECS.append(("jax", "cpu", True))
if HAS_CUPY:
    _SPECS.append(("cupy", None, True))


def _param(name, device):
    marks = [pytest.mark.gpu] if name == "cupy" else []
    ident = name if device in (None, "cpu", "CPU_DEVICE") else f"{name}:{device}"
    return pytest.param((name, device), id=ident, marks=marks)


ALL_BACKENDS = [_param(n, d) for n, d, _ in _SPECS]
FLOAT64_BACKENDS = [_param(n, d) for n, d, f64 in _SPECS if f64]


@pytest.fixture(params=ALL_BACKENDS)
def backend(request) -> Backend:
    """Every usable backend/device (use ``float_dtype`` for a dtype it supports)."""
    return resolve(*request.param)


@pytest.fixture(params=FLOAT64_BACKENDS)
def backend64(request) -> Backend:
    """Every usable backend/device that has float64 (gradient checks, parity)."""
    return resolve(*request.param)


@pytest.fixture
def xp(backend64):
    """The namespace of a float64-capable backend."""
    return backend64.xp


def eps(dtype_name: str) -> float:
    """Machine epsilon of a floating dtype, by name."""
    return float(np.finfo(dtype_name).eps)


def dtype_name(dtype) -> str:
    return "float64" if "64" in str(dtype) else "float32"


def assert_close(actual, expected, backend: Backend, *, rtol=None, atol=0.0, dtype=None):
    """Check namespace, device, dtype and shape of ``actual``, then its values.

    The default ``rtol`` is 100 eps of the dtype: enough for a few reordered roundings, far
    below any real error.
    """
    assert backend.owns(actual), (
        f"result is not a {backend.name} array on {backend.device}: {type(actual)}"
    )
    if dtype is not None:
        assert actual.dtype == dtype, f"dtype {actual.dtype} != {dtype}"
    host = bp.to_numpy(actual)
    expected = np.asarray(bp.to_numpy(expected))
    assert host.shape == expected.shape, f"shape {host.shape} != {expected.shape}"
    if rtol is None:
        rtol = 100 * eps(dtype_name(actual.dtype))
    np.testing.assert_allclose(host, expected, rtol=rtol, atol=atol)


def numeric_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar host function f at the float64 host array x."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f(x)
        flat[i] = old - h
        down = f(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return g


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def circles():
    """A small two-class problem: 200 points on two noisy rings (host NumPy)."""
    r = np.random.default_rng(0)
    n = 200
    angle = r.uniform(0, 2 * np.pi, n)
    radius = np.where(np.arange(n) % 2 == 0, 1.0, 0.3)
    X = np.c_[radius * np.cos(angle), radius * np.sin(angle)] + r.normal(0, 0.1, (n, 2))
    y = (np.arange(n) % 2 == 1).astype(np.int64)
    return X, y


@pytest.fixture
def recorder(monkeypatch):
    """The captured engine's CPU stand-in: every backend "records", the step runs once and is
    its own replay (tests/test_captured.py); the fixture's value counts the recordings."""
    calls = []

    def capture(self, fn):
        calls.append(fn)
        fn()
        return fn

    monkeypatch.setattr(Backend, "can_capture", property(lambda self: True))
    monkeypatch.setattr(Backend, "capture", capture)
    return calls
