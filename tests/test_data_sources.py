"""backprop.data's sources: each kind of input that is not an in-memory array, read for the loop.

Checked: ``adapt`` picks the kind (None for in-memory arrays of every library); sliceable
stores are read at the sorted unique rows and handed back in the order asked, counting the rows
read; a memmap whose file was truncated gives a clear error and the file is left as it was;
generators and PyDatasets give their batches (uneven sizes, the peeked first batch not lost)
and every bad batch is refused naming its step; ``split`` cuts by-rows sources and is refused
for the others; a Dask array is read on a real ``distributed.LocalCluster``; a torch DataLoader
works as an iterable.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys

import numpy as np
import pytest

import backprop as bp
from backprop.data import (
    DataReadError,
    PyDataset,
    RowSource,
    Source,
    adapt,
    check_batch,
)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(20, 3))
Y = RNG.normal(size=20)
W = RNG.uniform(size=20)


class RecordingStore:
    """A sliceable store (shape, dtype, rows by index) that records every index asked for."""

    def __init__(self, data, fancy=True):
        self.data, self.fancy, self.asked = data, fancy, []
        self.shape, self.dtype = data.shape, data.dtype

    def __len__(self):
        return self.data.shape[0]

    def __getitem__(self, index):
        self.asked.append(index)
        if isinstance(index, np.ndarray) and not self.fancy:
            raise IndexError("only integers and slices are valid indices")  # as zarr's basic
        return np.array(self.data[index])


def _memmap(tmp_path, a, name="x.npy"):
    path = tmp_path / name
    np.save(path, a)
    return path, np.load(path, mmap_mode="r")


# -- adapt: which kind ---------------------------------------------------------------------------


def test_in_memory_arrays_take_the_usual_path(backend):
    assert adapt(X) is None
    assert adapt(backend.asarray(X, "float32")) is None
    assert adapt([[1.0, 2.0], [3.0, 4.0]]) is None
    assert adapt([np.ones(3), np.ones(3)]) is None  # a list of rows is data, not batches
    assert adapt(None) is None


def test_each_kind_is_recognised(tmp_path):
    _, mm = _memmap(tmp_path, X)
    assert adapt(mm).kind == "sliceable"
    assert adapt(RecordingStore(X)).kind == "sliceable"
    assert adapt(iter([(X, Y)])).kind == "generator"
    assert adapt([(X, Y), (X, Y)]).kind == "generator"  # a list of batches
    assert adapt(_Squares(3)).kind == "pydataset"
    source = adapt(mm, Y, W)
    assert isinstance(source, RowSource) and isinstance(source, Source)
    assert (source.n, source.by_rows, source.sample_shape, source.steps(6)) == (20, True, (3,), 4)


def test_adapt_refuses_bad_sliceable_input(tmp_path):
    _, mm = _memmap(tmp_path, X)
    with pytest.raises(ValueError, match="same number of rows: x has 20, y has 19"):
        adapt(mm, Y[:19])
    with pytest.raises(ValueError, match="same number of rows: x has 20, sample_weight has 3"):
        adapt(mm, Y, np.ones(3))
    with pytest.raises(ValueError, match="sample_weight must be finite and >= 0"):
        adapt(mm, Y, -W)
    _, flat = _memmap(tmp_path, Y, "flat.npy")
    with pytest.raises(ValueError, match=r"at least 2-D, received shape \(20,\)"):
        adapt(flat)
    _, words = _memmap(tmp_path, np.array([["a", "b"]] * 3), "words.npy")
    with pytest.raises(TypeError, match="must be numeric"):
        adapt(words)


@pytest.mark.parametrize("arg", ["y", "sample_weight"])
def test_y_or_weights_beside_a_generator_are_refused(arg):
    with pytest.raises(ValueError, match=f"{arg} must not be given when x is a generator"):
        adapt(iter([(X, Y)]), **{arg: Y})
    with pytest.raises(ValueError, match=f"{arg} must not be given when x is a pydataset"):
        adapt(_Squares(2), **{arg: Y})


# -- by rows: sorted reads, in the order asked --------------------------------------------------


def test_rows_are_read_sorted_and_unique_then_put_in_the_order_asked():
    store = RecordingStore(X)
    source = adapt(store, Y, W)
    rows = np.array([17, 2, 9, 2, 5])
    x, y, w = source.read(rows)
    asked = store.asked[-1]
    np.testing.assert_array_equal(asked, [2, 5, 9, 17])  # forward, each row once
    np.testing.assert_array_equal(x, X[rows])
    np.testing.assert_array_equal(y, Y[rows])
    np.testing.assert_array_equal(w, W[rows])
    assert source.reads == 4


def test_consecutive_rows_are_one_slice_and_stores_without_fancy_indexing_read_runs():
    store = RecordingStore(X, fancy=False)
    source = adapt(store)
    x, y, w = source.read(np.array([6, 4, 5]))
    assert store.asked == [slice(4, 7)]
    np.testing.assert_array_equal(x, X[[6, 4, 5]])
    assert y is None and w is None
    x, _, _ = source.read(np.array([9, 1, 2, 3]))
    assert store.asked[-2:] == [slice(1, 4), slice(9, 10)]  # after the refused array index
    np.testing.assert_array_equal(x, X[[9, 1, 2, 3]])


def test_a_memmap_reads_into_memory_of_its_own(tmp_path):
    _, mm = _memmap(tmp_path, X)
    source = adapt(mm, Y)
    x, y, _ = source.read(np.arange(3, 8))
    np.testing.assert_array_equal(x, X[3:8])
    np.testing.assert_array_equal(y, Y[3:8])
    assert type(x) is np.ndarray and not np.may_share_memory(x, mm)
    assert source.reads == 5


def test_rows_out_of_range_are_refused():
    source = adapt(RecordingStore(X))
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 20\)"):
        source.read(np.array([3, 20]))
    with pytest.raises(TypeError, match="1-D array of integers"):
        source.read(np.array([0.0, 1.0]))


def test_nan_in_the_rows_read_names_the_row(tmp_path):
    bad = X.copy()
    bad[13, 1] = np.nan
    _, mm = _memmap(tmp_path, bad)
    source = adapt(mm)
    source.read(np.arange(10))  # the clean rows read fine
    with pytest.raises(ValueError, match=r"x of x contains NaN or infinite values.*row 13"):
        source.read(np.array([4, 13, 1]))
    weights = RecordingStore(-W[:, None])
    with pytest.raises(ValueError, match="sample_weight of x must be finite and >= 0"):
        adapt(RecordingStore(X), Y, weights).read(np.arange(4))


def test_a_truncated_memmap_gives_a_clear_error_and_the_file_is_left_alone(tmp_path):
    big = RNG.normal(size=(4096, 4))  # 128 KiB: the end of the file is pages past its start
    path, mm = _memmap(tmp_path, big)
    source = adapt(mm)
    source.read(np.arange(100))
    os.truncate(path, path.stat().st_size // 2)  # e.g. a copy that stopped partway
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DataReadError, match=r"rows \[4000, 4001.*truncated") as info:
        source.read(np.arange(4000, 4010))
    assert isinstance(info.value, ValueError)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_split_takes_the_last_rows_for_validation():
    store = RecordingStore(X)
    train, val = adapt(store, Y).split(0.25)
    assert (train.n, val.n, val.sample_shape) == (15, 5, (3,))
    x, y, _ = val.read(np.array([4, 0]))
    np.testing.assert_array_equal(x, X[[19, 15]])
    np.testing.assert_array_equal(y, Y[[19, 15]])
    np.testing.assert_array_equal(train.read(np.array([14]))[0], X[[14]])
    with pytest.raises(ValueError, match="rows must lie in"):
        train.read(np.array([15]))
    with pytest.raises(ValueError, match="leaves 0 for validation"):
        adapt(store).split(0.01)


@pytest.mark.parametrize("make", [lambda: iter([(X, Y)]), lambda: _Squares(2)])
def test_split_is_refused_for_sources_not_read_by_rows(make):
    with pytest.raises(ValueError, match="validation_split needs data that can be split"):
        adapt(make()).split(0.2)


def test_a_memmap_is_read_without_importing_dask(tmp_path, monkeypatch):
    _, mm = _memmap(tmp_path, X)
    monkeypatch.setitem(sys.modules, "dask", None)  # `import dask` fails from here on
    np.testing.assert_array_equal(adapt(mm).read(np.array([1, 0]))[0], X[[1, 0]])


# -- generators and PyDatasets -----------------------------------------------------------------


class _Squares(PyDataset):
    """Batch i: rows 4i..4i+3 (the last one short); counts the calls."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n, self.calls, self.ends = n, [], 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.calls.append(i)
        x = np.arange(4.0 * i, 4.0 * i + (3 if i == self.n - 1 else 4))[:, None]
        return x, x**2

    def on_epoch_end(self):
        self.ends += 1


def test_a_pydataset_gives_its_batches_and_its_hook_runs():
    data = _Squares(3, workers=4, max_queue_size=2)
    assert (data.workers, data.use_multiprocessing, data.max_queue_size) == (4, False, 2)
    with pytest.warns(UserWarning, match=r"workers=4 and use_multiprocessing=False: both are"):
        source = adapt(data)
    assert (source.sample_shape, source.steps(32), source.by_rows, source.n) == (
        (1,),
        3,
        False,
        None,
    )
    first = list(source.epoch())
    assert data.calls == [0, 1, 2]  # batch 0, peeked for the shape, is not read twice
    assert [len(b[0]) for b in first] == [4, 4, 3]
    source.on_epoch_end()
    second = list(source.epoch())
    assert data.calls == [0, 1, 2, 0, 1, 2] and data.ends == 1
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a[1], b[1])


def test_pydataset_base_says_what_to_define():
    class Empty(PyDataset):
        pass

    with pytest.raises(NotImplementedError, match="must define __len__"):
        Empty().num_batches  # noqa: B018
    with pytest.raises(NotImplementedError, match=r"must define __getitem__\(index\)"):
        Empty()[0]


def test_a_generator_of_uneven_batches_keeps_its_first_batch_and_its_stream():
    def batches():
        for size in (5, 2, 7, 1):
            yield np.ones((size, 3)), np.zeros(size)

    source = adapt(batches())
    assert (source.sample_shape, source.steps(32)) == ((3,), None)
    epoch = source.epoch()
    sizes = [check_batch(next(epoch), k, (3,), needs_y=True)[0].shape[0] for k in range(2)]
    # a generator cannot restart: the next epoch goes on from where the last one stopped
    sizes += [check_batch(b, 2, (3,), needs_y=True)[0].shape[0] for b in source.epoch()]
    assert sizes == [5, 2, 7, 1]
    assert list(source.epoch()) == []


def test_an_epoch_dropped_partway_leaves_the_generator_open():
    """steps_per_epoch stops an epoch partway; its iterator, collected, must not close the
    user's generator (``yield from`` would), or the next epoch would find it finished."""
    source = adapt(iter([(X[i : i + 2], Y[i : i + 2]) for i in range(0, 20, 2)]))
    epoch = source.epoch()
    assert [len(next(epoch)[0]) for _ in range(3)] == [2, 2, 2]
    del epoch
    gc.collect()
    assert len(list(source.epoch())) == 7


def test_a_dropped_generator_epoch_leaves_the_generator_open():
    def batches():
        for i in range(0, 20, 2):
            yield X[i : i + 2], Y[i : i + 2]

    source = adapt(batches())
    epoch = source.epoch()
    next(epoch), next(epoch)
    del epoch
    gc.collect()
    np.testing.assert_array_equal(next(source.epoch())[0], X[4:6])


def test_a_list_of_batches_restarts_each_epoch():
    source = adapt([(X[:8], Y[:8]), (X[8:], Y[8:])])
    assert source.steps(4) == 2 and source.sample_shape == (3,)
    assert [len(b[0]) for b in source.epoch()] == [8, 12]
    assert [len(b[0]) for b in source.epoch()] == [8, 12]


def test_a_generator_with_no_batch_is_refused():
    with pytest.raises(ValueError, match="yielded no batch"):
        adapt(iter([])).sample_shape  # noqa: B018


@pytest.mark.parametrize(
    ("batch", "error", "match"),
    [
        ((np.ones((0, 3)), np.ones(0)), ValueError, r"batch 4 of the generator: x is empty"),
        ((np.ones((2, 4)), np.ones(2)), ValueError, "batch 4 of the generator: .*3 features"),
        ((np.array([["a"] * 3] * 2), np.ones(2)), TypeError, "batch 4 .*must be numeric"),
        ((np.array([[1.0, np.nan, 0]]), np.ones(1)), ValueError, "batch 4 .*x contains NaN"),
        ((np.ones((2, 3)), np.array([1.0, np.inf])), ValueError, "batch 4 .*y contains NaN"),
        ((np.ones((2, 3)), np.ones(3)), ValueError, "batch 4 .*x has 2, y has 3"),
        ((np.ones((2, 3)), np.ones(2), -np.ones(2)), ValueError, "batch 4 .*finite and >= 0"),
        ((np.ones((2, 3)),), ValueError, "batch 4 of the generator: has no targets"),
        ((np.ones((2, 3)),) * 4, TypeError, "batch 4 .*received a tuple of length 4"),
        ("text", TypeError, "batch 4 of the generator: expected a tuple"),
    ],
)
def test_a_bad_batch_is_refused_naming_its_step(batch, error, match):
    with pytest.raises(error, match=match):
        check_batch(batch, 4, (3,), needs_y=True)


def test_check_batch_normalises_the_items():
    x, y, w = check_batch([X[:2].tolist(), Y[:2], W[:2]], 0, (3,), needs_y=True)
    np.testing.assert_array_equal(x, X[:2])
    assert w.dtype == np.float64
    x, y, w = check_batch(X[:2], 1, None, needs_y=False, what="the PyDataset")  # a bare x
    assert y is None and w is None
    with pytest.raises(ValueError, match=r"batch 2 of the PyDataset: .*float32"):
        check_batch((np.full((1, 3), 1e300),), 2, (3,), needs_y=False, what="the PyDataset",
                    dtype="float32")  # fmt: skip


# -- a torch DataLoader, a Dask array on a real cluster ------------------------------------------


def test_a_torch_dataloader_is_an_iterable_of_batches():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)), batch_size=6)
    source = adapt(loader)
    assert (source.kind, source.steps(32), source.sample_shape) == ("generator", 4, (3,))
    for _ in range(2):  # a DataLoader restarts each epoch
        got = [check_batch(b, k, (3,), needs_y=True) for k, b in enumerate(source.epoch())]
        assert [len(x) for x, _, _ in got] == [6, 6, 6, 2]
        host = bp.backend.resolve("numpy")
        np.testing.assert_array_equal(np.concatenate([host.asarray(x) for x, _, _ in got]), X)
        np.testing.assert_array_equal(np.concatenate([host.asarray(y) for _, y, _ in got]), Y)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    cluster = distributed.LocalCluster(
        processes=False,
        n_workers=1,
        threads_per_worker=1,
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False},
    )
    client = distributed.Client(cluster)  # the default scheduler while it is open
    try:
        yield client
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)


def test_a_dask_array_is_read_on_the_users_cluster(dask_client):
    da = pytest.importorskip("dask.array")
    from distributed import get_task_stream

    source = adapt(da.from_array(X, chunks=(7, 3)), da.from_array(Y, chunks=7), W)
    assert (source.kind, source.n, source.sample_shape) == ("dask", 20, (3,))
    rows = np.array([15, 3, 8, 3])
    with get_task_stream(dask_client) as tasks:
        x, y, w = source.read(rows)
    assert tasks.data  # the rows were computed by the cluster's worker
    np.testing.assert_array_equal(x, X[rows])
    np.testing.assert_array_equal(y, Y[rows])
    np.testing.assert_array_equal(w, W[rows])
    assert source.reads == 3
    _, val = source.split(0.5)
    np.testing.assert_array_equal(val.read(np.array([0]))[0], X[[10]])
