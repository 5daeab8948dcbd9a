"""Recording a step as a CUDA graph (CuPy, torch on CUDA), and the recording's matrix product.

:meth:`Backend.capture <backprop.backend.Backend.capture>` hands the step here. CuPy refuses its
own cuBLAS calls while a stream is recorded, so the recording's ``matmul`` calls cuBLAS through
nvmath-python on a handle of its own (:class:`_Gemm`); the CuPy namespace asks ``_CAPTURE``
whether a recording is under way.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # for the annotations only: the Backend class sits above this module
    from .core import Backend


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
