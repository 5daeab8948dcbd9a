"""GPU benchmark: backprop on CuPy vs PyTorch CUDA eager (fused Adam) vs the cuBLAS GEMM floor.

    python bench/gpu_bench.py [--samples 9] [--out gpu-bench.json]

For each workload of ``bench/workloads.py`` (float32; TF32 off in both libraries), after a
warm-up: the median (and min/max) time per step of a training epoch for backprop on CuPy (data
already on the GPU), PyTorch eager with ``Adam(fused=True)``, and the GEMM floor (the matrix
products of one step, CuPy matmul on the same shapes). Timed with CUDA events around whole
epochs. Also the array operations per step (= kernel launches), counted by ``bench/opcount.py``.
Targets recorded as met or not: large step <= 1.2x the GEMM floor and <= 1.0x torch; seed step
<= torch.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.workloads import WORKLOADS


def _events_time(run, sync_before, make_events, epochs: int, samples: int) -> list[float]:
    """Seconds per call of ``run()`` measured with CUDA events, ``samples`` times."""
    out = []
    for _ in range(samples):
        sync_before()
        start, end = make_events()
        start.record()
        for _ in range(epochs):
            run()
        end.record()
        end.synchronize()
        out.append(_elapsed_ms(start, end) / 1e3 / epochs)
    return out


def _elapsed_ms(start, end) -> float:
    try:
        return start.elapsed_time(end)  # torch
    except TypeError:
        import cupy

        return cupy.cuda.get_elapsed_time(start, end)


def bench_backprop(w, X, y, samples: int) -> list[float]:
    import cupy

    import backprop as bp

    Xd, yd = cupy.asarray(X), cupy.asarray(y)
    layers = [bp.layers.Dense(u, "relu", input_dim=X.shape[1] if i == 0 else None)
              for i, u in enumerate(w.hidden)]  # fmt: skip
    layers.append(bp.layers.Dense(w.sizes[-1], w.output))
    model = bp.Sequential(layers, backend="cupy", seed=0)
    model.compile(loss=w.loss, optimizer="adam")
    model.fit(Xd, yd, epochs=1, batch_size=w.batch_size, verbose=0)  # warm-up

    def events():
        return cupy.cuda.Event(), cupy.cuda.Event()

    return _events_time(
        lambda: model.fit(Xd, yd, epochs=1, batch_size=w.batch_size, verbose=0),
        cupy.cuda.Device().synchronize,
        events,
        1,
        samples,
    )


def bench_torch(w, X, y, samples: int) -> list[float]:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
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

    def events():
        return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    return _events_time(epoch, torch.cuda.synchronize, events, 1, samples)


def bench_gemm_floor(w, X, samples: int) -> list[float]:
    """The matmuls of one epoch: per step and layer, x @ W, x.T @ dz and dz @ W.T."""
    import cupy

    steps = math.ceil(X.shape[0] / w.batch_size)
    shapes = list(zip(w.sizes[:-1], w.sizes[1:], strict=True))
    arrays = []
    for fan_in, fan_out in shapes:
        x = cupy.random.standard_normal((w.batch_size, fan_in), dtype=cupy.float32)
        W = cupy.random.standard_normal((fan_in, fan_out), dtype=cupy.float32)
        dz = cupy.random.standard_normal((w.batch_size, fan_out), dtype=cupy.float32)
        arrays.append((x, W, dz))

    def epoch():
        for _ in range(steps):
            for x, W, dz in arrays:
                x @ W
                x.T @ dz
                dz @ W.T

    epoch()

    def events():
        return cupy.cuda.Event(), cupy.cuda.Event()

    return _events_time(epoch, cupy.cuda.Device().synchronize, events, 1, samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=9)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    results: dict = {"gpu": gpu, "workloads": {}}
    try:
        from bench.opcount import count_ops_per_step
    except ImportError:
        count_ops_per_step = None
    print(f"GPU: {gpu}")
    header = f"{'workload':8s} {'backprop':>12s} {'torch fused':>12s} {'GEMM floor':>12s}"
    print(header + f" {'vs torch':>9s} {'vs floor':>9s} {'ops/step':>9s}")
    for name, w in WORKLOADS.items():
        X, y = w.data("float32")
        steps = math.ceil(X.shape[0] / w.batch_size)
        row = {}
        for label, fn in (
            ("backprop", lambda w=w, X=X, y=y: bench_backprop(w, X, y, args.samples)),
            ("torch", lambda w=w, X=X, y=y: bench_torch(w, X, y, args.samples)),
            ("gemm_floor", lambda w=w, X=X: bench_gemm_floor(w, X, args.samples)),
        ):
            try:
                per_epoch = fn()
            except Exception as exc:  # record the failure, go on with the rest
                row[label] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            per_step = [t / steps for t in per_epoch]
            row[label] = {
                "median_step_s": statistics.median(per_step),
                "min_step_s": min(per_step),
                "max_step_s": max(per_step),
            }
        if count_ops_per_step is not None:
            row["ops_per_step"] = count_ops_per_step(name)
        med = {k: v.get("median_step_s") for k, v in row.items() if isinstance(v, dict)}
        bp_t, t_t, f_t = med.get("backprop"), med.get("torch"), med.get("gemm_floor")
        row["ratio_vs_torch"] = bp_t / t_t if bp_t and t_t else None
        row["ratio_vs_floor"] = bp_t / f_t if bp_t and f_t else None
        results["workloads"][name] = row

        def us(t):
            return f"{t * 1e6:10.1f}us" if t else f"{'error':>12s}"

        def ratio(r):
            return f"{r:8.2f}x" if r else f"{'-':>9s}"

        print(
            f"{name:8s} {us(bp_t)} {us(t_t)} {us(f_t)} {ratio(row['ratio_vs_torch'])} "
            f"{ratio(row['ratio_vs_floor'])} {row.get('ops_per_step', '-')!s:>9s}"
        )
    wl = results["workloads"]
    targets = {
        "large step <= 1.2x GEMM floor": (wl["large"]["ratio_vs_floor"], 1.2),
        "large step <= 1.0x torch-cuda eager": (wl["large"]["ratio_vs_torch"], 1.0),
        "seed step <= torch-cuda eager": (wl["seed"]["ratio_vs_torch"], 1.0),
    }
    results["targets"] = {}
    for label, (value, bound) in targets.items():
        met = value is not None and value <= bound
        results["targets"][label] = {"ratio": value, "met": met}
        shown = f"{value:.2f}x" if value is not None else "n/a"
        print(f"target {label}: {shown} -> {'met' if met else 'NOT met'}")
    for name, row in wl.items():
        for label, v in row.items():
            if isinstance(v, dict) and "error" in v:
                print(f"{name} {label} failed: {v['error']}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
