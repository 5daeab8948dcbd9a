"""One framework, one process: ``python -m bench.worker --framework X --workload Y --dtype Z``.

Modes
-----
``time`` (default)
    Warm-up fit (not counted), then ``--samples`` timed samples of ``--epochs`` epochs each,
    each on a fresh model; prints one JSON object.
``serve``
    What ``bench/run.py`` uses to interleave frameworks: reads JSON commands on stdin
    (``{"cmd": "prepare", "workload": ..., "dtype": ..., "epochs": ...}``, ``{"cmd":
    "sample"}``, ``{"cmd": "quit"}``) and answers each with one line ``@@BENCH {json}``.
``memory``
    Peak resident memory of training: ``ru_maxrss`` after one fit of ``--epochs`` epochs
    minus the resident memory after the imports and the workload's NumPy data (the
    baseline), with the peak mark reset at the baseline (``/proc/self/clear_refs``; where
    that is refused, ``ru_maxrss`` at the baseline is subtracted instead). Model creation,
    conversion to the framework's arrays and training all count.
``firstfit``
    In this fresh process: the time of the first fit (imports done, data made) over the
    median of ``--warm`` more fits of fresh models: the cost of first-call work (lazy
    imports, caches) a user pays once per process.
``longrun``
    backprop (or, for reference, the NumPy loop): one model trained to step ``--early``
    (rounded up to whole epochs) and saved, then on to step ``--late`` and saved again; then
    ``--rounds`` rounds, each timing one epoch from each saved state (alternating which goes
    first), so that load drifting during the run hits both alike. Reports the median time per
    step after each point, their ratio, and the subnormal numbers in the optimizer state at
    both points.

The thread count is applied before NumPy is imported (environment variables read by
OpenBLAS/MKL/OpenMP, ``XLA_FLAGS`` for JAX), again with ``threadpoolctl``, and with
``torch.set_num_threads`` in the torch runner.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

PREFIX = "@@BENCH "

_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def thread_env(threads: int) -> dict[str, str]:
    """The environment that pins every math library of a child process to ``threads``."""
    env = {k: str(threads) for k in _THREAD_VARS}
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env


def _apply_threads(threads: int) -> None:
    for k, v in thread_env(threads).items():
        if k == "XLA_FLAGS" and os.environ.get(k):
            continue  # the driver (or the user) chose them
        os.environ.setdefault(k, v)


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    p.add_argument(
        "--mode", default="time", choices=["time", "serve", "memory", "firstfit", "longrun"]
    )
    p.add_argument("--framework", default="backprop")
    p.add_argument("--workload", default="seed")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs per sample (default: workload's)"
    )
    p.add_argument("--samples", type=int, default=9)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--early", type=int, default=100)
    p.add_argument("--late", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--warm", type=int, default=3, help="firstfit: warm fits after the first")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------


def blas_info() -> list[dict]:
    """What threadpoolctl sees: each BLAS/OpenMP library, its kernel and its thread count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "num_threads")
    return [{k: d.get(k) for k in keep if d.get(k) is not None} for d in threadpool_info()]


def _limit_threads(threads: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(threads)


class Session:
    """A framework's runner for one (workload, dtype), warmed up."""

    def __init__(self, framework: str, workload: str, dtype: str, epochs: int | None, threads: int):
        from bench import peers, workloads

        self.wl = workloads.get(workload)
        self.framework, self.dtype = framework, dtype
        self.epochs = epochs or self.wl.sample_epochs
        self.runner = peers.runner_class(framework)(self.wl, dtype, threads)
        # warm-up: a whole sample, not counted (compiles JAX, fills caches, faults pages in)
        self.runner.prepare()
        self.runner.run(self.epochs)

    def sample(self) -> dict:
        self.runner.prepare()
        t0 = time.perf_counter()
        self.runner.run(self.epochs)
        seconds = time.perf_counter() - t0
        units = self.epochs * self.wl.units_per_epoch()
        return {"seconds": seconds, "units": units, "per_unit": seconds / units}

    def describe(self) -> dict:
        return {
            "framework": self.framework,
            "workload": self.wl.name,
            "dtype": self.dtype,
            "unit": self.wl.unit,
            "epochs_per_sample": self.epochs,
            "units_per_sample": self.epochs * self.wl.units_per_epoch(),
            **self.runner.info(),
            "blas": blas_info(),
        }


def _emit(obj: dict) -> None:
    sys.stdout.write(PREFIX + json.dumps(obj) + "\n")
    sys.stdout.flush()


def mode_time(args) -> dict:
    s = Session(args.framework, args.workload, args.dtype, args.epochs, args.threads)
    samples = [s.sample() for _ in range(args.samples)]
    return {**s.describe(), "per_unit": [x["per_unit"] for x in samples]}


def mode_serve(args) -> None:
    session = None
    _emit({"ready": True, "framework": args.framework, "pid": os.getpid(), "blas": blas_info()})
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["cmd"] == "quit":
                break
            if cmd["cmd"] == "prepare":
                session = None
                session = Session(
                    args.framework, cmd["workload"], cmd["dtype"], cmd.get("epochs"), args.threads
                )
                _emit({"ok": True, **session.describe()})
            elif cmd["cmd"] == "sample":
                _emit({"ok": True, **session.sample()})
            else:
                _emit({"ok": False, "error": f"unknown command {cmd['cmd']!r}"})
        except Exception as exc:  # report to the driver, keep serving
            _emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def _maxrss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _rss_mib() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the peak-RSS mark (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def mode_memory(args) -> dict:
    import gc

    from bench import peers, workloads

    wl = workloads.get(args.workload)
    cls = peers.runner_class(args.framework)  # imports the framework
    wl.data(args.dtype)  # the NumPy data: part of the baseline
    gc.collect()
    # The baseline is what the process holds now. ru_maxrss is a high-water mark, so it is
    # reset first where Linux allows it; else the baseline is the mark so far (an import or
    # the data may have peaked above what is held, which then hides part of the training).
    if _reset_peak() and _rss_mib() is not None:
        method, base = "ru_maxrss after clear_refs, minus VmRSS at the baseline", _rss_mib()
    else:
        method, base = "ru_maxrss minus ru_maxrss at the baseline", _maxrss_mib()
    runner = cls(wl, args.dtype, args.threads)
    runner.prepare()
    runner.run(args.epochs or wl.epochs)
    peak = _maxrss_mib()
    return {
        "framework": args.framework,
        "workload": wl.name,
        "dtype": args.dtype,
        "epochs": args.epochs or wl.epochs,
        "baseline_mib": base,
        "peak_mib": peak,
        "delta_mib": peak - base,
        "method": method,
    }


def mode_firstfit(args) -> dict:
    from bench import peers, workloads

    wl = workloads.get(args.workload)
    cls = peers.runner_class(args.framework)
    wl.data(args.dtype)
    epochs = args.epochs or wl.epochs
    times = []
    runner = cls(wl, args.dtype, args.threads)
    for _ in range(1 + args.warm):
        runner.prepare()
        t0 = time.perf_counter()
        runner.run(epochs)
        times.append(time.perf_counter() - t0)
    warm = statistics.median(times[1:])
    return {
        "framework": args.framework,
        "workload": wl.name,
        "dtype": args.dtype,
        "epochs": epochs,
        "first_s": times[0],
        "warm_s": warm,
        "warm_fits_s": times[1:],
        "ratio": times[0] / warm,
    }


def _subnormals(obj) -> int:
    """Subnormal entries in every float NumPy array reachable from ``obj`` (its state)."""
    import numpy as np

    from bench.opcount import iter_arrays

    total = 0
    for a in iter_arrays(obj):
        if a.dtype.kind == "f" and a.size:
            tiny = np.finfo(a.dtype).tiny
            x = np.abs(a)
            total += int(np.count_nonzero((x < tiny) & (x > 0)))
    return total


def mode_longrun(args) -> dict:
    """Epoch time after ~step ``--early`` vs after ~step ``--late``, interleaved (see README)."""
    import copy
    import tempfile
    import warnings

    import numpy as np

    from bench import workloads

    warnings.simplefilter("ignore")
    wl = workloads.get(args.workload)
    X, y = wl.data(args.dtype)
    spe = wl.steps_per_epoch()
    e_early, e_late = -(-args.early // spe), -(-args.late // spe)  # epochs to reach the steps
    tmp = tempfile.TemporaryDirectory()
    if args.framework == "backprop":
        import backprop as bp
        from bench.peers.backprop_peer import build_model

        model = build_model(wl, args.dtype)

        def train(m, epochs):
            m.fit(X, y, epochs=epochs, batch_size=wl.batch_size, verbose=0)

        def snapshot(m, name):
            path = os.path.join(tmp.name, f"{name}.npz")
            m.save(path)
            return path

        def restore(path):
            return bp.load(path, backend="numpy")

        def state(m):
            return m.optimizer
    elif args.framework == "numpy":  # the baseline, which does not flush subnormals
        from bench.numpy_loop import NumpyMLP

        model = NumpyMLP(wl.sizes, args.dtype, seed=0)

        def train(m, epochs):
            m.fit(X, y, epochs, wl.batch_size, np.random.default_rng(m.t))

        def snapshot(m, name):
            return copy.deepcopy(m)

        def restore(snap):
            return copy.deepcopy(snap)

        def state(m):
            return [m.m, m.v]
    else:
        raise SystemExit(f"longrun supports backprop and numpy, not {args.framework!r}")

    t0 = time.perf_counter()
    train(model, e_early)
    early_snap, early_sub = snapshot(model, "early"), _subnormals(state(model))
    train(model, e_late - e_early)
    late_snap, late_sub = snapshot(model, "late"), _subnormals(state(model))
    reach = time.perf_counter() - t0
    times: dict[str, list[float]] = {"early": [], "late": []}
    for r in range(args.rounds):
        order = (("early", early_snap), ("late", late_snap))
        for name, snap in order if r % 2 == 0 else order[::-1]:
            m = restore(snap)
            t1 = time.perf_counter()
            train(m, 1)
            times[name].append((time.perf_counter() - t1) / spe)
    tmp.cleanup()
    early, late = statistics.median(times["early"]), statistics.median(times["late"])
    pairs = [b / a for a, b in zip(times["early"], times["late"], strict=True)]
    return {
        "framework": args.framework,
        "workload": wl.name,
        "dtype": args.dtype,
        "early_step": e_early * spe,
        "late_step": e_late * spe,
        "rounds": args.rounds,
        "early_s": early,
        "late_s": late,
        "ratio": late / early,
        "paired": statistics.median(pairs),
        "subnormals_early": early_sub,
        "subnormals_late": late_sub,
        "reach_s": reach,
    }


def main(argv=None) -> int:
    args = _parse(argv)
    _apply_threads(args.threads)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if here not in sys.path:
        sys.path.insert(0, here)
    import numpy  # noqa: F401  (loads OpenBLAS, so that threadpoolctl can limit it too)

    limits = _limit_threads(args.threads)  # noqa: F841  (kept alive for the process)
    if args.mode == "serve":
        mode_serve(args)
        return 0
    fn = {
        "time": mode_time,
        "memory": mode_memory,
        "firstfit": mode_firstfit,
        "longrun": mode_longrun,
    }
    _emit(fn[args.mode](args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
