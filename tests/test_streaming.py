"""Training on stores read batch by batch (issue 23): the same numbers as the arrays in memory."""

import numpy as np
import pytest

import backprop as bp
from backprop.layers import Dense


def _net(backend, seed=3):
    model = bp.Sequential(
        [Dense(6, "relu", input_dim=3), Dense(4, "tanh"), Dense(1, "sigmoid")],
        backend=backend,
        seed=seed,
        dtype="float64",
    )
    model.compile("binary_crossentropy", "adam", ["accuracy"])
    return model


def _data(n=150):
    r = np.random.default_rng(1)
    X = r.normal(size=(n, 3))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.float64)
    return X, y


def _memmap(tmp_path, a, name):
    m = np.lib.format.open_memmap(tmp_path / f"{name}.npy", mode="w+", dtype=a.dtype, shape=a.shape)
    m[...] = a
    m.flush()
    return np.load(tmp_path / f"{name}.npy", mmap_mode="r")


def _assert_same_fit(a, b, ha, hb):
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-15)
    assert ha.history.keys() == hb.history.keys()
    for key in ha.history:
        np.testing.assert_allclose(ha.history[key], hb.history[key], rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_memmap_fit_equals_the_in_memory_fit(backend64, tmp_path, shuffle):
    """Same seed: the same permutation, the same batches, the same numbers (float64)."""
    X, y = _data()
    Xm, ym = _memmap(tmp_path, X, "X"), _memmap(tmp_path, y, "y")
    w = np.linspace(0.5, 2.0, X.shape[0])
    kwargs = dict(epochs=3, batch_size=32, shuffle=shuffle, validation_split=0.2, verbose=0)
    ref = _net(backend64)
    h_ref = ref.fit(X, y, sample_weight=w, **kwargs)
    model = _net(backend64)
    h = model.fit(Xm, ym, sample_weight=w, **kwargs)
    assert h.params["engine"] == "streamed"
    _assert_same_fit(model, ref, h, h_ref)
    # evaluate and predict read the store too, batch by batch
    np.testing.assert_allclose(
        bp.to_numpy(model.predict(Xm)), bp.to_numpy(ref.predict(X)), rtol=1e-12
    )
    assert model.evaluate(Xm, ym, return_dict=False) == pytest.approx(
        ref.evaluate(X, y, return_dict=False), rel=1e-12
    )


def test_a_memmap_validation_set(tmp_path):
    X, y = _data()
    Xv, yv = X[:40] * 0.5, y[:40]
    ref, model = _net("numpy"), _net("numpy")
    h_ref = ref.fit(X, y, epochs=2, validation_data=(Xv, yv), verbose=0)
    h = model.fit(
        _memmap(tmp_path, X, "X"), y, epochs=2, verbose=0,
        validation_data=(_memmap(tmp_path, Xv, "Xv"), _memmap(tmp_path, yv, "yv")),
    )  # fmt: skip
    _assert_same_fit(model, ref, h, h_ref)


def test_a_streamed_fit_reads_each_row_once_per_epoch(tmp_path, monkeypatch):
    """No whole-set read: each epoch reads every training row once, batch by batch."""
    X, y = _data()
    sources = []
    original = bp.data.adapt

    def spy(*args, **kwargs):
        source = original(*args, **kwargs)
        if source is not None:
            sources.append(source)
        return source

    monkeypatch.setattr(bp.data, "adapt", spy)
    model = _net("numpy")
    model.fit(_memmap(tmp_path, X, "X"), y, epochs=2, batch_size=32, verbose=0)
    (source,) = sources
    probe = min(X.shape[0], bp.training.probe.DEAD_CHECK_ROWS)
    assert source.reads == probe + 2 * X.shape[0] + probe  # the checks, two epochs, the probe
