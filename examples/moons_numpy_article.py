"""The article's companion NumPy notebook: 2-25-50-50-25-1 on make_moons(1000, noise=0.2),
full-batch gradient descent, learning rate 0.01, 10,000 iterations.

    python examples/moons_numpy_article.py [--backend numpy] [--iterations 10000]
"""

import argparse
import time

import backprop as bp

parser = argparse.ArgumentParser()
parser.add_argument("--backend", default=None)
parser.add_argument("--iterations", type=int, default=10_000)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

X, y = bp.datasets.make_moons(1000, noise=0.2, seed=args.seed)
Xtr, Xte, ytr, yte = bp.datasets.train_test_split(X, y, test_size=0.1, seed=args.seed)

model = bp.Sequential(
    [
        bp.layers.Dense(25, "relu", input_dim=2),
        bp.layers.Dense(50, "relu"),
        bp.layers.Dense(50, "relu"),
        bp.layers.Dense(25, "relu"),
        bp.layers.Dense(1, "sigmoid"),
    ],
    backend=args.backend,
    seed=args.seed,
)
model.compile(
    loss="binary_crossentropy",
    optimizer=bp.optimizers.SGD(learning_rate=0.01),
    metrics=["accuracy"],
)
t0 = time.perf_counter()
# full batch: one epoch is one iteration of gradient descent
history = model.fit(Xtr, ytr, epochs=args.iterations, batch_size=len(Xtr), verbose=0)
seconds = time.perf_counter() - t0
for i in range(0, args.iterations, max(args.iterations // 10, 1)):
    print(f"iteration {i:6d}: loss {history.history['loss'][i]:.5f}")
result = model.evaluate(Xte, yte)
print(f"test accuracy: {result['accuracy']:.4f} ({args.iterations} iterations in {seconds:.1f} s)")
