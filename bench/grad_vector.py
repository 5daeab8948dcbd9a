"""The flat gradient vector against the per-step concatenation it replaced, in one process.

    python bench/grad_vector.py [--rounds 15]

The layers write their gradients into views of one flat vector (``Layer._store_grad``); before,
the model concatenated the layers' gradient arrays at every step. The old path still exists
(a model without the vector concatenates, as on JAX), so both run here side by side on the
NumPy backend, float32, alternating epoch by epoch: the median epoch time of each and their
ratio, for the seed and digits workloads (``bench/workloads.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from threadpoolctl import threadpool_limits

import backprop as bp
from bench.workloads import WORKLOADS


def _model(w, X, y, concatenate: bool):
    layers = [bp.layers.Dense(w.hidden[0], "relu", input_dim=w.sizes[0])]
    layers += [bp.layers.Dense(u, "relu") for u in w.hidden[1:]]
    layers.append(bp.layers.Dense(w.sizes[-1], w.output))
    model = bp.Sequential(layers, seed=0)
    model.compile(w.loss, "adam")
    model.fit(X, y, epochs=1, batch_size=w.batch_size, verbose=0)  # warm-up
    if concatenate:  # the path before the vector: no views, one concatenate per step
        model._grad = None
        for layer in model.layers:
            layer._grad_views = {}
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    threadpool_limits(1)
    for name in ("seed", "digits"):
        w = WORKLOADS[name]
        X, y = w.data("float32")
        models = {c: _model(w, X, y, c) for c in (False, True)}
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for concatenate, model in models.items():
                start = time.perf_counter()
                model.fit(X, y, epochs=1, batch_size=w.batch_size, verbose=0)
                times[concatenate].append(time.perf_counter() - start)
        flat, concat = statistics.median(times[False]), statistics.median(times[True])
        print(
            f"{name:7s} flat vector {flat * 1e3:7.3f} ms/epoch   concatenate {concat * 1e3:7.3f} "
            f"ms/epoch   ratio {flat / concat:.3f}"
        )


if __name__ == "__main__":
    main()
