"""What each rank runs in ``test_distributed_mpi.py`` (launched by ``mpirun``, not collected).

``python mpi_worker.py SCENARIO OUT_DIR``: trains the same small model on every rank with
``fit(distributed=True)``; rank 0 writes the weights and history to OUT_DIR. The "evaluate"
scenarios run ``DataParallel.evaluate`` instead; rank 0 writes the scores.
"""

import json
import sys
import time

import numpy as np

import backprop as bp


def data(seed=0, n=103):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def model(seed=0, hidden=6, batchnorm=False):
    L = bp.layers
    reg = bp.regularizers.L2(1e-3)
    if batchnorm:  # the statistics of the global batch, from every rank's sums
        hidden_layers = [
            L.Dense(hidden, input_dim=4, kernel_regularizer=reg, use_bias=False),
            L.BatchNormalization(momentum=0.9),
            L.Activation("relu"),
        ]
    else:
        hidden_layers = [L.Dense(hidden, "relu", input_dim=4, kernel_regularizer=reg)]
    m = bp.Sequential(
        [*hidden_layers, L.Dense(1, "sigmoid")],
        dtype="float64",
        seed=seed,
    )
    m.compile("binary_crossentropy", bp.optimizers.Adam(0.01), metrics=["accuracy"])
    return m


FIT = {"epochs": 4, "batch_size": 20, "validation_split": 0.1, "verbose": 0}


def main(scenario: str, out: str) -> None:
    from backprop.distributed import get_communicator

    rank = get_communicator("auto").rank
    X, y = data()
    if scenario.startswith("evaluate"):  # "evaluate", or "evaluate-uneven": 37 rows, then 30
        m = model()
        if scenario == "evaluate-uneven":
            X, y = (X[:37], y[:37]) if rank == 0 else (X[:30], y[:30])
        result = bp.distributed.DataParallel(m).evaluate(X, y, batch_size=16)
        if rank == 0:
            with open(f"{out}/evaluate.json", "w") as f:
                json.dump(result, f)
        return
    # "wide": a gradient of 98 kB takes the large-buffer path (barrier + blocking reduction)
    m = model(
        seed=rank if scenario == "seeds" else 0,
        hidden=2048 if scenario == "wide" else 6,
        batchnorm=scenario == "batchnorm",
    )
    callbacks = []
    if scenario == "fail" and rank == 1:

        def boom(epoch, logs):
            if epoch == 1:
                raise RuntimeError("rank 1 ran out of disk")

        callbacks.append(bp.callbacks.LambdaCallback(on_epoch_end=boom))
    if scenario == "hang" and rank == 1:
        time.sleep(600)  # never arrives within the others' timeout (nor mpirun's in the test)
    if scenario == "hang":
        dp = bp.distributed.DataParallel(m, "mpi", timeout=2.0)
        dp.fit(X, y, **FIT)
        return
    history = m.fit(X, y, distributed=True, callbacks=callbacks, **FIT)
    if rank == 0:
        np.savez(f"{out}/weights.npz", *m.get_weights())
        with open(f"{out}/history.json", "w") as f:
            json.dump(history.history, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
