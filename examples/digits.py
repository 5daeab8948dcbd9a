"""Ten classes with softmax: scikit-learn's 8x8 digits, 64-128-64-10.

python examples/digits.py [--backend torch] [--epochs 30]
"""

import argparse

import backprop as bp

parser = argparse.ArgumentParser()
parser.add_argument("--backend", default=None)
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

X, y = bp.datasets.load_digits()  # pixels scaled to [0, 1]
Xtr, Xte, ytr, yte = bp.datasets.train_test_split(X, y, test_size=0.2, seed=args.seed, stratify=y)

model = bp.Sequential(
    [
        bp.layers.Dense(128, "relu", input_dim=64),
        bp.layers.Dropout(0.1),
        bp.layers.Dense(64, "relu"),
        bp.layers.Dense(10, "softmax"),
    ],
    backend=args.backend,
    seed=args.seed,
)
model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(Xtr, ytr, epochs=args.epochs, batch_size=64, validation_split=0.1, verbose=2)
print(f"test accuracy: {model.evaluate(Xte, yte)['accuracy']:.4f}")
