"""``PyDataset``: a dataset that hands out whole batches by index, as Keras 3's.

Subclass it, give it ``__len__`` (the number of batches) and ``__getitem__(i)`` (batch ``i``,
a tuple ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``), and pass it to ``fit``, ``evaluate``
or ``predict`` in place of the arrays. ``on_epoch_begin`` runs before each pass (of ``fit``,
``evaluate``, ``predict``) and ``on_epoch_end`` after each epoch (shuffle in either).

Examples
--------
>>> import numpy as np
>>> class Squares(PyDataset):
...     def __len__(self):
...         return 3
...
...     def __getitem__(self, i):
...         x = np.arange(4.0)[:, None] + 4 * i
...         return x, x**2
>>> data = Squares()
>>> data.num_batches, data[1][0].ravel()
(3, array([4., 5., 6., 7.]))
"""

from __future__ import annotations

from typing import Any


class PyDataset:
    """Base class of datasets that return batches by index (Keras 3's ``PyDataset``).

    Parameters
    ----------
    workers : int, default 1
        Stored for compatibility with Keras. backprop reads the batches in one background
        thread (see :class:`~backprop.data.prefetch.Prefetcher`) whatever the value; a value
        above 1 gives a UserWarning once per dataset.
    use_multiprocessing : bool, default False
        Stored for compatibility with Keras; not used (True gives the same warning).
    max_queue_size : int, default 10
        Stored for compatibility with Keras; the prefetch depth is set by the loop.

    Notes
    -----
    A subclass that forgets ``super().__init__()`` still works: the three settings have class
    defaults.
    """

    workers: int = 1
    use_multiprocessing: bool = False
    max_queue_size: int = 10

    def __init__(
        self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
    ) -> None:
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        raise NotImplementedError(
            f"{type(self).__name__} must define __len__, the number of batches per epoch."
        )

    def __getitem__(self, index: int) -> Any:
        """Batch ``index``: ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``."""
        raise NotImplementedError(
            f"{type(self).__name__} must define __getitem__(index), returning batch number "
            "index as a tuple (x, y) or (x, y, sample_weight)."
        )

    def on_epoch_begin(self) -> None:
        """Called before each epoch (nothing by default)."""

    def on_epoch_end(self) -> None:
        """Called after each epoch (nothing by default; shuffle the batches here)."""

    @property
    def num_batches(self) -> int:
        """The number of batches in one epoch: ``len(self)``."""
        return len(self)
