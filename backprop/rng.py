"""Seeded host randomness: one seed, independent streams for weights, shuffling and dropout.

All random draws of a model come from ``numpy.random.Generator`` objects made here, on the
host, so the same seed gives the same initial weights, batch order and dropout masks on every
backend and device.

Examples
--------
>>> a, b = Streams(0), Streams(0)
>>> bool((a.permutation(5) == b.permutation(5)).all())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import as_int


class Streams:
    """Independent generators spawned from one seed.

    Parameters
    ----------
    seed : int or None, optional
        A non-negative seed (a NumPy integer is accepted, stored as an int); None draws
        fresh entropy from the OS.
    backend : Backend, optional
        Where dropout masks are drawn: a device generator where the backend has one
        (:meth:`Backend.device_generator`), else the host stream.

    Raises
    ------
    ValueError
        If ``seed`` is not a non-negative integer or None (bools are refused).

    Attributes
    ----------
    init : numpy.random.Generator
        Initial weights (layer by layer, in order).
    shuffle : numpy.random.Generator
        The order of the samples in each epoch.
    dropout : numpy.random.Generator
        Dropout masks.
    """

    def __init__(self, seed: int | None = None, backend: Any = None):
        if seed is not None:
            seed_int = as_int(seed)
            if seed_int is None or seed_int < 0:
                raise ValueError(f"seed must be a non-negative integer or None, received {seed!r}.")
            seed = seed_int  # a Python int: the seed goes into JSON model configs
        self.seed = seed
        init, shuffle, dropout = np.random.SeedSequence(seed).spawn(3)
        self.init = np.random.default_rng(init)
        self.shuffle = np.random.default_rng(shuffle)
        self.dropout = np.random.default_rng(dropout)
        # On a GPU, dropout masks are drawn there (seeded from the same seed): a host draw per
        # step would cost a transfer per step. ``use_host_dropout()`` restores the host stream.
        self._dropout_seed = dropout
        self._rank = 0
        if backend is not None:
            device_rng = backend.device_generator(int(dropout.generate_state(1)[0]))
            if device_rng is not None:
                self.dropout = device_rng

    def retarget(self, backend: Any) -> None:
        """Follow a model to another backend: a GPU stream there, else the host stream.

        A stream cannot continue across the move, so it restarts from the model's seed.

        Parameters
        ----------
        backend : Backend
            The backend the model moves to.

        Returns
        -------
        None
        """
        device_rng = backend.device_generator(int(self._dropout_seed.generate_state(1)[0]))
        if device_rng is not None:
            self.dropout = device_rng
        elif not isinstance(self.dropout, np.random.Generator):
            self.use_host_dropout()

    def for_rank(self, rank: int, backend: Any) -> None:
        """Give rank ``rank`` of a data-parallel job its own dropout stream.

        Every rank holds the same seed; without this, ranks would drop the same units for
        different samples. Rank 0 keeps the model's stream (so one rank equals no
        parallelism); rank r > 0 draws from an independent child of the dropout seed.

        Parameters
        ----------
        rank : int
            This process's rank.
        backend : Backend
            Where the masks are drawn (a device generator where the backend has one).

        Returns
        -------
        None
        """
        if rank == 0 or self._rank == rank:
            return
        self._rank = rank
        parent = self._dropout_seed
        self._dropout_seed = np.random.SeedSequence(
            parent.entropy, spawn_key=(*parent.spawn_key, rank), pool_size=parent.pool_size
        )
        self.dropout = np.random.default_rng(self._dropout_seed)
        self.retarget(backend)

    def use_host_dropout(self) -> None:
        """Draw dropout masks on the host (identical on every backend; for parity checks).

        The host dropout stream restarts from the seed.

        Returns
        -------
        None
        """
        self.dropout = np.random.default_rng(self._dropout_seed)

    def get_state(self) -> dict:
        """The generators' states, as JSON-able dicts (saved with a model for exact resumes).

        Returns
        -------
        dict of str to dict
            ``bit_generator.state`` keyed by ``"init"``, ``"shuffle"`` and ``"dropout"``;
            a dropout stream on the device is left out.
        """
        return {
            k: getattr(self, k).bit_generator.state
            for k in ("init", "shuffle", "dropout")
            if isinstance(getattr(self, k), np.random.Generator)
        }

    def set_state(self, state: dict) -> None:
        """Restore states from :meth:`get_state`, in place (layers keep their references).

        Parameters
        ----------
        state : dict of str to dict
            As returned by :meth:`get_state`; an entry for a stream on the device is ignored.

        Returns
        -------
        None
        """
        for k, v in state.items():
            if isinstance(getattr(self, k), np.random.Generator):  # a GPU stream keeps its own
                getattr(self, k).bit_generator.state = v

    def permutation(self, n: int) -> np.ndarray:
        """A random order of ``range(n)`` from the shuffle stream (int64, on the host).

        Parameters
        ----------
        n : int
            Number of items.

        Returns
        -------
        numpy.ndarray of shape (n,)
            A permutation of ``0 .. n - 1``, dtype int64.
        """
        return self.shuffle.permutation(n)
