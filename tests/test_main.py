"""The command line, run as users run it: in a subprocess."""

import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "backprop", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV,
        timeout=300,
    )


def test_help_for_each_command():
    for command in ([], ["demo"], ["train"], ["explain"], ["info"]):
        result = run(*command, "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: python -m backprop" in result.stdout


def test_info_lists_backends():
    result = run("info")
    assert result.returncode == 0, result.stderr
    assert "backprop 0.1.0" in result.stdout
    assert "numpy" in result.stdout and "array_api_strict" in result.stdout


@pytest.mark.slow
def test_demo_writes_every_figure(tmp_path):
    out = tmp_path / "demo"
    result = run("demo", "--epochs", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Epoch 3/3" in result.stdout and "test accuracy" in result.stdout
    names = {p.name for p in out.iterdir()}
    assert names == {
        "dataset.png",
        "architecture.png",
        "activations.png",
        "loss_surface.png",
        "training.gif",
        "history.png",
        "decision_boundary.png",
    }
    assert all(p.stat().st_size > 1000 for p in out.iterdir())


def test_demo_on_array_api_strict(tmp_path):
    result = run(
        "demo",
        "--backend", "array_api_strict", "--device", "device1",
        "--epochs", "2", "--no-animation", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "array_api_strict:device1" in result.stdout
    assert not (tmp_path / "training.gif").exists()
    assert (tmp_path / "decision_boundary.png").exists()


def test_train_full_batch_and_save(tmp_path):
    path = tmp_path / "moons.npz"
    result = run(
        "train", "--dataset", "moons", "--layers", "8,8", "--optimizer", "sgd", "--lr", "0.1",
        "--epochs", "30", "--batch-size", "full", "--save", str(path), "--verbose", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    assert path.exists()


def test_train_multiclass():
    result = run(
        "train", "--dataset", "spirals", "--layers", "16", "--epochs", "2", "--verbose", "2"
    )
    assert result.returncode == 0, result.stderr
    assert "Epoch 2/2" in result.stdout


def test_explain_prints_the_equations():
    result = run("explain", "--layers", "3")
    assert result.returncode == 0, result.stderr
    for text in ("Z1 = A0 @ W1 + b1", "dW1 = A0.T @ dZ1", "db2 = sum(dZ2, axis=0)", "Update"):
        assert text in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "--backend", "tensorflow"], "Unknown backend 'tensorflow'"),
        (["train", "--layers", "a,b"], "--layers expects comma-separated integers"),
        (["train", "--batch-size", "x"], "--batch-size expects an integer or 'full'"),
        (["train", "--epochs", "0"], "epochs must be a positive integer"),
        (["train", "--optimizer", "lbfgs"], "Unknown optimizer 'lbfgs'"),
    ],
)
def test_user_mistakes_are_one_line_errors(args, message):
    result = run(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
