"""backprop: ``bp.Sequential`` + ``compile(Adam)`` + ``fit(verbose=0)``, NumPy backend."""

from __future__ import annotations

import warnings

import backprop as bp
from bench.workloads import Workload


def build_model(wl: Workload, dtype: str, seed: int = 0, backend: str = "numpy") -> bp.Sequential:
    layers = [bp.layers.Dense(wl.sizes[1], activation="relu", input_dim=wl.sizes[0])]
    layers += [bp.layers.Dense(h, activation="relu") for h in wl.sizes[2:-1]]
    layers.append(bp.layers.Dense(wl.sizes[-1], activation=wl.output))
    model = bp.Sequential(layers, backend=backend, dtype=dtype, seed=seed)
    model.compile(loss=wl.loss, optimizer=bp.optimizers.Adam(learning_rate=1e-3))
    return model


class BackpropRunner:
    def __init__(self, wl: Workload, dtype: str, threads: int):
        self.wl, self.dtype = wl, dtype
        self.X, self.y = wl.data(dtype)
        self.model = None

    def prepare(self) -> None:
        self.model = build_model(self.wl, self.dtype)

    def run(self, epochs: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a DeadNetworkWarning must not print mid-benchmark
            self.model.fit(self.X, self.y, epochs=epochs, batch_size=self.wl.batch_size, verbose=0)

    def info(self) -> dict:
        W = self.model.get_weights()[0] if self.model is not None else None
        return {"version": bp.__version__, "param_dtype": None if W is None else str(W.dtype)}
