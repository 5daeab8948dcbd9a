"""A small CNN on scikit-learn's 8x8 digits, next to the MLP of examples/digits.py.

The same split (20% test, stratified, seeded), the same optimizer and batch size; the CNN
sees each digit as an 8x8x1 image:

    Conv2D(16, 3, 'same', relu) -> Conv2D(32, 3, 'same', relu) -> MaxPooling2D(2)
    -> Dropout(0.25) -> Flatten -> Dense(64, relu) -> Dense(10, softmax)

and the MLP as 64 numbers: Dense(128, relu) -> Dropout(0.1) -> Dense(64, relu) ->
Dense(10, softmax). Prints each model's test accuracy and its seconds per epoch.

    python examples/digits_cnn.py [--backend torch] [--epochs 40] [--seed 0]
    python examples/digits_cnn.py --quick      # 2 epochs: checks that it runs
"""

import argparse
import time

import backprop as bp

parser = argparse.ArgumentParser()
parser.add_argument("--backend", default=None)
parser.add_argument("--epochs", type=int, default=40)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--quick", action="store_true", help="2 epochs")
args = parser.parse_args()
if args.quick:
    args.epochs = 2

X, y = bp.datasets.load_digits()  # pixels scaled to [0, 1], one row of 64 per image
Xtr, Xte, ytr, yte = bp.datasets.train_test_split(X, y, test_size=0.2, seed=args.seed, stratify=y)
L = bp.layers

models = {
    "CNN": (
        [
            L.Conv2D(16, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
            L.Conv2D(32, 3, padding="same", activation="relu"),
            L.MaxPooling2D(2),
            L.Dropout(0.25),
            L.Flatten(),
            L.Dense(64, activation="relu"),
            L.Dense(10, activation="softmax"),
        ],
        lambda a: a.reshape(-1, 8, 8, 1),  # rows of 64 pixels -> images, channels last
    ),
    "MLP": (
        [
            L.Dense(128, activation="relu", input_dim=64),
            L.Dropout(0.1),
            L.Dense(64, activation="relu"),
            L.Dense(10, activation="softmax"),
        ],
        lambda a: a,
    ),
}

for name, (layers, shape) in models.items():
    model = bp.Sequential(layers, backend=args.backend, seed=args.seed)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(shape(Xtr), ytr, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    per_epoch = (time.perf_counter() - t0) / args.epochs
    accuracy = model.evaluate(shape(Xte), yte)["accuracy"]
    print(
        f"{name}: test accuracy {accuracy:.4f} ({model.count_params():,} parameters, "
        f"{per_epoch * 1e3:.0f} ms per epoch of {len(ytr)} images)"
    )
