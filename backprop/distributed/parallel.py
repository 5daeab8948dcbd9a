"""Synchronous data parallelism: every rank holds the whole model and a shard of every batch.

The design of ChainerMN and Horovod. At the start, the ranks check that they run the same thing
(architecture, seed, optimizer, data) and rank 0's weights and optimizer state are broadcast.
Every epoch, each rank draws the same shuffled order (same seed) and takes its contiguous part
of each global batch; after the backward pass, the gradients, each scaled by the rank's share
of the batch, are summed over the ranks in one allreduce of the flat gradient buffer, and every
rank applies the same optimizer step to the same weights. Loss and metrics are sums over the
ranks, brought together once per epoch.

So ``fit(..., batch_size=B)`` on K ranks computes what one process computes with batch size B,
up to the order of floating-point additions, however unevenly B splits over K.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from .. import backend as _backend
from .comm import (
    Communicator,
    DistributedError,
    SingleProcess,
    get_communicator,
    launched_by_mpi,
)

__all__ = ["DataParallel", "shard"]

Array = Any
_CACHE: dict[tuple, Communicator] = {}


def shard(lo: int, hi: int, rank: int, size: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous part of the rows ``lo:hi``, split as evenly as possible.

    Parameters
    ----------
    lo, hi : int
        The global batch's rows.
    rank, size : int
        This rank and the number of ranks.

    Returns
    -------
    (int, int)
        This rank's rows; the parts of ranks 0 to size - 1 tile ``lo:hi`` in order.

    Examples
    --------
    >>> [shard(0, 10, r, 3) for r in range(3)]
    [(0, 3), (3, 6), (6, 10)]
    """
    m = hi - lo
    return lo + m * rank // size, lo + m * (rank + 1) // size


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
        For an unknown ``distributed``.
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
    device = getattr(backend.device, "id", None) if kind == "nccl" else None
    key = (kind, device, timeout)
    if key not in _CACHE:
        _CACHE[key] = get_communicator(kind, timeout, device)
    return _CACHE[key]


def _has_nccl() -> bool:
    try:
        _backend.nccl_module()
    except (ImportError, ValueError):
        return False
    return True


@contextlib.contextmanager
def attached(model: Any, comm: Communicator) -> Iterator[None]:
    """Give ``model`` the communicator for a while; a failure here is told to the other ranks.

    The others then stop with :class:`DistributedError` instead of waiting for this rank.
    """
    model._comm = comm
    try:
        yield
    except BaseException as exc:
        if not isinstance(exc, DistributedError):  # else the others know: they told us
            comm.notify_failure(exc)
        # messages of this failure may still be in flight: the next fit gets a fresh one
        for key in [k for k, c in _CACHE.items() if c is comm]:
            del _CACHE[key]
        raise
    finally:
        model._comm = None


def fit(model: Any, distributed: Any, *args: Any) -> Any:
    """``model.fit`` over the ranks of ``distributed`` (what ``fit(distributed=...)`` runs)."""
    with attached(model, resolve(distributed, model.backend)):
        return model._fit(*args)


# -- the start: agree, then start from rank 0's state ----------------------------------------------


def _fingerprint(backend: _backend.Backend, *arrays: Array) -> str:
    """A digest of the first and last rows of each array, to compare the ranks' data.

    A few rows, not the whole set: enough to catch another data set, seed or split, for the
    price of two tiny transfers from the device.
    """
    digest = hashlib.sha256()
    for a in arrays:
        if a is None:
            continue
        for part in (a[:4, ...], a[-4:, ...]):
            digest.update(backend.to_numpy(part).tobytes())
        digest.update(str(tuple(a.shape)).encode())
    return digest.hexdigest()[:16]


def _signature(model: Any, X: Array, Y: Array, Xv: Array | None, **settings: Any) -> dict:
    opt = model.optimizer
    # the layers' settings, not their names (which count the layers a process made before)
    layers = {
        f"layer {i + 1}": json.dumps(
            {
                "class": spec["class_name"],
                **{k: v for k, v in spec["config"].items() if k != "name"},
            },
            sort_keys=True,
            default=str,
        )
        for i, spec in enumerate(model.get_config()["layers"])
    }
    return {
        "layers": len(layers),
        **layers,
        "seed": model.seed,
        "dtype": model._dtype_name,
        "loss": type(model.loss).__name__,
        "metrics": [name for name, _ in model.metrics],
        "optimizer": json.dumps(opt.get_config(), sort_keys=True, default=str),
        "optimizer iterations": opt.iterations,
        "samples": int(X.shape[0]),
        "features": int(X.shape[1]),
        "validation samples": None if Xv is None else int(Xv.shape[0]),
        "data": _fingerprint(model.backend, X, Y, Xv),
        **settings,
    }


def begin(
    model: Any,
    X: Array,
    Y: Array,
    Xv: Array | None,
    batch_size: int,
    epochs: int,
    initial_epoch: int,
    shuffle: bool,
) -> None:
    """Check that every rank runs the same training, then copy rank 0's state to all.

    Raises
    ------
    DistributedError
        On every rank, if any rank's architecture, seed, dtype, loss, optimizer, data or
        settings differ from rank 0's (the message names the ranks and the differences).
    ValueError
        If the global batch is smaller than the number of ranks.
    """
    comm = model._comm
    if batch_size < comm.size:  # before any exchange: each rank refuses on its own
        raise ValueError(
            f"batch_size is the global batch, split over the {comm.size} ranks; it must be at "
            f"least the number of ranks, received batch_size={batch_size}."
        )
    mine = _signature(
        model,
        X,
        Y,
        Xv,
        batch_size=batch_size,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=shuffle,
    )
    everyone = comm.allgather(mine)
    root = everyone[0]
    differences = [
        f"rank {r}: {key}={_short(sig[key])} where rank 0 has {_short(root[key])}"
        for r, sig in enumerate(everyone)
        for key in root
        if sig.get(key) != root[key]
    ]
    if differences:
        raise DistributedError(
            "The ranks must run the same training (same model, seed, optimizer, data and fit "
            "settings on every rank); they differ: " + "; ".join(differences[:8])
        )
    _broadcast_state(model, comm)


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _broadcast_state(model: Any, comm: Communicator) -> None:
    """Rank 0's weights, optimizer state and shuffling stream on every rank.

    With the same seed they agree already; the broadcast makes it true whatever happened to
    each rank's model before (another resume file, a different warm-up), as Horovod does.
    """
    xp, b = model.xp, model.backend
    model._theta = comm.broadcast(model._theta, b)
    model._bind_views()
    for state in model.optimizer.state:
        for key in sorted(state):
            v = state[key]
            state[key] = xp.reshape(comm.broadcast(xp.reshape(v, (-1,)), b), v.shape)
    model.streams.shuffle.bit_generator.state = comm.bcast(
        model.streams.shuffle.bit_generator.state
    )
    # the same masks on every rank would drop the same units for different samples
    model.streams.for_rank(comm.rank, b)
    model._share_dropout_stream()


# -- the wrapper -----------------------------------------------------------------------------------


class DataParallel:
    """A model trained and evaluated over the ranks of a communicator.

    Parameters
    ----------
    model : Sequential
        A compiled model; every rank builds the same one (same layers and seed).
    communicator : bool, str or Communicator, default "auto"
        As ``fit``'s ``distributed`` argument.
    timeout : float
        Seconds a collective operation may wait for the other ranks.

    Examples
    --------
    Launched with ``mpirun -n 4 python train.py``, every rank runs::

        dp = bp.distributed.DataParallel(model)
        dp.fit(X, y, epochs=10, batch_size=256)     # 64 rows per rank per step
        if dp.is_root:
            model.save("model.npz")
    """

    def __init__(self, model: Any, communicator: Any = "auto", timeout: float = 600.0):
        self.model = model
        self.comm = resolve(communicator, model.backend, timeout)

    @property
    def rank(self) -> int:
        """The rank of this process."""
        return self.comm.rank

    @property
    def size(self) -> int:
        """Number of ranks."""
        return self.comm.size

    @property
    def is_root(self) -> bool:
        """Whether this is rank 0."""
        return self.comm.is_root

    def fit(self, X: Any, y: Any, **kwargs: Any) -> Any:
        """``model.fit(X, y, distributed=communicator, **kwargs)``; see :meth:`Sequential.fit`.

        Returns
        -------
        History
        """
        return self.model.fit(X, y, distributed=self.comm, **kwargs)

    def evaluate(self, X: Any, y: Any, batch_size: int | None = None) -> dict[str, float]:
        """Loss and metrics of ``(X, y)``, each rank evaluating its part of the rows.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
            The same inputs on every rank.
        y : array_like, shape (n,) or (n, n_outputs)
            Their targets.
        batch_size : int, optional
            Rows per batch on each rank.

        Returns
        -------
        dict
            The same ``{"loss": ..., metric: ...}`` on every rank.
        """
        model, comm = self.model, self.comm
        model._require_compiled("evaluate")
        X, Y = model._prepare(X, y)
        lo, hi = shard(0, X.shape[0], comm.rank, comm.size)
        with attached(model, comm):
            return model._evaluate_device(X[lo:hi, ...], Y[lo:hi, ...], batch_size, X.shape[0])

    def predict(self, X: Any, batch_size: int | None = None) -> Any:
        """``model.predict`` on this rank (every rank has the whole model).

        Returns
        -------
        array, shape (n, n_outputs)
        """
        return self.model.predict(X, batch_size=batch_size)

    def __repr__(self) -> str:
        return f"DataParallel({self.model.name!r}, {self.comm!r})"
