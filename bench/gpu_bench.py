"""GPU benchmark: backprop on CuPy vs PyTorch CUDA eager (fused Adam) vs the cuBLAS GEMM floor.

    python bench/gpu_bench.py [--samples 9] [--out gpu-bench.json]

For each workload of ``bench/workloads.py`` (float32; TF32 off in both libraries, checked), after
a warm-up: the median (and min/max) time per step for backprop on CuPy (data already on the GPU,
``fit`` called once per sample for several epochs, so its once-per-call input checks are
amortized as in real use), PyTorch eager with ``Adam(fused=True)`` (the same epochs, shuffled on
the GPU), and the GEMM floor (the matrix products of those steps, CuPy matmul on the batch sizes
the epochs really have: per step and Dense layer ``x @ W``, ``x.T @ dz`` and ``dz @ W.T``, the
convention of ``bench/peers/gemm_floor.py``, although backprop skips the first layer's
``dz @ W.T``). Timed with CUDA events. Also the array operations per step (= kernel
launches), counted by ``bench/opcount.py`` on the host.

Before timing, a few checks that the GPU test suite does not cover: TF32 is really off (a float32
matmul whose exact result TF32 would round), and dropout masks drawn by CuPy's own generator
(device, seeding, keep rate, training). Targets recorded as met or not: large step <= 1.2x the
GEMM floor and <= 1.0x torch; seed step <= torch. The JSON is rewritten after every part, so a
run cut short still leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.workloads import WORKLOADS

# 1 + 2**-12 is exact in float32 but rounds to 1.0 in TF32 (10-bit mantissa): with TF32 off, a
# K-term dot product of these values is exactly K * (1 + 2**-12) (every partial sum fits in 24
# bits), with TF32 on it is K.
_TF32_PROBE = 1.0 + 2.0**-12
_TF32_K = 256


def _error(exc: BaseException) -> dict:
    return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)}


# -- timing ---------------------------------------------------------------------------------------


def _time_samples(run, sync, make_events, elapsed_ms, samples: int) -> list[float]:
    """Seconds of one ``run()``, measured with CUDA events, ``samples`` times."""
    out = []
    for _ in range(samples):
        sync()
        start, end = make_events()
        start.record()
        run()
        end.record()
        end.synchronize()
        out.append(elapsed_ms(start, end) / 1e3)
    return out


def _cupy_timer():
    """(sync, make_events, elapsed_ms) for CuPy.

    ``cupy.cuda.Event`` has no ``elapsed_time`` method (unlike ``torch.cuda.Event``): the time
    between two events is ``cupy.cuda.get_elapsed_time(start, end)``, in milliseconds.
    """
    import cupy

    def make_events():
        return cupy.cuda.Event(), cupy.cuda.Event()  # timing is enabled by default

    return cupy.cuda.Device().synchronize, make_events, cupy.cuda.get_elapsed_time


def _torch_timer():
    import torch

    def make_events():
        return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    return torch.cuda.synchronize, make_events, lambda start, end: start.elapsed_time(end)


def _batch_sizes(n: int, batch_size: int) -> list[int]:
    return [min(batch_size, n - lo) for lo in range(0, n, batch_size)]


# -- the three contenders -------------------------------------------------------------------------


def bench_backprop(w, X, y, samples: int, epochs: int) -> list[float]:
    import cupy

    import backprop as bp

    Xd, yd = cupy.asarray(X), cupy.asarray(y)
    layers = [bp.layers.Dense(u, "relu", input_dim=X.shape[1] if i == 0 else None)
              for i, u in enumerate(w.hidden)]  # fmt: skip
    layers.append(bp.layers.Dense(w.sizes[-1], w.output))
    model = bp.Sequential(layers, backend="cupy", seed=0)
    model.compile(loss=w.loss, optimizer="adam")
    model.fit(Xd, yd, epochs=1, batch_size=w.batch_size, verbose=0)  # warm-up (kernel compiles)

    def run():
        model.fit(Xd, yd, epochs=epochs, batch_size=w.batch_size, verbose=0)

    return _time_samples(run, *_cupy_timer(), samples)


def bench_torch(w, X, y, samples: int, epochs: int) -> list[float]:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = torch.device("cuda")
    Xd = torch.as_tensor(X, device=dev)
    if w.output == "sigmoid":
        yd = torch.as_tensor(y, device=dev, dtype=torch.float32).reshape(-1, 1)
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        yd = torch.as_tensor(y, device=dev)
        loss_fn = torch.nn.CrossEntropyLoss()
    mods, d = [], w.sizes[0]
    for u in w.hidden:
        mods += [torch.nn.Linear(d, u), torch.nn.ReLU()]
        d = u
    mods.append(torch.nn.Linear(d, w.sizes[-1]))
    net = torch.nn.Sequential(*mods).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7, fused=True)
    n = Xd.shape[0]

    def epoch():
        perm = torch.randperm(n, device=dev)
        Xs, ys = Xd[perm], yd[perm]
        for lo in range(0, n, w.batch_size):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xs[lo : lo + w.batch_size]), ys[lo : lo + w.batch_size])
            loss.backward()
            opt.step()

    epoch()  # warm-up

    def run():
        for _ in range(epochs):
            epoch()

    return _time_samples(run, *_torch_timer(), samples)


def bench_gemm_floor(w, X, samples: int, epochs: int) -> list[float]:
    """The matmuls of ``epochs`` epochs: per step and layer x @ W, x.T @ dz and dz @ W.T (as the
    CPU floor of ``bench/peers/gemm_floor.py``; the short last batch included)."""
    import cupy

    shapes = list(zip(w.sizes[:-1], w.sizes[1:], strict=True))
    sizes = _batch_sizes(X.shape[0], w.batch_size)
    arrays = {}
    for m in set(sizes):
        arrays[m] = [
            (
                cupy.random.standard_normal((m, fan_in), dtype=cupy.float32),
                cupy.random.standard_normal((fan_in, fan_out), dtype=cupy.float32),
                cupy.random.standard_normal((m, fan_out), dtype=cupy.float32),
            )
            for fan_in, fan_out in shapes
        ]

    def epoch():
        for m in sizes:
            for x, W, dz in arrays[m]:
                x @ W
                x.T @ dz
                dz @ W.T

    epoch()  # warm-up

    def run():
        for _ in range(epochs):
            epoch()

    return _time_samples(run, *_cupy_timer(), samples)


# -- checks the test suite does not make ----------------------------------------------------------


def check_tf32() -> dict:
    """Exact float32 matmuls in CuPy and torch: False would mean TF32 is on."""
    import cupy

    out: dict = {k: os.environ.get(k) for k in ("CUPY_TF32", "NVIDIA_TF32_OVERRIDE")}
    exact = _TF32_K * _TF32_PROBE
    a = cupy.full((64, _TF32_K), _TF32_PROBE, dtype=cupy.float32)
    b = cupy.ones((_TF32_K, 64), dtype=cupy.float32)
    got = float((a @ b)[0, 0])
    out["cupy_float32_matmul_exact"] = got == exact
    out["cupy_value"] = got
    try:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        ta = torch.full((64, _TF32_K), _TF32_PROBE, dtype=torch.float32, device="cuda")
        tb = torch.ones((_TF32_K, 64), dtype=torch.float32, device="cuda")
        tgot = float((ta @ tb)[0, 0])
        out["torch_float32_matmul_exact"] = tgot == exact
        out["torch_value"] = tgot
    except Exception as exc:
        out["torch"] = _error(exc)
    out["ok"] = out["cupy_float32_matmul_exact"] and out.get("torch_float32_matmul_exact", True)
    return out


def check_device_dropout() -> dict:
    """Dropout masks from CuPy's own generator: on the model's GPU, seeded, right keep rate."""
    import cupy
    import numpy as np

    import backprop as bp

    rate = 0.25

    def make(seed):
        layers = [
            bp.layers.Dense(16, "relu", input_dim=2),
            bp.layers.Dropout(rate),
            bp.layers.Dense(1, "sigmoid"),
        ]
        return bp.Sequential(layers, backend="cupy", seed=seed)

    out: dict = {}
    a, b, c = make(0), make(0), make(1)
    da, db, dc = a.layers[1], b.layers[1], c.layers[1]
    out["rng_type"] = f"{type(da.rng).__module__}.{type(da.rng).__name__}"
    out["rng_on_device"] = type(da.rng).__module__.startswith("cupy")
    x = cupy.ones((8192, 16), dtype=cupy.float32)  # the Dropout's input width
    ya, yb, yc = (d.forward(x, training=True) for d in (da, db, dc))
    out["mask_is_cupy_on_model_device"] = bool(
        isinstance(da.mask, cupy.ndarray) and da.mask.device.id == a.backend.device.id
    )
    host = cupy.asnumpy(ya)
    kept = host != 0
    out["kept_fraction"] = float(kept.mean())
    out["kept_fraction_ok"] = bool(
        abs(kept.mean() - (1 - rate)) < 5 * math.sqrt(rate * (1 - rate) / kept.size)
    )
    out["kept_scaled_by_1_over_keep"] = bool(np.allclose(host[kept], 1 / (1 - rate), rtol=1e-6))
    out["same_seed_same_mask"] = bool(cupy.all(ya == yb))
    out["other_seed_other_mask"] = not bool(cupy.all(ya == yc))
    out["next_call_new_mask"] = not bool(cupy.all(da.forward(x, training=True) == ya))
    X, y = bp.datasets.make_circles(256, factor=0.3, noise=0.1, seed=0)
    a.compile(loss="binary_crossentropy", optimizer="adam")
    loss = a.fit(X, y, epochs=2, batch_size=32, verbose=0).history["loss"]
    out["fit_losses"] = loss
    out["fit_finite"] = all(math.isfinite(v) for v in loss)
    # docs/backends.md: model.streams.use_host_dropout() draws the masks on the host instead.
    # Recorded, not required: on a built model the Dropout layers keep their old generator.
    a.streams.use_host_dropout()
    out["use_host_dropout_reaches_built_layers"] = da.rng is a.streams.dropout
    required = (
        "rng_on_device",
        "mask_is_cupy_on_model_device",
        "kept_fraction_ok",
        "kept_scaled_by_1_over_keep",
        "same_seed_same_mask",
        "other_seed_other_mask",
        "next_call_new_mask",
        "fit_finite",
    )
    out["ok"] = all(out[k] for k in required)
    return out


def environment() -> dict:
    import cupy
    import numpy as np

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]  # bytes in CuPy's binding
    env = {
        "gpu": name.decode() if isinstance(name, bytes) else str(name),
        "gpu_memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
        "cupy": cupy.__version__,
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        "numpy": np.__version__,
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
    except Exception as exc:
        env["torch"] = f"unavailable: {type(exc).__name__}: {exc}"
    try:
        import array_api_compat

        env["array_api_compat"] = array_api_compat.__version__
    except Exception as exc:
        env["array_api_compat"] = f"unavailable: {exc}"
    return env


# -- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=9)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    results: dict = {"workloads": {}, "checks": {}}

    def save():
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2, default=str))

    try:
        results["environment"] = environment()
        results["gpu"] = results["environment"]["gpu"]
    except Exception as exc:  # no usable CuPy: nothing below can run
        results["environment"] = _error(exc)
        save()
        print(f"CuPy is not usable: {results['environment']['error']}")
        return 1
    print(f"GPU: {results['gpu']}  ({json.dumps(results['environment'])})")
    save()

    for label, check in (("tf32", check_tf32), ("device_dropout", check_device_dropout)):
        try:
            results["checks"][label] = check()
        except Exception as exc:
            results["checks"][label] = _error(exc) | {"ok": False}
        print(f"check {label}: {'ok' if results['checks'][label]['ok'] else 'FAILED'} "
              f"{json.dumps(results['checks'][label], default=str)[:600]}")  # fmt: skip
        save()

    try:
        from bench.opcount import count_ops_per_step
    except ImportError:
        count_ops_per_step = None
    header = f"{'workload':8s} {'backprop':>12s} {'torch fused':>12s} {'GEMM floor':>12s}"
    print(header + f" {'vs torch':>9s} {'vs floor':>9s} {'ops/step':>9s}")
    for name, w in WORKLOADS.items():
        X, y = w.data("float32")
        steps = math.ceil(X.shape[0] / w.batch_size)
        epochs = max(2, w.sample_epochs)
        row: dict = {"steps_per_epoch": steps, "epochs_per_sample": epochs}
        for label, fn in (
            ("backprop", lambda w=w, X=X, y=y, e=epochs: bench_backprop(w, X, y, args.samples, e)),
            ("torch", lambda w=w, X=X, y=y, e=epochs: bench_torch(w, X, y, args.samples, e)),
            ("gemm_floor", lambda w=w, X=X, e=epochs: bench_gemm_floor(w, X, args.samples, e)),
        ):
            try:
                per_sample = fn()
            except Exception as exc:  # record the failure, go on with the rest
                row[label] = _error(exc)
                continue
            per_step = [t / (epochs * steps) for t in per_sample]
            row[label] = {
                "median_step_s": statistics.median(per_step),
                "min_step_s": min(per_step),
                "max_step_s": max(per_step),
            }
        if count_ops_per_step is not None:
            try:
                row["ops_per_step"] = count_ops_per_step(name)
            except Exception as exc:
                row["ops_per_step_error"] = f"{type(exc).__name__}: {exc}"
        med = {k: v.get("median_step_s") for k, v in row.items() if isinstance(v, dict)}
        bp_t, t_t, f_t = med.get("backprop"), med.get("torch"), med.get("gemm_floor")
        row["ratio_vs_torch"] = bp_t / t_t if bp_t and t_t else None
        row["ratio_vs_floor"] = bp_t / f_t if bp_t and f_t else None
        results["workloads"][name] = row
        save()

        def us(t):
            return f"{t * 1e6:10.1f}us" if t else f"{'error':>12s}"

        def ratio(r):
            return f"{r:8.2f}x" if r else f"{'-':>9s}"

        print(
            f"{name:8s} {us(bp_t)} {us(t_t)} {us(f_t)} {ratio(row['ratio_vs_torch'])} "
            f"{ratio(row['ratio_vs_floor'])} {row.get('ops_per_step', '-')!s:>9s}"
        )
    wl = results["workloads"]

    def ratio_of(workload, key):
        return wl.get(workload, {}).get(key)

    targets = {
        "large step <= 1.2x GEMM floor": (ratio_of("large", "ratio_vs_floor"), 1.2),
        "large step <= 1.0x torch-cuda eager": (ratio_of("large", "ratio_vs_torch"), 1.0),
        "seed step <= torch-cuda eager": (ratio_of("seed", "ratio_vs_torch"), 1.0),
    }
    results["targets"] = {}
    for label, (value, bound) in targets.items():
        met = value is not None and value <= bound
        results["targets"][label] = {"ratio": value, "met": met}
        shown = f"{value:.2f}x" if value is not None else "n/a"
        print(f"target {label}: {shown} -> {'met' if met else 'NOT met'}")
    failed = False
    for name, row in wl.items():
        for label, v in row.items():
            if isinstance(v, dict) and "error" in v:
                failed = True
                print(f"{name} {label} failed: {v['error']}\n{v.get('traceback', '')}")
    failed = failed or not all(c.get("ok") for c in results["checks"].values())
    save()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
