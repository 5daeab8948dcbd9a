"""Streamed input (issue 23): a memmap's epoch time, and a fit from a file larger than memory.

Usage::

    python -m bench.streaming speed  [--epochs 3] [--backend numpy]
    python -m bench.streaming memory [--mib 256] [--budget-mib 64] [--epochs 3]

``speed``: the ``large`` workload of :mod:`bench.workloads` (8192 x 784 float32,
784-1024-1024-10, batch 512, Adam), one epoch at a time, alternating the in-memory arrays and
a memmap of the same array saved to a ``.npy`` file in ``/tmp`` and read once beforehand (so
the file is in the page cache): the median epoch time of each, and their ratio (target <=
1.3x).

``memory``: a float64 ``.npy`` file of ``--mib`` MiB (784 features) in ``/tmp``, and a memory
budget of ``--budget-mib`` (a quarter of the file by default). A child process fits
``784-64-10`` (float64, seed 0, shuffled, batch 256) on the file opened as a memmap and
samples its anonymous resident memory (``RssAnon``: what the process holds itself, not the
page cache the kernel keeps for the file and gives back when memory is needed); another
child fits the same data loaded into memory. The figure: the memmap fit's peak anonymous
memory above what it held before ``fit`` (must stay under the budget), and the largest
relative difference of the two loss curves and final weights (target <= 1e-12).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = 784


def _large_model(backend: str):
    import backprop as bp

    from .workloads import get

    w = get("large")
    layers = [bp.layers.Dense(w.sizes[1], activation="relu", input_dim=w.sizes[0])]
    layers += [bp.layers.Dense(units, activation="relu") for units in w.sizes[2:-1]]
    layers.append(bp.layers.Dense(w.sizes[-1], activation="softmax"))
    model = bp.Sequential(layers, dtype="float32", backend=backend, seed=0)
    model.compile(loss=w.loss, optimizer="adam")
    return model, w


def speed(epochs: int, backend: str) -> dict[str, float]:
    """Median epoch seconds of the large workload: in memory, and from a cached memmap."""
    from .workloads import data

    X, y = data("large", "float32")
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        path = Path(tmp) / "X.npy"
        np.save(path, X)
        Xm = np.load(path, mmap_mode="r")
        float(np.asarray(Xm).sum())  # read once: the file is in the page cache
        times: dict[str, list[float]] = {"in memory": [], "memmap": []}
        models = {name: _large_model(backend) for name in times}
        inputs = {"in memory": X, "memmap": Xm}
        for name, (model, w) in models.items():  # built, and a first epoch's costs paid
            model.fit(inputs[name], y, epochs=1, batch_size=w.batch_size, verbose=0)
        for _ in range(epochs):  # alternated: both see the same load on the machine
            for name, (model, w) in models.items():
                t0 = time.perf_counter()
                model.fit(inputs[name], y, epochs=1, batch_size=w.batch_size, verbose=0)
                times[name].append(time.perf_counter() - t0)
    result = {name: statistics.median(t) for name, t in times.items()}
    ratio = result["memmap"] / result["in memory"]
    print(
        f"large workload ({X.shape[0]} x {X.shape[1]} float32, batch 512, {backend}), median "
        f"of {epochs} epochs: in memory {result['in memory']:.3f} s, memmap in the page cache "
        f"{result['memmap']:.3f} s: {ratio:.2f}x (target <= 1.3x)"
    )
    return {**result, "ratio": ratio}


def _child(path: str, source: str, epochs: int) -> None:
    """Fit on the file (a memmap, or loaded into memory); print the figures as JSON."""
    import backprop as bp

    from .memory import _AnonPeak, _rss_anon_bytes

    y = np.load(path.replace("X.npy", "y.npy"))
    X = np.load(path, mmap_mode="r") if source == "memmap" else np.load(path)
    model = bp.Sequential(
        [
            bp.layers.Dense(64, activation="relu", input_dim=FEATURES),
            bp.layers.Dense(10, activation="softmax"),
        ],
        dtype="float64",
        seed=0,
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    model.build((FEATURES,))
    # BLAS allocates its work buffers on its first products: not the data's memory
    a = np.ones((256, FEATURES)) @ np.ones((FEATURES, 64))
    del a
    before = _rss_anon_bytes()
    with _AnonPeak() as anon:
        history = model.fit(X, y, epochs=epochs, batch_size=256, shuffle=True, verbose=0)
    print(
        json.dumps(
            {
                "loss": history.history["loss"],
                "weights": [w.tolist() for w in model.get_weights()],
                "anon_before": before,
                "anon_peak": anon.peak,
                "engine": history.params["engine"],
            }
        )
    )


def memory(mib: int, budget_mib: int | None, epochs: int) -> dict[str, float]:
    """A fit from a memmap 4x larger than the budget: its anonymous memory and its numbers."""
    budget = (budget_mib or mib // 4) * 2**20
    rows = mib * 2**20 // (FEATURES * 8)
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        path = Path(tmp) / "X.npy"
        rng = np.random.default_rng(0)
        X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(rows, FEATURES))
        for lo in range(0, rows, 4096):  # written in pieces: never the whole file in memory
            hi = min(lo + 4096, rows)
            X[lo:hi] = rng.standard_normal((hi - lo, FEATURES))
        X.flush()
        size = X.nbytes
        del X
        np.save(Path(tmp) / "y.npy", rng.integers(0, 10, rows))
        out = {}
        for source in ("memmap", "in memory"):
            run = subprocess.run(
                [sys.executable, "-m", "bench.streaming", "_child", str(path), source, str(epochs)],
                capture_output=True,
                text=True,
                check=True,
                cwd=Path(__file__).resolve().parent.parent,
                env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
            )
            out[source] = json.loads(run.stdout.strip().splitlines()[-1])
    a, b = out["memmap"], out["in memory"]
    loss_diff = max(abs(p - q) / abs(q) for p, q in zip(a["loss"], b["loss"], strict=True))
    weight_diff = max(
        float(np.max(np.abs(np.asarray(p) - np.asarray(q)) / (np.abs(np.asarray(q)) + 1e-300)))
        for p, q in zip(a["weights"], b["weights"], strict=True)
    )
    above = a["anon_peak"] - a["anon_before"]
    print(
        f"file {size / 2**20:.0f} MiB ({rows} x {FEATURES} float64); budget "
        f"{budget / 2**20:.0f} MiB (file / {size / budget:.1f}); memmap fit ({a['engine']}, "
        f"{epochs} epochs, batch 256): peak anonymous memory above the start "
        f"{above / 2**20:.1f} MiB = {above / size:.3f}x the file, "
        f"{'within' if above <= budget else 'OVER'} the budget; in-memory fit: "
        f"{(b['anon_peak'] - b['anon_before']) / 2**20:.1f} MiB above its start (+ the "
        f"{size / 2**20:.0f} MiB it loaded). Loss curves {a['loss']} vs {b['loss']}: largest "
        f"relative difference {loss_diff:.1e}; final weights {weight_diff:.1e} (target <= 1e-12)"
    )
    return {"anon_above": above, "budget": budget, "loss_diff": loss_diff, "weights": weight_diff}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        _child(argv[1], argv[2], int(argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("speed")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--backend", default="numpy")
    m = sub.add_parser("memory")
    m.add_argument("--mib", type=int, default=256)
    m.add_argument("--budget-mib", type=int, default=None)
    m.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.what == "speed":
        speed(args.epochs, args.backend)
    else:
        memory(args.mib, args.budget_mib, args.epochs)


if __name__ == "__main__":
    main()
