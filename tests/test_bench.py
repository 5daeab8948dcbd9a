"""The benchmark suite's own checks: no timing is asserted here, ever.

- the operation counter counts what it should, and the seed workload's count per training step
  stays within its budget (a deterministic guard against extra kernel launches);
- the hand-written NumPy baseline is a correct implementation (same loss, gradients and Adam
  step as backprop on the same weights);
- a worker process runs a tiny workload and answers sane JSON; the report renders.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import opcount, run, workloads  # noqa: E402
from bench.numpy_loop import NumpyMLP  # noqa: E402
from bench.opcount import OpCounter, count_ops, wrap  # noqa: E402
from bench.peers.backprop_peer import build_model  # noqa: E402
from bench.peers.gemm_floor import step_shapes  # noqa: E402

# ---------------------------------------------------------------------------------------------
# the operation counter


def test_counter_counts_a_known_computation():
    counter = OpCounter()
    xp = counter.namespace()
    a = wrap(np.arange(4.0))
    with counter:
        b = xp.exp(a) + 2.0 * a  # exp, multiply, add: 3
        s = xp.sum(b)  # 1
        a += 1.0  # in place: 1
        _ = a.T[1:]  # views: 0
        _ = xp.reshape(a, (2, 2))  # a view: 0
        _ = xp.clip(a, 0.0, 1.0)  # one xp call, whatever array-api-compat does inside: 1
        _ = a[a > 2.0]  # greater, gather: 2
        _ = a @ a  # 1
        float(s)  # a read-back: a sync, not an operation
    assert counter.total == 9, counter.ops
    assert counter.ops["exp"] == 1
    assert counter.ops["matmul"] == 1
    assert sum(counter.syncs.values()) == 1
    assert isinstance(b, opcount.CountingArray)
    np.testing.assert_allclose(np.asarray(b), np.exp(np.arange(4.0)) + 2 * np.arange(4.0))


def test_counter_is_inactive_outside_its_context():
    counter = OpCounter()
    a = wrap(np.ones(3))
    _ = a + a
    assert counter.total == 0


def test_seed_step_op_count_within_budget():
    c = count_ops("seed")
    n_dense = len(workloads.get("seed").sizes) - 1
    # the instrumentation must see the step: every Dense layer does its forward and dW products
    assert c["by_op"].get("matmul", 0) >= 2 * n_dense, c["by_op"]
    assert isinstance(c["per_step"], int), "a fractional count: fit's steps are not alike"
    assert c["per_step"] <= opcount.SEED_STEP_BUDGET, (
        f"{c['per_step']} array operations per seed training step, over the budget of "
        f"{opcount.SEED_STEP_BUDGET}: {c['by_op']}"
    )
    assert c["syncs_per_step"] == 0, "a step reads a value back to the host"
    assert count_ops("seed")["by_op"] == c["by_op"]  # deterministic


# ---------------------------------------------------------------------------------------------
# the hand-written NumPy baseline is backprop's algorithm


@pytest.mark.parametrize("name", ["seed", "digits"])
def test_numpy_loop_matches_backprop(name):
    wl = workloads.get(name)
    X, y = wl.data("float64")
    X, y = X[:128], y[:128]
    model = build_model(wl, "float64")
    mlp = NumpyMLP(wl.sizes, "float64", weights=model.get_weights())
    Y = mlp.targets(y)

    loss_bp, grads_bp = model.loss_and_gradients(X, y)
    loss_np, grads_np = mlp.loss_and_grads(X, Y)
    np.testing.assert_allclose(loss_np, loss_bp, rtol=1e-6)
    for g_np, g_bp in zip(grads_np, grads_bp, strict=True):
        np.testing.assert_allclose(g_np, g_bp, rtol=1e-6, atol=1e-12)

    # two Adam steps on the same batches
    b = 64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y, epochs=1, batch_size=b, shuffle=False, verbose=0)
    for lo in range(0, X.shape[0], b):
        mlp.train_step(X[lo : lo + b], Y[lo : lo + b])
    for w_np, w_bp in zip(mlp.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(w_np, w_bp, rtol=1e-6, atol=1e-12)


def test_numpy_loop_trains():
    wl = workloads.get("seed")
    X, y = wl.data("float32")
    mlp = NumpyMLP(wl.sizes, "float32", seed=0)
    history = mlp.fit(X, y, epochs=3, batch_size=32, rng=np.random.default_rng(0))
    assert all(np.isfinite(history)) and history[-1] < history[0]
    assert mlp.params[0].dtype == np.float32


def test_gemm_floor_shapes():
    wl = workloads.get("large")
    shapes = step_shapes(wl, 512)
    assert len(shapes) == 3 * (len(wl.sizes) - 1)
    for a, b in shapes:
        assert a[1] == b[0]


# ---------------------------------------------------------------------------------------------
# the worker and the report


def test_worker_runs_a_tiny_workload():
    cmd = [sys.executable, "-m", "bench.worker", "--framework", "backprop", "--workload", "seed"]
    cmd += ["--epochs", "1", "--samples", "2", "--threads", "1"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("@@BENCH ")]
    result = json.loads(lines[-1][len("@@BENCH ") :])
    assert result["framework"] == "backprop"
    assert result["unit"] == "epoch"
    assert result["param_dtype"] == "float32"
    assert len(result["per_unit"]) == 2
    assert all(0 < t < 10 for t in result["per_unit"])


def test_report_renders_targets():
    def group(backprop, peer, name):
        return {
            "backprop": {"samples": [backprop] * 3, **run.summarize([backprop] * 3)},
            name: {"samples": [peer] * 3, **run.summarize([peer] * 3)},
        }

    results = {
        "timings": {"seed/float32": group(1.0, 4.0, "sklearn")},
        "opcount": {"seed": count_ops("seed")},
        "memory": {"backprop": {"delta_mib": 10.0}, "torch": {"delta_mib": 20.0}},
        "firstfit": {},
        "longrun": {},
    }
    rows = run.evaluate_targets(results)
    by_name = {r["target"]: r for r in rows}
    assert by_name["seed, per epoch, vs scikit-learn"]["measured"] == pytest.approx(0.25)
    assert by_name["seed, per epoch, vs scikit-learn"]["met"] is True
    assert by_name["seed, per epoch, vs torch eager"]["met"] is None  # not measured
    assert by_name["peak memory, large (float32): backprop vs torch"]["met"] is True
    table = run.targets_table(rows)
    assert "0.25x" in table and "not measured" in table
