"""NCCL (CuPy's binding): sums between GPUs, for the NCCL communicator of ``distributed.comm``.

A communicator, not a backend: it moves the arrays of a CuPy :class:`~backprop.backend.Backend`
between the GPUs of several processes.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..backend import BackendNotInstalledError
from ..backend.selection import _import

Array = Any


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
