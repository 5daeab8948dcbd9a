"""The benchmark driver: ``python bench/run.py`` (or ``python -m bench``).

1. Counts the array operations per training step of each workload (deterministic).
2. Starts one worker process per framework (``bench/worker.py --mode serve``), all with the same
   thread count, and for each workload and dtype: a warm-up sample in each (not counted), then
   rounds in which every framework runs one sample in turn (the order rotates each round), so
   that the machine's load drifts over all of them alike. Only one worker runs at a time.
3. Fresh processes for what needs one: peak memory of the large workload, the first fit of a
   process against a warm fit, step 3000 against step 100 of a long float32 run.
4. Prints the tables with the ratios of this run, writes ``bench/results.json`` and rewrites
   ``bench/RESULTS.md`` (``--quick``: ``bench/results-quick.json`` only).

See ``bench/README.md`` for what each number means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
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

from bench import peers, workloads  # noqa: E402
from bench.worker import PREFIX, thread_env  # noqa: E402

DTYPES = ("float32", "float64")

# (name, workload, dtype, subject, peer, limit): the subject's median / the peer's median
# <= limit, both from this run's interleaved rounds; the subject is backprop (NumPy backend)
# except where named
RATIO_TARGETS = [
    ("seed, per epoch, vs scikit-learn", "seed", "float32", "backprop", "sklearn", 0.30),
    ("seed, per epoch, vs torch eager", "seed", "float32", "backprop", "torch", 0.20),
    (
        "seed, per epoch, vs the hand-written NumPy loop",
        "seed",
        "float32",
        "backprop",
        "numpy",
        1.15,
    ),
    (
        "seed, per epoch, backprop on JAX vs backprop on NumPy",
        "seed",
        "float32",
        "backprop_jax",
        "backprop",
        0.50,
    ),
    (
        "digits float32, per epoch, vs scikit-learn",
        "digits",
        "float32",
        "backprop",
        "sklearn",
        0.45,
    ),
    (
        "digits float32, per epoch, vs torch fused Adam",
        "digits",
        "float32",
        "backprop",
        "torch_fused",
        0.35,
    ),
    ("large float32, per step, vs the GEMM floor", "large", "float32", "backprop", "gemm", 1.5),
    ("large float32, per step, vs scikit-learn", "large", "float32", "backprop", "sklearn", 0.65),
]
# float64 "large" has no target and costs twice float32's time: to keep the full run within
# 10 minutes on 2 cores it runs these frameworks only
LARGE_FLOAT64 = ("backprop", "numpy", "gemm", "sklearn")
# frameworks measured on some workloads only (the others run on every workload): backprop on
# the JAX backend has a target on seed only
ONLY_WORKLOADS = {"backprop_jax": ("seed",)}
OPS_LIMIT = 85
# bench/distributed.py writes its own page (and a section of RESULTS.md that a rerun of this
# script drops): the rendered RESULTS.md always links to that page
DISTRIBUTED_LINK = (
    "Data-parallel scaling over MPI: see [RESULTS-distributed.md](RESULTS-distributed.md) "
    "(`python bench/distributed.py`)."
)
LONGRUN_LIMIT = 1.1
FIRSTFIT_LIMIT = 1.15


# ---------------------------------------------------------------------------------------------
# workers


class WorkerError(RuntimeError):
    pass


class Worker:
    """A ``bench.worker --mode serve`` process for one framework."""

    def __init__(self, framework: str, env: dict, threads: int, timeout: float = 300.0):
        self.framework = framework
        self.timeout = timeout
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in close())
        cmd = [sys.executable, "-m", "bench.worker", "--mode", "serve"]
        cmd += ["--framework", framework, "--threads", str(threads)]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )
        self.hello = self._read()

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.log.seek(0)
                tail = self.log.read()[-2000:]
                raise WorkerError(f"{self.framework} worker exited:\n{tail}")
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX) :])

    def call(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if not reply.get("ok", False):
            raise WorkerError(f"{self.framework}: {reply.get('error')}")
        return reply

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def one_shot(args: list[str], env: dict, timeout: float = 300.0) -> dict:
    """Run ``python -m bench.worker ARGS`` in a fresh process; its JSON answer."""
    cmd = [sys.executable, "-m", "bench.worker", *args]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    for line in out.stdout.splitlines():
        if line.startswith(PREFIX):
            return json.loads(line[len(PREFIX) :])
    raise WorkerError(f"{' '.join(args)} failed (rc {out.returncode}):\n{out.stderr[-2000:]}")


# ---------------------------------------------------------------------------------------------
# statistics


def summarize(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def ratio(
    timings: dict, workload: str, dtype: str, peer: str, subject: str = "backprop"
) -> dict | None:
    """The subject's (backprop's) median over the peer's, and the median of per-round ratios."""
    group = timings.get(f"{workload}/{dtype}", {})
    a, b = group.get(subject), group.get(peer)
    if not a or not b or "samples" not in a or "samples" not in b:
        return None
    pairs = [x / y for x, y in zip(a["samples"], b["samples"], strict=False)]
    return {
        "ratio": a["median"] / b["median"],
        "paired": statistics.median(pairs) if pairs else None,
    }


# ---------------------------------------------------------------------------------------------
# the measurements


def measure_timings(args, frameworks, env, log) -> dict:
    timings: dict[str, dict] = {}
    workers: dict[str, Worker] = {}
    for fw in frameworks:
        try:
            workers[fw] = Worker(fw, env, args.threads)
        except WorkerError as exc:
            log(f"  ! {fw} did not start: {exc}")
    try:
        for name in args.workloads:
            wl = workloads.get(name)
            epochs = wl.quick_epochs if args.quick else wl.sample_epochs
            for dtype in args.dtypes:
                key = f"{name}/{dtype}"
                group: dict[str, dict] = {}
                timings[key] = group
                t0 = time.perf_counter()
                active = []
                for fw, w in workers.items():
                    if key == "large/float64" and fw not in LARGE_FLOAT64:
                        continue
                    if name not in ONLY_WORKLOADS.get(fw, (name,)):
                        continue
                    try:
                        info = w.call(cmd="prepare", workload=name, dtype=dtype, epochs=epochs)
                        group[fw] = {"info": info, "samples": []}
                        active.append(fw)
                    except WorkerError as exc:
                        group[fw] = {"error": str(exc)}
                        log(f"  ! {fw} {key}: {exc}")
                for r in range(args.samples):
                    order = active[r % len(active) :] + active[: r % len(active)]
                    for fw in order:
                        try:
                            group[fw]["samples"].append(workers[fw].call(cmd="sample")["per_unit"])
                        except WorkerError as exc:
                            group[fw]["error"] = str(exc)
                            active.remove(fw)
                for fw in list(group):
                    s = group[fw].get("samples")
                    if s:
                        group[fw].update(summarize(s))
                log(
                    f"  {key}: {len(active)} frameworks x {args.samples} samples "
                    f"in {time.perf_counter() - t0:.0f} s"
                )
                log(format_group(key, group, wl.unit))
    finally:
        for w in workers.values():
            w.close()
    return timings


def measure_opcounts(names) -> dict:
    from bench.opcount import count_ops

    out = {}
    for name in names:
        # the amortized count (a 64-step window) where a step is cheap enough to repeat
        out[name] = count_ops(name, window=None if name == "large" else 64)
    if "seed" in names:
        out["seed, metrics=['accuracy']"] = count_ops("seed", metrics=["accuracy"])
    return out


def measure_memory(args, env, frameworks, log) -> dict:
    out = {}
    for fw in [f for f in ("backprop", "torch", "numpy", "sklearn", "jax") if f in frameworks]:
        try:
            out[fw] = one_shot(
                [
                    "--mode",
                    "memory",
                    "--framework",
                    fw,
                    "--workload",
                    "large",
                    "--dtype",
                    "float32",
                    "--threads",
                    str(args.threads),
                ],
                env,
            )
            log(
                f"  memory {fw}: +{out[fw]['delta_mib']:.0f} MiB "
                f"(baseline {out[fw]['baseline_mib']:.0f} MiB)"
            )
        except (WorkerError, subprocess.TimeoutExpired) as exc:
            out[fw] = {"error": str(exc)}
            log(f"  ! memory {fw}: {exc}")
    return out


def measure_firstfit(args, env, log) -> dict:
    runs = []
    for _ in range(args.firstfit_runs):
        try:
            runs.append(
                one_shot(
                    [
                        "--mode",
                        "firstfit",
                        "--framework",
                        "backprop",
                        "--workload",
                        "seed",
                        "--dtype",
                        "float32",
                        "--threads",
                        str(args.threads),
                    ],
                    env,
                )
            )
        except (WorkerError, subprocess.TimeoutExpired) as exc:
            log(f"  ! firstfit: {exc}")
    if not runs:
        return {"error": "no run finished"}
    ratios = [r["ratio"] for r in runs]
    out = {"runs": runs, "ratio": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    log(
        f"  first fit / warm fit (seed, {runs[0]['epochs']} epochs): median {out['ratio']:.3f} "
        f"over {len(runs)} fresh processes"
    )
    return out


def measure_longrun(args, env, frameworks, log) -> dict:
    """backprop (the target) and, for reference, the NumPy loop, which does not flush."""
    out = {}
    for name in args.longrun_workloads:
        for fw in ("backprop", "numpy"):
            if fw not in frameworks:
                continue
            cmd = ["--mode", "longrun", "--framework", fw, "--workload", name]
            cmd += ["--dtype", "float32", "--threads", str(args.threads)]
            cmd += ["--rounds", str(args.longrun_rounds)]
            try:
                r = one_shot(cmd, env)
            except (WorkerError, subprocess.TimeoutExpired) as exc:
                log(f"  ! longrun {fw} {name}: {exc}")
                continue
            key = name if fw == "backprop" else f"{name} ({fw})"
            # judged on the median of the per-round ratios: an epoch here is ~10 ms, so the
            # ratio of the two medians moves by +-20% with the machine's load, the paired one
            # by a few percent
            out[key] = {"framework": fw, "workload": name, "ratio": r["paired"], "runs": [r]}
            log(
                f"  {peers.LABELS[fw]}, {name} float32: step {r['late_step']} / step "
                f"{r['early_step']}: {r['paired']:.3f} (median of {r['rounds']} interleaved "
                f"rounds' ratios; ratio of medians {r['ratio']:.3f}); "
                f"subnormals in the optimizer state: {r['subnormals_early']} / "
                f"{r['subnormals_late']}"
            )
    return out


# ---------------------------------------------------------------------------------------------
# metadata


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info() -> dict:
    lscpu = _cmd(["lscpu"])
    fields = {}
    for line in lscpu.splitlines():
        k, _, v = line.partition(":")
        fields[k.strip()] = v.strip()
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split(":")[1].split()[0])
        mem = f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": fields.get("Model name") or platform.processor() or platform.machine(),
        "cpus": fields.get("CPU(s)") or str(os.cpu_count()),
        "threads_per_core": fields.get("Thread(s) per core"),
        "hypervisor": fields.get("Hypervisor vendor"),
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("backprop", "numpy", "array-api-compat", "scikit-learn", "torch", "jax", "jaxlib"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def git_info() -> dict:
    head = _cmd(["git", "rev-parse", "--short", "HEAD"]).strip()
    dirty = _cmd(["git", "status", "--porcelain", "--", "backprop"]).strip()
    return {"commit": head, "backprop_dirty": bool(dirty)}


def blas_summary(timings: dict) -> list[str]:
    """The BLAS libraries that threadpoolctl saw in the workers, with who uses which."""
    users: dict[str, list[str]] = {}
    for group in timings.values():
        for fw, g in group.items():
            info = g.get("info", {})
            texts = []
            for lib in info.get("blas", []):
                if lib.get("user_api") != "blas":
                    continue
                parts = (lib.get("internal_api"), lib.get("version"), lib.get("architecture"))
                texts.append(
                    f"{' '.join(str(x) for x in parts if x)} ({lib.get('prefix')}), "
                    f"{lib.get('num_threads')} thread(s)"
                )
            if info.get("gemm_library"):
                texts.append(f"matmul by {info['gemm_library']}")
            for text in texts:
                if fw not in users.setdefault(text, []):
                    users[text].append(fw)
    return [f"{text}: {', '.join(fws)}" for text, fws in users.items()]


# ---------------------------------------------------------------------------------------------
# reporting


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _ms(x: float) -> str:
    return f"{x * 1e3:.3f}" if x < 0.01 else f"{x * 1e3:.2f}" if x < 1 else f"{x * 1e3:.1f}"


def format_group(key: str, group: dict, unit: str) -> str:
    lines = [
        f"| {key} | median ms/{unit} | min | max | backprop / this |",
        "|---|---:|---:|---:|---:|",
    ]
    base = group.get("backprop", {}).get("median")
    for fw, g in group.items():
        label = peers.LABELS.get(fw, fw)
        if "median" not in g:
            lines.append(f"| {label} | error: {g.get('error', '?')[:60]} | | | |")
            continue
        r = f"{base / g['median']:.2f}x" if base else "-"
        lines.append(f"| {label} | {_ms(g['median'])} | {_ms(g['min'])} | {_ms(g['max'])} | {r} |")
    return "\n".join(lines)


def evaluate_targets(results: dict) -> list[dict]:
    rows = []
    timings = results.get("timings", {})
    for label, wl, dtype, subject, peer, limit in RATIO_TARGETS:
        r = ratio(timings, wl, dtype, peer, subject)
        rows.append(
            {
                "target": label,
                "limit": f"<= {limit:.2f}x",
                "measured": None if r is None else r["ratio"],
                "paired": None if r is None else r["paired"],
                "text": "not measured" if r is None else f"{r['ratio']:.2f}x",
                "met": None if r is None else r["ratio"] <= limit,
            }
        )
    ops = results.get("opcount", {}).get("seed", {}).get("per_step")
    rows.append(
        {
            "target": "array ops per seed step (in fit)",
            "limit": f"<= {OPS_LIMIT}",
            "measured": ops,
            "text": "not measured" if ops is None else f"{ops}",
            "met": None if ops is None else ops <= OPS_LIMIT,
        }
    )
    longrun = results.get("longrun", {})
    for name, lr in longrun.items():
        if lr.get("framework", "backprop") != "backprop":
            continue  # the NumPy loop is a reference, not a target
        rows.append(
            {
                "target": f"{name} float32, step 3000 vs step 100",
                "limit": f"<= {LONGRUN_LIMIT:.2f}x",
                "measured": lr["ratio"],
                "text": f"{lr['ratio']:.2f}x (paired rounds)",
                "met": lr["ratio"] <= LONGRUN_LIMIT,
            }
        )
    ff = results.get("firstfit", {})
    if "ratio" in ff:
        rows.append(
            {
                "target": "first fit in a fresh process vs a warm fit (seed, 50 epochs)",
                "limit": f"<= {FIRSTFIT_LIMIT:.2f}x",
                "measured": ff["ratio"],
                "text": f"{ff['ratio']:.2f}x",
                "met": ff["ratio"] <= FIRSTFIT_LIMIT,
            }
        )
    mem = results.get("memory", {})
    a, b = mem.get("backprop", {}).get("delta_mib"), mem.get("torch", {}).get("delta_mib")
    if a is not None and b is not None:
        rows.append(
            {
                "target": "peak memory, large (float32): backprop vs torch",
                "limit": "<= 1.00x",
                "measured": a / b,
                "text": f"{a:.0f} MiB vs {b:.0f} MiB ({a / b:.2f}x)",
                "met": a <= b,
            }
        )
    return rows


def targets_table(rows: list[dict]) -> str:
    lines = [
        "| target | limit | measured (this run) | median of per-round ratios | met |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        met = "n/a" if r["met"] is None else ("yes" if r["met"] else "**no**")
        paired = f"{r['paired']:.2f}x" if r.get("paired") is not None else ""
        lines.append(f"| {r['target']} | {r['limit']} | {r['text']} | {paired} | {met} |")
    return "\n".join(lines)


def opcount_table(opcount: dict) -> str:
    lines = [
        "| workload | ops per step in fit | of which matmul | amortized over 64 steps "
        "| one `train_step` call | host syncs per step | ops per fit call (once) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in opcount.items():
        if "per_step" not in c:
            lines.append(f"| {name} | error: {c.get('error')} | | | | | |")
            continue
        amortized = c.get("per_step_amortized")
        lines.append(
            f"| {name} | {c['per_step']} | {c['by_op'].get('matmul', 0)} "
            f"| {'-' if amortized is None else f'{amortized:.2f}'} | {c['train_step']} "
            f"| {c['syncs_per_step']:g} | {c['per_fit_call']:g} |"
        )
    return "\n".join(lines)


def _memory_method(memory: dict) -> str:
    methods = {m.get("method") for m in memory.values() if m.get("method")}
    if methods == {"ru_maxrss after clear_refs, minus VmRSS at the baseline"}:
        return (
            "the resident memory after the imports and the NumPy data is the baseline; the "
            "peak mark is reset there (`/proc/self/clear_refs`), and `ru_maxrss` after one "
            "epoch minus the baseline is the training's peak"
        )
    return "; ".join(sorted(methods)) or "see bench/README.md"


def memory_table(memory: dict) -> str:
    lines = [
        "| framework | peak RSS - baseline (MiB) | baseline (MiB) | peak (MiB) |",
        "|---|---:|---:|---:|",
    ]
    for fw, m in memory.items():
        if "delta_mib" not in m:
            lines.append(f"| {peers.LABELS.get(fw, fw)} | error | | |")
            continue
        lines.append(
            f"| {peers.LABELS.get(fw, fw)} | {m['delta_mib']:.0f} | {m['baseline_mib']:.0f} "
            f"| {m['peak_mib']:.0f} |"
        )
    return "\n".join(lines)


def render_markdown(results: dict) -> str:
    meta = results["meta"]
    m = meta["machine"]
    v = ", ".join(f"{k} {val}" for k, val in meta["versions"].items())
    out = [
        "# backprop CPU benchmark: latest results",
        "",
        f"Written by `{meta['command']}` on {meta['date']} (wall time {meta['wall_s']:.0f} s). "
        "How to run and what each number means: [README.md](README.md). Raw numbers: "
        f"[{meta['json']}]({meta['json']}).",
        "",
        f"- Machine: {m['cpu']}, {m['cpus']} CPUs ({m['threads_per_core']} thread(s) per core"
        f"{', ' + m['hypervisor'] + ' VM' if m.get('hypervisor') else ''}), {m['memory']} RAM; "
        f"{m['os']}; Python {m['python']}.",
        f"- Libraries: {v}.",
        f"- backprop tree: commit {meta['git']['commit']}"
        f"{' with uncommitted changes in backprop/' if meta['git']['backprop_dirty'] else ''}.",
        f"- Threads: {meta['threads']} for every framework (OMP/OPENBLAS/MKL env, threadpoolctl, "
        "torch.set_num_threads, XLA_FLAGS).",
        "- BLAS (threadpoolctl, in each worker): " + "; ".join(meta["blas"]) + ".",
        f"- Samples: {meta['samples']} per framework and case, interleaved rounds, after one "
        "warm-up sample; times are medians (min, max) over the samples.",
        f"- Load average (1 min) at start / end: {meta['load_start']} / {meta['load_end']}. "
        "This is a shared, noisy machine: other processes ran during the measurement, so "
        "ratios within one run are what to compare, not absolute times across runs.",
        "- " + DISTRIBUTED_LINK,
        "",
        "## Targets",
        "",
        "Each ratio is backprop's median over the peer's median (for the JAX-backend row: "
        "backprop on JAX over backprop on NumPy), both measured in this run; "
        "the next column is the median over the rounds of backprop's sample over the peer's "
        "sample of the same round (less sensitive to load that drifts during the run). A "
        "target is judged on the first.",
        "",
        targets_table(results["targets"]),
        "",
        "## Time per epoch (seed, digits) or per step (large)",
        "",
        "`backprop / this` < 1 means backprop is faster.",
        "",
    ]
    for key, group in results["timings"].items():
        unit = workloads.get(key.split("/")[0]).unit
        out += [format_group(key, group, unit), ""]
    compiles = [
        f"{key} {g['info']['first_fit_s']:.2f} s"
        for key, group in results["timings"].items()
        for fw, g in group.items()
        if fw == "backprop_jax" and g.get("info", {}).get("first_fit_s") is not None
    ]
    if compiles:
        out += [
            f"{peers.LABELS['backprop_jax']}: `fit` compiles the whole epoch into one "
            "`jax.jit` program per model, in its first `fit` (the warm-up sample, not "
            "counted); each sample then restarts the same model from its initial weights "
            "and a fresh optimizer. The warm-up's first fit, compilation included: "
            + ", ".join(compiles)
            + ". Measured on seed only (its target).",
            "",
        ]
    out += [
        "## Array operations per training step (deterministic)",
        "",
        "Counted on the NumPy backend by wrapping the namespace and the arrays "
        "(`bench/opcount.py`): each is a kernel launch on a GPU. float32, no metrics unless "
        "named.",
        "",
        opcount_table(results["opcount"]),
        "",
        "## Peak memory, large workload (float32, one epoch of 16 steps)",
        "",
        "Each framework in a fresh process: "
        + _memory_method(results["memory"])
        + ". Model creation, copies into the framework's arrays and training all count.",
        "",
        memory_table(results["memory"]),
        "",
    ]
    ff = results.get("firstfit", {})
    if "ratio" in ff:
        r0 = ff["runs"][0]
        out += [
            "## First fit in a fresh process vs a warm fit",
            "",
            f"seed float32, {r0['epochs']} epochs, {len(ff['runs'])} fresh processes: first "
            f"fit / median of {len(r0.get('warm_fits_s', [0]))} warm fits of fresh models in "
            f"the same process: median {ff['ratio']:.3f} (min {ff['min']:.3f}, max "
            f"{ff['max']:.3f}); first fit median "
            f"{statistics.median(r['first_s'] for r in ff['runs']):.3f} s.",
            "",
        ]
    if results.get("longrun"):
        out += [
            "## Long float32 runs: step 3000 vs step 100",
            "",
            "One model trained to step ~100 and saved, then to step ~3000 and saved again; then "
            "rounds that each time one epoch from each saved state (alternating which goes "
            "first), so that load drifting during the run hits both alike. Median time per "
            "step after each point, their ratio, and the median of the per-round ratios (what "
            "the target is judged on). The hand-written NumPy loop, which does not flush "
            "Adam's moments, shows what subnormals cost when nothing is done about them.",
            "",
            "| workload | framework | steps | ms/step after the early one | after the late one "
            "| ratio of medians | median of per-round ratios "
            "| subnormals in optimizer state, early / late |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        for lr in results["longrun"].values():
            r = lr["runs"][-1]
            fw = peers.LABELS[lr.get("framework", "backprop")]
            out.append(
                f"| {lr.get('workload', '?')} | {fw} | {r['early_step']} / {r['late_step']} "
                f"| {r['early_s'] * 1e3:.3f} | {r['late_s'] * 1e3:.3f} | {r['ratio']:.2f} "
                f"| {_fmt(r.get('paired'))} | {r['subnormals_early']} / {r['subnormals_late']} |"
            )
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python bench/run.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 3 samples, short samples, float32 only (~1-2 min)",
    )
    p.add_argument("--threads", type=int, default=1, help="threads for every framework (1)")
    p.add_argument("--samples", type=int, default=None, help="samples per case (9; quick: 3)")
    p.add_argument(
        "--frameworks", nargs="+", default=list(peers.FRAMEWORKS), choices=peers.FRAMEWORKS
    )
    p.add_argument(
        "--workloads",
        nargs="+",
        default=list(workloads.WORKLOADS),
        choices=list(workloads.WORKLOADS),
    )
    p.add_argument("--dtypes", nargs="+", default=None, choices=DTYPES)
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["opcount", "timings", "memory", "firstfit", "longrun"],
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON file (default bench/results.json; quick: bench/results-quick.json)",
    )
    p.add_argument("--no-markdown", action="store_true", help="do not rewrite bench/RESULTS.md")
    p.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="JSON",
        help="measure nothing: rewrite bench/RESULTS.md from a results JSON file",
    )
    args = p.parse_args(argv)
    if args.samples is None:
        args.samples = 3 if args.quick else 9
    if args.dtypes is None:
        args.dtypes = ["float32"] if args.quick else list(DTYPES)
    if args.output is None:
        args.output = HERE / ("results-quick.json" if args.quick else "results.json")
    if args.quick:
        args.no_markdown = True
    args.firstfit_runs = 2 if args.quick else 5
    args.longrun_rounds = 7 if args.quick else 21
    args.longrun_workloads = ["seed"] if args.quick else ["seed", "digits"]
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.render is not None:
        results = json.loads(args.render.read_text())
        results["meta"]["blas"] = blas_summary(results["timings"])
        results["targets"] = evaluate_targets(results)
        (HERE / "RESULTS.md").write_text(render_markdown(results))
        print(targets_table(results["targets"]))
        print(f"wrote {HERE / 'RESULTS.md'} from {args.render}")
        return 0
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]

    def log(msg: str) -> None:
        print(msg, flush=True)

    env = os.environ.copy()
    env.update(thread_env(args.threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONWARNINGS"] = "ignore"
    frameworks = [f for f in args.frameworks if peers.available(f)]
    missing = [f for f in args.frameworks if f not in frameworks]
    log(
        f"backprop benchmark: {', '.join(frameworks)}"
        f"{' (not installed: ' + ', '.join(missing) + ')' if missing else ''}; "
        f"{args.threads} thread(s); {args.samples} samples{' (quick)' if args.quick else ''}"
    )

    results: dict = {"timings": {}, "opcount": {}, "memory": {}, "firstfit": {}, "longrun": {}}
    if "opcount" not in args.skip:
        log("array operations per step:")
        results["opcount"] = measure_opcounts(args.workloads)
        for name, c in results["opcount"].items():
            log(
                f"  {name}: {c['per_step']} ops per step in fit (train_step {c['train_step']}, "
                f"{c['by_op'].get('matmul', 0)} matmul)"
            )
    if "timings" not in args.skip:
        log("timings (interleaved rounds):")
        results["timings"] = measure_timings(args, frameworks, env, log)
    if "large" in args.workloads and "memory" not in args.skip:
        log("peak memory, large float32:")
        results["memory"] = measure_memory(args, env, frameworks, log)
    if "backprop" in frameworks and "firstfit" not in args.skip:
        log("first fit vs warm fit:")
        results["firstfit"] = measure_firstfit(args, env, log)
    if "backprop" in frameworks and "longrun" not in args.skip:
        log("float32 step 3000 vs step 100:")
        results["longrun"] = measure_longrun(args, env, frameworks, log)

    try:
        rel = args.output.resolve().relative_to(HERE)
    except ValueError:
        rel = args.output
    results["meta"] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/run.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip(),
        "machine": machine_info(),
        "versions": versions(),
        "git": git_info(),
        "threads": args.threads,
        "samples": args.samples,
        "quick": args.quick,
        "blas": blas_summary(results["timings"]),
        "load_start": round(load_start, 2),
        "load_end": round(os.getloadavg()[0], 2),
        "wall_s": time.perf_counter() - t_start,
        "json": str(rel),
    }
    results["targets"] = evaluate_targets(results)
    log("")
    log(targets_table(results["targets"]))
    args.output.write_text(json.dumps(results, indent=1, default=str) + "\n")
    log(f"\nwrote {args.output}")
    if not args.no_markdown:
        (HERE / "RESULTS.md").write_text(render_markdown(results))
        log(f"wrote {HERE / 'RESULTS.md'}")
    log(f"total {results['meta']['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
