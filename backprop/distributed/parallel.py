"""Synchronous data parallelism: every rank holds the whole model and a shard of every batch.

The engine, ``backprop.training.sharded``, runs each rank's step (the design of ChainerMN and
Horovod: the ranks agree, start from rank 0's state, and sum the gradients of their shards of
each global batch in one allreduce per step). This module is the user's side of it: the
:class:`DataParallel` wrapper, and the communicator ``fit(distributed=...)`` asks for.

So ``fit(..., batch_size=B)`` on K ranks computes what one process computes with batch size B,
up to the order of floating-point additions, however unevenly B splits over K.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .. import backend as _backend
from .. import data as _data
from .. import registry as _registry
from ..training import loop as _loop
from ..training.sharded import shard
from ..training.streamed_sharded import store_fields
from .comm import failures_told, resolve

__all__ = ["DataParallel", "resolve", "shard"]

Array = Any


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

    def evaluate(
        self, X: Any, y: Any, batch_size: int | None = None, sample_weight: Any = None
    ) -> dict[str, float]:
        """Loss and metrics of ``(X, y)``, each rank evaluating its part of the rows.

        Parameters
        ----------
        X : array_like, shape (n, n_features), or a store read by rows
            The same inputs on every rank: arrays, or a store (a NumPy memmap, an h5py or
            zarr dataset, a Dask array) of which each rank reads only its part of the rows
            (and the few rows the ranks compare).
        y : array_like, shape (n,) or (n, n_outputs)
            Their targets (in memory, or a store beside a store ``X``).
        batch_size : int, optional
            Rows per batch on each rank (a store: 1024 unless told, as ``model.evaluate``).
        sample_weight : array_like, shape (n,), optional
            A weight per row, as for ``model.evaluate`` (the same on every rank).

        Returns
        -------
        dict
            The same ``{"loss": ..., metric: ...}`` on every rank.

        Raises
        ------
        DistributedError
            On every rank, if any rank's backend, dtype, layers, loss, metrics, weights, ``X``
            or ``y`` differ from rank 0's: the message names each rank and field that differs
            (e.g. ``rank 1: X: 30 rows where rank 0 has 37``). Otherwise each rank would sum
            its part of other data into a "global" score of its own. Arrays are compared
            whole (rows spread through them, column sums); a store by its number of rows,
            sample shape and 16 of its rows, as ``fit(distributed=...)`` compares it, since
            comparing it whole would read all of it on every rank.
        """
        return evaluate(
            self.model, X, y, self.comm, batch_size=batch_size, sample_weight=sample_weight
        )

    def predict(self, X: Any, batch_size: int | None = None) -> Any:
        """``model.predict`` on this rank (every rank has the whole model).

        Returns
        -------
        array, shape (n, n_outputs)
        """
        return self.model.predict(X, batch_size=batch_size)

    def __repr__(self) -> str:
        return f"DataParallel({self.model.name!r}, {self.comm!r})"


def evaluate(
    model: Any,
    X: Any,
    y: Any,
    comm: Any,
    *,
    batch_size: int | None = None,
    verbose: int = 0,
    callbacks: list | None = None,
    sample_weight: Any = None,
    steps: int | None = None,
) -> dict[str, float]:
    """``model.evaluate`` over the ranks of ``comm``: their check, then each rank its part.

    :meth:`DataParallel.evaluate`, and what ``model.evaluate(..., distributed=...)`` finds
    by name (``backprop.registry``, kind ``"distributed"``, name ``"evaluate"``), as ``fit``
    finds the communicators: the model sits below this package and never imports it.

    Parameters
    ----------
    model : Sequential
        A compiled model, the same on every rank.
    X, y, batch_size, sample_weight
        As :meth:`DataParallel.evaluate`.
    comm : Communicator
        The ranks.
    verbose, callbacks, steps
        As ``model.evaluate``; the callbacks run as in ``fit(distributed=...)`` (the
        root-only ones on rank 0 only).

    Returns
    -------
    dict
        The same ``{"loss": ..., metric: ...}`` on every rank.
    """
    with failures_told(comm):
        if model.loss is not None:  # else evaluate says that compile comes first
            comm.agree(
                _evaluation_signature(model, X, y, sample_weight),
                "The ranks must evaluate the same model on the same data (the same "
                "backend, dtype, layers, loss, metrics, weights, X and y on every rank)",
            )
        return _loop.evaluate(
            model, X, y, batch_size, verbose, comm=comm, callbacks=callbacks,
            sample_weight=sample_weight, steps=steps,
        )  # fmt: skip


# model.evaluate(distributed=...) finds it by name (the model never imports this package)
_registry.register("distributed", "evaluate", evaluate)


def _evaluation_signature(model: Any, X: Any, y: Any, sample_weight: Any) -> dict:
    """What the ranks compare before evaluating: the model, its weights and the data.

    The arrays are fingerprinted by the communicator (:mod:`.agreement`); the weights by one
    digest of the host copies (a few transfers the size of the model, not of the data).
    """
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(f"{w.dtype.str}{w.shape}".encode())
        digest.update(np.ascontiguousarray(w).tobytes())
    return {
        "backend": model.backend.name,
        "dtype": model.get_config()["dtype"],
        "layers": {
            # the layers' settings, not their names (which count the layers a process made)
            f"layer {i + 1}": {
                "class": spec["class_name"],
                **{k: v for k, v in spec["config"].items() if k != "name"},
            }
            for i, spec in enumerate(model.get_config()["layers"])
        },
        "loss": type(model.loss).__name__,
        "metrics": [name for name, _ in model.metrics],
        "weights": digest.hexdigest()[:16],
        **_evaluation_data(model, X, y, sample_weight),
    }


def _evaluation_data(model: Any, X: Any, y: Any, sample_weight: Any) -> dict:
    """The data in the ranks' signature: the arrays, or a few rows of a store.

    Arrays are checked as ``evaluate`` checks them and fingerprinted whole (rows spread
    through them, column sums). A store read by rows (a memmap, h5py, zarr, Dask) gives its
    number of rows, sample shape and the few rows ``fit(distributed=...)`` compares
    (:func:`~backprop.training.streamed_sharded.store_fields`): fingerprinting it whole would
    read all of it on every rank, where each rank evaluates only its part. A generator or a
    PyDataset gives nothing here: ``evaluate`` refuses it over the ranks.
    """
    source = _data.adapt(X, y, sample_weight, name="X")
    if source is not None:
        if not source.by_rows:
            return {}
        return {
            "samples": int(source.n),
            "sample shape": tuple(int(d) for d in source.sample_shape),
            **store_fields(source, ""),
        }
    X_checked, y_checked = model._check(X, y)
    data = {"X": X_checked, "y": y_checked}
    if sample_weight is not None:  # compared like X and y (the loop checks it)
        data["sample_weight"] = _backend.to_numpy(sample_weight)
    return data
