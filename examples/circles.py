"""The seed article, Keras style: 2-4-6-6-4-1 on two concentric circles.

python examples/circles.py [--backend torch] [--epochs 50]
"""

import argparse

import backprop as bp

parser = argparse.ArgumentParser()
parser.add_argument("--backend", default=None)
parser.add_argument("--epochs", type=int, default=50)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

X, y = bp.datasets.make_circles(1000, factor=0.3, noise=0.1, seed=args.seed)
Xtr, Xte, ytr, yte = bp.datasets.train_test_split(X, y, test_size=0.1, seed=args.seed)

model = bp.Sequential(
    [
        bp.layers.Dense(4, activation="relu", input_dim=2),
        bp.layers.Dense(6, activation="relu"),
        bp.layers.Dense(6, activation="relu"),
        bp.layers.Dense(4, activation="relu"),
        bp.layers.Dense(1, activation="sigmoid"),
    ],
    backend=args.backend,
    seed=args.seed,
)
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
model.summary()
model.fit(Xtr, ytr, epochs=args.epochs, batch_size=32, validation_data=(Xte, yte), verbose=2)
result = model.evaluate(Xte, yte)
print(f"test accuracy: {result['accuracy']:.4f}")
