"""Model files as files: where ``save`` writes (links, folders, odd paths), what the checksum
covers (the header too, from format version 2; version 1 files still load), and what loading
costs (no initial weights drawn only to be overwritten; memory near the file's size)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import backprop as bp
import backprop.io as bpio
from backprop import initializers
from backprop.layers import BatchNormalization, Dense, Dropout


def _model(seed: int = 0, compiled: bool = True, backend: str = "numpy") -> bp.Sequential:
    model = bp.Sequential(
        [
            Dense(5, "relu", input_dim=3),
            Dropout(0.25),
            BatchNormalization(),
            Dense(1, "sigmoid", kernel_initializer="he_normal"),
        ],
        backend=backend,
        seed=seed,
    )
    if compiled:
        model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(16, 3))
        model.fit(X, (X[:, 0] > 0).astype(np.int64), epochs=2, batch_size=8, verbose=0)
    return model


def _assert_same_weights(a: bp.Sequential, b: bp.Sequential) -> None:
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def _leftovers(*folders) -> list[str]:
    return [p for f in folders for p in glob.glob(os.path.join(str(f), ".backprop-*"))]


def _entries(path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(str(arrays.pop("__config__"))), arrays


def _write(path, config: dict, arrays: dict) -> str:
    np.savez(path, __config__=np.array(json.dumps(config)), **arrays)
    return str(path)


# -- (19.13) a symbolic link is written through, not replaced ------------------------------------
@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
@pytest.mark.parametrize("relative", [True, False], ids=["relative link", "absolute link"])
def test_save_through_a_symlink_writes_its_target(tmp_path, relative):
    runs, models = tmp_path / "runs", tmp_path / "models"
    runs.mkdir()
    models.mkdir()
    target = runs / "epoch-3.npz"
    _model(seed=1).save(target)
    link = models / "latest.npz"
    os.symlink(os.path.relpath(target, models) if relative else target, link)
    before = os.readlink(link)

    newer = _model(seed=2)
    assert newer.save(link) is None  # Sequential.save; bp.io.save returns the path
    assert os.path.islink(link), "the link was replaced by a file"
    assert os.readlink(link) == before
    _assert_same_weights(newer, bp.load(target))
    _assert_same_weights(newer, bp.load(link))
    assert sorted(os.listdir(models)) == ["latest.npz"]
    assert sorted(os.listdir(runs)) == ["epoch-3.npz"]
    assert _leftovers(runs, models) == []


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_save_through_a_chain_of_links_and_a_dangling_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.npz"
    os.symlink(target, tmp_path / "inner.npz")  # dangling: the target does not exist yet
    os.symlink(tmp_path / "inner.npz", tmp_path / "outer.npz")
    model = _model(seed=3)
    assert bpio.save(model, tmp_path / "outer.npz") == str(tmp_path / "outer.npz")
    assert os.path.islink(tmp_path / "outer.npz") and os.path.islink(tmp_path / "inner.npz")
    assert target.is_file() and not target.is_symlink()
    _assert_same_weights(model, bp.load(target))
    assert _leftovers(tmp_path, tmp_path / "real") == []


# -- (25.3) the checksum covers the header ---------------------------------------------------------
HEADER_EDITS = {
    "activation relu -> tanh": lambda c: c["model"]["layers"][0]["config"].update(
        activation={"name": "tanh"}
    ),
    "units": lambda c: c["model"]["layers"][0]["config"].update(units=6),
    "dropout rate": lambda c: c["model"]["layers"][1]["config"].update(rate=0.5),
    "learning rate": lambda c: c["compile"]["optimizer"].update(learning_rate=0.5),
    "loss": lambda c: c["compile"].update(loss={"name": "mse"}),
    "iterations": lambda c: c["compile"].update(iterations=c["compile"]["iterations"] + 1),
    "library version": lambda c: c.update(library_version="9.9.9"),
    "seed": lambda c: c["model"].update(seed=123),
    "rng state": lambda c: c["rng_state"]["shuffle"]["state"].update(state=12345),
    "a key added": lambda c: c.update(comment="edited by hand"),
}


@pytest.mark.parametrize("edit", list(HEADER_EDITS))
def test_a_hand_edited_header_is_refused(tmp_path, edit):
    path = tmp_path / "model.npz"
    _model().save(path)
    config, arrays = _entries(path)
    assert config["version"] == bpio.VERSION == 2
    HEADER_EDITS[edit](config)
    edited = _write(tmp_path / "edited.npz", config, arrays)
    with pytest.raises(ValueError) as info:
        bp.load(edited)
    message = str(info.value)
    assert edited in message and "checksum" in message, message


def test_a_header_written_with_other_whitespace_still_loads(tmp_path):
    """The checksum covers the header's content, not its spelling: JSON written again with
    other spacing or key order (by another tool) is the same header."""
    path = tmp_path / "model.npz"
    model = _model()
    model.save(path)
    config, arrays = _entries(path)
    text = json.dumps(dict(reversed(list(config.items()))), indent=3)
    other = tmp_path / "other.npz"
    np.savez(other, __config__=np.array(text), **arrays)
    _assert_same_weights(model, bp.load(other))


def _version_1_checksum(arrays: dict[str, np.ndarray], names: list[str]) -> str:
    """The checksum as format version 1 defined it: the arrays only (kept here, independent of
    backprop/io.py, so that the old rule stays what the old writer did)."""
    h = hashlib.sha256()
    for name in names:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def _as_version_1(path, out) -> str:
    """The file as the version-1 writer wrote it: same entries, header checksum of the arrays."""
    config, arrays = _entries(path)
    config["version"] = 1
    config["checksum"] = _version_1_checksum(arrays, config["arrays"])
    return _write(out, config, arrays)


def test_a_version_1_file_still_loads(tmp_path):
    model = _model()
    model.save(tmp_path / "model.npz")
    old = _as_version_1(tmp_path / "model.npz", tmp_path / "old.npz")
    loaded = bp.load(old)
    _assert_same_weights(model, loaded)
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert loaded.streams.get_state() == model.streams.get_state()


def test_a_version_1_file_with_altered_arrays_is_still_refused(tmp_path):
    _model().save(tmp_path / "model.npz")
    old = _as_version_1(tmp_path / "model.npz", tmp_path / "old.npz")
    config, arrays = _entries(old)
    arrays["weight_0"] = arrays["weight_0"] + 1
    altered = _write(tmp_path / "altered.npz", config, arrays)
    with pytest.raises(ValueError, match="checksum") as info:
        bp.load(altered)
    assert altered in str(info.value)


def test_the_version_2_checksum_is_the_documented_one(tmp_path):
    """docs/file-format.md: SHA-256 of the canonical header (sorted keys, no spaces, ASCII,
    without "checksum"), a newline, then each listed array as in version 1."""
    _model().save(tmp_path / "model.npz")
    config, arrays = _entries(tmp_path / "model.npz")
    body = {k: v for k, v in config.items() if k != "checksum"}
    h = hashlib.sha256()
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())
    h.update(b"\n")
    for name in config["arrays"]:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    assert config["checksum"] == "sha256:" + h.hexdigest()


# -- (25.4) what save refuses, and what load says -------------------------------------------------
def _refused_save(path, error=ValueError) -> str:
    model = bp.Sequential([Dense(1, input_dim=2)], seed=0)
    with pytest.raises(error) as info:
        model.save(path)
    message = str(info.value)
    assert ".tmp" not in message and ".backprop-" not in message, message
    return message


def test_save_refuses_an_empty_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = _refused_save("")
    assert "''" in message and "file name" in message, message
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("exists", [True, False], ids=["existing folder", "missing folder"])
def test_save_refuses_a_path_ending_with_a_separator(tmp_path, exists):
    folder = tmp_path / "models"
    if exists:
        folder.mkdir()
    target = str(folder) + os.sep
    message = _refused_save(target, IsADirectoryError if exists else ValueError)
    assert repr(target) in message or target in message, message
    assert "file name" in message, message
    assert not (folder / ".npz").exists() and not (tmp_path / "models.npz").exists()
    assert sorted(os.listdir(tmp_path)) == (["models"] if exists else [])
    if exists:
        assert os.listdir(folder) == []


@pytest.mark.parametrize("name", ["models", "models.npz"])
def test_save_refuses_an_existing_folder(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    message = _refused_save(folder, IsADirectoryError)
    assert str(folder) in message and "folder" in message, message
    assert sorted(os.listdir(tmp_path)) == [name], "something was written next to the folder"
    assert os.listdir(folder) == []


@pytest.mark.parametrize("depth", [0, 1], ids=["file.npz/x.npz", "file.npz/sub/x.npz"])
def test_save_through_a_file_says_the_parent_is_a_file(tmp_path, depth):
    parent = tmp_path / "file.npz"
    parent.write_bytes(b"not a folder")
    target = parent / "sub" / "x.npz" if depth else parent / "x.npz"
    message = _refused_save(target, NotADirectoryError)
    assert str(target) in message and f"{parent} is a file" in message, message
    assert "does not exist" not in message, message
    assert parent.read_bytes() == b"not a folder"


@pytest.mark.parametrize("where", ["mkstemp", "_replace"])
def test_a_permission_error_names_the_target_not_the_temporary_file(tmp_path, monkeypatch, where):
    """(Simulated: tests may run as root, whom a read-only folder does not stop.)"""
    target = tmp_path / "model.npz"

    def denied(*args, **kwargs):
        name = args[0] if where == "_replace" else os.path.join(tmp_path, ".backprop-x.npz.tmp")
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(bpio.tempfile if where == "mkstemp" else bpio, where, denied)
    message = _refused_save(target, PermissionError)
    assert str(target) in message and "Permission denied" in message, message
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def _header_case(tmp_path, change) -> str:
    path = tmp_path / "model.npz"
    _model().save(path)
    config, arrays = _entries(path)
    change(config)
    return _write(tmp_path / "case.npz", config, arrays)


def test_load_says_version_0_is_no_format_version(tmp_path):
    path = _header_case(tmp_path, lambda c: c.update(version=0))
    with pytest.raises(ValueError) as info:
        bp.load(path)
    message = str(info.value)
    assert path in message and "version 0" in message and "upgrade" not in message.lower()
    assert "damaged" in message, message


@pytest.mark.parametrize("version", [1, 2])
def test_load_says_the_checksum_is_missing(tmp_path, version):
    path = _header_case(tmp_path, lambda c: (c.pop("checksum"), c.update(version=version)))
    with pytest.raises(ValueError) as info:
        bp.load(path)
    message = str(info.value)
    assert path in message and "no checksum" in message, message
    assert "mismatch" not in message and "altered" not in message, message


# -- (25.7) loading draws no initial weights, and holds about one copy of the file ---------------
def _initializer_classes() -> list[type]:
    todo, found = [initializers.Initializer], []
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "uncompiled"])
def test_loading_draws_no_initial_weights(tmp_path, monkeypatch, backend, compiled):
    model = _model(compiled=compiled)
    model.save(tmp_path / "model.npz")

    def draw(self, shape, rng):
        raise AssertionError(f"loading drew initial weights with {type(self).__name__}")

    for cls in _initializer_classes():
        monkeypatch.setattr(cls, "__call__", draw)
    loaded = bp.load(tmp_path / "model.npz", backend=backend.spec)
    monkeypatch.undo()
    _assert_same_weights(model, loaded)
    assert loaded.streams.get_state() == model.streams.get_state()
    X = np.random.default_rng(5).normal(size=(4, 3))
    np.testing.assert_allclose(
        bp.to_numpy(loaded.predict(X)), bp.to_numpy(model.predict(X)), rtol=1e-6, atol=1e-7
    )
    # and it trains on from the same point (not on JAX, where compiling the step takes 20 s:
    # the loader's code is the same on every backend)
    if compiled and backend.name != "jax":
        X8, y8 = X[:4], np.array([0, 1, 1, 0])
        model.fit(X8, y8, epochs=1, verbose=0)
        loaded.fit(X8, y8, epochs=1, verbose=0)
        for wa, wb in zip(model.get_weights(), loaded.get_weights(), strict=True):
            np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_a_loaded_model_owns_its_weights(tmp_path):
    """The weights of a loaded model share no memory with another model loaded from the file,
    and training one leaves the other as it was."""
    model = _model()
    model.save(tmp_path / "m.npz")
    a, b = bp.load(tmp_path / "m.npz"), bp.load(tmp_path / "m.npz")
    X = np.random.default_rng(5).normal(size=(8, 3))
    a.fit(X, (X[:, 0] > 0).astype(np.int64), epochs=1, verbose=0)
    _assert_same_weights(model, b)


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys
    import backprop as bp

    def peak():  # VmHWM, not ru_maxrss: that one keeps the forking parent's size after exec
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

    bp.Sequential([bp.layers.Dense(1, input_dim=1)]).predict([[0.0]])  # imports done
    base = peak()
    model = bp.load(sys.argv[1])
    print((peak() - base) * 1024)
    """
)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="no /proc (Linux) here")
def test_loading_a_100_mb_model_takes_about_the_file_size_in_memory(tmp_path):
    """Peak resident memory of a fresh process loading a ~100 MB model grows by less than
    1.6x the file (it was 4.5x: the file, initial weights drawn in float64, copies, the concat).
    Expected: the file's arrays, plus the largest one while the flat vector fills (1.25x here)."""
    path = tmp_path / "big.npz"
    layers = [Dense(1800, input_dim=1800)] + [Dense(1800) for _ in range(3)]
    bp.Sequential(layers, dtype="float64", seed=0).save(path)
    size = os.path.getsize(path)
    assert size > 95e6
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BACKPROP_BACKEND": "numpy"},
    )
    growth = int(result.stdout.split()[-1])
    assert growth < 1.6 * size, f"loading a {size / 1e6:.0f} MB file grew {growth / 1e6:.0f} MB"
