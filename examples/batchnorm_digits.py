"""BatchNormalization on the digits: 64-128-64-10 trained with and without it, side by side.

The same network, seed and data twice: plain (Dense(units, "relu")) and with batch
normalization after each hidden Dense, before its activation (Dense(units) ->
BatchNormalization() -> Activation("relu")), for several Adam learning rates. Prints the test
accuracy of each run and writes one figure (training loss and test accuracy per epoch) to
--out/batchnorm_digits.png.

    python examples/batchnorm_digits.py [--epochs 30] [--lrs 1e-3,1e-2,0.5] [--out DIR]
    OMP_NUM_THREADS=1 python examples/batchnorm_digits.py   # docs/normalization.md's numbers
    python examples/batchnorm_digits.py --quick      # 3 epochs, two learning rates, no figure
    python examples/batchnorm_digits.py --time       # seconds per training step, with and without

--time trains nothing: it times fit's steps on the training set (median over --repeats runs of
the two models in turn, in one process) and prints the time one more step costs.
"""

import argparse
import math
import pathlib
import statistics
import time
import warnings

import numpy as np

import backprop as bp
from backprop.training.errors import DeadNetworkWarning

parser = argparse.ArgumentParser()
parser.add_argument("--backend", default=None)
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--lrs", default="1e-3,1e-2,5e-2,1e-1,2e-1,5e-1", help="Adam learning rates")
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", default="backprop-batchnorm", help="folder for the figure")
parser.add_argument("--quick", action="store_true", help="3 epochs, two learning rates")
parser.add_argument("--time", action="store_true", help="time a step instead of training")
parser.add_argument("--repeats", type=int, default=15, help="timed runs per model (--time)")
args = parser.parse_args()
if args.quick:
    args.epochs, args.lrs = 3, "1e-3,1e-1"
lrs = [float(s) for s in args.lrs.split(",")]

X, y = bp.datasets.load_digits()  # pixels scaled to [0, 1]
Xtr, Xte, ytr, yte = bp.datasets.train_test_split(X, y, test_size=0.2, seed=args.seed, stratify=y)


def build(batchnorm: bool, lr: float) -> bp.Sequential:
    if batchnorm:
        # normalise the pre-activations: Dense -> BatchNormalization -> ReLU
        layers = [
            bp.layers.Dense(128, input_dim=64),
            bp.layers.BatchNormalization(),
            bp.layers.Activation("relu"),
            bp.layers.Dense(64),
            bp.layers.BatchNormalization(),
            bp.layers.Activation("relu"),
        ]
    else:
        layers = [bp.layers.Dense(128, "relu", input_dim=64), bp.layers.Dense(64, "relu")]
    model = bp.Sequential(
        [*layers, bp.layers.Dense(10, "softmax")], backend=args.backend, seed=args.seed
    )
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=bp.optimizers.Adam(learning_rate=lr),
        metrics=["accuracy"],
    )
    return model


def seconds_per_step(repeats: int) -> dict[tuple[bool, str], float]:
    """One more step inside fit: (fit of 3k steps - fit of k steps) / 2k, medians of each.

    Both the wall-clock time and the process's CPU time (less disturbed by other processes on
    a shared machine; with one BLAS thread the two agree on an idle one).
    """
    b, k = args.batch_size, 20
    copies = math.ceil(3 * k * b / len(Xtr))  # 3k steps need 3k batches: repeat the data
    Xs, ys = np.concatenate([Xtr] * copies), np.concatenate([ytr] * copies)
    models = {bn: build(bn, 1e-3) for bn in (False, True)}
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    times = {(bn, n, c): [] for bn in models for n in (k, 3 * k) for c in clocks}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a DeadNetworkWarning must not print mid-timing
        for model in models.values():  # warm up: weights, optimizer state, caches
            model.fit(Xtr, ytr, epochs=1, batch_size=b, verbose=0)
        for _ in range(repeats):
            for bn, model in models.items():
                for n in (k, 3 * k):
                    t0, c0 = time.perf_counter(), time.process_time()
                    X_n, y_n = Xs[: n * b], ys[: n * b]
                    model.fit(X_n, y_n, epochs=1, batch_size=b, shuffle=False, verbose=0)
                    times[bn, n, "wall"].append(time.perf_counter() - t0)
                    times[bn, n, "cpu"].append(time.process_time() - c0)
    median = statistics.median
    return {
        (bn, c): (median(times[bn, 3 * k, c]) - median(times[bn, k, c])) / (2 * k)
        for bn in models
        for c in clocks
    }


if args.time:
    per_step = seconds_per_step(args.repeats)
    backend = build(False, 1e-3).backend.name
    print(
        f"one training step, batch {args.batch_size}, {backend} (medians of {args.repeats} runs):"
    )
    print(f"  {'':27s} {'wall':>8s} {'CPU':>8s}")
    for bn, label in [(False, "without BatchNormalization"), (True, "with BatchNormalization")]:
        wall, cpu = per_step[bn, "wall"] * 1e6, per_step[bn, "cpu"] * 1e6
        print(f"  {label:27s} {wall:5.0f} us {cpu:5.0f} us")
    ratio = [per_step[True, c] / per_step[False, c] for c in ("wall", "cpu")]
    print(f"  {'ratio':27s} {ratio[0]:8.2f} {ratio[1]:8.2f}")
    raise SystemExit

runs, dead = {}, {}
for lr in lrs:
    for bn in (False, True):
        model = build(bn, lr)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeadNetworkWarning)
            history = model.fit(
                Xtr,
                ytr,
                epochs=args.epochs,
                batch_size=args.batch_size,
                validation_data=(Xte, yte),
                verbose=0,
                callbacks=[bp.callbacks.TerminateOnNaN()],
            ).history
        seconds = time.perf_counter() - t0
        runs[lr, bn] = history
        # every ReLU unit of a hidden layer inactive on every training image: the net is dead
        dead[lr, bn] = any(issubclass(w.category, DeadNetworkWarning) for w in caught)
        finite = all(math.isfinite(v) for v in history["loss"])
        print(
            f"Adam lr {lr:<6g} {'with' if bn else 'without':7s} BN: "
            f"test accuracy {history['val_accuracy'][-1]:.4f} "
            f"(best {max(history['val_accuracy']):.4f}), "
            f"final train loss {history['loss'][-1]:.4g}"
            f"{'' if finite else ', NON-FINITE'}{', DEAD ReLUs' if dead[lr, bn] else ''}"
            f" ({seconds:.1f} s)"
        )

print(
    f"\n{len(Xtr)} training and {len(Xte)} test images, batch {args.batch_size}, seed {args.seed}."
)
print(f"Test accuracy after {args.epochs} epochs (*: every ReLU of a hidden layer died):")
print(f"  {'Adam lr':>8s}  {'without BN':>10s}  {'with BN':>8s}")
for lr in lrs:
    cells = [
        f"{runs[lr, bn]['val_accuracy'][-1]:.4f}{'*' if dead[lr, bn] else ' '}"
        for bn in (False, True)
    ]
    print(f"  {lr:8g}  {cells[0]:>10s}  {cells[1]:>8s}".rstrip())

if not args.quick:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(lrs), figsize=(2.6 * len(lrs), 4.6), sharex=True, squeeze=False)
    for j, lr in enumerate(lrs):
        for bn, style in [(False, "C0"), (True, "C1")]:
            h, label = runs[lr, bn], "with BN" if bn else "without BN"
            epochs = range(1, len(h["loss"]) + 1)
            axes[0, j].plot(epochs, h["loss"], style, label=label)
            axes[1, j].plot(epochs, h["val_accuracy"], style, label=label)
        axes[0, j].set_title(f"Adam, lr {lr:g}")
        axes[0, j].set_yscale("log")
        axes[1, j].set_ylim(0.0, 1.0)
        axes[1, j].set_xlabel("epoch")
    axes[0, 0].set_ylabel("training loss")
    axes[1, 0].set_ylabel("test accuracy")
    axes[1, 0].legend(loc="lower right")
    fig.tight_layout()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "batchnorm_digits.png", dpi=60)
    print(f"wrote {out / 'batchnorm_digits.png'}")
