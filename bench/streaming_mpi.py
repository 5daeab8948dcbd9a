"""Peak memory of a data-parallel fit on a memmap against one process in memory (issue 23).

Usage::

    python -m bench.streaming_mpi make DIR [--rows 200000] [--features 256]
    python -m bench.streaming_mpi inmemory DIR [--batch-size 4096] [--hidden 64]
    mpirun -n 2 python -m bench.streaming_mpi memmap DIR [--batch-size 4096] [--hidden 64]

``make`` writes ``DIR/X.npy`` (float32, standard normal; 200,000 x 256 = 195 MiB) and
``DIR/y.npy`` (10 integer classes) a block at a time. ``inmemory`` loads them into memory
(``np.load``) and trains ``Dense(hidden, relu) -> Dense(10, softmax)`` for one epoch in one
process; ``memmap`` opens them with ``mmap_mode="r"`` on every rank and trains the same with
``fit(distributed=True)``: each rank reads only its rows of each global batch.

Each process prints (rank 0 for all, in rank order) the peak of its anonymous resident memory
(``RssAnon`` in ``/proc/self/status``, sampled every millisecond by a thread from the start
of the measurement to the end of ``fit``: what the process itself holds, not the page cache
that a memmap's pages live in), its value after the imports, before any data, and ``VmHWM``
(the peak resident memory the kernel records, file pages included: a memmap's pages count
there while they are mapped, though the kernel may drop them at any time). Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from .memory import _AnonPeak, _rss_anon_bytes


def _vm_hwm_bytes() -> int:
    """Peak resident memory (anonymous and file pages), as the kernel records it."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def make(directory: str, rows: int, features: int, block: int = 16384) -> None:
    """Write X.npy and y.npy a block of rows at a time (never the whole set in memory)."""
    import numpy as np

    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    X = np.lib.format.open_memmap(
        os.path.join(directory, "X.npy"), mode="w+", dtype=np.float32, shape=(rows, features)
    )
    y = np.lib.format.open_memmap(
        os.path.join(directory, "y.npy"), mode="w+", dtype=np.int64, shape=(rows,)
    )
    for lo in range(0, rows, block):
        hi = min(lo + block, rows)
        X[lo:hi] = rng.standard_normal((hi - lo, features), dtype=np.float32)
        y[lo:hi] = rng.integers(0, 10, hi - lo)
    X.flush()
    y.flush()
    print(f"wrote {directory}/X.npy: {rows} x {features} float32 = {X.nbytes / 2**20:.0f} MiB")


def train(directory: str, mode: str, batch_size: int, hidden: int) -> tuple[dict, Any]:
    """One epoch in this process (``inmemory``) or on this rank (``memmap``); its figures."""
    import numpy as np

    import backprop as bp

    comm = None
    if mode == "memmap":
        from backprop.distributed import get_communicator

        comm = get_communicator("auto")
    imported = _rss_anon_bytes() or 0
    with _AnonPeak() as anon:
        mmap_mode = "r" if mode == "memmap" else None
        X = np.load(os.path.join(directory, "X.npy"), mmap_mode=mmap_mode)
        y = np.load(os.path.join(directory, "y.npy"), mmap_mode=mmap_mode)
        model = bp.Sequential(
            [
                bp.layers.Dense(hidden, activation="relu", input_dim=X.shape[1]),
                bp.layers.Dense(10, activation="softmax"),
            ],
            dtype="float32",
            seed=0,
        )
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        history = model.fit(
            X, y, epochs=1, batch_size=batch_size, verbose=0, distributed=comm or False
        )
    return {
        "rank": 0 if comm is None else comm.rank,
        "ranks": 1 if comm is None else comm.size,
        "mode": mode,
        "data MiB": X.nbytes / 2**20,
        "anon peak MiB": anon.peak / 2**20,
        "anon after imports MiB": imported / 2**20,
        "VmHWM MiB": _vm_hwm_bytes() / 2**20,
        "loss": history.history["loss"][-1],
        "engine": history.params["engine"],
    }, comm


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["make", "inmemory", "memmap"])
    parser.add_argument("directory")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args(argv)
    if args.mode == "make":
        make(args.directory, args.rows, args.features)
        return
    figures, comm = train(args.directory, args.mode, args.batch_size, args.hidden)
    everyone = [figures] if comm is None else comm.allgather(figures)
    if figures["rank"] == 0:
        for f in everyone:
            print(
                f"{f['mode']:8s} rank {f['rank']}/{f['ranks']}: data {f['data MiB']:.0f} MiB; "
                f"anon RSS peak {f['anon peak MiB']:.0f} MiB (after imports "
                f"{f['anon after imports MiB']:.0f}); VmHWM {f['VmHWM MiB']:.0f} MiB; "
                f"engine {f['engine']}; loss {f['loss']:.6f}"
            )
        print(json.dumps(everyone))


if __name__ == "__main__":
    main()
