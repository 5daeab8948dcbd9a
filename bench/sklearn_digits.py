"""backprop.sklearn.MLPClassifier against scikit-learn's MLPClassifier on the digits.

    python bench/sklearn_digits.py [--seeds 5] [--rounds 5]

Both with scikit-learn's defaults (hidden_layer_sizes=(100,), adam, alpha=1e-4, batch
min(200, n), lr 1e-3, early stop by tol) on load_digits scaled by 1/16, a stratified 75/25 split
per seed: the test accuracy (mean, min, max over seeds) and the fit time (median over
interleaved rounds, one BLAS thread). backprop trains in float32 (its default) and float64.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLP
from threadpoolctl import threadpool_limits

from backprop.sklearn import MLPClassifier as BpMLP

MODELS = {
    "scikit-learn": lambda seed: SkMLP(random_state=seed),
    "backprop float32": lambda seed: BpMLP(random_state=seed, dtype="float32"),
    "backprop float64": lambda seed: BpMLP(random_state=seed, dtype="float64"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    accuracy = {name: [] for name in MODELS}
    seconds = {name: [] for name in MODELS}
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for seed in range(args.seeds):
            split = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
            Xtr, Xte, ytr, yte = split
            for name, make in MODELS.items():
                accuracy[name].append(make(seed).fit(Xtr, ytr).score(Xte, yte))
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
        for _ in range(args.rounds):  # interleaved: each round times every model once
            for name, make in MODELS.items():
                t0 = time.perf_counter()
                make(0).fit(Xtr, ytr)
                seconds[name].append(time.perf_counter() - t0)
    print(f"{'model':18s} {'accuracy mean':>14s} {'min':>7s} {'max':>7s} {'fit s (median)':>15s}")
    for name in MODELS:
        acc = np.array(accuracy[name])
        print(
            f"{name:18s} {acc.mean():14.4f} {acc.min():7.4f} {acc.max():7.4f} "
            f"{statistics.median(seconds[name]):15.3f}"
        )


if __name__ == "__main__":
    main()
