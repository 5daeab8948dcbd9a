"""Regenerate the figures of the README and docs/ (small files, committed under docs/figures).

python docs/make_figures.py
"""

import os
import pathlib
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import backprop as bp
from backprop import viz

OUT = pathlib.Path(__file__).parent / "figures"
OUT.mkdir(exist_ok=True)

X, y = bp.datasets.make_circles(1000, factor=0.3, noise=0.1, seed=0)
Xtr, Xte, ytr, yte = bp.datasets.train_test_split(X, y, test_size=0.1, seed=0)
model = bp.Sequential(
    [
        bp.layers.Dense(4, "relu", input_dim=2),
        bp.layers.Dense(6, "relu"),
        bp.layers.Dense(6, "relu"),
        bp.layers.Dense(4, "relu"),
        bp.layers.Dense(1, "sigmoid"),
    ],
    seed=0,
)
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])

viz.plot_dataset(X, y, title="make_circles(1000, factor=0.3, noise=0.1)").savefig(
    OUT / "dataset.png", dpi=60
)
viz.plot_architecture(model).savefig(OUT / "architecture.png", dpi=60)
viz.plot_activations().savefig(OUT / "activations.png", dpi=60)
viz.plot_loss_surface().savefig(OUT / "loss_surface.png", dpi=60)
viz.animate_training(
    model,
    Xtr,
    ytr,
    epochs=50,
    interval=2,
    resolution=60,
    dpi=45,
    fps=8,
    path=OUT / "training.gif",
    validation_data=(Xte, yte),
    verbose=0,
)
viz.plot_history(model.history).savefig(OUT / "history.png", dpi=60)
viz.plot_decision_boundary(model, Xte, yte).savefig(OUT / "decision_boundary.png", dpi=60)
# BatchNormalization on the digits (docs/normalization.md): the example draws it; one BLAS
# thread, so that the curves are those of the numbers the page quotes
example = OUT.parent.parent / "examples" / "batchnorm_digits.py"
one_thread = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
subprocess.run(
    [sys.executable, str(example), "--out", str(OUT)], check=True, env={**os.environ, **one_thread}
)
# convolution (docs/convolution.md): one step of a convolution, then the page's small CNN on the
# digits, trained as the page trains it, its filters and the feature maps of a test image
viz.plot_convolution(padding="same", strides=2, position=(0, 2)).savefig(
    OUT / "conv_window.png", dpi=70
)
digits, labels = bp.datasets.load_digits()
digits = digits.reshape(-1, 8, 8, 1)
d_train, d_test, l_train, l_test = bp.datasets.train_test_split(
    digits, labels, test_size=0.25, seed=0
)
cnn = bp.Sequential(
    [
        bp.layers.Conv2D(8, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
        bp.layers.MaxPooling2D(2),
        bp.layers.Flatten(),
        bp.layers.Dense(10, "softmax"),
    ],
    seed=0,
)
cnn.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
cnn.fit(d_train, l_train, epochs=4, batch_size=16, validation_data=(d_test, l_test), verbose=0)
viz.plot_filters(cnn).savefig(OUT / "conv_filters.png", dpi=70)
viz.plot_feature_maps(cnn, d_test[0]).savefig(OUT / "conv_feature_maps.png", dpi=70)
viz.plot_feature_maps(cnn, d_test[0], layer=1).savefig(OUT / "conv_feature_maps_pooled.png", dpi=70)
for p in sorted(OUT.iterdir()):
    print(f"{p.name:24s} {p.stat().st_size / 1024:7.1f} KiB")
