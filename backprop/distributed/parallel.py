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
from ..training import loop as _loop
from ..training.sharded import shard
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
        X : array_like, shape (n, n_features)
            The same inputs on every rank.
        y : array_like, shape (n,) or (n, n_outputs)
            Their targets.
        batch_size : int, optional
            Rows per batch on each rank.
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
            its part of other data into a "global" score of its own.
        """
        model, comm = self.model, self.comm
        with failures_told(comm):
            if model.loss is not None:  # else evaluate says that compile comes first
                X_checked, y_checked = model._check(X, y)
                signature = _evaluation_signature(model, X_checked, y_checked)
                if sample_weight is not None:  # compared like X and y (the loop checks it)
                    signature["sample_weight"] = _backend.to_numpy(sample_weight)
                comm.agree(
                    signature,
                    "The ranks must evaluate the same model on the same data (the same "
                    "backend, dtype, layers, loss, metrics, weights, X and y on every rank)",
                )
            return _loop.evaluate(model, X, y, batch_size, comm=comm, sample_weight=sample_weight)

    def predict(self, X: Any, batch_size: int | None = None) -> Any:
        """``model.predict`` on this rank (every rank has the whole model).

        Returns
        -------
        array, shape (n, n_outputs)
        """
        return self.model.predict(X, batch_size=batch_size)

    def __repr__(self) -> str:
        return f"DataParallel({self.model.name!r}, {self.comm!r})"


def _evaluation_signature(model: Any, X: Array, y: Array | None) -> dict:
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
        "X": X,
        "y": y,
    }
