import json

import numpy as np
import pytest

import backprop as bp
from backprop.layers import Dense, Dropout


def _trained(circles, **kw):
    X, y = circles
    model = bp.Sequential(
        [
            Dense(8, "leaky_relu", input_dim=2, kernel_regularizer="l2"),
            Dropout(0.1),
            Dense(1, "sigmoid", kernel_initializer="he_normal"),
        ],
        seed=0,
        **kw,
    )
    model.compile(loss="binary_crossentropy", optimizer=bp.optimizers.Adam(0.01), metrics=["acc"])
    model.fit(X, y, epochs=3, verbose=0)
    return model


def test_save_load_roundtrip_on_every_backend(tmp_path, circles, backend):
    X, y = circles
    model = _trained(circles)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = bp.load(path, backend=backend.name, device=backend.device)
    assert loaded.backend == backend
    assert loaded.get_config() == model.get_config()
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-5, atol=1e-7)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations
    # training resumes exactly: same optimizer state, same next step
    assert loaded.evaluate(X, y) == pytest.approx(model.evaluate(X, y), rel=1e-5)


def test_resumed_training_matches_uninterrupted(tmp_path, circles):
    X, y = circles
    a = _trained(circles)
    a.save(tmp_path / "a.npz")
    b = bp.load(tmp_path / "a.npz")
    # the shuffle order and the dropout masks continue from the saved generator states
    a.fit(X, y, epochs=1, verbose=0)
    b.fit(X, y, epochs=1, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_file_has_no_pickle(tmp_path, circles):
    path = tmp_path / "m.npz"
    _trained(circles).save(path)
    with np.load(path, allow_pickle=False) as f:  # would raise if anything were pickled
        config = json.loads(str(f["__config__"]))
        assert all(f[k].dtype != object for k in f.files)
    assert config["format"] == "backprop-sequential"


def test_uncompiled_model_roundtrip(tmp_path):
    model = bp.Sequential([Dense(3, "relu", input_dim=2)], seed=1)
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert loaded.loss is None
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


def test_custom_initializer_function_is_saved(tmp_path):
    def tiny(shape, rng):
        return rng.normal(0, 1e-3, shape)

    model = bp.Sequential([Dense(3, input_dim=2, kernel_initializer=tiny)], seed=1)
    model.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(
        bp.load(tmp_path / "m.npz").get_weights()[0], model.get_weights()[0]
    )


def test_not_a_model_file(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.ones(2))
    with pytest.raises(ValueError, match="not a backprop model file"):
        bp.load(tmp_path / "x.npz")


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(RuntimeError, match="built model"):
        bp.Sequential([Dense(3)]).save(tmp_path / "m.npz")


def test_a_plain_npy_file_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"single array \(\.npy\)"):
        bp.load(tmp_path / "x.npy")


def test_metric_settings_survive_save_and_load(tmp_path, circles):
    X, y = circles
    model = bp.Sequential([Dense(4, "relu", input_dim=2), Dense(1, "sigmoid")], seed=0)
    model.compile("binary_crossentropy", "adam", metrics=[bp.metrics.BinaryAccuracy(0.9), "mae"])
    model.fit(X, y, epochs=3, verbose=0)
    before = model.evaluate(X, y)
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert loaded.metrics[0][1].threshold == 0.9
    assert loaded.evaluate(X, y) == pytest.approx(before, rel=1e-6)
    loaded.save(tmp_path / "again.npz")  # and once more from the loaded model
    assert bp.load(tmp_path / "again.npz").metrics[0][1].threshold == 0.9


def test_a_file_with_metric_names_only_still_loads(tmp_path, circles):
    """Files written before metric configs were saved hold names only."""
    X, y = circles
    model = bp.Sequential([Dense(1, "sigmoid", input_dim=2)], seed=0)
    model.compile("binary_crossentropy", "adam", metrics=["accuracy", "mae"])
    model.save(tmp_path / "m.npz")
    config = json.loads(str(np.load(tmp_path / "m.npz")["__config__"]))
    assert config["compile"]["metrics"] == ["accuracy", "mae"]
    assert list(bp.load(tmp_path / "m.npz").evaluate(X, y)) == ["loss", "accuracy", "mae"]


def test_save_into_a_missing_folder_names_the_target(tmp_path):
    model = bp.Sequential([Dense(1, input_dim=2)], seed=0)
    target = tmp_path / "no" / "such" / "model.npz"
    with pytest.raises(FileNotFoundError) as info:
        model.save(target)
    message = str(info.value)
    assert str(target) in message and "does not exist" in message and ".tmp" not in message
    assert not (tmp_path / "no").exists()


def test_saved_files_get_the_umask_permissions(tmp_path):
    import os

    model = bp.Sequential([Dense(1, input_dim=2)], seed=0)
    old = os.umask(0o022)
    try:
        model.save(tmp_path / "m.npz")
        assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644
        os.chmod(tmp_path / "m.npz", 0o640)  # an existing file keeps its mode
        model.save(tmp_path / "m.npz")
        assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_a_layer_class_not_defined_here_is_named_not_called_damage(tmp_path):
    model = bp.Sequential([bp.layers.Dense(2, input_dim=3)], seed=0)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:  # the file as a process without the class sees it
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays["__config__"]))
    config["model"]["layers"][0]["class_name"] = "NoSuchLayer"  # defined by no test
    # as a process that defines the class would have written it: the checksum covers the header
    listed = {k: arrays[k] for k in config["arrays"]}
    config["checksum"] = bp.io._checksum(listed, config["arrays"], config)
    arrays["__config__"] = np.array(json.dumps(config))
    np.savez(tmp_path / "other.npz", **arrays)
    with pytest.raises(ValueError) as err:
        bp.load(tmp_path / "other.npz")
    message = str(err.value)
    assert "'NoSuchLayer', which this process does not define" in message, message
    assert "damaged" not in message and "_Normalization" not in message
