"""The same script on every backend available here, loss curves side by side.

Same seed, same data, same hyper-parameters: the curves agree to float64 round-off on every
backend, which is what "written once against the Array API standard" buys.

    python examples/backend_switch.py [--epochs 5] [--dtype float64]
"""

import argparse
import time

import backprop as bp

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
args = parser.parse_args()

X, y = bp.datasets.make_circles(1000, factor=0.3, noise=0.1, seed=0)
curves, seconds = {}, {}
for name in bp.available_backends():
    with bp.use_backend(name):
        model = bp.Sequential(
            [
                bp.layers.Dense(4, "relu", input_dim=2),
                bp.layers.Dense(6, "relu"),
                bp.layers.Dense(6, "relu"),
                bp.layers.Dense(4, "relu"),
                bp.layers.Dense(1, "sigmoid"),
            ],
            dtype=args.dtype,
            seed=0,
        )
        model.compile(loss="binary_crossentropy", optimizer="adam")
        t0 = time.perf_counter()
        curves[name] = model.fit(X, y, epochs=args.epochs, verbose=0).history["loss"]
        seconds[name] = time.perf_counter() - t0

names = list(curves)
print("epoch  " + "  ".join(f"{n:>18s}" for n in names))
for e in range(args.epochs):
    print(f"{e + 1:5d}  " + "  ".join(f"{curves[n][e]:18.12f}" for n in names))
print("time   " + "  ".join(f"{seconds[n]:17.2f}s" for n in names))
ref = curves["numpy"]
worst = max(abs(c - r) / abs(r) for n in names for c, r in zip(curves[n], ref, strict=True))
print(f"largest relative difference from numpy: {worst:.2e}")
