"""What each rank runs in ``test_streaming_mpi.py`` (launched by ``mpirun``, not collected).

``python mpi_stream_worker.py DIR``: every rank trains the same model with
``fit(distributed=True)`` on the memmaps ``DIR/X.npy``, ``DIR/y.npy`` and ``DIR/w.npy``; rank 0
writes the weights and history to DIR, and each rank writes the rows it read while the steps
ran (``DIR/reads<rank>.json``).
"""

import json
import sys

import numpy as np

import backprop as bp

N = 103
FIT = {"epochs": 3, "batch_size": 20, "shuffle": True, "verbose": 0}


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(np.float64)
    w = np.linspace(0.5, 2.0, n)
    return X, y, w


def model(batchnorm=False):
    L = bp.layers
    reg = bp.regularizers.L2(1e-3)
    hidden = [L.Dense(6, "relu", input_dim=4, kernel_regularizer=reg)]
    if batchnorm:  # the statistics of the global batch, from every rank's sums
        hidden = [
            L.Dense(6, input_dim=4, use_bias=False),
            L.BatchNormalization(),
            L.Activation("relu"),
        ]
    m = bp.Sequential([*hidden, L.Dense(1, "sigmoid")], dtype="float64", seed=0)
    m.compile("binary_crossentropy", bp.optimizers.Adam(0.01), metrics=["accuracy"])
    return m


class _Reads(bp.callbacks.Callback):
    """The rows the training source read while the epochs' steps ran."""

    def __init__(self, sources):
        self.sources, self.rows, self.before = sources, 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.before = self.sources[0].reads

    def on_epoch_end(self, epoch, logs=None):
        self.rows += self.sources[0].reads - self.before


def main(out: str) -> None:
    from backprop.distributed import get_communicator

    rank = get_communicator("auto").rank
    sources, adapt = [], bp.data.adapt

    def spy(*args, **kwargs):  # the training source, to count its reads
        source = adapt(*args, **kwargs)
        sources.append(source)
        return source

    bp.data.adapt = spy
    X, y, w = (np.load(f"{out}/{name}.npy", mmap_mode="r") for name in ("X", "y", "w"))
    m = model()
    reads = _Reads(sources)
    history = m.fit(X, y, sample_weight=w, distributed=True, callbacks=[reads], **FIT)
    with open(f"{out}/reads{rank}.json", "w") as f:
        json.dump(reads.rows, f)
    if rank == 0:
        np.savez(f"{out}/weights.npz", *m.get_weights())
        with open(f"{out}/history.json", "w") as f:
            json.dump(history.history, f)


if __name__ == "__main__":
    main(sys.argv[1])
