"""backprop.viz: every figure is built, populated and correct, for models on any backend."""

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: no window, ever

import io
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.animation import Animation
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch
from PIL import Image

import backprop as bp
from backprop import callbacks, datasets, viz

ROOT = pathlib.Path(__file__).resolve().parents[1]
# numpy, and array_api_strict on its fake device that refuses silent host conversion (like a GPU)
BACKENDS = [
    pytest.param(("numpy", None), id="numpy"),
    pytest.param(("array_api_strict", "device1"), id="array_api_strict:device1"),
]


def _model(spec=("numpy", None), hidden=8, out=1, out_activation="sigmoid", compiled=True):
    name, device = spec
    model = bp.Sequential(
        [bp.layers.Dense(hidden, "relu", input_dim=2), bp.layers.Dense(out, out_activation)],
        backend=name,
        device=device,
        seed=0,
    )
    if compiled:
        loss = "binary_crossentropy" if out == 1 else "sparse_categorical_crossentropy"
        model.compile(loss=loss, optimizer="adam", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def circles():
    return datasets.make_circles(120, factor=0.3, noise=0.1, seed=0)


@pytest.fixture(scope="module", params=BACKENDS)
def trained(request, circles):
    X, y = circles
    model = _model(request.param)
    model.fit(X, y, epochs=15, batch_size=32, verbose=0)
    return model


def _oracle(model, points):
    """The 2-h-1 network's P(class 1), computed here in NumPy from its weights."""
    W1, b1, W2, b2 = model.get_weights()
    h = np.maximum(points @ W1 + b1, 0.0)
    return 1.0 / (1.0 + np.exp(-(h @ W2 + b2)))[:, 0]


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def _render(fig):
    """Draw the figure for real (to PNG in memory): draw-time warnings are errors here."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.getbuffer().nbytes > 0


# ---------------------------------------------------------------------------------------------
# lazy import


def test_import_does_not_import_matplotlib():
    code = "import backprop.viz, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_figures_never_need_pyplot(monkeypatch, circles):
    # no global figure state: with pyplot unimportable, figures and animations are still made
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    X, y = circles
    assert isinstance(viz.plot_dataset(X, y), Figure)
    assert isinstance(viz.plot_loss_surface(steps=3), Figure)


def test_missing_matplotlib_names_the_viz_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` sees if absent
    with pytest.raises(ImportError, match=r"pip install 'backprop\[viz\]' \(matplotlib\)"):
        viz._plt()
    with pytest.raises(ImportError, match=r"backprop\[viz\]"):
        viz.plot_activations()


# ---------------------------------------------------------------------------------------------
# plot_dataset


def test_plot_dataset(circles):
    X, y = circles
    fig = viz.plot_dataset(X, y)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [len(c.get_offsets()) for c in dots] == [np.sum(y == 0), np.sum(y == 1)]
    assert "120 points" in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1"]


def test_plot_dataset_takes_any_backend_one_hot_and_an_axes(circles):
    import array_api_strict as xps

    X, y = circles
    base = Figure()
    ax = base.add_subplot()
    dev = xps.Device("device1")
    Xd = xps.asarray(X, device=dev)
    fig = viz.plot_dataset(Xd, datasets.one_hot(y), ax=ax, title="rings")
    assert fig is base and ax.get_title() == "rings"
    assert len([c for c in ax.collections if isinstance(c, PathCollection)]) == 2


def _dots(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize("as_list", [False, True], ids=["array", "list"])
def test_plot_dataset_string_labels_are_sorted_classes(circles, as_list):
    X, y = circles
    labels = np.array(["dog", "cat"])[y]  # class 0 is "dog": sorted, "cat" comes first
    fig = viz.plot_dataset(X, labels.tolist() if as_list else labels)
    (ax,) = fig.axes
    # as scikit-learn's classes_: the sorted unique labels, named in the legend
    assert _legend_texts(ax) == ["cat", "dog"]
    cat, dog = _dots(ax)
    np.testing.assert_array_equal(cat.get_offsets(), X[labels == "cat"])
    np.testing.assert_array_equal(dog.get_offsets(), X[labels == "dog"])
    assert ax.get_title() == "Data set: 120 points, 2 classes"


def test_plot_dataset_three_string_classes_and_a_column(circles):
    X, _ = circles
    labels = np.array(["setosa", "virginica", "versicolor"])[np.arange(len(X)) % 3]
    ax = viz.plot_dataset(X, labels.reshape(-1, 1)).axes[0]  # (n, 1) is raveled
    assert _legend_texts(ax) == ["setosa", "versicolor", "virginica"]
    assert [len(c.get_offsets()) for c in _dots(ax)] == [40, 40, 40]
    # three distinct colors, one per class
    colors = {tuple(np.round(c.get_facecolor()[0], 6)) for c in _dots(ax)}
    assert len(colors) == 3


def test_plot_dataset_negative_integer_labels(circles):
    X, y = circles
    ax = viz.plot_dataset(X, 2 * y - 1).axes[0]  # -1 / +1, as for a tanh output
    assert _legend_texts(ax) == ["class -1", "class 1"]
    np.testing.assert_array_equal(_dots(ax)[0].get_offsets(), X[y == 0])


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.linspace(0.0, 1.0, 120), r"class labels.*received non-integer values"),
        (np.array(["a", 1] * 60, dtype=object), r"labels of one type.*str.*int"),
    ],
    ids=["continuous", "mixed"],
)
def test_plot_dataset_says_what_labels_it_needs(circles, labels, match):
    X, _ = circles
    with pytest.raises(ValueError, match=match):
        viz.plot_dataset(X, labels)


def test_plot_dataset_needs_two_features():
    with pytest.raises(ValueError, match=r"\(n_samples, 2\)"):
        viz.plot_dataset(np.zeros((5, 3)), np.zeros(5))


# ---------------------------------------------------------------------------------------------
# decision boundaries


@pytest.mark.parametrize("resolution", [30])
def test_prediction_grid_is_the_models_prediction(trained, circles, resolution):
    X, _ = circles
    xx, yy, out = viz.prediction_grid(trained, X, resolution=resolution)
    assert xx.shape == yy.shape == (resolution, resolution)
    assert out.shape == (resolution, resolution, 1) and out.dtype == np.float64
    # the grid covers the data with a margin
    assert xx.min() < X[:, 0].min() and xx.max() > X[:, 0].max()
    assert yy.min() < X[:, 1].min() and yy.max() > X[:, 1].max()
    expected = _oracle(trained, np.column_stack([xx.ravel(), yy.ravel()]))
    np.testing.assert_allclose(out[..., 0].ravel(), expected, rtol=1e-5, atol=1e-6)


def test_decision_boundary_draws_the_predicted_probabilities(trained, circles):
    X, y = circles
    res = 30
    fig = viz.plot_decision_boundary(trained, X, y, resolution=res)
    assert isinstance(fig, Figure)
    ax, cbar_ax = fig.axes  # the plane and its colorbar
    assert cbar_ax.get_ylabel() == "P(class 1)"
    assert "accuracy" in ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    filled = [c for c in ax.collections if isinstance(c, ContourSet) and c.filled]
    lines = [c for c in ax.collections if isinstance(c, ContourSet) and not c.filled]
    assert len(filled) == 1 and [list(c.levels) for c in lines] == [[0.5]]
    cs = filled[0]
    np.testing.assert_allclose(cs.levels, np.linspace(0, 1, 11))

    # probe grid nodes well inside one band (their 3x3 neighbourhood shares it): the drawn band
    # there must be the band of the probability computed independently from the weights
    xx, yy, _ = viz.prediction_grid(trained, X, resolution=res)
    P = _oracle(trained, np.column_stack([xx.ravel(), yy.ravel()])).reshape(res, res)
    band = np.clip(np.searchsorted(cs.levels, P, side="right") - 1, 0, len(cs.levels) - 2)
    paths = cs.get_paths()
    probed = set()
    for i in range(1, res - 1):
        for j in range(1, res - 1):
            b = band[i, j]
            if b in probed or np.any(band[i - 1 : i + 2, j - 1 : j + 2] != b):
                continue
            point = (xx[i, j], yy[i, j])
            assert paths[b].contains_point(point), (point, P[i, j])
            assert not any(p.contains_point(point) for k, p in enumerate(paths) if k != b)
            probed.add(b)
    assert len(probed) >= 2  # both sides of the boundary were probed

    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in dots) == len(X)
    if trained.backend.name == "numpy":  # drawing is the same for every backend: once is enough
        _render(fig)


def test_decision_boundary_softmax_regions():
    X, y = datasets.make_blobs(90, centers=3, seed=0)
    model = _model(hidden=8, out=3, out_activation="softmax")
    model.fit(X, y, epochs=5, verbose=0)
    base = Figure()
    ax = base.add_subplot()
    fig = viz.plot_decision_boundary(model, X, y, ax=ax, resolution=30)
    assert fig is base and len(fig.axes) == 1  # argmax regions need no colorbar
    filled = [c for c in ax.collections if isinstance(c, ContourSet) and c.filled]
    np.testing.assert_allclose(filled[0].levels, [-0.5, 0.5, 1.5, 2.5])
    assert len([c for c in ax.collections if isinstance(c, PathCollection)]) == 3


@pytest.mark.parametrize("loss", ["mse", "mae"])
@pytest.mark.parametrize("spec", BACKENDS)
def test_decision_boundary_of_a_regression_shows_its_loss_not_accuracy(spec, loss):
    name, device = spec
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = 0.2 * X[:, 0] - 0.1 * X[:, 1] + 0.5  # continuous targets, most of them inside [0, 1]
    model = bp.Sequential(
        [bp.layers.Dense(8, "tanh", input_dim=2), bp.layers.Dense(1)],
        backend=name,
        device=device,
        seed=0,
    )
    model.compile(loss=loss, optimizer="adam")
    model.fit(X, y, epochs=3, verbose=0)
    fig = viz.plot_decision_boundary(model, X, y, resolution=20)
    ax, cbar_ax = fig.axes
    # the loss on these points, computed here from the model's own predictions
    pred = bp.to_numpy(model.predict(X))[:, 0].astype(np.float64)
    value = np.mean((pred - y) ** 2) if loss == "mse" else np.mean(np.abs(pred - y))
    assert ax.get_title() == f"Model output ({loss} {value:.4g})"
    assert "accuracy" not in ax.get_title() and "class" not in cbar_ax.get_ylabel()
    assert ax.get_legend() is None  # no classes to name
    # no class threshold drawn: only the filled output map
    assert [c.filled for c in ax.collections if isinstance(c, ContourSet)] == [True]
    # the points are colored by their targets on the map's own scale
    (dots,) = _dots(ax)
    np.testing.assert_allclose(dots.get_array(), y)
    (cs,) = [c for c in ax.collections if isinstance(c, ContourSet)]
    assert dots.norm.vmin <= y.min() and dots.norm.vmax >= y.max()
    assert (dots.norm.vmin, dots.norm.vmax) == (cs.norm.vmin, cs.norm.vmax)
    if name == "numpy":
        _render(fig)


def test_decision_boundary_of_an_uncompiled_regression_has_a_plain_title():
    X = np.random.default_rng(1).normal(size=(30, 2))
    model = _model(out_activation="linear", compiled=False)
    ax = viz.plot_decision_boundary(model, X, X[:, 0] * 3.5, resolution=10).axes[0]
    assert ax.get_title() == "Model output"


def test_decision_boundary_names_string_classes(circles):
    X, y = circles
    model = _model()
    model.fit(X, y, epochs=2, verbose=0)
    ax = viz.plot_decision_boundary(model, X, np.array(["in", "out"])[y], resolution=10).axes[0]
    assert _legend_texts(ax) == ["in", "out"]  # output 1 is P("out"): sorted labels
    assert "accuracy" in ax.get_title()


# ---------------------------------------------------------------------------------------------
# animation


@pytest.mark.parametrize(("spec", "interval", "frames"), [
    pytest.param(("numpy", None), 1, 4, id="numpy"),  # epochs 0, 1, 2, 3
    pytest.param(("array_api_strict", "device1"), 2, 3, id="array_api_strict:device1"),  # 0, 2, 3
])  # fmt: skip
def test_animate_training_writes_a_gif(tmp_path, circles, spec, interval, frames):
    X, y = circles
    model = _model(spec)
    seen = []
    user = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    path = tmp_path / "training.gif"
    anim = viz.animate_training(
        model, X, y, epochs=3, path=str(path), fps=5, interval=interval, resolution=30, dpi=40,
        callbacks=[user],
    )  # fmt: skip
    assert isinstance(anim, Animation)
    assert path.stat().st_size > 0
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == frames
        assert gif.size == (256, 208)  # 6.4 x 5.2 inches at dpi=40
        first = np.asarray(gif.convert("RGB"))
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("RGB"))
    assert not np.array_equal(first, last)  # the regions (and the title) moved
    assert seen == [0, 1, 2]  # the user's callbacks still run
    assert len(model.history.history["loss"]) == 3  # one fit: the whole run is in history


def test_animate_training_needs_a_compiled_model(circles):
    X, y = circles
    with pytest.raises(RuntimeError, match="compile"):
        viz.animate_training(_model(compiled=False), X, y, epochs=1)


# ---------------------------------------------------------------------------------------------
# history


def test_plot_history_train_and_validation(circles):
    X, y = circles
    model = _model()
    history = model.fit(X, y, epochs=3, validation_data=(X, y), verbose=0)
    for source in (history, history.history, model):
        fig = viz.plot_history(source)
        assert isinstance(fig, Figure)
        loss_ax, metric_ax = fig.axes
        assert loss_ax.get_title() == "Loss" and loss_ax.get_xlabel() == "epoch"
        assert [line.get_label() for line in loss_ax.get_lines()] == [
            "train loss",
            "validation loss",
        ]
        assert [line.get_label() for line in metric_ax.get_lines()] == [
            "train accuracy",
            "validation accuracy",
        ]
        np.testing.assert_allclose(loss_ax.get_lines()[0].get_xdata(), [1, 2, 3])
        np.testing.assert_allclose(loss_ax.get_lines()[0].get_ydata(), history.history["loss"])


def test_plot_history_loss_only_and_empty():
    fig = viz.plot_history({"loss": [0.9, 0.5, 0.4]})
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 1
    with pytest.raises(ValueError, match="History"):
        viz.plot_history({})


# ---------------------------------------------------------------------------------------------
# activations


def test_plot_activations_default_panels():
    fig = viz.plot_activations()
    names = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "linear"]
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(names)  # the unused slot of the grid is removed
    for ax, name in zip(fig.axes, names, strict=True):
        assert ax.get_title().split(" ")[0] == name
        g, dg = [line for line in ax.get_lines() if line.get_label() in ("g(z)", "g'(z)")]
        assert len(g.get_xdata()) == len(dg.get_xdata()) > 100
    sigmoid = fig.axes[0].get_lines()[-2]
    z = np.asarray(sigmoid.get_xdata())
    np.testing.assert_allclose(sigmoid.get_ydata(), 1 / (1 + np.exp(-z)), atol=1e-12)
    np.testing.assert_allclose(z[[0, -1]], [-5, 5])
    _render(fig)


def test_plot_activations_names_and_softmax():
    fig = viz.plot_activations(["tanh", bp.activations.LeakyReLU(0.2)], ncols=4)
    assert _titles(fig) == ["tanh", "leaky_relu (alpha=0.2)"]
    with pytest.raises(ValueError, match="not elementwise"):
        viz.plot_activations(["relu", "softmax"])


# ---------------------------------------------------------------------------------------------
# architecture


def _circles(ax):
    return [p for p in ax.patches if isinstance(p, Circle)]


def test_plot_architecture_one_circle_per_neuron():
    model = _model(compiled=False)  # 2-8-1
    fig = viz.plot_architecture(model)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(_circles(ax)) == 2 + 8 + 1
    (edges,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(edges.get_segments()) == 2 * 8 + 8 * 1
    texts = " ".join(t.get_text() for t in ax.texts)
    for word in ("input", "hidden 1", "output", "8 units", "relu", "sigmoid"):
        assert word in texts
    assert ax.get_title() == "2-8-1 network, 33 parameters"


@pytest.mark.parametrize("spec", BACKENDS)
def test_plot_architecture_caps_wide_layers(spec):
    name, device = spec
    model = bp.Sequential(
        [
            bp.layers.Dense(50, input_dim=3),
            bp.layers.Activation("tanh"),
            bp.layers.Dropout(0.5),
            bp.layers.Dense(1, "sigmoid"),
        ],
        backend=name,
        device=device,
        seed=0,
    )
    fig = viz.plot_architecture(model, max_neurons=12)
    (ax,) = fig.axes
    assert len(_circles(ax)) == 3 + 11 + 1  # 11 neurons and an ellipsis stand for 50
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "50 units" in texts and "tanh" in texts and "dropout 0.5" in texts
    assert ax.get_title() == f"3-50-1 network, {model.count_params()} parameters"
    assert [b.get_label() for b in _bands(ax)] == ["Activation", "Dropout"]


def _bands(ax):
    """The boxes drawn for layers that add no neurons, left to right."""
    return sorted((p for p in ax.patches if isinstance(p, FancyBboxPatch)), key=lambda p: p.get_x())


def _columns_x(ax):
    return sorted({round(c.center[0], 6) for c in _circles(ax)})


@pytest.mark.parametrize("spec", BACKENDS)
def test_plot_architecture_draws_normalization_dropout_activation_as_bands(spec, tmp_path):
    name, device = spec
    model = bp.Sequential(
        [
            bp.layers.Dense(16, input_dim=2),
            bp.layers.BatchNormalization(),
            bp.layers.Activation("relu"),
            bp.layers.Dropout(0.2),
            bp.layers.Dense(8, "relu"),
            bp.layers.LayerNormalization(),
            bp.layers.Dense(3, "softmax"),
        ],
        backend=name,
        device=device,
        seed=0,
    )
    fig = viz.plot_architecture(model)
    (ax,) = fig.axes
    # neurons for the input and the Dense layers only (11 and an ellipsis stand for 16)
    assert len(_circles(ax)) == 2 + 11 + 8 + 3
    assert ax.get_title() == f"2-16-8-3 network, {model.count_params()} parameters"
    assert model.count_params() == 48 + 4 * 16 + 136 + 2 * 8 + 27  # BN/LN weights included
    # one labelled band per layer that works feature by feature, in the model's order, each
    # between the columns it sits between and as tall as the features it acts on
    bands = _bands(ax)
    assert [b.get_label() for b in bands] == [
        "BatchNormalization",
        "Activation",
        "Dropout",
        "LayerNormalization",
    ]
    _, x_16, x_8, x_out = _columns_x(ax)
    for band, (left, right) in zip(bands, [(x_16, x_8)] * 3 + [(x_8, x_out)], strict=True):
        assert left < band.get_x() and band.get_x() + band.get_width() < right
    rows_16 = [c.center[1] for c in _circles(ax) if round(c.center[0], 6) == x_16]
    rows_8 = [c.center[1] for c in _circles(ax) if round(c.center[0], 6) == x_8]
    for band, rows in zip(bands, [rows_16] * 3 + [rows_8], strict=True):
        assert band.get_y() < min(rows) and band.get_y() + band.get_height() > max(rows)
    # the band's text says what the layer is
    inside = [
        t.get_text()
        for t in ax.texts
        if any(b.get_x() <= t.get_position()[0] <= b.get_x() + b.get_width() for b in bands)
    ]
    assert inside == ["BatchNorm", "relu", "dropout 0.2", "LayerNorm"]
    # a band acts feature by feature: one line per feature runs through it, and only the
    # Dense layers are fully connected to what comes before them
    (edges,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(edges.get_segments()) == 2 * 11 + 11 + 11 * 8 + 8 + 8 * 3
    if name == "numpy":
        fig.savefig(tmp_path / "architecture.png", dpi=60)  # draws without warnings


def test_plot_architecture_needs_the_input_size():
    model = bp.Sequential([bp.layers.Dense(4, "relu"), bp.layers.Dense(1)])
    with pytest.raises(ValueError, match="input_dim"):
        viz.plot_architecture(model)


# ---------------------------------------------------------------------------------------------
# loss surface


def _path_line(ax):
    (line,) = [line for line in ax.get_lines() if line.get_label() == "gradient descent"]
    return np.column_stack([line.get_xdata(), line.get_ydata()])


def test_plot_loss_surface_bowl():
    fig = viz.plot_loss_surface(start=(-2.0, 1.0), learning_rate=0.3, steps=20)
    assert isinstance(fig, Figure)
    ax3d, ax2d, cbar = fig.axes
    assert ax3d.name == "3d" and ax3d.collections  # the surface
    assert "learning rate 0.3" in ax2d.get_title()
    assert ax2d.get_xlabel() and ax2d.get_ylabel() and cbar.get_ylabel()
    path = _path_line(ax2d)
    assert path.shape == (21, 2)
    np.testing.assert_allclose(path[0], [-2.0, 1.0])
    # w <- w - lr * grad L on L = a^2 + 1.6ab + b^2, checked by hand for the first step
    a, b = -2.0, 1.0
    np.testing.assert_allclose(path[1], [a - 0.3 * (2 * a + 1.6 * b), b - 0.3 * (1.6 * a + 2 * b)])
    loss = path[:, 0] ** 2 + 1.6 * path[:, 0] * path[:, 1] + path[:, 1] ** 2
    assert np.all(np.diff(loss) < 0)  # a stable step size on a quadratic: loss always falls
    assert ax2d.get_legend() is not None


def test_plot_loss_surface_rosenbrock_custom_and_errors():
    base = Figure()
    ax = base.add_subplot()
    fig = viz.plot_loss_surface("rosenbrock", ax=ax)
    assert fig is base and len(fig.axes) == 2  # the contour panel and its colorbar, no 3-D
    path = _path_line(ax)
    assert np.linalg.norm(path[-1] - 1.0) < np.linalg.norm(path[0] - 1.0)

    fig = viz.plot_loss_surface(
        lambda a, b: a**2 + b**2, grad=lambda a, b: (2 * a, 2 * b), start=(1.0, 1.0),
        learning_rate=0.25, steps=4, extent=(-1.5, 1.5, -1.5, 1.5), surface=False,
    )  # fmt: skip
    np.testing.assert_allclose(_path_line(fig.axes[0])[:, 0], [1, 0.5, 0.25, 0.125, 0.0625])
    with pytest.raises(ValueError, match="grad"):
        viz.plot_loss_surface(lambda a, b: a * b, start=(0, 0))
    with pytest.raises(ValueError, match="diverged"):
        viz.plot_loss_surface(learning_rate=5.0, steps=1000, surface=False)
    with pytest.raises(ValueError, match="Unknown loss surface"):
        viz.plot_loss_surface("saddle")


# ---------------------------------------------------------------------------------------------
# argument checks: NumPy scalars (from np.arange, np.logspace, ...) are numbers too


def test_numpy_scalars_are_accepted_as_plot_arguments(tmp_path, circles):
    X, y = circles
    model = _model()
    xx, yy, out = viz.prediction_grid(model, X, resolution=np.int64(7), margin=np.float32(0.2))
    ref = viz.prediction_grid(model, X, resolution=7, margin=float(np.float32(0.2)))
    assert out.shape == (7, 7, 1)
    for a, b in zip((xx, yy, out), ref, strict=True):
        np.testing.assert_array_equal(a, b)
    assert isinstance(viz.plot_decision_boundary(model, X, y, resolution=np.int32(9)), Figure)
    fig = viz.plot_activations(["tanh", "relu", "elu"], ncols=np.int64(2))
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3
    fig = viz.plot_architecture(_model(hidden=9), max_neurons=np.int32(4))
    assert len(_circles(fig.axes[0])) == 2 + 3 + 1  # 3 neurons and an ellipsis stand for 9
    fig = viz.plot_loss_surface(
        learning_rate=np.float32(0.25), steps=np.int64(5), resolution=np.int64(20), surface=False
    )
    ref = viz.plot_loss_surface(
        learning_rate=float(np.float32(0.25)), steps=5, resolution=20, surface=False
    )
    np.testing.assert_array_equal(_path_line(fig.axes[0]), _path_line(ref.axes[0]))
    path = tmp_path / "numpy-scalars.gif"
    viz.animate_training(
        model, X, y, epochs=np.int64(2), path=str(path), fps=np.float32(5.0),
        interval=np.int32(1), resolution=np.int64(12), margin=np.float64(0.1), dpi=20,
    )  # fmt: skip
    with Image.open(path) as gif:
        assert gif.n_frames == 3  # epochs 0, 1, 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"resolution": True}, "resolution must be an int >= 2"),
        ({"resolution": np.float64(20.0)}, "resolution must be an int >= 2"),
        ({"steps": np.bool_(True)}, "steps must be an int >= 1"),
        ({"learning_rate": True}, "learning_rate must be a positive number"),
        ({"learning_rate": float("nan")}, "learning_rate must be a positive number"),
        ({"learning_rate": np.float32("inf")}, "learning_rate must be a positive number"),
    ],
)
def test_loss_surface_refuses_bools_and_non_numbers(kwargs, match):
    with pytest.raises(ValueError, match=match):
        viz.plot_loss_surface(**{"surface": False, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": True}, "epochs must be an int >= 1"),
        ({"interval": np.bool_(True)}, r"interval \(epochs per frame\) must be an int >= 1"),
        ({"fps": True}, "fps must be a positive number"),
        ({"fps": float("nan")}, "fps must be a positive number"),
        ({"resolution": True}, "resolution must be an int >= 2"),
        ({"margin": True}, "margin must be a number >= 0"),
        ({"margin": float("nan")}, "margin must be a number >= 0"),
    ],
)
def test_animate_training_refuses_bools_and_nan(circles, kwargs, match):
    X, y = circles
    with pytest.raises(ValueError, match=match):
        viz.animate_training(_model(), X, y, **{"epochs": 1, **kwargs})


def test_layout_arguments_refuse_bools():
    with pytest.raises(ValueError, match="ncols must be an int >= 1"):
        viz.plot_activations(ncols=np.bool_(True))
    with pytest.raises(ValueError, match="max_neurons must be an int >= 3"):
        viz.plot_architecture(_model(), max_neurons=True)


# ---------------------------------------------------------------------------------------------
# convolution: the sliding window, the filters, the feature maps


def _tf_pads(size, k, s):
    """TensorFlow's 'same' padding of one axis (before, after): the odd one after."""
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _gid(ax, gid):
    return [p for p in ax.patches if p.get_gid() == gid]


def _conv2d_layer_output(x, kernel, strides, padding):
    """The oracle: what bp.layers.Conv2D computes for one channel in and out, no bias."""
    layer = bp.layers.Conv2D(1, kernel.shape, strides=strides, padding=padding, use_bias=False)
    backend = bp.backend.resolve("numpy")
    layer.build_from_shape((*x.shape, 1), backend, np.random.default_rng(0), np.float64)
    layer.params["W"] = kernel[:, :, None, None].astype(np.float64)
    return np.asarray(layer.forward(x[None, :, :, None].astype(np.float64)))[0, :, :, 0]


@pytest.mark.parametrize(
    ("shape", "kernel_shape", "strides", "padding", "position"),
    [
        ((5, 5), (3, 3), 1, "valid", (1, 2)),
        ((5, 5), (3, 3), 2, "same", (0, 2)),
        ((6, 7), (2, 3), (2, 1), "same", (2, 6)),  # odd padding: the extra column on the right
        ((4, 6), (4, 1), (1, 3), "valid", (0, 1)),
    ],
)
def test_plot_convolution_draws_the_window_the_kernel_and_the_output(
    shape, kernel_shape, strides, padding, position
):
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, size=shape).astype(float)
    kernel = rng.normal(size=kernel_shape).round(2)
    fig = viz.plot_convolution(x, kernel, strides=strides, padding=padding, position=position)
    ax_x, ax_w, ax_y = fig.axes
    assert _titles(fig) == ["input x", "kernel W", "output y"]
    (sh, sw), (kh, kw), (p, q) = np.broadcast_to(strides, 2), kernel_shape, position
    h, w = shape
    top, bottom = _tf_pads(h, kh, sh) if padding == "same" else (0, 0)
    left, right = _tf_pads(w, kw, sw) if padding == "same" else (0, 0)
    # the grids' colour data are the values: the input (padding masked), W, the whole output
    shown = ax_x.images[0].get_array()
    assert shown.shape == (h + top + bottom, w + left + right)
    np.testing.assert_array_equal(shown[top : top + h, left : left + w], x)
    assert np.ma.getmaskarray(shown).sum() == shown.size - h * w
    np.testing.assert_array_equal(ax_w.images[0].get_array(), kernel)
    y = _conv2d_layer_output(x, kernel, (sh, sw), padding)
    np.testing.assert_allclose(ax_y.images[0].get_array(), y, rtol=1e-12, atol=1e-12)
    # one hatched cell per padded zero, all outside the image (input coordinates: row -1 is
    # the padding above row 0)
    pads = _gid(ax_x, "padding")
    assert len(pads) == shown.size - h * w
    for cell in pads:
        r, c = cell.get_y() + 0.5, cell.get_x() + 0.5
        assert not (0 <= r < h and 0 <= c < w)
    # the window: rows sh*p .. sh*p + kh - 1 of the padded input, i.e. from sh*p - top
    (window,) = _gid(ax_x, "window")
    assert (window.get_x(), window.get_y()) == (sw * q - left - 0.5, sh * p - top - 0.5)
    assert (window.get_width(), window.get_height()) == (kw, kh)
    x_pad = np.pad(x, ((top, bottom), (left, right)))
    under = x_pad[sh * p : sh * p + kh, sw * q : sw * q + kw]
    # the numbers written inside the window are the window's values
    inside = [
        float(t.get_text())
        for t in ax_x.texts
        if window.get_x() < t.get_position()[0] < window.get_x() + kw
        and window.get_y() < t.get_position()[1] < window.get_y() + kh
    ]
    assert sorted(inside) == sorted(under.ravel().tolist())
    # the output cell: its frame, and the value in the title is the window's sum of products
    (cell,) = _gid(ax_y, "cell")
    assert (cell.get_x(), cell.get_y(), cell.get_width(), cell.get_height()) == (
        q - 0.5,
        p - 0.5,
        1,
        1,
    )
    value = float(fig.get_suptitle().rsplit("= ", 1)[1])
    assert value == pytest.approx(np.sum(under * kernel), abs=0.006)
    assert value == pytest.approx(y[p, q], abs=0.006)


def test_plot_convolution_default_example_and_its_sum():
    fig = viz.plot_convolution(padding="same", strides=2, position=(0, 2))
    # the window covers the padding above and to the right: two 1s under the kernel's 1s
    assert fig.get_suptitle() == "y[0, 2] = sum of x * W over the window = 2"
    products = fig.get_supxlabel().split(" = ")[1].split(" + ")
    assert products[:4] == ["0*1", "0*0", "0*(-1)", "1*1"]
    assert len(products) == 9
    _render(fig)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": np.zeros((2, 4, 4))}, "x to be one channel"),
        ({"kernel": [1.0, 2.0]}, "kernel to be the weights"),
        ({"x": [[np.nan, 1.0], [1.0, 1.0]], "kernel": [[1.0]]}, "finite"),
        ({"kernel": np.ones((6, 6))}, "larger than the"),
        ({"position": (3, 0)}, r"0 <= p < 3 and 0 <= q < 3"),
        ({"position": (0, -1)}, "position"),
        ({"position": 1}, "position"),
        ({"padding": "full"}, "padding"),
        ({"strides": 0}, "strides"),
    ],
)
def test_plot_convolution_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        viz.plot_convolution(**kwargs)


def _cnn(spec=("numpy", None), input_shape=(6, 5, 2), seed=0):
    name, device = spec
    return bp.Sequential(
        [
            bp.layers.Conv2D(
                4,
                3,
                padding="same",
                activation="relu",
                bias_initializer="random_normal",  # a non-zero bias, checked too
                input_shape=input_shape,
            ),
            bp.layers.MaxPooling2D(2),
            bp.layers.Conv2D(3, (2, 1)),
            bp.layers.Flatten(),
            bp.layers.Dense(3, "softmax"),
        ],
        backend=name,
        device=device,
        seed=seed,
    )


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


@pytest.mark.parametrize("spec", BACKENDS)
def test_plot_filters_draws_each_kernel(spec):
    model = _cnn(spec)
    W = np.asarray(model.get_weights()[0], dtype=np.float64)  # (3, 3, 2, 4)
    for fig, expected in [
        (viz.plot_filters(model), W.mean(axis=2)),
        (viz.plot_filters(model, channel=1), W[:, :, 1, :]),
        (viz.plot_filters(model.layers[0], channel=0), W[:, :, 0, :]),
    ]:
        axes = _image_axes(fig)
        assert [ax.get_title() for ax in axes] == ["0", "1", "2", "3"]
        for f, ax in enumerate(axes):
            np.testing.assert_allclose(ax.images[0].get_array(), expected[:, :, f], rtol=1e-6)
        m = np.abs(expected).max()  # one scale for all, white at 0
        assert {ax.images[0].get_clim() for ax in axes} == {(-m, m)}
    # the second convolution, by index and by name: 3 filters of (2, 1)
    W2 = np.asarray(model.get_weights()[2], dtype=np.float64)
    for layer in (2, model.layers[2].name, model.layers[2]):
        axes = _image_axes(viz.plot_filters(model, layer=layer, channel=3))
        assert len(axes) == 3
        np.testing.assert_allclose(axes[2].images[0].get_array(), W2[:, :, 3, 2], rtol=1e-6)
    if spec[0] == "numpy":  # drawn for real once
        _render(fig)


def test_plot_filters_rows_are_filled_evenly():
    model = bp.Sequential([bp.layers.Conv2D(10, 3, input_shape=(5, 5, 1))], seed=0)
    axes = _image_axes(viz.plot_filters(model, ncols=8))
    assert len(axes) == 10
    rows = {}
    for ax in axes:
        rows.setdefault(round(ax.get_position().y0, 3), []).append(ax)
    assert sorted(len(r) for r in rows.values()) == [5, 5]


def test_plot_filters_refuses_what_is_not_a_built_convolution():
    model = _cnn()
    with pytest.raises(ValueError, match=r"expected a Conv2D layer.*MaxPooling2D"):
        viz.plot_filters(model, layer=1)
    with pytest.raises(ValueError, match=r"expected a Conv2D layer.*Dense"):
        viz.plot_filters(model.layers[-1])
    dense = bp.Sequential([bp.layers.Dense(2, input_dim=3)])
    with pytest.raises(ValueError, match="no Conv2D layer"):
        viz.plot_filters(dense)
    with pytest.raises(ValueError, match="not built"):
        viz.plot_filters(bp.layers.Conv2D(2, 3))
    with pytest.raises(ValueError, match=r"channel to be an input channel \(0 to 1\)"):
        viz.plot_filters(model, channel=2)
    with pytest.raises(ValueError, match="channel"):
        viz.plot_filters(model, channel="max")
    with pytest.raises(ValueError, match=r"layer=\.\.\. picks a layer of a model"):
        viz.plot_filters(model.layers[0], layer=0)
    with pytest.raises(ValueError, match="index into the model's 5 layers"):
        viz.plot_filters(model, layer=5)
    with pytest.raises(ValueError, match="layer name"):
        viz.plot_filters(model, layer="nope")


def _maps_oracle(model, x):
    """The first convolution (relu) and the 2x2 max pooling, in NumPy loops from the weights."""
    W, b = (np.asarray(a, dtype=np.float64) for a in model.get_weights()[:2])
    h, w, _ = x.shape
    x_pad = np.pad(x, ((1, 1), (1, 1), (0, 0)))  # 'same' for a 3x3 kernel, stride 1
    z = np.zeros((h, w, W.shape[3]))
    for r in range(h):
        for c in range(w):
            z[r, c] = np.einsum("ijc,ijcf->f", x_pad[r : r + 3, c : c + 3], W) + b
    conv = np.maximum(z, 0.0)
    pooled = conv[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, -1).max(axis=(1, 3))
    return conv, pooled


# the maps are computed by the model's own layers, on its backend: torch too where installed
FEATURE_BACKENDS = BACKENDS + [
    pytest.param(("torch", None), id="torch")
    for _ in ["torch"]
    if "torch" in bp.available_backends()
]


@pytest.mark.parametrize("spec", FEATURE_BACKENDS)
def test_plot_feature_maps_are_the_layers_outputs(spec):
    model = _cnn(spec)
    x = np.random.default_rng(2).normal(size=(6, 5, 2))
    conv, pooled = _maps_oracle(model, x)
    for fig, expected in [
        (viz.plot_feature_maps(model, x), conv),  # the first Conv2D by default
        (viz.plot_feature_maps(model, x[None], layer=1), pooled),  # a batch of one
        (viz.plot_feature_maps(model, x, layer=model.layers[1].name), pooled),
    ]:
        axes = _image_axes(fig)
        assert [ax.get_title() for ax in axes] == ["input (mean)", "0", "1", "2", "3"]
        np.testing.assert_allclose(axes[0].images[0].get_array(), x.mean(axis=2))
        for k, ax in enumerate(axes[1:]):
            np.testing.assert_allclose(
                ax.images[0].get_array(), expected[:, :, k], rtol=1e-5, atol=1e-6
            )
        lo, hi = expected.min(), expected.max()  # one color scale for every channel
        for ax in axes[1:]:
            np.testing.assert_allclose(ax.images[0].get_clim(), (lo, hi), rtol=1e-5, atol=1e-6)
    assert len(_image_axes(viz.plot_feature_maps(model, x, layer=2, show_input=False))) == 3
    if spec[0] == "numpy":  # drawn for real once
        _render(fig)


def test_plot_feature_maps_of_a_greyscale_image():
    model = _cnn(input_shape=(4, 4, 1))
    x = np.arange(16.0).reshape(4, 4) / 16
    for image in (x, x[:, :, None], x[None, :, :, None]):  # (h, w) is read as one channel
        axes = _image_axes(viz.plot_feature_maps(model, image))
        assert axes[0].get_title() == "input" and len(axes) == 1 + 4
        np.testing.assert_array_equal(axes[0].images[0].get_array(), x)


def test_plot_feature_maps_refuses_bad_images_and_layers():
    model = _cnn()
    x = np.zeros((6, 5, 2))
    for bad in (np.zeros((5, 6, 2)), np.zeros((2, 6, 5, 2)), np.zeros(60), np.zeros((6, 5))):
        with pytest.raises(ValueError, match=r"one image of the model's input shape \(6, 5, 2\)"):
            viz.plot_feature_maps(model, bad)
    with pytest.raises(ValueError, match=r"outputs \(3,\), not images"):
        viz.plot_feature_maps(model, x, layer=-1)
    with pytest.raises(ValueError, match="not images"):
        viz.plot_feature_maps(model, x, layer=3)  # Flatten
    unbuilt = bp.Sequential([bp.layers.Conv2D(2, 3), bp.layers.Flatten()])
    with pytest.raises(ValueError, match="needs a built model"):
        viz.plot_feature_maps(unbuilt, x)
