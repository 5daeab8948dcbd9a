"""The command line, run as users run it (in a subprocess) and through ``main([...])``."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from backprop.__main__ import main
from backprop.training import sharded as sharded_engine

ENV = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
HAS_JAX = importlib.util.find_spec("jax") is not None


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
    assert "engine: eager: " in result.stdout  # numpy's


def test_info_names_the_engine_of_each_backend(capsys):
    """Each usable backend's line is followed by the engine a plain fit runs there (the one
    ``choose_engine`` picks for a small compiled model) and why."""
    from backprop.training.choose import choose_engine

    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in bp.available_backends():
        [i] = [i for i, line in enumerate(lines) if line.startswith(f"  {name} ")]
        engine_line = lines[i + 1].strip()
        model = bp.Sequential([bp.layers.Dense(1, "sigmoid", input_dim=2)], backend=name)
        model.compile(loss="binary_crossentropy", optimizer="adam")
        model.build(2)
        expected = type(choose_engine(model, [], None, 32)).__name__.lower()
        assert engine_line.startswith(f"engine: {expected}: "), (name, engine_line)
        assert len(engine_line) > len(f"engine: {expected}: ") + 20  # and why
    assert any("mpirun" in line and "data-parallel" in line for line in lines)


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
    path = tmp_path / "moons"
    result = run(
        "train", "--dataset", "moons", "--layers", "8,8", "--optimizer", "sgd", "--lr", "0.1",
        "--epochs", "30", "--batch-size", "full", "--save", str(path), "--verbose", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    assert f"saved to {path}.npz" in result.stdout
    assert bp.load(f"{path}.npz").count_params() > 0


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
        (["train", "--layers", "a,b"], "argument --layers: expected comma-separated positive"),
        (["train", "--batch-size", "x"], "argument --batch-size: expected a positive integer"),
        (["train", "--epochs", "0"], "argument --epochs: expected a positive integer"),
        (["train", "--optimizer", "lbfgs"], "Unknown optimizer 'lbfgs'"),
    ],
)
def test_user_mistakes_are_one_line_errors(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# -- train: one process is model.fit; K > 1 ranks are DataParallel --------------------------------


@pytest.fixture
def fits(monkeypatch):
    """Every Sequential.fit call of the test: (model, its history, the keyword arguments)."""
    calls = []
    fit = bp.Sequential.fit

    def spy(self, *args, **kwargs):
        history = fit(self, *args, **kwargs)
        calls.append((self, history, kwargs))
        return history

    monkeypatch.setattr(bp.Sequential, "fit", spy)
    return calls


def _refuse(what):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a single process must not go through {what}")

    return refuse


@pytest.mark.parametrize(
    "backend",
    ["numpy", pytest.param("jax", marks=pytest.mark.skipif(not HAS_JAX, reason="no jax"))],
)
def test_single_process_train_is_model_fit(backend, fits, monkeypatch, capsys):
    monkeypatch.setattr(bp.distributed, "DataParallel", _refuse("DataParallel"))
    monkeypatch.setattr(sharded_engine.Sharded, "run_epoch", _refuse("the data-parallel engine"))
    argv = ["train", "--backend", backend, "--n-samples", "300", "--layers", "8,8"]
    argv += ["--epochs", "3", "--batch-size", "32", "--seed", "5", "--verbose", "0"]
    assert main(argv) == 0
    assert "test accuracy" in capsys.readouterr().out
    [(model, history, kwargs)] = fits
    assert kwargs.get("distributed") is None
    if backend == "jax":  # the compiled epoch, as model.fit runs it
        assert model._compiled[1] is not None

    # the same training written out by hand gives the same weights and curves
    X, y = bp.datasets.make_circles(300, factor=0.3, noise=0.1, seed=5)
    Xtr, _, ytr, _ = bp.datasets.train_test_split(X, y, test_size=0.1, seed=5)
    direct = bp.Sequential(
        [
            bp.layers.Dense(8, "relu", input_dim=2),
            bp.layers.Dense(8, "relu"),
            bp.layers.Dense(1, "sigmoid"),
        ],
        backend=backend,
        seed=5,
    )
    direct.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    expected = direct.fit(Xtr, ytr, epochs=3, batch_size=32, verbose=0)
    assert history.history == expected.history
    for got, want in zip(model.get_weights(), direct.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_train_under_mpirun_is_data_parallel(fits, monkeypatch, capsys):
    made = []

    class Spy(bp.distributed.DataParallel):
        def __init__(self, model):
            super().__init__(model, "single")  # stands in for the MPI communicator
            made.append(self)

    monkeypatch.setattr(bp.distributed, "launched_by_mpi", lambda: True)
    monkeypatch.setattr(bp.distributed, "DataParallel", Spy)
    argv = ["train", "--n-samples", "200", "--epochs", "2", "--verbose", "0"]
    assert main(argv) == 0
    assert "test accuracy" in capsys.readouterr().out
    [dp] = made
    [(model, _, kwargs)] = fits
    assert model is dp.model and kwargs["distributed"] is dp.comm


# -- train: the loss picks the labels' layout; bad values stop before training ---------------------


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "cce"])
def test_train_with_categorical_crossentropy_one_hot_encodes(loss, fits, capsys):
    argv = ["train", "--dataset", "spirals", "--loss", loss, "--n-samples", "300"]
    assert main([*argv, "--layers", "16", "--epochs", "3", "--verbose", "0"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    [(model, history, _)] = fits
    assert model.loss.name == "categorical_crossentropy" and model.output_dim == 3
    assert len(history.history["accuracy"]) == 3


SAVE_INTO_MISSING = os.path.join("no-such-folder", "model.npz")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layers", "4,x"], "argument --layers: expected comma-separated positive integers"),
        (["--layers", "4,-2"], "argument --layers: expected comma-separated positive integers"),
        (["--layers", "4,,2"], "received '4,,2' (entry 2 is empty)."),
        (["--layers", ",4"], "received ',4' (entry 1 is empty)."),
        (["--layers", "4,"], "received '4,' (entry 2 is empty)."),
        (["--layers", " , "], "received ' , ' (entry 1 is empty)."),
        (["--layers", "4,0"], "received '4,0' (entry 2 is 0, not a positive integer)."),
        (["--layers", "-3"], "received '-3' (entry 1 is -3, not a positive integer)."),
        (["--layers", "4,2.5"], "received '4,2.5' (entry 2 is '2.5', not an integer)."),
        (["--layers", "4;6"], "received '4;6' (entry 1 is '4;6', not an integer)."),
        (["--batch-size", "abc"], "argument --batch-size: expected a positive integer or 'full'"),
        (["--batch-size", "0"], "argument --batch-size: expected a positive integer or 'full'"),
        (["--epochs", "-3"], "argument --epochs: expected a positive integer, received '-3'"),
        (["--epochs", "2.5"], "argument --epochs: expected a positive integer"),
        (["--lr", "abc"], "argument --lr: expected a positive finite number"),
        (["--lr", "-1"], "argument --lr: expected a positive finite number"),
        (["--lr", "nan"], "argument --lr: expected a positive finite number"),
        (["--optimizer", "foo"], "argument --optimizer: Unknown optimizer 'foo'"),
        (["--loss", "foo"], "argument --loss: Unknown loss 'foo'"),
        (["--activation", "foo"], "argument --activation: Unknown activation 'foo'"),
        (["--n-samples", "0"], "argument --n-samples: expected a positive integer"),
        (["--noise", "-0.1"], "argument --noise: expected a non-negative finite number"),
        (["--test-size", "1.5"], "argument --test-size: expected a fraction in (0, 1)"),
        (["--test-size", "5000"], "--n-samples/--test-size: test_size must be"),
        (["--n-samples", "1"], "--n-samples/--test-size: train_test_split needs at least 2"),
        (["--seed", "-1"], "argument --seed: expected a non-negative integer"),
        (["--verbose", "3"], "argument --verbose: invalid choice"),
        (["--dtype", "float16"], "argument --dtype: invalid choice"),
        (["--backend", "tensorflow"], "Unknown backend 'tensorflow'"),
        (["--backend", "array_api_strict", "--device", "gpu7"], "--device"),
        (
            ["--dataset", "spirals", "--loss", "binary_crossentropy"],
            "argument --loss: binary_crossentropy expects 2 classes",
        ),
        (["--dataset", "digits", "--loss", "mse"], "argument --loss: mse expects 2 classes"),
        (["--dataset", "blobs", "--loss", "mae"], "argument --loss: mae expects 2 classes"),
        (["--save", SAVE_INTO_MISSING], f"cannot save to {SAVE_INTO_MISSING}"),
        (["--save", ""], "argument --save: expected a file name such as model.npz, received ''"),
        (["--save", "  "], "argument --save: expected a file name such as model.npz, received"),
        (["--save", ".npz"], "argument --save: expected a file name such as model.npz, received"),
    ],
)
def test_train_bad_values_are_usage_errors_before_training(
    args, message, fits, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--epochs", "1", "--verbose", "0", *args])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert err.startswith("usage: python -m backprop train")
    last = err.strip().splitlines()[-1]
    assert last.startswith("python -m backprop train: error: ") and message in last, err
    assert not fits and not out  # nothing was trained or printed
    assert list(tmp_path.iterdir()) == []  # nor written


def test_save_into_a_missing_folder_names_it_before_training(tmp_path, fits, capsys):
    target = tmp_path / "missing" / "model"
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--save", str(target), "--epochs", "1", "--verbose", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"cannot save to {target}.npz: the folder {tmp_path / 'missing'} does not exist" in err
    assert ".tmp" not in err and not fits


@pytest.mark.parametrize(
    "spelling, exists",
    [
        ("models", True),
        ("models/", True),
        (f"models{os.sep}", True),
        ("models/.npz", True),
        ("models/", False),
        ("models/.npz", False),
    ],
)
def test_save_to_a_folder_is_refused_before_training(
    spelling, exists, tmp_path, fits, monkeypatch, capsys
):
    """``--save models/`` would write ``models/.npz``, a hidden file; ``--save models`` next to
    a folder ``models`` would write ``models.npz`` beside it: both mean the folder, refused.
    (Where no folder ``models`` exists, ``--save models`` writes ``models.npz``, as asked.)"""
    monkeypatch.chdir(tmp_path)
    if exists:
        (tmp_path / "models").mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--save", spelling, "--epochs", "1", "--verbose", "0"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    last = err.strip().splitlines()[-1]
    assert last.startswith("python -m backprop train: error: argument --save: ")
    assert f"cannot save to {spelling}" in last or f"received '{spelling}'" in last, last
    assert "folder" in last or "file name" in last, last
    assert not fits and not out
    assert sorted(p.name for p in tmp_path.iterdir()) == (["models"] if exists else [])
    if exists:
        assert list((tmp_path / "models").iterdir()) == []


def test_empty_layers_mean_no_hidden_layer(fits, capsys):
    """``--layers ""`` (no entry at all, not an empty entry) trains the output layer alone."""
    argv = ["train", "--layers", "", "--n-samples", "100", "--epochs", "1", "--verbose", "0"]
    assert main(argv) == 0
    [(model, _, _)] = fits
    assert [layer.units for layer in model.layers] == [1]


def test_save_into_an_existing_folder_with_a_file_name_works(tmp_path, fits, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    argv = ["train", "--n-samples", "100", "--epochs", "1", "--verbose", "0"]
    assert main([*argv, "--save", "models/m"]) == 0
    assert "saved to models/m.npz" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["m.npz"]


def test_save_into_a_folder_path_is_refused(tmp_path, fits, capsys):
    (tmp_path / "model.npz").mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--save", str(tmp_path / "model.npz"), "--verbose", "0"])
    assert exit_.value.code == 2
    assert "it is a folder" in capsys.readouterr().err and not fits


@pytest.mark.parametrize(
    "args, message",
    [
        (["explain", "--batch", "0"], "argument --batch: expected a positive integer"),
        (["explain", "--layers", "x"], "argument --layers: expected comma-separated"),
        (["demo", "--epochs", "0"], "argument --epochs: expected a positive integer"),
    ],
)
def test_other_commands_check_their_values(args, message, fits, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not fits and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, error",
    [
        (
            ["--layers", "4,x"],
            "argument --layers: expected comma-separated positive integers such as 4,6,6,4, "
            "received '4,x' (entry 2 is 'x', not an integer).",
        ),
        (
            ["--batch-size", "abc"],
            "argument --batch-size: expected a positive integer or 'full', received 'abc'.",
        ),
    ],
)
def test_bad_values_from_the_shell(args, error):
    result = run("train", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"python -m backprop train: error: {error}"


DIVERGING = ["train", "--dataset", "moons", "--activation", "linear", "--loss", "mse"]
DIVERGING += ["--optimizer", "sgd", "--lr", "1000", "--epochs", "5", "--verbose", "0"]


def test_a_diverging_training_is_a_one_line_error(fits, capsys):
    # no filter for RuntimeWarning: the suite turns warnings into errors, so NumPy's overflow
    # warnings on the way to NaN would fail the test if the command let them through
    assert main(DIVERGING) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[-1].startswith("error: The loss became nan at epoch 1")
    assert err[-1].endswith("lower --lr (was 1000).")


def test_a_diverging_training_from_the_shell_prints_one_line():
    result = run(*DIVERGING)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()  # no RuntimeWarning, no source line, no traceback
    assert line.startswith("error: The loss became nan at epoch 1, batch ")
    assert line.endswith(": the training diverged; lower --lr (was 1000).")


def test_overflow_on_the_way_is_not_printed():
    """Adam with a huge step overflows in its update but its loss stays finite: the command
    finishes, without NumPy's RuntimeWarning and the library line it points at."""
    result = run("train", "--lr", "1e6", "--epochs", "1", "--n-samples", "200", "--verbose", "0")
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    assert "RuntimeWarning" not in result.stderr and "optimizers.py" not in result.stderr


def test_library_warnings_are_one_line_each():
    """A warning the library gives on purpose (here the dead-network one) is kept, as one line
    naming it, without the line of __main__.py that Python's default format quotes."""
    result = run("train", "--lr", "1e6", "--epochs", "2", "--n-samples", "1000", "--verbose", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("warning: DeadNetworkWarning: ") for line in lines), lines
    assert "Dead network after epoch 1" in lines[0]


@pytest.mark.parametrize("flags", [[], ["--no-capture"]])
def test_no_capture_reaches_the_model(flags, fits, capsys):
    argv = ["train", "--n-samples", "100", "--epochs", "1", "--verbose", "0", *flags]
    assert main(argv) == 0
    [(model, _, _)] = fits
    assert model.capture is (not flags)


# -- torch's CPU threads: one by default on the command line, unless the environment says -------


@pytest.fixture
def threads_during_fit(monkeypatch):
    """torch's intra-op thread count seen by each Sequential.fit call of the test."""
    torch = pytest.importorskip("torch")
    seen = []
    fit = bp.Sequential.fit

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(bp.Sequential, "fit", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield torch, seen
    torch.set_num_threads(before)


TINY = ["train", "--n-samples", "100", "--epochs", "1", "--verbose", "0"]


@pytest.mark.parametrize("spec", ["--backend", "env"])
def test_torch_trains_on_one_thread_unless_told(spec, threads_during_fit, monkeypatch, capsys):
    torch, seen = threads_during_fit
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    if spec == "env":
        monkeypatch.setenv("BACKPROP_BACKEND", "torch")
        argv = TINY
    else:
        monkeypatch.delenv("BACKPROP_BACKEND", raising=False)
        argv = [*TINY, "--backend", "torch"]
    assert main(argv) == 0
    assert seen == [1]  # small nets: one thread beats two, by far on a busy machine
    assert torch.get_num_threads() == 2  # the caller's setting is back after the command


@pytest.mark.parametrize("variable", ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_torch_threads_set_by_the_environment_are_kept(
    variable, threads_during_fit, monkeypatch, capsys
):
    torch, seen = threads_during_fit
    monkeypatch.setenv(variable, "2")
    assert main([*TINY, "--backend", "torch"]) == 0
    assert seen == [2] and torch.get_num_threads() == 2


def test_other_backends_leave_torch_alone(threads_during_fit, monkeypatch, capsys):
    _, seen = threads_during_fit
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "BACKPROP_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    assert main([*TINY, "--backend", "numpy"]) == 0
    assert seen == [2]


def test_a_numpy_command_does_not_import_torch():
    code = "import sys\nfrom backprop.__main__ import main\n"
    code += "main(['train', '--n-samples', '100', '--epochs', '1', '--verbose', '0'])\n"
    code += "print('torch imported:', 'torch' in sys.modules)\n"
    env = {k: v for k, v in ENV.items() if k not in ("BACKPROP_BACKEND", "OMP_NUM_THREADS")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout
