"""Training on stores read batch by batch (issue 23): the same numbers as the arrays in memory."""

import itertools
import warnings

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


# -- generators, iterables and PyDatasets: the batches they hand out, as they come ------------


def _batches(X, y=None, w=None, batch_size=32):
    """The batches of an unshuffled in-memory fit, as a generator yields them."""
    for lo in range(0, X.shape[0], batch_size):
        rows = slice(lo, lo + batch_size)
        yield tuple(a[rows] for a in (X, y, w) if a is not None)


class _Listed(bp.data.PyDataset):
    """A PyDataset of given batches; counts its on_epoch_end calls."""

    def __init__(self, batches):
        super().__init__()
        self.batches, self.ends = list(batches), 0

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]

    def on_epoch_end(self):
        self.ends += 1


def _stream(kind, X, y=None, w=None, epochs=1, batch_size=32):
    """``kind`` of input handing out the unshuffled batches (``epochs`` passes of a generator)."""
    if kind == "generator":
        return (b for _ in range(epochs) for b in _batches(X, y, w, batch_size))
    if kind == "pydataset":
        return _Listed(_batches(X, y, w, batch_size))
    return list(_batches(X, y, w, batch_size))  # a re-iterable with a length: a fresh pass each


def _prefetch_threads():
    import threading

    return [t for t in threading.enumerate() if t.name == "backprop-prefetch" and t.is_alive()]


@pytest.mark.parametrize("kind", ["generator", "pydataset", "list"])
def test_a_stream_fit_equals_the_in_memory_fit(backend64, kind):
    """Batches equal to an unshuffled in-memory fit's: the same training (float64)."""
    X, y = _data()
    w = np.linspace(0.5, 2.0, X.shape[0])
    Xv, yv = X[:40] * 0.5, y[:40]
    ref = _net(backend64)
    h_ref = ref.fit(
        X, y, sample_weight=w, epochs=3, batch_size=32, shuffle=False, verbose=0,
        validation_data=(Xv, yv),
    )  # fmt: skip
    model = _net(backend64)
    steps = dict(steps_per_epoch=5) if kind == "generator" else {}
    h = model.fit(
        _stream(kind, X, y, w, epochs=3), epochs=3, verbose=0, validation_data=(Xv, yv), **steps
    )
    assert h.params["engine"] == "streamed"
    _assert_same_fit(model, ref, h, h_ref)
    # evaluate and predict pull the batches too
    got = model.evaluate(_stream(kind, X, y), return_dict=False)
    assert got == pytest.approx(ref.evaluate(X, y, batch_size=32, return_dict=False), rel=1e-12)
    np.testing.assert_allclose(
        bp.to_numpy(model.predict(_stream(kind, X))), bp.to_numpy(ref.predict(X)), rtol=1e-12
    )
    assert not _prefetch_threads()


@pytest.mark.parametrize("kind", ["generator", "pydataset"])
def test_a_stream_validates_as_the_arrays_do(kind):
    X, y = _data()
    Xv, yv = X[:40] * 0.5, y[:40]
    ref, model = _net("numpy"), _net("numpy")
    h_ref = ref.fit(X, y, epochs=2, validation_data=(Xv, yv), validation_batch_size=16, verbose=0)
    steps = dict(validation_steps=3) if kind == "generator" else {}
    h = model.fit(
        X, y, epochs=2, verbose=0, validation_data=_stream(kind, Xv, yv, epochs=2, batch_size=16),
        **steps,
    )  # fmt: skip
    _assert_same_fit(model, ref, h, h_ref)


def test_a_pydataset_gets_on_epoch_end_after_each_epoch():
    X, y = _data()
    data, val = _Listed(_batches(X, y)), _Listed(_batches(X[:40], y[:40]))
    _net("numpy").fit(data, epochs=3, validation_data=val, verbose=0)
    assert (data.ends, val.ends) == (3, 3)


@pytest.mark.parametrize("by_rows", [False, True])
def test_class_weight_with_streamed_input(tmp_path, by_rows):
    """class_weight weighs each batch's rows as it weighs the arrays in memory."""
    X, y = _data()
    weights = {0: 0.5, 1: 3.0}
    ref, model = _net("numpy"), _net("numpy")
    kwargs = dict(epochs=2, batch_size=32, shuffle=False, verbose=0, class_weight=weights)
    h_ref = ref.fit(X, y, **kwargs)
    if by_rows:
        h = model.fit(_memmap(tmp_path, X, "X"), y, **kwargs)
    else:
        h = model.fit(_stream("list", X, y), **kwargs)
    _assert_same_fit(model, ref, h, h_ref)


def test_a_generator_without_length_runs_one_pass_then_stops():
    """No steps_per_epoch: the first epoch takes every batch; the next finds none and stops."""
    X, y = _data()
    ref, model = _net("numpy"), _net("numpy")
    h_ref = ref.fit(X, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    with pytest.warns(UserWarning, match=r"ran out of data at batch 1 of epoch 2"):
        h = model.fit(_stream("generator", X, y), epochs=3, verbose=0)
    _assert_same_fit(model, ref, h, h_ref)
    assert h.epoch == [0]


def test_a_generator_that_runs_dry_ends_the_epoch_and_training():
    X, y = _data()
    ref, model = _net("numpy"), _net("numpy")
    # 5 batches a pass; the second epoch gets 2 of its 3 steps
    ref.fit(_stream("list", X[:128], y[:128]), epochs=1, verbose=0)
    ref.fit(_stream("list", X[128:], y[128:]), epochs=1, verbose=0)
    ran_dry = r"ran out of data at batch 3 of epoch 2 .*steps_per_epoch=3"
    with pytest.warns(UserWarning, match=ran_dry):
        h = model.fit(_stream("generator", X, y), steps_per_epoch=3, epochs=4, verbose=0)
    assert h.epoch == [0, 1]
    for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_validation_split_is_refused_for_a_stream():
    X, y = _data()
    with pytest.raises(ValueError, match="validation_split"):
        _net("numpy").fit(_stream("pydataset", X, y), validation_split=0.2, verbose=0)


def test_the_progress_bar_counts_batches(capsys):
    X, y = _data()
    _net("numpy").fit(_stream("generator", X, y, epochs=2), steps_per_epoch=5, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "5/5 [" in out and "Epoch 2/2" in out
    _net("numpy").fit(_stream("generator", X, y), epochs=1, verbose=1)  # unknown length
    assert "5/5 [" in capsys.readouterr().out


def test_a_torch_dataloader_trains_as_the_arrays():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    X, y = _data()
    loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=32)
    ref, model = _net("numpy"), _net("numpy")
    h_ref = ref.fit(X, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    h = model.fit(loader, epochs=2, verbose=0)
    _assert_same_fit(model, ref, h, h_ref)


# -- bad batches: an error naming the batch, the model as after the last step, no thread left --


def test_uneven_batches_train_as_steps_on_each():
    X, y = _data()
    sizes = [10, 7, 33, 1, 20]
    cuts = np.cumsum([0, *sizes])
    batches = [(X[a:b], y[a:b]) for a, b in itertools.pairwise(cuts)]
    ref, model = _net("numpy"), _net("numpy")
    for xb, yb in batches:
        ref.train_on_batch(xb, yb)
    model.fit(iter(batches), epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


class _Boom(RuntimeError):
    pass


def _bad(kind, X, y):
    """Batch 3 (of 5) broken in the way ``kind`` says."""
    good = list(_batches(X, y))
    if kind == "raises":

        def gen():
            yield from good[:2]
            raise _Boom("disk on fire")

        return gen()
    x3, y3 = (a.copy() for a in good[2])
    if kind == "empty":
        x3, y3 = x3[:0], y3[:0]
    elif kind == "shape":
        x3 = np.hstack([x3, x3])
    elif kind == "dtype":
        x3 = x3.astype(str)
    elif kind == "nan_x":
        x3[4, 1] = np.nan
    elif kind == "nan_y":
        y3[2] = np.nan
    elif kind == "rows":
        y3 = y3[:-1]
    return iter([*good[:2], (x3, y3), *good[3:]])


@pytest.mark.parametrize("kind", ["raises", "empty", "shape", "dtype", "nan_x", "nan_y", "rows"])
def test_a_bad_batch_names_its_step_and_keeps_the_last_steps_weights(backend64, kind):
    X, y = _data()
    ref = _net(backend64)
    ref.fit(iter(list(_batches(X, y))[:2]), epochs=1, verbose=0)  # the two good steps
    model = _net(backend64)
    error = _Boom if kind == "raises" else (TypeError, ValueError)
    with pytest.raises(error) as info:
        model.fit(_bad(kind, X, y), epochs=1, verbose=0)
    text = str(info.value) + " ".join(getattr(info.value, "__notes__", []))
    assert "batch 3 of the generator" in text
    for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert model.optimizer.iterations == ref.optimizer.iterations
    assert not _prefetch_threads()


def test_a_bad_batch_in_evaluate_and_predict_names_its_step():
    X, y = _data()
    model = _net("numpy")
    model.fit(X, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="batch 3 of the generator"):
        model.evaluate(_bad("nan_x", X, y))
    with pytest.raises(_Boom) as info:
        model.predict(_bad("raises", X, y))
    assert "batch 3 of the generator" in " ".join(info.value.__notes__)
    assert not _prefetch_threads()


# -- by-rows reads ahead of the steps, in the prefetch thread ---------------------------------


class _Store:
    """A sliceable store (as h5py's) that records the thread of each read."""

    def __init__(self, a):
        self.a, self.shape, self.dtype, self.threads = a, a.shape, a.dtype, []

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        import threading

        self.threads.append(threading.current_thread().name)
        return self.a[index]


def test_a_store_is_read_ahead_in_the_prefetch_thread():
    X, y = _data()
    store = _Store(X)
    ref, model = _net("numpy"), _net("numpy")
    kwargs = dict(epochs=2, batch_size=32, verbose=0)
    h_ref = ref.fit(X, y, **kwargs)
    h = model.fit(store, y, **kwargs)
    _assert_same_fit(model, ref, h, h_ref)
    # every batch of both epochs was read in the thread; the checks and probes before it not
    assert store.threads.count("backprop-prefetch") == 2 * 5
    store.threads.clear()
    np.testing.assert_allclose(model.predict(store, batch_size=64), ref.predict(X), rtol=1e-12)
    model.evaluate(store, y, batch_size=64)
    assert store.threads.count("backprop-prefetch") == 2 * 3
    assert not _prefetch_threads()


def test_a_streamed_fit_stopped_or_failing_partway_leaves_no_thread(tmp_path):
    X, y = _data()

    class Stop(bp.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.stop_training = batch == 1

    h = _net("numpy").fit(_memmap(tmp_path, X, "X"), y, callbacks=[Stop()], verbose=0)
    assert h.epoch == [0]
    assert not _prefetch_threads()
    Xm = _memmap(tmp_path, X, "X")
    with open(tmp_path / "X.npy", "r+b") as f:  # the file loses its last rows: reads fail
        f.truncate(f.seek(0, 2) - 8 * 3 * 20)
    with pytest.raises(bp.data.DataReadError):
        _net("numpy").fit(Xm, y, epochs=1, shuffle=False, verbose=0)
    assert not _prefetch_threads()


def test_a_generator_is_pulled_ahead_in_the_prefetch_thread():
    import threading

    X, y = _data()
    threads = []

    def gen():
        for batch in _batches(X, y):
            threads.append(threading.current_thread().name)
            yield batch

    _net("numpy").fit(gen(), epochs=1, verbose=0)
    # the first batch is peeked to build the model; the rest come through the thread
    assert threads == ["MainThread"] + ["backprop-prefetch"] * 4


@pytest.mark.parametrize("bad", [np.zeros((2, 3)), {"x": 1}, (np.zeros((4, 3)),)])
def test_validation_data_that_is_no_pair_nor_stream_is_refused(bad):
    X, y = _data()
    with pytest.raises(ValueError, match="validation_data must be a tuple"):
        _net("numpy").fit(X, y, validation_data=bad, verbose=0)


def test_no_rows_of_a_store_read_nothing(tmp_path):
    """A rank without rows in a small batch asks for none: empty arrays, nothing read."""
    from backprop.training.streamed import Rows

    X, y = _data()
    model = _net("numpy")
    model.fit(X[:4], y[:4], verbose=0)
    source = bp.data.adapt(_memmap(tmp_path, X, "X"), y, np.ones(X.shape[0]))
    x, Y = Rows(model, source).read(np.arange(0))
    assert (tuple(x.shape), tuple(Y.shape), source.reads) == ((0, 3), (0, 2), 0)


def test_the_progress_bar_of_a_stream_of_unknown_length_says_unknown(capsys):
    import time

    X, y = _data()

    def slow():
        for batch in _batches(X, y, batch_size=50):
            time.sleep(0.12)  # the bar redraws at most every 0.1 s
            yield batch

    _net("numpy").fit(slow(), epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert "2/Unknown" in out and "3/3 [" in out


# -- a new user's defects (round 3): validation reads, hooks, messages, blocked generators ----


class _CountingStore(_Store):
    """A sliceable store that records the rows of each read."""

    def __init__(self, a):
        super().__init__(a)
        self.reads = []

    def __getitem__(self, index):
        self.reads.append(np.arange(self.shape[0])[index])
        return super().__getitem__(index)


@pytest.mark.parametrize("how", ["split", "data"])
def test_a_stores_validation_is_read_in_batches(backend64, monkeypatch, how):
    """validation_batch_size unset: a store's validation is read STREAM_BATCH_SIZE rows a read
    (never the whole validation set at once), with the numbers of the in-memory fit."""
    from backprop.training import loop

    monkeypatch.setattr(loop, "STREAM_BATCH_SIZE", 16)
    X, y = _data()
    Xv, yv = X[:40] * 0.5, y[:40]
    ref = _net(backend64)
    model = _net(backend64)
    kwargs = dict(epochs=2, batch_size=32, verbose=0)
    if how == "split":
        h_ref = ref.fit(X, y, validation_split=0.3, **kwargs)
        store = _CountingStore(X)
        h = model.fit(store, y, validation_split=0.3, **kwargs)
        first_val = 105  # the last 45 rows validate
    else:
        h_ref = ref.fit(X, y, validation_data=(Xv, yv), **kwargs)
        store = _CountingStore(Xv)
        h = model.fit(X, y, validation_data=(store, yv), **kwargs)
        first_val = 0
    _assert_same_fit(model, ref, h, h_ref)
    assert "val_loss" in h.history
    val_reads = [len(rows) for rows in store.reads if rows.size and rows.max() >= first_val]
    # two validations, each 16 + 16 + 8 or 16 + 16 + 13 rows: never the whole set at once
    assert sorted(val_reads) == sorted([16, 16, 40 - 32 if how == "data" else 45 - 32] * 2)


class _Hooked(_Listed):
    """A PyDataset that records its hooks and the batches read, in order."""

    def __init__(self, batches):
        super().__init__(batches)
        self.events = []

    def __getitem__(self, i):
        self.events.append(i)
        return super().__getitem__(i)

    def on_epoch_begin(self):
        self.events.append("begin")

    def on_epoch_end(self):
        super().on_epoch_end()
        self.events.append("end")


def test_a_pydataset_gets_on_epoch_begin_before_each_pass():
    X, y = _data()
    data, val = _Hooked(_batches(X, y, batch_size=50)), _Hooked(_batches(X[:40], y[:40]))
    model = _net("numpy")
    model.fit(data, epochs=2, validation_data=val, verbose=0)
    epoch = ["begin", 0, 1, 2, "end"]
    # batch 0 is read once for the model's shape, then again after epoch 1's hook
    assert data.events == [0] + epoch * 2
    assert val.events.count("begin") == 2 and val.events[-3:] == [0, 1, "end"]
    data.events.clear()
    model.evaluate(data)
    model.predict(data)
    assert data.events == [0, *epoch] * 2  # each call reads batch 0 for the shape first


def test_a_pydataset_with_workers_warns_once_what_is_ignored():
    X, y = _data()

    class Many(_Listed):
        def __init__(self, batches):
            super().__init__(batches)
            bp.data.PyDataset.__init__(self, workers=4, use_multiprocessing=True)

    data = Many(_batches(X, y))
    model = _net("numpy")
    with pytest.warns(
        UserWarning, match=r"workers=4.*use_multiprocessing=True.*one background"
    ) as rec:
        model.fit(data, epochs=2, verbose=0)
    assert [w.filename for w in rec] == [__file__]  # once, at the user's call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.evaluate(data)  # once per dataset


def _ran_out(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    (w,) = [w for w in caught if issubclass(w.category, bp.training.streamed.RanOut)]
    assert w.filename == __file__  # the user's call, not the library
    return str(w.message)


def test_the_ran_out_warning_names_the_calls_steps_and_points_at_the_call():
    X, y = _data()
    model = _net("numpy")
    model.fit(X, y, epochs=1, verbose=0)
    text = _ran_out(lambda: model.predict(_stream("generator", X), steps=10))
    assert "steps=10" in text and "prediction" in text and "validation_steps" not in text
    text = _ran_out(lambda: model.evaluate(_stream("generator", X, y), steps=10))
    assert "steps=10" in text and "evaluation" in text and "validation_steps" not in text
    text = _ran_out(lambda: model.fit(_stream("generator", X, y), epochs=2, verbose=0))
    assert "With a generator is" not in text and "one stream for all epochs" in text
    text = _ran_out(
        lambda: model.fit(
            X,
            y,
            epochs=1,
            verbose=0,
            validation_data=_stream("generator", X, y),
            validation_steps=10,
        )
    )
    assert "validation_steps=10" in text


def test_steps_per_epoch_keeps_one_iterator_of_a_restartable_iterable(backend64):
    """As Keras 3: with steps_per_epoch a list of batches goes on where the last epoch
    stopped (batches 0-2, 3-5, 6-8, then it runs out); without, each epoch restarts."""
    X, y = _data(300)
    batches = list(_batches(X, y, batch_size=30))  # 10 batches
    ref = _net(backend64)
    for b in batches[:9]:
        ref.train_on_batch(*b)
    model = _net(backend64)
    with pytest.warns(UserWarning, match="ran out of data at batch 2 of epoch 4"):
        h = model.fit(batches, steps_per_epoch=3, epochs=5, verbose=0, shuffle=False)
    assert h.epoch == [0, 1, 2, 3]
    ref.train_on_batch(*batches[9])
    for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_a_failing_predict_or_evaluate_says_nothing_of_weights():
    X, y = _data()
    model = _net("numpy")
    model.fit(X, y, epochs=1, verbose=0)
    for call in (lambda: model.predict(_bad("raises", X, y)),
                 lambda: model.evaluate(_bad("raises", X, y))):  # fmt: skip
        with pytest.raises(_Boom) as info:
            call()
        notes = " ".join(info.value.__notes__)
        assert "batch 3 of the generator" in notes and "weights" not in notes
    with pytest.raises(_Boom) as info:
        model.fit(_bad("raises", X, y), epochs=1, verbose=0)
    assert "the weights of the last complete step" in " ".join(info.value.__notes__)


def test_a_list_of_batches_of_python_lists_is_read_as_batches(backend64):
    X, y = _data()
    ref, model = _net(backend64), _net(backend64)
    h_ref = ref.fit(X[:25], y[:25], epochs=2, batch_size=25, verbose=0)
    h = model.fit([(X[:25].tolist(), y[:25].tolist())], epochs=2, verbose=0)
    _assert_same_fit(model, ref, h, h_ref)
    # a 2-D or 3-D X given as nested lists stays in-memory data
    assert bp.data.adapt(X[:4].tolist()) is None
    assert bp.data.adapt(np.zeros((4, 2, 3)).tolist()) is None
    assert bp.data.adapt(np.zeros((4, 3, 2, 2)).tolist()) is None  # samples of 3 equal rows
    h2 = _net(backend64).fit(X[:25].tolist(), y[:25].tolist(), epochs=2, batch_size=25, verbose=0)
    _assert_same_fit(model, ref, h, h2)


def test_a_fit_failing_while_the_generator_blocks_raises_at_once(monkeypatch):
    """The error path does not join a thread stuck in the user's next(); the thread ends when
    the generator returns, and does not touch the model afterwards. No timing: the join is
    watched."""
    import threading

    from backprop.training.streamed import Batches

    X, y = _data()
    release, joins, hosted = threading.Event(), [], []
    good = list(_batches(X, y))

    def gen():
        yield from good[:2]
        release.wait()  # blocked in next() until the test ends
        yield good[2]

    original_join, original_host = threading.Thread.join, Batches.host

    def join(self, timeout=None):
        if self.name == "backprop-prefetch" and self.is_alive():
            joins.append(timeout)
        return original_join(self, timeout)

    def host(self, item):
        hosted.append(item[0])
        return original_host(self, item)

    monkeypatch.setattr(threading.Thread, "join", join)
    monkeypatch.setattr(Batches, "host", host)

    class Fail(bp.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise _Boom("callback failed")

    try:
        with pytest.raises(_Boom):
            _net("numpy").fit(gen(), epochs=1, callbacks=[Fail()], verbose=0)
        (thread,) = _prefetch_threads()  # still in the user's next(): not waited for
        assert joins == [] or all(t == 0 for t in joins)
        seen = list(hosted)
    finally:
        release.set()
    original_join(thread, 10)
    assert not thread.is_alive()
    assert hosted == seen  # the batch that came after the error was never checked


def test_validation_data_given_as_python_lists_validates_as_the_arrays(backend64):
    X, y = _data()
    Xv, yv = X[:40] * 0.5, y[:40]
    ref, model = _net(backend64), _net(backend64)
    h_ref = ref.fit(X, y, epochs=2, verbose=0, validation_data=(Xv, yv))
    h = model.fit(X, y, epochs=2, verbose=0, validation_data=(Xv.tolist(), yv.tolist()))
    _assert_same_fit(model, ref, h, h_ref)
