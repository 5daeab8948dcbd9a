"""The series author's CNN on Fashion-MNIST (issue 22): two blocks of two 3x3 convolutions.

    Conv2D(32, 3, 'same', relu) -> Conv2D(32, 3, 'same', relu) -> MaxPooling2D(2) -> Dropout(0.25)
    -> Conv2D(64, 3, 'same', relu) -> Conv2D(64, 3, 'same', relu) -> MaxPooling2D(2)
    -> Dropout(0.25) -> Flatten -> Dense(256, relu) -> Dense(32, relu) -> Dense(10, softmax)

Adam (learning rate 0.003), batch 256, pixels scaled to [0, 1]. The data is downloaded once by
``bp.datasets.load_fashion_mnist()`` (about 30 MB, cached under ~/.backprop/datasets); offline,
the loader's error says where to put the files by hand.

    python examples/fashion_cnn.py [--backend torch] [--epochs 10]
    python examples/fashion_cnn.py --synthetic 30000   # no download: times one epoch of
                                                      # 30,000 random 28x28 images
    OMP_NUM_THREADS=1 python examples/fashion_cnn.py --synthetic 2048 --epochs 1   # one thread

--synthetic N trains on N random images of the same shape with random labels: it measures
time (per step and per epoch), not accuracy.
"""

import argparse
import sys
import time

import numpy as np

import backprop as bp

parser = argparse.ArgumentParser()
parser.add_argument("--backend", default=None)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument(
    "--synthetic", type=int, default=None, metavar="N", help="time on N random images instead"
)
args = parser.parse_args()

if args.synthetic is None:
    try:
        (x_train, y_train), (x_test, y_test) = bp.datasets.load_fashion_mnist()
    except bp.datasets.DownloadError as exc:
        sys.exit(f"{exc}\n(or run with --synthetic N to time the network on random images)")
    # uint8 (n, 28, 28) -> float32 (n, 28, 28, 1) in [0, 1]: channels last
    x_train = (x_train.astype(np.float32) / 255.0)[..., None]
    x_test = (x_test.astype(np.float32) / 255.0)[..., None]
else:
    rng = np.random.default_rng(args.seed)
    x_train = rng.random((args.synthetic, 28, 28, 1), dtype=np.float32)
    y_train = rng.integers(0, 10, args.synthetic)
    x_test, y_test = x_train[:256], y_train[:256]

L = bp.layers
model = bp.Sequential(
    [
        L.Conv2D(32, 3, padding="same", activation="relu", input_shape=(28, 28, 1)),
        L.Conv2D(32, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Dropout(0.25),
        L.Conv2D(64, 3, padding="same", activation="relu"),
        L.Conv2D(64, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Dropout(0.25),
        L.Flatten(),
        L.Dense(256, activation="relu"),
        L.Dense(32, activation="relu"),
        L.Dense(10, activation="softmax"),
    ],
    backend=args.backend,
    seed=args.seed,
    dtype="float32",
)
model.compile(
    loss="sparse_categorical_crossentropy",
    optimizer=bp.optimizers.Adam(learning_rate=0.003),
    metrics=["accuracy"],
)
model.summary()

t0 = time.perf_counter()
model.fit(
    x_train,
    y_train,
    epochs=args.epochs,
    batch_size=args.batch_size,
    validation_data=None if args.synthetic else (x_test, y_test),
    verbose=2,
)
per_epoch = (time.perf_counter() - t0) / args.epochs
steps = -(-x_train.shape[0] // args.batch_size)
print(
    f"{per_epoch:.1f} s per epoch of {x_train.shape[0]:,} images "
    f"({per_epoch / steps * 1e3:.0f} ms per step of {args.batch_size})"
)
if args.synthetic is None:
    print(f"test accuracy: {model.evaluate(x_test, y_test)['accuracy']:.4f}")
