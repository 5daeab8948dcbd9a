"""The three workloads: data, layer sizes, loss, batch size and how much one sample runs.

Every framework trains the same network on the same data:

- ``seed``: ``make_circles(1000, factor=0.3, noise=0.1)``, 2-4-6-6-4-1, ReLU hidden layers,
  sigmoid output + binary cross-entropy, batch 32 (32 steps per epoch), 50 epochs.
- ``digits``: ``load_digits`` (1797 x 64, scaled to [0, 1]), 64-128-64-10, softmax +
  cross-entropy, batch 64 (29 steps per epoch).
- ``large``: random 8192 x 784 (float32 normal draws), 10 random classes, 784-1024-1024-10,
  batch 512: one epoch is 16 steps.

All use Adam (lr 1e-3, betas 0.9/0.999) and shuffle the samples every epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple[int, ...]  # input, hidden..., output
    batch_size: int
    epochs: int  # the workload's nominal length (what a user would run)
    unit: str  # what a timing is reported per: "epoch" or "step"
    sample_epochs: int  # epochs one timed sample runs (full run)
    quick_epochs: int  # epochs one timed sample runs (--quick)

    @property
    def output(self) -> str:
        return "sigmoid" if self.sizes[-1] == 1 else "softmax"

    @property
    def n_classes(self) -> int:
        return 2 if self.sizes[-1] == 1 else self.sizes[-1]

    @property
    def loss(self) -> str:
        """The backprop loss name (labels are integer classes in every workload)."""
        if self.output == "sigmoid":
            return "binary_crossentropy"
        return "sparse_categorical_crossentropy"

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.sizes[1:-1]

    def n_samples(self) -> int:
        return data(self.name, "float64")[0].shape[0]

    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_samples() / self.batch_size)

    def units_per_epoch(self) -> int:
        """Timing units in one epoch: 1 for per-epoch workloads, the steps for per-step ones."""
        return 1 if self.unit == "epoch" else self.steps_per_epoch()

    def data(self, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)``: ``X`` of ``dtype`` (C-contiguous), ``y`` int64 class labels.

        The arrays are cached: callers must not modify them.
        """
        return data(self.name, dtype)


WORKLOADS: dict[str, Workload] = {
    "seed": Workload("seed", (2, 4, 6, 6, 4, 1), 32, 50, "epoch", 3, 2),
    "digits": Workload("digits", (64, 128, 64, 10), 64, 20, "epoch", 2, 1),
    "large": Workload("large", (784, 1024, 1024, 10), 512, 1, "step", 1, 1),
}


@cache
def _raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    import backprop as bp

    if name == "seed":
        X, y = bp.datasets.make_circles(1000, factor=0.3, noise=0.1, seed=0)
    elif name == "digits":
        X, y = bp.datasets.load_digits()  # already scaled to [0, 1]
    elif name == "large":
        rng = np.random.default_rng(0)
        X = rng.standard_normal((8192, 784), dtype=np.float32)
        y = rng.integers(0, 10, size=8192)
    else:
        raise ValueError(f"unknown workload {name!r}; expected one of {sorted(WORKLOADS)}")
    return X, np.asarray(y, dtype=np.int64)


@cache
def data(name: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = _raw(name)
    return np.ascontiguousarray(X, dtype=dtype), y


def get(name: str) -> Workload:
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; expected one of {sorted(WORKLOADS)}")
    return WORKLOADS[name]
