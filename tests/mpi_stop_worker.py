"""What each rank runs in ``test_sharded.py``'s ``mpirun`` test (launched, not collected).

``python mpi_stop_worker.py``: two fits with ``fit(distributed=...)`` where a callback sets
``model.stop_training`` on rank 1 only, after a batch, then at an epoch's end. Each rank
prints what it ran; the ranks must print the same.
"""

import numpy as np

import backprop as bp


class StopOnRankOne(bp.callbacks.Callback):
    """Sets ``stop_training`` on rank 1 only; counts the batches this rank ran."""

    def __init__(self, rank, batch=None, epoch=None):
        self.rank, self.batch, self.epoch, self.batches = rank, batch, epoch, 0

    def on_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.rank == 1 and batch == self.batch:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.rank == 1 and epoch == self.epoch:
            self.model.stop_training = True


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = (X[:, 0] > 0).astype(int)
    for what, stop in [("batch", {"batch": 1}), ("epoch", {"epoch": 1})]:
        model = bp.Sequential(
            [bp.layers.Dense(4, "tanh", input_dim=3), bp.layers.Dense(1, "sigmoid")],
            dtype="float64",
            seed=0,
        )
        model.compile("binary_crossentropy", "sgd")
        dp = bp.distributed.DataParallel(model, "mpi", timeout=20.0)
        cb = StopOnRankOne(dp.rank, **stop)
        h = dp.fit(X, y, epochs=4, batch_size=16, verbose=0, callbacks=[cb])
        print(
            f"rank {dp.rank} {what}: batches {cb.batches} epochs {len(h.history['loss'])} "
            f"steps {model.optimizer.iterations}",
            flush=True,
        )


if __name__ == "__main__":
    main()
