"""What each rank runs in ``test_streaming_mpi.py`` (launched by ``mpirun``, not collected).

``python mpi_stream_worker.py DIR FIT...``: every rank trains the same model with
``fit(distributed=True)``, once per FIT named, in one launch (starting the ranks costs more
than the fits; importing Dask alone costs each rank half a second, so only ``dask`` imports it):

- ``memmap``: on the memmaps ``DIR/X.npy``, ``DIR/y.npy`` and ``DIR/w.npy``;
- ``dask``: on Dask arrays each rank makes of the same files (``da.from_array`` of the memmaps,
  chunks of one row, computed on the synchronous scheduler inside the rank: no cluster), the
  sample weights memmapped; two epochs (``DASK_FIT``).

Rank 0 writes each fit's weights (``DIR/<fit>.npz``) and history (``DIR/<fit>.json``); every
rank writes ``DIR/reads<rank>.json``: for each fit and epoch, the rows of each read the
training source was asked for, and for the Dask fit the rows of the files that Dask touched.
"""

import json
import sys

import numpy as np

import backprop as bp

N = 103
FIT = {"epochs": 3, "batch_size": 20, "shuffle": True, "verbose": 0}
# Dask computes each read's graph (one task per row: ~20 ms): two epochs, the first two of FIT
DASK_FIT = {**FIT, "epochs": 2}


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(np.float64)
    w = np.linspace(0.5, 2.0, n)
    return X, y, w


def model(batchnorm=False, backend=None):
    """The model every rank builds (on ``backend``: NumPy unless told; float64 where it has it)."""
    L = bp.layers
    reg = bp.regularizers.L2(1e-3)
    hidden = [L.Dense(6, "relu", input_dim=4, kernel_regularizer=reg)]
    if batchnorm:  # the statistics of the global batch, from every rank's sums
        hidden = [
            L.Dense(6, input_dim=4, use_bias=False),
            L.BatchNormalization(),
            L.Activation("relu"),
        ]
    dtype = "float64" if backend is None or backend.supports_float64 else "float32"
    m = bp.Sequential([*hidden, L.Dense(1, "sigmoid")], backend=backend, dtype=dtype, seed=0)
    m.compile("binary_crossentropy", bp.optimizers.Adam(0.01), metrics=["accuracy"])
    return m


class Touched:
    """A store over ``a`` (``shape``, ``dtype``, rows by index) that logs the rows it gives."""

    def __init__(self, a):
        self.a, self.shape, self.dtype, self.ndim = a, a.shape, a.dtype, a.ndim
        self.rows: set[int] = set()

    def __getitem__(self, index):
        first = index[0] if isinstance(index, tuple) else index
        self.rows.update(np.atleast_1d(np.arange(self.a.shape[0])[first]).tolist())
        return np.array(self.a[index], copy=True)


class Log(bp.callbacks.Callback):
    """Per epoch: the rows of each read of the training source, and the stores' rows touched.

    What the source read before the first epoch (the model's and the ranks' checks) is left
    out: only the reads while the steps run are the rank's part of the global batches.
    """

    def __init__(self, sources, stores=()):
        self.sources, self.stores = sources, stores
        self.reads: list[list[list[int]]] = []
        self.touched: list[list[list[int]]] = []
        self.epoch = None

    def on_train_begin(self, logs=None):
        source = self.sources[-1]  # the training source: adapted last, just before training
        read = source.read

        def logged(rows):
            if self.epoch is not None:
                self.reads[self.epoch].append(np.asarray(rows).tolist())
            return read(rows)

        source.read = logged

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.reads.append([])
        for store in self.stores:
            store.rows.clear()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = None
        self.touched.append([sorted(store.rows) for store in self.stores])


def main(out: str, names: list[str]) -> None:
    from backprop.distributed import get_communicator

    rank = get_communicator("auto").rank
    sources, adapt = [], bp.data.adapt

    def spy(*args, **kwargs):  # the training source, to log its reads
        source = adapt(*args, **kwargs)
        if source is not None and kwargs.get("name") == "X":
            sources.append(source)
        return source

    bp.data.adapt = spy
    X, y, w = (np.load(f"{out}/{name}.npy", mmap_mode="r") for name in ("X", "y", "w"))
    logged = {}
    for name in names:
        if name == "memmap":
            m, log = model(), Log(sources)
            history = m.fit(X, y, sample_weight=w, distributed=True, callbacks=[log], **FIT)
        elif name == "dask":
            m, log = model(), Log(sources, (Touched(X), Touched(y)))
            history = _dask_fit(m, log, w)
        else:
            raise ValueError(f"unknown fit {name!r}: expected 'memmap' or 'dask'")
        if history.params["engine"] != "streamed sharded":
            raise RuntimeError(f"{name}: the engine was {history.params['engine']!r}")
        logged[name] = {"reads": log.reads, "touched": log.touched}
        if rank == 0:
            np.savez(f"{out}/{name}.npz", *m.get_weights())
            with open(f"{out}/{name}.json", "w") as f:
                json.dump(history.history, f)
    with open(f"{out}/reads{rank}.json", "w") as f:
        json.dump(logged, f)


def _dask_fit(m, log, w):
    """The Dask fit: arrays of the logged stores, chunks of one row, this rank's scheduler."""
    import dask
    import dask.array as da
    from dask.local import get_sync

    Xd = da.from_array(log.stores[0], chunks=(1, 4))
    yd = da.from_array(log.stores[1], chunks=1)
    # the synchronous scheduler, named by its function: by name, Dask would first import
    # distributed (a second per rank) to look for a client
    with dask.config.set(scheduler=get_sync):
        return m.fit(Xd, yd, sample_weight=w, distributed=True, callbacks=[log], **DASK_FIT)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
