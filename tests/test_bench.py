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


def _group(backprop, peer, name):
    return {
        "backprop": {"samples": [backprop] * 3, **run.summarize([backprop] * 3)},
        name: {"samples": [peer] * 3, **run.summarize([peer] * 3)},
    }


def test_report_renders_targets():
    results = {
        "timings": {"seed/float32": _group(1.0, 4.0, "sklearn")},
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


def test_report_judges_backprop_on_jax_against_backprop_on_numpy():
    # the subject of this target is backprop_jax: its median over backprop's (NumPy backend)
    timings = {"seed/float32": _group(2.0, 0.8, "backprop_jax")}
    rows = run.evaluate_targets({"timings": timings})
    row = {r["target"]: r for r in rows}["seed, per epoch, backprop on JAX vs backprop on NumPy"]
    assert row["measured"] == pytest.approx(0.4)
    assert row["limit"] == "<= 0.50x"
    assert row["met"] is True
    timings["seed/float32"]["backprop_jax"] = {"samples": [1.5] * 3, **run.summarize([1.5] * 3)}
    row = {r["target"]: r for r in run.evaluate_targets({"timings": timings})}[row["target"]]
    assert row["measured"] == pytest.approx(0.75) and row["met"] is False
    assert "backprop_jax" in run.ONLY_WORKLOADS  # measured on seed only, where its target is
    assert run.ONLY_WORKLOADS["backprop_jax"] == ("seed",)


def test_markdown_links_the_distributed_results():
    timings = {"seed/float32": _group(1.0, 4.0, "sklearn")}
    timings["seed/float32"]["backprop_jax"] = {
        "info": {"first_fit_s": 1.25},
        "samples": [0.5] * 3,
        **run.summarize([0.5] * 3),
    }
    results = {"timings": timings, "opcount": {}, "memory": {}, "firstfit": {}, "longrun": {}}
    machine = {"cpu": "cpu", "cpus": "2", "threads_per_core": "1", "memory": "1 GiB"}
    machine.update(os="os", python="3")
    results["meta"] = {
        "command": "python bench/run.py",
        "date": "today",
        "wall_s": 1.0,
        "json": "results.json",
        "machine": machine,
        "versions": {},
        "git": {"commit": "abc", "backprop_dirty": False},
        "threads": 1,
        "blas": [],
        "samples": 3,
        "load_start": 0.0,
        "load_end": 0.0,
    }
    results["targets"] = run.evaluate_targets(results)
    text = run.render_markdown(results)
    assert "[RESULTS-distributed.md](RESULTS-distributed.md)" in text  # survives reruns
    assert "backprop, JAX backend (compiled epoch)" in text  # a row of the seed table
    assert "seed/float32 1.25 s" in text  # the compile time of the warm-up's first fit
    assert "| seed, per epoch, backprop on JAX vs backprop on NumPy | <= 0.50x | 0.50x |" in text


def test_backprop_jax_runner_restarts_without_recompiling():
    pytest.importorskip("jax")
    from bench import peers

    assert peers.available("backprop_jax")
    wl = workloads.get("seed")
    runner = peers.runner_class("backprop_jax")(wl, "float32", 1)
    runner.prepare()
    initial = runner.model.get_weights()
    runner.run(1)  # compiles the epoch
    compiled = runner.model._compiled[1]
    assert runner.first_fit_s is not None and runner.first_fit_s > 0
    assert any(
        not np.array_equal(a, b) for a, b in zip(runner.model.get_weights(), initial, strict=True)
    )
    runner.prepare()  # the same model, its initial weights, a fresh optimizer
    for a, b in zip(runner.model.get_weights(), initial, strict=True):
        np.testing.assert_array_equal(a, b)
    assert runner.model.optimizer.iterations == 0
    runner.run(2)
    assert runner.model._compiled[1] is compiled
    assert compiled._cache_size() == 1  # no second trace: a sample times training only
    assert runner.model.optimizer.iterations == 2 * wl.steps_per_epoch()
    info = runner.info()
    assert info["backend"] == "jax" and info["param_dtype"] == "float32"


# ---------------------------------------------------------------------------------------------
# the CNN step (bench/cnn.py)


def test_cnn_bench_counts_every_product_of_the_step():
    from bench import cnn

    model = cnn.build_backprop("numpy")
    shapes = cnn.product_shapes(model, 8)
    # 4 convolutions and 3 Dense layers, three products each, but no dx for the first layer
    assert len(shapes) == 3 * 7 - 1
    for a, b, _ in shapes:
        assert a[1] == b[0]
    assert shapes[0] == ((8 * 28 * 28, 9), (9, 32), False)  # the first im2col product
    assert shapes[1] == ((9, 8 * 28 * 28), (8 * 28 * 28, 32), True)  # its dW = cols.T @ dz
    assert shapes[2] == ((8 * 28 * 28, 9 * 32), (9 * 32, 32), False)  # the second's forward
    assert shapes[4] == ((8 * 28 * 28, 32), (32, 9 * 32), False)  # its d(cols) = dz @ W.T


def test_cnn_bench_compares_the_same_network_in_torch():
    torch = pytest.importorskip("torch")
    from bench import cnn

    model = cnn.build_backprop("numpy")
    net = cnn.build_torch(model.get_weights()).eval()
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    with torch.no_grad():
        logits = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    expected = model.predict(x)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(axis=1, keepdims=True), expected, rtol=1e-4)


def test_cnn_bench_quick_run(capsys):
    from bench import cnn

    # one case in a process of its own, as the driver runs every case
    assert cnn.main(["--quick", "--repeats", "1", "--cases", "gemm:numpy"]) == 0
    assert "gemm:numpy" in capsys.readouterr().out
    r = cnn.run_case("backprop:numpy", batch=2, steps=1, repeats=2, threads=1)
    assert r["median_s"] > 0 and len(r["samples"]) == 2 and r["batch"] == 2
    rows = {what: value for what, _, value in cnn.ratios({"backprop:numpy": r, "torch": r})}
    assert rows["backprop NumPy step / PyTorch CPU eager"] == 1.0
    assert "backprop NumPy step / NumPy GEMM floor" not in rows  # not measured: no row
