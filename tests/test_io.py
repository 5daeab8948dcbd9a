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


def test_a_text_file_named_npz_is_refused_without_pickle_advice(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("hello\n")
    with pytest.raises(ValueError) as info:
        bp.load(path)
    message = str(info.value)
    assert message.startswith(f"{path} is damaged or not a backprop model file: ")
    assert "b'hello\\n'" in message  # what was found
    assert "pickle" not in message


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


# -- restoring a file into an existing model: load_weights and the training state ---------------


def _fresh(seed=1, backend=None, device=None, layers=None, optimizer=None):
    layers = layers or [
        Dense(8, "leaky_relu", input_dim=2, kernel_regularizer="l2"),
        Dropout(0.1),
        Dense(1, "sigmoid", kernel_initializer="he_normal"),
    ]
    model = bp.Sequential(layers, seed=seed, backend=backend, device=device)
    model.compile(loss="binary_crossentropy", optimizer=optimizer or bp.optimizers.Adam(0.01))
    return model


def test_load_weights_restores_the_weights_only_into_the_same_model(tmp_path, circles, backend):
    X, _ = circles
    source = _trained(circles)
    path = tmp_path / "w.npz"
    source.save(path)
    target = _fresh(backend=backend.name, device=backend.device)
    assert target.load_weights(path) is None
    for a, b in zip(target.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert target.backend == backend  # the weights went to the model's own device
    np.testing.assert_allclose(target.predict(X), source.predict(X), rtol=1e-5, atol=1e-7)
    # weights only, as Keras: the optimizer and the random streams are the model's own
    assert target.optimizer.iterations == 0 and not target.optimizer.state
    assert target.streams.get_state() == _fresh().streams.get_state()


def test_load_weights_refuses_a_file_of_another_architecture(tmp_path, circles):
    path = tmp_path / "w.npz"
    _trained(circles).save(path)
    wider = _fresh(layers=[Dense(9, "relu", input_dim=2), Dropout(0.1), Dense(1, "sigmoid")])
    before = wider.get_weights()
    with pytest.raises(ValueError, match=r"w\.npz.*another architecture.*shape \(2, 8\)"):
        wider.load_weights(path)
    other = _fresh(layers=[Dense(8, "relu", input_dim=2), Dense(1, "sigmoid")])
    with pytest.raises(ValueError, match=r"another architecture.*Dense, Dropout, Dense"):
        other.load_weights(path)
    for a, b in zip(wider.get_weights(), before, strict=True):  # nothing was changed
        np.testing.assert_array_equal(a, b)
    with pytest.raises(RuntimeError, match="built"):
        bp.Sequential([Dense(8), Dropout(0.1), Dense(1)]).load_weights(path)
    with pytest.raises(FileNotFoundError):
        wider.load_weights(tmp_path / "missing.npz")


def test_restoring_the_training_state_resumes_exactly(tmp_path, circles):
    X, y = circles
    a = _trained(circles)
    a.optimizer.learning_rate = 0.003  # e.g. ReduceLROnPlateau's
    a.save(tmp_path / "a.npz")
    b = _fresh(seed=7)
    b._restore_training_state(tmp_path / "a.npz")
    assert b.optimizer.iterations == a.optimizer.iterations
    assert b.optimizer.learning_rate == 0.003
    assert b.streams.get_state() == a.streams.get_state()
    a.fit(X, y, epochs=1, verbose=0)
    b.fit(X, y, epochs=1, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_restoring_the_training_state_refuses_another_optimizer(tmp_path, circles):
    path = tmp_path / "a.npz"
    _trained(circles).save(path)
    sgd = _fresh(optimizer=bp.optimizers.SGD(0.1, momentum=0.9))
    before = sgd.get_weights()
    with pytest.raises(ValueError, match=r"'adam'.*'sgd'"):
        sgd._restore_training_state(path)
    for a, b in zip(sgd.get_weights(), before, strict=True):  # nothing was changed
        np.testing.assert_array_equal(a, b)
    uncompiled = bp.Sequential([Dense(8, input_dim=2), Dropout(0.1), Dense(1)])
    with pytest.raises(RuntimeError, match="compile"):
        uncompiled._restore_training_state(path)


def test_rank_0_reads_the_training_state_and_every_rank_restores_it(tmp_path, circles):
    from distributed_helpers import ThreadGroup

    path = tmp_path / "a.npz"
    source = _trained(circles)
    source.save(path)

    def restore(rank, comm):
        model = _fresh(seed=10 + rank)
        own_dropout = model.streams.get_state()["dropout"]
        model._restore_training_state(path if rank == 0 else "only rank 0 reads it", comm)
        return model, own_dropout

    for rank, (model, own_dropout) in enumerate(ThreadGroup(2, timeout=10).run(restore)):
        for a, b in zip(model.get_weights(), source.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        assert model.optimizer.iterations == source.optimizer.iterations
        streams, saved = model.streams.get_state(), source.streams.get_state()
        assert streams["shuffle"] == saved["shuffle"]
        assert streams["dropout"] == (saved["dropout"] if rank == 0 else own_dropout)
    # a file rank 0 cannot read fails every rank: none waits for it
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    errors = ThreadGroup(2, timeout=10).run(restore)
    assert all(isinstance(e, ValueError) and "damaged" in str(e) for e in errors), errors


def test_weighted_metrics_survive_save_and_load(tmp_path, circles):
    X, y = circles
    w = np.linspace(0.0, 2.0, len(y))
    model = bp.Sequential([Dense(4, "relu", input_dim=2), Dense(1, "sigmoid")], seed=0)
    model.compile("binary_crossentropy", "adam", metrics=["accuracy"],
                  weighted_metrics=["accuracy", bp.metrics.Precision(0.7, name="p7")])  # fmt: skip
    model.fit(X, y, epochs=2, verbose=0)
    before = model.evaluate(X, y, sample_weight=w)
    assert list(before) == ["loss", "accuracy", "weighted_accuracy", "p7"]
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert loaded.evaluate(X, y, sample_weight=w) == pytest.approx(before, rel=1e-6)
    loaded.save(tmp_path / "again.npz")
    again = bp.load(tmp_path / "again.npz")
    assert [n for n, _ in again.metrics] == ["accuracy", "weighted_accuracy", "p7"]
    assert again.metrics[2][1].get_config() == model.metrics[2][1].get_config()
