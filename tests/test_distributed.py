"""Data-parallel training in one process: the single-process path, and K ranks as threads.

The thread communicator (``distributed_helpers``) runs the library's data-parallel code on
every backend with uneven shards; ``test_distributed_mpi.py`` runs it under real ``mpirun``.
"""

import itertools
import os
import sys

import numpy as np
import pytest
from distributed_helpers import ThreadGroup

import backprop as bp
from backprop.backend import BackendNotInstalledError, resolve
from backprop.distributed import (
    DataParallel,
    DistributedError,
    SingleProcess,
    get_communicator,
    launched_by_mpi,
    local_rank,
    shard,
)
from backprop.distributed import parallel as _parallel


def _data(n=103, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = rng.integers(0, k, size=n)
    return X, y


def _model(backend, kind="binary", seed=0, **opt):
    reg = bp.regularizers.L2(1e-3)
    out = [bp.layers.Dense(1, "sigmoid")] if kind == "binary" else [bp.layers.Dense(3, "softmax")]
    m = bp.Sequential(
        [bp.layers.Dense(5, "tanh", input_dim=4, kernel_regularizer=reg), *out],
        backend=backend,
        dtype="float64" if backend.supports_float64 else "float32",
        seed=seed,
    )
    loss = "binary_crossentropy" if kind == "binary" else "sparse_categorical_crossentropy"
    m.compile(loss=loss, optimizer=bp.optimizers.Adam(0.01, **opt), metrics=["accuracy"])
    return m


def _labels(kind, y):
    return (y > 0).astype(int) if kind == "binary" else y


FIT = {"epochs": 3, "batch_size": 20, "verbose": 0, "validation_split": 0.1}


# -- sharding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_shards_tile_every_batch_in_rank_order(size):
    for lo, hi in [(0, 0), (0, 1), (3, 10), (0, 7), (5, 37), (0, 64)]:
        parts = [shard(lo, hi, r, size) for r in range(size)]
        assert parts[0][0] == lo and parts[-1][1] == hi
        assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
        lengths = [b - a for a, b in parts]
        assert max(lengths) - min(lengths) <= 1


# -- one process -------------------------------------------------------------------------------


def test_single_process_fit_is_the_plain_fit(backend64):
    X, y = _data()
    a, b = _model(backend64), _model(backend64)
    ha = a.fit(X, y > 0, **FIT)
    hb = b.fit(X, y > 0, distributed="single", **FIT)
    # JAX compiles the plain step (a different program); the others run the same operations
    rtol = 1e-9 if backend64.name == "jax" else 0.0
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(v, u, rtol=rtol, atol=0)
    for key in ha.history:
        np.testing.assert_allclose(hb.history[key], ha.history[key], rtol=rtol or 1e-15)


def test_distributed_true_without_mpirun_is_one_process(monkeypatch):
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    assert not launched_by_mpi()
    model = _model(resolve("numpy"))
    assert isinstance(_parallel.resolve(True, model.backend), SingleProcess)
    dp = DataParallel(model)
    assert (dp.rank, dp.size, dp.is_root) == (0, 1, True)
    X, y = _data()
    assert len(dp.fit(X, y > 0, **FIT).history["loss"]) == 3
    assert model._comm is None  # detached after fit


# -- K ranks -----------------------------------------------------------------------------------


def _fit_on_ranks(backend, size, kind="binary", n=103, fit=FIT, **opt):
    X, y = _data(n)
    group = ThreadGroup(size)

    def rank_fit(rank, comm):
        m = _model(backend, kind, **opt)
        h = m.fit(X, _labels(kind, y), distributed=comm, **fit)
        return m.get_weights(), h.history

    return group.run(rank_fit), group


@pytest.mark.parametrize("kind", ["binary", "softmax"])
def test_three_ranks_equal_one_process_with_the_global_batch(backend64, kind):
    _check_k_ranks(backend64, 3, kind)


def test_two_ranks_equal_one_process_with_the_global_batch():
    _check_k_ranks(resolve("numpy"), 2, "binary")


def _check_k_ranks(backend64, size, kind):
    """Uneven shards (103 rows, batches of 20, last batch 13) and regularization: exact.

    The last batch of 13 rows leaves ranks of 3 with 4, 4 and 5 rows; 93 training rows
    (validation_split) make a last batch of 13 too.
    """
    results, _ = _fit_on_ranks(backend64, size, kind)
    for r in results:
        assert not isinstance(r, BaseException), r
    X, y = _data()
    one = _model(backend64, kind)
    h = one.fit(X, _labels(kind, y), **FIT)
    for weights, history in results:
        for u, v in zip(one.get_weights(), weights, strict=True):
            np.testing.assert_allclose(v, u, rtol=1e-12, atol=1e-14)
        for key in h.history:
            np.testing.assert_allclose(history[key], h.history[key], rtol=1e-12)
    # every rank applied the same update to the same weights: identical, not just close
    for weights, _ in results[1:]:
        for u, v in zip(results[0][0], weights, strict=True):
            np.testing.assert_array_equal(u, v)


def test_per_array_clipping_and_a_rank_with_no_rows():
    """clipnorm (per weight array) and a last batch of 1 row over 3 ranks (two send zeros)."""
    fit = {"epochs": 2, "batch_size": 10, "verbose": 0, "shuffle": True}
    numpy = resolve("numpy")
    results, group = _fit_on_ranks(numpy, 3, n=21, fit=fit, clipnorm=0.05)
    X, y = _data(21)
    one = _model(numpy, clipnorm=0.05)
    h = one.fit(X, y > 0, **fit)
    for weights, history in results:
        for u, v in zip(one.get_weights(), weights, strict=True):
            np.testing.assert_allclose(v, u, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(history["loss"], h.history["loss"], rtol=1e-12)
    # one allreduce per step (3 steps x 2 epochs) and one per epoch for the sums
    assert group.calls["allreduce"] == 2 * 3 + 2


def test_evaluate_over_ranks_equals_evaluate():
    numpy = resolve("numpy")
    X, y = _data(50)
    model = _model(numpy)
    model.fit(X, y > 0, epochs=1, verbose=0)
    expected = model.evaluate(X, y > 0)

    def rank_evaluate(rank, comm):
        m = _model(numpy)
        m.set_weights(model.get_weights())
        return DataParallel(m, comm).evaluate(X, y > 0, batch_size=7)

    for result in ThreadGroup(3).run(rank_evaluate):
        assert result.keys() == expected.keys()
        for key in expected:
            assert result[key] == pytest.approx(expected[key], rel=1e-12)


class _TestLogs(bp.callbacks.Callback):
    def __init__(self, root_only=False):
        self.root_only, self.ends = root_only, []

    def on_test_end(self, logs=None):
        self.ends.append(dict(logs))


def test_evaluate_over_ranks_is_registered_for_model_evaluate(backend64):
    """What ``model.evaluate(..., distributed=...)`` calls (found by name, as fit finds the
    communicators): the ranks' check, then each rank its part, the callbacks as in fit (the
    root-only ones on rank 0 only), the scores of one process."""
    X, y = _data(50)
    model = _model(backend64)
    model.fit(X, y > 0, epochs=1, verbose=0)
    expected = model.evaluate(X, y > 0)
    over_ranks = bp.registry.lookup("distributed", "evaluate")

    def rank_evaluate(rank, comm):
        m = _model(backend64)
        m.set_weights(model.get_weights())
        every, root = _TestLogs(), _TestLogs(root_only=True)
        result = over_ranks(m, X, y > 0, comm, batch_size=7, callbacks=[every, root])
        return result, every.ends, root.ends

    results = ThreadGroup(3).run(rank_evaluate)
    for rank, (result, every, root) in enumerate(results):
        assert every == [result] and root == ([result] if rank == 0 else [])
        assert result.keys() == expected.keys()
        for key in expected:
            assert result[key] == pytest.approx(expected[key], rel=1e-12)
    # the ranks' check comes first
    results = ThreadGroup(2, timeout=20).run(
        lambda rank, comm: over_ranks(
            _model(backend64), X[: 50 - 3 * rank], y[: 50 - 3 * rank] > 0, comm
        )
    )
    for result in results:
        assert isinstance(result, DistributedError), repr(result)
        assert "rank 1: X: 47 rows where rank 0 has 50" in str(result)


# -- the ranks must evaluate the same thing (issue 25.2) ------------------------------------------


def _evaluate_on_ranks(size=2, data=None, model=None):
    """``DataParallel.evaluate`` on ``size`` thread ranks; ``data(rank)`` and ``model(rank)``
    give each rank's (X, y) and model (by default the same for all)."""
    numpy = resolve("numpy")
    trained = _model(numpy)
    X, y = _data(50)
    trained.fit(X, y > 0, epochs=1, verbose=0)

    def rank_evaluate(rank, comm):
        X, y = data(rank) if data else _data(50)
        m = model(rank) if model else _model(numpy)
        m.set_weights(trained.get_weights())
        return DataParallel(m, comm).evaluate(X, y > 0, batch_size=7)

    return ThreadGroup(size, timeout=20).run(rank_evaluate)


def _refused(results, *fragments):
    for result in results:  # every rank stops, with the same message
        assert isinstance(result, DistributedError), result
        assert str(result).startswith("The ranks must evaluate the same model on the same data")
        for fragment in fragments:
            assert fragment in str(result), str(result)
    return str(results[0])


def test_evaluate_refuses_ranks_with_other_rows():
    """37 rows on rank 0 and 30 on rank 1: each rank once returned its own "global" score."""
    X, y = _data(37)
    message = _refused(
        _evaluate_on_ranks(data=lambda rank: (X, y) if rank == 0 else (X[:30], y[:30])),
        "rank 1: X: 30 rows where rank 0 has 37",
        "rank 1: y: 30 rows where rank 0 has 37",
    )
    differences = message.split("they differ: ")[1]
    assert differences.count("rank 1:") == 2  # only what differs


def test_evaluate_refuses_other_values_anywhere_in_the_data():
    X, y = _data(50)
    X_middle = X.copy()
    X_middle[23, 2] += 0.5  # neither among the first nor the last rows
    _refused(
        _evaluate_on_ranks(data=lambda rank: (X, y) if rank == 0 else (X_middle, y)),
        "rank 1: X: other values than rank 0's",
    )
    y_other = y.copy()
    y_other[25] = 1 - (y_other[25] > 0)  # the labels only: y is named, X is not
    message = _refused(
        _evaluate_on_ranks(data=lambda rank: (X, y) if rank == 0 else (X, y_other)),
        "rank 1: y: other values than rank 0's",
    )
    assert "X:" not in message.split("they differ: ")[1]
    shuffled = np.random.default_rng(1).permutation(50)  # the same rows in another order
    _refused(
        _evaluate_on_ranks(data=lambda rank: (X, y) if rank == 0 else (X[shuffled], y[shuffled])),
        "rank 1: X: other values",
    )


def test_evaluate_refuses_another_backend_dtype_or_weights():
    numpy = resolve("numpy")

    def float32(rank):
        m = bp.Sequential(
            [
                bp.layers.Dense(
                    5, "tanh", input_dim=4, kernel_regularizer=bp.regularizers.L2(1e-3)
                ),
                bp.layers.Dense(1, "sigmoid"),
            ],
            dtype="float32" if rank else "float64",
            seed=0,
        )
        m.compile("binary_crossentropy", bp.optimizers.Adam(0.01), metrics=["accuracy"])
        return m

    _refused(
        _evaluate_on_ranks(model=float32), "rank 1: dtype='float32' where rank 0 has 'float64'"
    )
    try:
        torch = resolve("torch")
    except BackendNotInstalledError:
        torch = None
    if torch is not None:
        _refused(
            _evaluate_on_ranks(model=lambda rank: _model(torch if rank else numpy)),
            "rank 1: backend='torch' where rank 0 has 'numpy'",
        )

    results = ThreadGroup(2, timeout=20).run(
        lambda rank, comm: _other_weights_evaluate(rank, comm, numpy)
    )
    _refused(results, "rank 1: weights=")


def _other_weights_evaluate(rank, comm, numpy):
    m = _model(numpy, seed=0)
    m.build(4)
    if rank:
        m.set_weights([w + 1.0 for w in m.get_weights()])
    X, y = _data(40)
    return DataParallel(m, comm).evaluate(X, y > 0)


def test_evaluate_on_agreeing_ranks_still_equals_evaluate_on_three_ranks():
    results = _evaluate_on_ranks(size=3)
    assert not any(isinstance(r, BaseException) for r in results), results
    assert results[0] == results[1] == results[2]


def test_fingerprints_see_the_whole_array(backend):
    """Equal data give equal fingerprints on every backend (the numpy one's); a change in any
    row, a shuffle or another dtype gives another."""
    from backprop.distributed.agreement import fingerprint

    X = np.random.default_rng(0).normal(size=(300, 5))
    dtype = "float64" if backend.supports_float64 else "float32"
    reference = fingerprint(backend.asarray(X, backend.dtype(dtype)))
    assert fingerprint(backend.asarray(X.copy(), backend.dtype(dtype))) == reference
    if backend.supports_float64:  # the sums in float64 everywhere: numpy's fingerprint
        assert fingerprint(X.astype(dtype)) == reference
    for change in range(4):
        Y = X.copy()
        if change == 0:
            Y[151, 4] += 0.25  # a row no sample takes: the column sums see it
        elif change == 1:
            Y = Y[np.random.default_rng(1).permutation(300)]
        elif change == 2:
            Y = Y[:299]
        else:
            Y[0, 0] = -Y[0, 0]
        assert fingerprint(backend.asarray(Y, backend.dtype(dtype))) != reference, change
    labels = backend.asarray(X[:, 0] > 0, None)  # booleans and integers are fingerprinted too
    assert fingerprint(labels) == fingerprint(X[:, 0] > 0)
    assert fingerprint(labels) != fingerprint(X[:, 1] > 0)


def test_rank_zero_weights_are_broadcast_at_the_start():
    """Ranks that start from different weights (another seed for rank 1 only is refused,
    so rank 1 perturbs its weights after building): all continue from rank 0's."""
    numpy = resolve("numpy")
    X, y = _data(40)

    def rank_fit(rank, comm):
        m = _model(numpy)
        m.build(4)
        if rank == 1:
            m.set_weights([w + 1.0 for w in m.get_weights()])
        m.fit(X, y > 0, epochs=1, batch_size=40, verbose=0, distributed=comm)
        return m.get_weights()

    results = ThreadGroup(2).run(rank_fit)
    one = _model(numpy)
    one.fit(X, y > 0, epochs=1, batch_size=40, verbose=0)
    for weights in results:
        for u, v in zip(one.get_weights(), weights, strict=True):
            np.testing.assert_allclose(v, u, rtol=1e-12)


# -- only rank 0 speaks and writes -------------------------------------------------------------


def test_only_rank_zero_prints_and_checkpoints(tmp_path, capsys):
    numpy = resolve("numpy")
    X, y = _data(60)

    def rank_fit(rank, comm):
        m = _model(numpy)
        path = str(tmp_path / f"rank{rank}.npz")
        seen = []
        callbacks = [
            bp.callbacks.ModelCheckpoint(path, monitor="loss"),
            bp.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs)),
        ]
        m.fit(X, y > 0, epochs=2, verbose=2, callbacks=callbacks, distributed=comm)
        return seen

    seen = ThreadGroup(2).run(rank_fit)
    out = capsys.readouterr().out
    assert out.count("Epoch 1/2") == 1 and out.count("Epoch 2/2") == 1
    assert (tmp_path / "rank0.npz").exists() and not (tmp_path / "rank1.npz").exists()
    assert seen[0] == seen[1] and len(seen[0]) == 2  # every rank's callbacks see the same logs


def test_each_rank_draws_its_own_dropout_masks():
    streams = [bp.rng.Streams(0) for _ in range(3)]
    numpy = resolve("numpy")
    for rank, s in enumerate(streams):
        s.for_rank(rank, numpy)
        s.for_rank(rank, numpy)  # twice is once
    draws = [s.dropout.random(8) for s in streams]
    np.testing.assert_array_equal(draws[0], bp.rng.Streams(0).dropout.random(8))
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[1], draws[2])
    again = bp.rng.Streams(0)
    again.for_rank(2, numpy)
    np.testing.assert_array_equal(again.dropout.random(8), draws[2])  # reproducible


# -- failures ----------------------------------------------------------------------------------


def _two_ranks(fn):
    return ThreadGroup(2, timeout=20).run(fn)


def test_ranks_with_another_seed_are_refused_on_every_rank():
    numpy = resolve("numpy")
    X, y = _data(40)

    def rank_fit(rank, comm):
        m = _model(numpy, seed=rank)
        return m.fit(X, y > 0, epochs=1, verbose=0, distributed=comm)

    for result in _two_ranks(rank_fit):
        assert isinstance(result, DistributedError)
        assert "rank 1: seed=1 where rank 0 has 0" in str(result)


def test_ranks_with_other_data_or_settings_are_refused():
    numpy = resolve("numpy")

    def rank_fit(rank, comm):
        X, y = _data(40, seed=rank)
        m = _model(numpy)
        return m.fit(X, y > 0, epochs=1 + rank, verbose=0, distributed=comm)

    for result in _two_ranks(rank_fit):
        assert isinstance(result, DistributedError)
        assert "rank 1: X: other values" in str(result)
        assert "epochs=2 where rank 0 has 1" in str(result)


def test_a_global_batch_smaller_than_the_ranks_is_refused():
    numpy = resolve("numpy")
    X, y = _data(40)

    def rank_fit(rank, comm):
        return _model(numpy).fit(X, y > 0, batch_size=2, verbose=0, distributed=comm)

    results = ThreadGroup(3).run(rank_fit)
    for result in results:
        assert isinstance(result, ValueError)
        assert "at least the number of ranks" in str(result) and "batch_size=2" in str(result)


def test_a_failing_rank_stops_the_others_with_an_error():
    numpy = resolve("numpy")
    X, y = _data(60)

    def boom(epoch, logs):
        if epoch == 1:
            raise RuntimeError("disk full on rank 1")

    def rank_fit(rank, comm):
        callbacks = [bp.callbacks.LambdaCallback(on_epoch_end=boom)] if rank == 1 else []
        m = _model(numpy)
        return m.fit(X, y > 0, epochs=5, verbose=0, callbacks=callbacks, distributed=comm)

    rank0, rank1 = _two_ranks(rank_fit)
    assert isinstance(rank1, RuntimeError) and "disk full" in str(rank1)
    assert isinstance(rank0, DistributedError)
    assert "rank 1 failed: RuntimeError: disk full on rank 1" in str(rank0)


def test_a_rank_that_never_comes_times_out():
    numpy = resolve("numpy")
    X, y = _data(40)

    def rank_fit(rank, comm):
        if rank == 1:
            return "gone"
        return _model(numpy).fit(X, y > 0, verbose=0, distributed=comm)

    rank0, _ = ThreadGroup(2, timeout=0.5).run(rank_fit)
    assert isinstance(rank0, DistributedError) and "timed out" in str(rank0)


class _Clock:
    """Virtual time for the MPI communicator: ``sleep`` and every poll of a request advance it."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class _NeverDone:
    """An MPI request that never completes (the peer is gone); each test costs 0.1 ms."""

    def __init__(self, clock):
        self.clock = clock

    def Test(self):
        self.clock.now += 1e-4
        return False


def test_the_timeout_error_comes_at_the_timeout_it_names(monkeypatch):
    """A rank that gives up after ``timeout`` seconds raises then, not ``timeout`` (at most
    10 s) later: telling the silent peers first waited for them to take the message."""
    import types

    from backprop.distributed import MPICommunicator
    from backprop.distributed import comm as _comm

    clock = _Clock()
    monkeypatch.setattr(_comm, "time", clock)
    monkeypatch.setattr(_comm.os, "sched_yield", lambda: None)

    class FakeComm:
        def Iprobe(self, **kwargs):
            return False

        def isend(self, message, dest, tag):
            return _NeverDone(clock)

    mpi = MPICommunicator.__new__(MPICommunicator)  # the wait logic, without MPI
    mpi.timeout, mpi.rank, mpi.size = 2.0, 0, 3
    mpi.comm, mpi.MPI = FakeComm(), types.SimpleNamespace(Status=lambda: None, ANY_SOURCE=-1)
    mpi._failed, mpi._unsent, mpi._abort_registered = [], [], True  # no Abort at exit here
    with pytest.raises(DistributedError, match="no answer from the other ranks within 2 s"):
        mpi._wait(_NeverDone(clock), "allreduce")
    assert 2.0 < clock.now < 2.0 + 0.05, clock.now


# -- choosing a communicator --------------------------------------------------------------------


def test_communicator_choices_and_errors():
    numpy = resolve("numpy")
    assert isinstance(get_communicator("single"), SingleProcess)
    comm = SingleProcess()
    assert _parallel.resolve(comm, numpy) is comm
    assert get_communicator(comm) is comm
    with pytest.raises(ValueError, match=r"one of .*received .gloo."):
        get_communicator("gloo")
    with pytest.raises(ValueError, match=r"distributed must be .*received 3"):
        _parallel.resolve(3, numpy)
    with pytest.raises(ValueError, match="distributed must be"):
        _model(numpy).fit(*_data(20), distributed="yes")
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        get_communicator("mpi", timeout=0)


def test_launcher_environment(monkeypatch):
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    for var in ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"):
        monkeypatch.delenv(var, raising=False)
    assert not launched_by_mpi() and local_rank() == 0
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")
    assert not launched_by_mpi()
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3")
    assert launched_by_mpi() and local_rank() == 3


def test_mpi_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    with pytest.raises(BackendNotInstalledError, match=r'pip install -e "\.\[mpi\]"'):
        get_communicator("mpi")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    with pytest.raises(BackendNotInstalledError, match="mpi4py"):
        _model(resolve("numpy")).fit(*_data(20), distributed=True, verbose=0)


@pytest.mark.skipif(
    "cupy" in sys.modules or os.environ.get("BACKPROP_TEST_CUPY"), reason="CuPy is present"
)
def test_nccl_without_cupy_names_the_cuda_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(BackendNotInstalledError, match=r"cuda12"):
        get_communicator("nccl")


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
def test_nccl_needs_a_cupy_model(name):
    """NCCL sums CuPy arrays between GPUs: asked for a model of another backend, it says so
    (not that CuPy is missing, nor that NCCL would run on host arrays)."""
    try:
        backend = resolve(name)
    except BackendNotInstalledError:
        pytest.skip(f"{name} is not installed")
    model = _model(backend)
    match = rf"distributed='nccl' needs a CuPy model.*backend is {name}.*backend='cupy'.*'mpi'"
    with pytest.raises(ValueError, match=match):
        model.fit(*_data(20), distributed="nccl", verbose=0)
    with pytest.raises(ValueError, match=match):
        DataParallel(model, "nccl")


def test_dropout_layers_of_each_rank_draw_other_masks():
    X, y = _data(40)

    def rank_fit(rank, comm):
        m = bp.Sequential(
            [bp.layers.Dense(8, "relu", input_dim=4), bp.layers.Dropout(0.5), bp.layers.Dense(1)],
            seed=0,
        )
        m.compile("mse", "sgd")
        m.fit(X, y, epochs=1, batch_size=40, verbose=0, distributed=comm)
        dropout = m.layers[1]
        assert dropout.rng is m.streams.dropout
        return dropout.rng.random(4)

    draws = ThreadGroup(2).run(rank_fit)
    assert not np.array_equal(draws[0], draws[1])


# -- BatchNormalization over the ranks: the statistics of the global batch ------------------------


def _bn_model(backend):
    L = bp.layers
    m = bp.Sequential(
        [
            # no bias before BatchNormalization: its gradient is zero up to rounding, which
            # Adam would turn into steps of the learning rate's size in random directions
            L.Dense(6, input_dim=4, use_bias=False),
            L.BatchNormalization(momentum=0.9),
            L.Activation("relu"),
            L.Dense(5),
            L.LayerNormalization(),
            L.Dense(3, "softmax"),
        ],
        backend=backend,
        dtype="float64" if backend.supports_float64 else "float32",
        seed=0,
    )
    m.compile("sparse_categorical_crossentropy", bp.optimizers.Adam(0.01), ["accuracy"])
    return m


def test_batch_normalization_over_ranks_equals_one_process(backend64):
    """Uneven shards, and a last batch of 3 rows that leaves 2 of 5 ranks without rows: the
    ranks' sums give the global batch's mean and variance (and their gradients) exactly."""
    _check_bn_ranks(backend64, 5)


@pytest.mark.parametrize("size", [2, 3])
def test_batch_normalization_over_two_and_three_ranks(size):
    _check_bn_ranks(resolve("numpy"), size)


def _check_bn_ranks(backend64, size):
    X, y = _data(103)
    fit = {"epochs": 3, "batch_size": 20, "verbose": 0, "validation_split": 0.03}
    one = _bn_model(backend64)
    h_one = one.fit(X, y, **fit)

    def rank_fit(rank, comm):
        m = _bn_model(backend64)
        h = m.fit(X, y, distributed=comm, **fit)
        assert all(layer.sync is None for layer in m.layers if hasattr(layer, "sync"))
        return m.get_weights(), h.history

    for weights, history in ThreadGroup(size).run(rank_fit):
        for k in h_one.history:
            np.testing.assert_allclose(history[k], h_one.history[k], rtol=1e-12)
        for a, b in zip(weights, one.get_weights(), strict=True):  # moving statistics too
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def test_weighted_evaluate_over_ranks_equals_one_process_and_weights_are_compared():
    numpy = resolve("numpy")
    trained = _model(numpy)
    X, y = _data(50)
    trained.fit(X, y > 0, epochs=1, verbose=0)
    w = np.random.default_rng(3).uniform(0.0, 2.0, size=50)
    expected = trained.evaluate(X, y > 0, batch_size=7, sample_weight=w)
    assert expected != trained.evaluate(X, y > 0, batch_size=7)  # the weights count

    def rank_evaluate(rank, comm, weights=lambda rank: w):
        m = _model(numpy)
        m.set_weights(trained.get_weights())
        return DataParallel(m, comm).evaluate(X, y > 0, batch_size=7, sample_weight=weights(rank))

    for result in ThreadGroup(3, timeout=20).run(rank_evaluate):
        assert result.keys() == expected.keys()
        for k in expected:
            assert result[k] == pytest.approx(expected[k], rel=1e-12)
    other = w.copy()
    other[25] += 1.0
    results = ThreadGroup(2, timeout=20).run(
        lambda rank, comm: rank_evaluate(rank, comm, lambda r: w if r == 0 else other)
    )
    _refused(results, "rank 1: sample_weight: other values than rank 0's")
