"""Peak memory and wall time of ``bp.load`` on a large model (issue 25.7).

Usage::

    python -m bench.load_memory write /tmp/big.npz [--units 8192] [--layers 2] [--dtype float64]
    python -m bench.load_memory load /tmp/big.npz [--backend numpy]

``write`` saves an uncompiled stack of Dense(units) layers (``units * units`` weights each);
``load`` loads it in this (fresh) process and prints the file size, the wall time of
``bp.load`` and the process's peak resident memory (which includes the interpreter and the
imported libraries: the figure before loading is printed too).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time


def _peak_mib() -> float:
    """Peak resident memory: VmHWM where /proc has it (ru_maxrss keeps the size of the parent
    that forked this process, e.g. a test runner), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except OSError:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS
        return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["write", "load"])
    parser.add_argument("path")
    parser.add_argument("--units", type=int, default=8192)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--backend", default="numpy")
    args = parser.parse_args()
    import backprop as bp

    if args.action == "write":
        layers = [bp.layers.Dense(args.units, input_dim=args.units)]
        layers += [bp.layers.Dense(args.units) for _ in range(args.layers - 1)]
        bp.Sequential(layers, dtype=args.dtype, seed=0).save(args.path)
        print(f"wrote {args.path}: {os.path.getsize(args.path) / 2**20:.0f} MiB")
        return
    bp.Sequential([bp.layers.Dense(1, input_dim=1)], backend=args.backend).predict([[0.0]])
    base = _peak_mib()  # with the libraries a load imports already imported
    start = time.perf_counter()
    model = bp.load(args.path, backend=args.backend)
    wall = time.perf_counter() - start
    size = os.path.getsize(args.path) / 2**20
    peak = _peak_mib()
    print(
        f"file {size:.0f} MiB, load {wall:.2f} s, peak RSS {peak:.0f} MiB "
        f"(before loading {base:.0f} MiB; growth {peak - base:.0f} MiB = "
        f"{(peak - base) / size:.2f}x the file), {model.count_params()} params"
    )


if __name__ == "__main__":
    main()
