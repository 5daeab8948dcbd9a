"""One training step of the Fashion-MNIST CNN (issue 22), against PyTorch and the GEMM floor.

The network is ``examples/fashion_cnn.py``'s: Conv2D(32, 3, 'same'), ReLU, Conv2D(32, 3,
'same'), ReLU, MaxPooling2D(2), Dropout(0.25), Conv2D(64, 3, 'same'), ReLU, Conv2D(64, 3,
'same'), ReLU, MaxPooling2D(2), Dropout(0.25), Flatten, Dense(256, relu), Dense(32, relu),
Dense(10, softmax); Adam (lr 0.003), sparse categorical cross-entropy, batch 256, float32, on
28x28x1 images (synthetic: only the shapes matter for time).

Every case runs in its own process (``--case``), pinned to ``--threads`` threads (the
environment before NumPy is imported, threadpoolctl, ``torch.set_num_threads``, XLA's flags),
and reports the median of ``--repeats`` timed steps after a warm-up, and its peak resident
memory above what it held before the first step (``bench.worker``'s method: the peak mark is
reset after the model and the data are made):

``backprop:<backend>``
    backprop's ``fit`` on ``--steps`` batches (one epoch, no shuffle), time per step: what a
    user runs. The JAX backend compiles the epoch in the warm-up.
``torch``
    PyTorch CPU eager on the same network and initial weights (``nn.Conv2d``: oneDNN's
    convolution), ``torch.optim.Adam``, one ``zero_grad``/forward/``backward``/``step``.
``gemm:<library>``
    the step's matrix products alone, on preallocated arrays: per convolution the im2col
    product ``cols @ W`` and its two backward products (``cols.T @ dz``, ``dz @ W.T``; none
    for the first layer's input), per Dense layer ``x @ W``, ``x.T @ dz``, ``dz @ W.T``. No
    im2col-based step on that library can beat it.
``backprop:numpy@REV``
    backprop's NumPy step with the ``backprop`` package of git revision ``REV`` (``--against
    REV``): the before/after of a change, measured in the same run.

Run from the repository root::

    python bench/cnn.py                  # every case, 1 thread, 9 steps each (a few minutes)
    python bench/cnn.py --against HEAD~3 # and backprop's NumPy step as it was at HEAD~3
    python bench/cnn.py --quick          # a smoke run: batch 16, 2 steps, small cases only
    python bench/cnn.py --epoch          # one epoch of 30,000 images on NumPy, 2 threads

Timings on a shared machine drift; the ratios compare cases measured in the same run.
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
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "@@CNN "
CASES = ("backprop:numpy", "gemm:numpy", "torch", "backprop:torch", "gemm:torch")
JAX_CASES = ("backprop:jax", "gemm:jax")


# -- the network ------------------------------------------------------------------------------
def build_backprop(backend: str = "numpy", dtype: str = "float32", seed: int = 0):
    """The Fashion CNN as backprop builds it, compiled with Adam(0.003)."""
    import backprop as bp

    L = bp.layers
    model = bp.Sequential(
        [
            L.Conv2D(32, 3, padding="same", activation="relu", input_shape=(28, 28, 1)),
            L.Conv2D(32, 3, padding="same", activation="relu"),
            L.MaxPooling2D(2),
            L.Dropout(0.25),
            L.Conv2D(64, 3, padding="same", activation="relu"),
            L.Conv2D(64, 3, padding="same", activation="relu"),
            L.MaxPooling2D(2),
            L.Dropout(0.25),
            L.Flatten(),
            L.Dense(256, activation="relu"),
            L.Dense(32, activation="relu"),
            L.Dense(10, activation="softmax"),
        ],
        backend=backend,
        seed=seed,
        dtype=dtype,
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer=bp.optimizers.Adam(0.003))
    return model


def build_torch(weights: list):
    """The same network in PyTorch (NCHW), with backprop's initial weights.

    Keras's kernels ``(kh, kw, c_in, c_out)`` become torch's ``(c_out, c_in, kh, kw)``, Dense's
    ``(in, out)`` becomes Linear's ``(out, in)``, and the images go back to channels last
    before Flatten, so that the first Dense sees Keras's order and the same weights.
    """
    import numpy as np
    import torch
    from torch import nn

    class ChannelsLast(nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 3, 1)

    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        ChannelsLast(),
        nn.Flatten(),
        nn.Linear(7 * 7 * 64, 256),
        nn.ReLU(),
        nn.Linear(256, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
    layers = [m for m in net if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        for m, (W, b) in zip(layers, zip(weights[::2], weights[1::2], strict=True), strict=True):
            W = np.asarray(W)
            W = W.transpose(3, 2, 0, 1) if W.ndim == 4 else W.T
            m.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
            m.bias.copy_(torch.from_numpy(np.asarray(b)))
    return net


def product_shapes(model, batch: int) -> list[tuple[tuple[int, int], tuple[int, int], bool]]:
    """``(a.shape, b.shape, a_transposed)`` of every matrix product of one step.

    ``a_transposed`` marks ``cols.T @ dz`` and ``x.T @ dz``, whose left operand is the
    transpose of a row-major matrix, as in the layers.
    """
    shapes = []
    shape = model.input_shape
    for k, layer in enumerate(model.layers):
        out = layer.compute_output_shape(shape)
        name = type(layer).__name__
        if name in ("Conv2D", "Dense"):
            if name == "Conv2D":
                kh, kw = layer.kernel_size
                rows, depth = batch * out[0] * out[1], kh * kw * shape[2]
            else:
                rows, depth = batch, shape[-1]
            f = out[-1]
            shapes.append(((rows, depth), (depth, f), False))  # forward
            shapes.append(((depth, rows), (rows, f), True))  # dW
            if k > 0:
                shapes.append(((rows, f), (f, depth), False))  # d(cols) or dx
        shape = out
    return shapes


# -- one case, in this process ----------------------------------------------------------------
def _data(batch: int, steps: int):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.random((batch * steps, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, batch * steps)
    return X, y


def _time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def run_case(case: str, batch: int, steps: int, repeats: int, threads: int) -> dict:
    """Time one case here; returns its median step, samples and peak memory above the start."""
    import gc

    import numpy as np

    from bench.worker import _limit_threads, _maxrss_mib, _reset_peak, _rss_mib, blas_info

    _limit_threads(threads)
    kind, _, lib = case.partition(":")
    lib = lib.split("@")[0]
    if "torch" in (kind, lib):
        import torch

        torch.set_num_threads(threads)
    X, y = _data(batch, steps)
    info: dict = {}
    if kind == "backprop":
        import backprop

        info["backprop_path"] = str(Path(backprop.__file__).parent)
        model = build_backprop(lib)

        def fn():
            model.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)

        per_call = steps
    elif kind == "torch":
        import torch

        net = build_torch(build_backprop("numpy").get_weights())
        opt = torch.optim.Adam(net.parameters(), lr=0.003, eps=1e-7)
        loss_fn = torch.nn.CrossEntropyLoss()
        xb = torch.from_numpy(np.ascontiguousarray(X[:batch].transpose(0, 3, 1, 2)))
        yb = torch.from_numpy(y[:batch])
        net.train()

        def fn():
            opt.zero_grad(set_to_none=True)
            loss_fn(net(xb), yb).backward()
            opt.step()

        per_call = 1
    elif kind == "gemm":
        fn = _gemm_floor(lib, product_shapes(build_backprop("numpy"), batch))
        per_call = 1
    else:
        raise ValueError(f"unknown case {case!r}: expected backprop:<backend>, torch or gemm:<lib>")
    gc.collect()
    base = _rss_mib() if _reset_peak() and _rss_mib() is not None else _maxrss_mib()
    fn()  # warm-up: compiles JAX, faults the pages in
    samples = [t / per_call for t in _time(fn, repeats)]
    return {
        "case": case,
        "batch": batch,
        "median_s": statistics.median(samples),
        "samples": samples,
        "peak_mib": _maxrss_mib() - base,
        "threads": threads,
        "blas": blas_info(),
        **info,
    }


def _gemm_floor(lib: str, shapes):
    """A function running every product of ``shapes`` once, on ``lib``, into preallocated out."""
    import numpy as np

    rng = np.random.default_rng(0)

    def operands(a_shape, b_shape, transposed):
        a = rng.random(a_shape[::-1] if transposed else a_shape, dtype=np.float32)
        return (a.T if transposed else a), rng.random(b_shape, dtype=np.float32)

    pairs = [operands(*s) for s in shapes]
    if lib == "numpy":
        outs = [np.empty((a.shape[0], b.shape[1]), np.float32) for a, b in pairs]

        def fn():
            for (a, b), out in zip(pairs, outs, strict=True):
                np.matmul(a, b, out=out)

        return fn
    if lib == "torch":
        import torch

        tpairs = [
            (torch.from_numpy(a.base if a.base is not None else a), torch.from_numpy(b))
            for a, b in pairs
        ]
        tpairs = [(a.T if s[2] else a, b) for (a, b), s in zip(tpairs, shapes, strict=True)]
        outs = [torch.empty((a.shape[0], b.shape[1])) for a, b in tpairs]

        def fn():
            for (a, b), out in zip(tpairs, outs, strict=True):
                torch.matmul(a, b, out=out)

        return fn
    if lib == "jax":
        import jax
        import jax.numpy as jnp

        jpairs = [(jnp.asarray(a), jnp.asarray(b)) for a, b in pairs]
        mm = jax.jit(jnp.matmul)

        def fn():
            for a, b in jpairs:
                mm(a, b).block_until_ready()

        return fn
    raise ValueError(f"unknown GEMM library {lib!r}: expected numpy, torch or jax")


# -- the driver -------------------------------------------------------------------------------
def _env(threads: int, pythonpath: str) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from bench.worker import thread_env

    env = os.environ.copy()
    env.update(thread_env(threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    env["PYTHONWARNINGS"] = "ignore"
    return env


def spawn(case: str, args, pythonpath: str = str(ROOT)) -> dict:
    """Run one case in a fresh process (its own threads and memory) and read its result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", case]
    cmd += ["--batch", str(args.batch), "--steps", str(args.steps)]
    cmd += ["--repeats", str(args.repeats), "--threads", str(args.threads)]
    out = subprocess.run(
        cmd, cwd=ROOT, env=_env(args.threads, pythonpath), capture_output=True, text=True
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(PREFIX)]
    if out.returncode != 0 or not lines:
        return {"case": case, "error": (out.stderr or out.stdout)[-1500:]}
    return json.loads(lines[-1][len(PREFIX) :])


def checkout(rev: str, into: str) -> str:
    """The ``backprop`` package of git revision ``rev``, unpacked under ``into``."""
    archive = subprocess.run(
        ["git", "archive", rev, "backprop"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return into


def ratios(results: dict[str, dict]) -> list[tuple[str, str, float | None]]:
    """``(what, limit, measured)`` for each of issue 22's targets that was measured."""

    def ratio(a, b, key="median_s"):
        ra, rb = results.get(a, {}), results.get(b, {})
        return ra[key] / rb[key] if key in ra and key in rb and rb[key] else None

    rows = [
        (
            "backprop NumPy step / NumPy GEMM floor",
            "<= 1.6x",
            ratio("backprop:numpy", "gemm:numpy"),
        ),
        ("backprop NumPy step / PyTorch CPU eager", "<= 2.2x", ratio("backprop:numpy", "torch")),
        (
            "backprop torch step / PyTorch CPU eager",
            "<= 1.2x (fast path)",
            ratio("backprop:torch", "torch"),
        ),
        (
            "backprop torch step / torch GEMM floor",
            "<= 1.6x (no fast path)",
            ratio("backprop:torch", "gemm:torch"),
        ),
        (
            "backprop JAX step / PyTorch CPU eager",
            "<= 1.2x (fast path)",
            ratio("backprop:jax", "torch"),
        ),
        (
            "backprop JAX step / JAX GEMM floor",
            "<= 1.6x (no fast path)",
            ratio("backprop:jax", "gemm:jax"),
        ),
        (
            "peak memory, backprop NumPy / PyTorch",
            "<= 2x",
            ratio("backprop:numpy", "torch", "peak_mib"),
        ),
    ]
    for case in results:
        if case.startswith("backprop:numpy@"):
            rows.append(
                (f"{case} step / this tree's", "(before/after)", ratio(case, "backprop:numpy"))
            )
            rows.append(
                (
                    f"{case} peak / this tree's",
                    "(before/after)",
                    ratio(case, "backprop:numpy", "peak_mib"),
                )
            )
    return [r for r in rows if r[2] is not None]


def epoch(args) -> dict:
    """One epoch of 30,000 synthetic 28x28 images on NumPy, batch 256 (a user's fit)."""
    import numpy as np

    model = build_backprop("numpy")
    rng = np.random.default_rng(0)
    X = rng.random((args.epoch_images, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.epoch_images)
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():  # random labels may kill the ReLUs: no effect on time
        warnings.simplefilter("ignore")
        model.fit(X, y, epochs=1, batch_size=args.batch, verbose=0)
    return {
        "images": args.epoch_images,
        "threads": args.threads,
        "epoch_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,  # all threads: the work, whatever the machine's load
        "load": os.getloadavg()[0],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python bench/cnn.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--case", help="run one case in this process and print its result")
    p.add_argument("--cases", nargs="*", help="the cases to run (default: all installed)")
    p.add_argument("--against", action="append", default=[], help="a git revision to compare")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=2, help="batches per timed fit (backprop)")
    p.add_argument("--repeats", type=int, default=9, help="timed runs per case")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="batch 16, 2 repeats (smoke test)")
    p.add_argument("--epoch", action="store_true", help="time one NumPy epoch instead")
    p.add_argument("--epoch-images", type=int, default=30_000)
    p.add_argument("--output", help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.repeats, args.steps = 16, 2, 1
    if args.case:
        if str(ROOT) not in sys.path:
            sys.path.append(str(ROOT))  # bench.worker; backprop comes from PYTHONPATH
        print(
            PREFIX
            + json.dumps(run_case(args.case, args.batch, args.steps, args.repeats, args.threads))
        )
        return 0
    if args.epoch:
        for k, v in _env(args.threads, str(ROOT)).items():
            os.environ.setdefault(k, v)
        result = epoch(args)
        print(
            f"one epoch of {result['images']:,} images, batch {args.batch}, NumPy, "
            f"{args.threads} thread(s): {result['epoch_s']:.1f} s "
            f"({result['cpu_s']:.1f} s of CPU time; load average {result['load']:.1f})"
        )
        return 0
    import importlib.util

    cases = list(args.cases or CASES)
    if not args.cases:
        if importlib.util.find_spec("torch") is None:
            cases = [c for c in cases if "torch" not in c]
        if importlib.util.find_spec("jax") is not None and not args.quick:
            cases += list(JAX_CASES)
    results: dict[str, dict] = {}
    print(
        f"CNN step, batch {args.batch}, float32, {args.threads} thread(s), "
        f"median of {args.repeats}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(c, str(ROOT)) for c in cases]
        for rev in args.against:
            path = checkout(rev, tempfile.mkdtemp(dir=tmp))
            runs.append((f"backprop:numpy@{rev}", path))
        for case, path in runs:
            r = spawn(case, args, path)
            results[case] = r
            if "error" in r:
                print(f"  {case:28s} failed: {r['error']}", flush=True)
            else:
                print(
                    f"  {case:28s} {r['median_s'] * 1e3:9.1f} ms   peak {r['peak_mib']:7.1f} MiB",
                    flush=True,
                )
    for what, limit, value in ratios(results):
        print(f"  {what:48s} {value:6.2f}x   target {limit}")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1))
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
