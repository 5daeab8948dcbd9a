"""Transient memory of ``fit`` and ``predict`` above the data itself (issue 23).

Usage::

    python -m bench.memory [--rows 200000] [--features 784] [--batch-size 4096]
                           [--hidden 32] [--backend numpy]

Trains ``Dense(hidden, relu) -> Dense(10, softmax)`` for one epoch on random float32 data of
``rows x features`` (200,000 x 784: 598 MiB) with 10 integer classes, then predicts on it,
and prints for each the peak memory the call allocated above what was held before it, and
its ratio to the size of ``X`` (the target: <= 0.1x):

- ``tracemalloc``: NumPy registers its array buffers with :mod:`tracemalloc`, so its peak
  counts every temporary array the call made (and Python objects), nothing else;
- ``anon RSS``: the peak of the process's anonymous resident memory (``RssAnon`` in
  ``/proc/self/status``, sampled every millisecond by a thread), above its value before the
  call: what the operating system sees, including the BLAS library's buffers. Linux only.

The data is made before the measurements start, so neither figure counts it.
"""

from __future__ import annotations

import argparse
import gc
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any


def _rss_anon_bytes() -> int | None:
    """The process's anonymous resident memory, or None without /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _AnonPeak:
    """The largest ``RssAnon`` seen while the block runs, sampled by a thread."""

    def __init__(self, every: float = 0.001):
        self.every, self.peak, self._stop = every, 0, threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_anon_bytes() or 0)
            time.sleep(self.every)

    def __enter__(self) -> _AnonPeak:
        self.before = _rss_anon_bytes() or 0
        self.peak = self.before
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_anon_bytes() or 0)


def measure(call: Callable[[], Any]) -> tuple[int, int]:
    """``(tracemalloc peak, anon RSS peak)`` of ``call()`` above what was held before, bytes."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with _AnonPeak() as anon:
            call()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak, anon.peak - anon.before


def main(argv: list[str] | None = None) -> dict[str, tuple[int, int]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--backend", default="numpy")
    args = parser.parse_args(argv)

    import numpy as np

    import backprop as bp

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.features), dtype=np.float32)
    y = rng.integers(0, 10, args.rows)
    model = bp.Sequential(
        [
            bp.layers.Dense(args.hidden, activation="relu", input_dim=args.features),
            bp.layers.Dense(10, activation="softmax"),
        ],
        dtype="float32",
        backend=args.backend,
        seed=0,
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    # a first small fit builds the model and imports what fit imports: not part of the figure
    model.fit(X[:64], y[:64], epochs=1, batch_size=32, verbose=0)
    size = X.nbytes
    print(
        f"X: {args.rows} x {args.features} float32 = {size / 2**20:.0f} MiB; "
        f"batch {args.batch_size}, backend {args.backend}"
    )
    results = {}
    calls = {
        "fit": lambda: model.fit(X, y, epochs=1, batch_size=args.batch_size, verbose=0),
        "predict": lambda: model.predict(X),
    }
    for name, call in calls.items():
        traced, anon = measure(call)
        results[name] = (traced, anon)
        print(
            f"{name:8s} tracemalloc peak {traced / 2**20:7.1f} MiB = {traced / size:.3f}x X; "
            f"anon RSS peak {anon / 2**20:7.1f} MiB = {anon / size:.3f}x X"
        )
    return results


if __name__ == "__main__":
    main()
