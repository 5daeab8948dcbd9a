"""Figures that make backpropagation visible: data, boundaries, training, activations, CNNs.

Every function returns a :class:`matplotlib.figure.Figure` (or, for :func:`animate_training`,
a :class:`matplotlib.animation.Animation`) built with matplotlib's object-oriented API: no
pyplot state is created, nothing is shown, and the caller saves or displays the result
(``fig.savefig("boundary.png")``; in a notebook the figure displays itself).

matplotlib is an optional dependency (the ``viz`` extra, ``pip install 'backprop[viz]'``). It is
imported by the functions, never by ``import backprop.viz``, so the rest of the library works
without it and importing this module costs nothing.

Models on any backend are welcome: the functions hand NumPy arrays to ``model.predict`` (which
then answers in NumPy) and copy everything else to the host with :func:`backprop.to_numpy`.

- :func:`plot_dataset`: two-feature points colored by class.
- :func:`plot_decision_boundary`: the model's P(class 1), or its argmax regions, over the plane.
- :func:`prediction_grid`: the grid of predictions that the boundary figures draw.
- :func:`animate_training`: the classification regions epoch by epoch, optionally as a GIF.
- :func:`plot_history`: loss and metrics per epoch, training and validation.
- :func:`plot_activations`: g(z) and g'(z) of the elementwise activations.
- :func:`plot_architecture`: the layer diagram, neurons in columns with their connections.
- :func:`plot_loss_surface`: gradient descent on a two-parameter loss surface.
- :func:`plot_convolution`: one step of a convolution, the window on the input and the output.
- :func:`plot_filters`: the kernels of a Conv2D layer as small images.
- :func:`plot_feature_maps`: an image's feature maps after a layer, one panel per channel.

Examples
--------
>>> from backprop import viz
>>> fig = viz.plot_activations(["relu", "sigmoid"])
>>> [ax.get_title() for ax in fig.axes]
['relu', 'sigmoid']
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import activations as _activations
from ._checks import as_float, as_int, as_number
from .backend import to_numpy
from .callbacks import Callback

if TYPE_CHECKING:  # for the annotations only: importing matplotlib here would defeat laziness
    from matplotlib.animation import Animation
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "animate_training",
    "plot_activations",
    "plot_architecture",
    "plot_convolution",
    "plot_dataset",
    "plot_decision_boundary",
    "plot_feature_maps",
    "plot_filters",
    "plot_history",
    "plot_loss_surface",
    "prediction_grid",
]

# Binary pictures use one diverging map everywhere, so that a point's color in plot_dataset is
# the color of its class's region in plot_decision_boundary and in the animation.
_BINARY_CMAP = "RdBu"
_DEFAULT_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "linear")


def _plt() -> Any:
    """Import matplotlib (and the submodules used here) on first use; return the package.

    Raises
    ------
    ImportError
        When matplotlib is missing, with the command that installs it.
    """
    try:
        import matplotlib
        import matplotlib.animation
        import matplotlib.collections
        import matplotlib.colors
        import matplotlib.figure
        import matplotlib.patches
        import matplotlib.ticker
    except ImportError as exc:
        raise ImportError(
            "backprop.viz needs matplotlib, which is not installed: "
            "pip install 'backprop[viz]' (matplotlib) to draw figures."
        ) from exc
    return matplotlib


def _new_figure(figsize: tuple[float, float]) -> Figure:
    # A bare Figure needs no pyplot state: nothing to close, nothing leaks when tests make many.
    # The constrained layout keeps titles, labels and colorbars from overlapping.
    return _plt().figure.Figure(figsize=figsize, layout="constrained")


def _root_figure(ax: Axes) -> Figure:
    try:
        return ax.get_figure(root=True)
    except TypeError:  # matplotlib < 3.10 has no root=, and .figure is the root there
        return ax.figure


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return _root_figure(ax), ax
    fig = _new_figure(figsize)
    return fig, fig.add_subplot()


# ---------------------------------------------------------------------------------------------
# Data helpers


def _points(X: Any, name: str = "X") -> np.ndarray:
    """X on the host as float64, checked to hold two features (the plane we can draw)."""
    X = np.asarray(to_numpy(X), dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (n_samples, 2) with n_samples >= 1 to be drawn in the "
            f"plane, received shape {X.shape}."
        )
    return X


class _Classes(NamedTuple):
    """Labels as class indices, and the legend name of each class."""

    index: np.ndarray  # (n,) int64: the class of each point
    names: list[str]  # one per class, in index order


def _host_labels(y: Any, n: int) -> np.ndarray:
    """The labels on the host, one per point: one-hot rows become their argmax, (n, 1) raveled."""
    y = np.asarray(to_numpy(y))
    if y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "biuf":
        y = np.argmax(y, axis=1)
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"y must hold one label per point ({n}), or one-hot rows, received shape {y.shape}."
        )
    return y


def _labels(y: Any, n: int) -> _Classes:
    """The classes of ``y``, as scikit-learn's ``classes_`` where labels are not 0, 1, ...

    Integer labels >= 0 are their own index (class k is the model's output k, seen or not) and
    are named "class k"; any other labels (strings, negative integers) are indexed in sorted
    order, as scikit-learn's ``classes_`` (and so ``backprop.sklearn``'s) are, and keep their
    names.
    """
    y = _host_labels(y, n)
    if y.dtype.kind in "biuf":
        y_float = y.astype(np.float64)
        whole = np.isfinite(y_float) & (np.round(y_float) == y_float)
        if not np.all(whole):
            bad = y[~whole][0]
            raise ValueError(
                "y must hold class labels (integers, strings, or one-hot rows) to color the "
                f"points, received non-integer values such as {bad!r}; to draw a regression "
                "target, use plot_decision_boundary with a model."
            )
        if y.min() >= 0:
            index = y.astype(np.int64)
            return _Classes(index, [f"class {k}" for k in range(int(index.max()) + 1)])
        classes, index = np.unique(y.astype(np.int64), return_inverse=True)
        return _Classes(index.astype(np.int64), [f"class {c}" for c in classes.tolist()])
    try:
        classes, index = np.unique(y, return_inverse=True)
    except TypeError:  # e.g. strings and numbers together, which cannot be sorted
        kinds = sorted({type(v).__name__ for v in y.tolist()})
        raise ValueError(
            "y must hold labels of one type (all strings or all numbers) to sort them into "
            f"classes, received a mix of {', '.join(kinds)}."
        ) from None
    return _Classes(index.astype(np.int64).reshape(-1), [str(c) for c in classes.tolist()])


def _is_continuous(y: Any, n: int) -> bool:
    """Whether y is one numeric target per point with values other than 0 and 1 (regression)."""
    y = np.asarray(to_numpy(y))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1 or y.shape[0] != n or y.dtype.kind not in "iuf":
        return False
    return not bool(np.all((y == 0) | (y == 1)))


def _class_colors(n_classes: int) -> list[Any]:
    mpl = _plt()
    if n_classes <= 2:
        # near the two ends of the diverging map: a point has the color of its class's region
        cmap = mpl.colormaps[_BINARY_CMAP]
        return [cmap(0.1), cmap(0.9)]
    cmap = mpl.colormaps["tab10" if n_classes <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n_classes)]


def _scatter_classes(
    ax: Axes, X: np.ndarray, classes: _Classes, n_classes: int, size: float
) -> None:
    colors = _class_colors(n_classes)
    for k, name in enumerate(classes.names):
        mask = classes.index == k
        if np.any(mask):
            ax.scatter(
                X[mask, 0],
                X[mask, 1],
                s=size,
                color=colors[k],
                # a dark rim keeps a point visible on the region of its own class's color
                edgecolors="black",
                linewidths=0.4,
                label=name,
                zorder=3,
            )


def _marker_size(n: int) -> float:
    # big dots for a handful of points, small ones for thousands, so a cloud never turns solid
    return float(np.clip(6000.0 / max(n, 1), 10.0, 40.0))


def _legend(ax: Axes, loc: str = "best") -> None:
    # legend dots of a readable size, whatever the size of the dots in the cloud
    legend = ax.legend(loc=loc, framealpha=0.9)
    for handle in legend.legend_handles:
        handle.set_sizes([40.0])


def _decorate_plane(ax: Axes, title: str | None) -> None:
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal", adjustable="box")
    if title:
        ax.set_title(title)


def plot_dataset(X: Any, y: Any, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Scatter a two-feature data set, one color per class.

    Parameters
    ----------
    X : array_like, shape (n_samples, 2)
        The points (NumPy or any supported library).
    y : array_like, shape (n_samples,) or (n_samples, n_classes)
        Class labels: integers 0, 1, ... (class k is named "class k"), any other labels such
        as strings (the classes are the sorted unique labels, as scikit-learn's ``classes_``,
        named by their labels), or one-hot rows.
    ax : matplotlib.axes.Axes, optional
        Draw here; by default a new figure is made.
    title : str, optional
        Axes title (default ``"Data set: n points, k classes"``).

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes, with one scatter and one legend entry per class.

    Raises
    ------
    ValueError
        If ``X`` does not have two features, or ``y`` holds non-integer numbers or a mix of
        strings and numbers.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_dataset([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]], np.array(["dog", "cat", "dog"]))
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['cat', 'dog']
    """
    X = _points(X)
    classes = _labels(y, X.shape[0])
    n_classes = len(classes.names)
    fig, ax = _figure_and_axes(ax, (5.6, 5.0))
    _scatter_classes(ax, X, classes, n_classes, _marker_size(X.shape[0]))
    _decorate_plane(ax, title or f"Data set: {X.shape[0]} points, {n_classes} classes")
    _legend(ax)
    ax.grid(True, alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------------------
# Decision boundaries


def _check_resolution(resolution: Any) -> int:
    n = as_int(resolution)
    if n is None or n < 2:
        raise ValueError(f"resolution must be an int >= 2, received {resolution!r}.")
    return n


def _grid_axes(X: np.ndarray, resolution: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    resolution = _check_resolution(resolution)
    margin_float = as_float(margin)
    # "not >= 0" refuses NaN as well
    if margin_float is None or not 0 <= margin_float < math.inf:
        raise ValueError(f"margin must be a number >= 0, received {margin!r}.")
    margin = margin_float
    lo, hi = X.min(axis=0), X.max(axis=0)
    # one margin for both axes (a fraction of the larger span) keeps circles round in the plot;
    # a data set of identical points still gets a unit-wide window
    span = float(np.max(hi - lo))
    pad = margin * span if span > 0 else 0.5
    return (
        np.linspace(lo[0] - pad, hi[0] + pad, resolution),
        np.linspace(lo[1] - pad, hi[1] + pad, resolution),
    )


def _predict_host(model: Any, points: np.ndarray) -> np.ndarray:
    # NumPy in gives NumPy out on every backend; to_numpy covers models that answer otherwise
    out = np.asarray(to_numpy(model.predict(points)), dtype=np.float64)
    return out.reshape(points.shape[0], -1)


def prediction_grid(
    model: Any, X: Any, resolution: int = 200, margin: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's outputs on a regular grid covering the data, from one ``predict`` call.

    Parameters
    ----------
    model : Sequential
        A model with two inputs, on any backend.
    X : array_like, shape (n_samples, 2)
        The data whose bounding box, widened by ``margin``, the grid covers.
    resolution : int
        Grid points along each axis.
    margin : float
        Padding on every side, as a fraction of the larger of the two data spans.

    Returns
    -------
    xx, yy : numpy.ndarray, shape (resolution, resolution)
        The grid coordinates (``numpy.meshgrid`` layout: rows follow ``x2``, columns ``x1``).
    out : numpy.ndarray, shape (resolution, resolution, n_outputs)
        ``model.predict`` at each grid point, float64 on the host.

    Examples
    --------
    >>> import backprop as bp
    >>> model = bp.Sequential([bp.layers.Dense(1, "sigmoid", input_dim=2)], seed=0)
    >>> xx, yy, out = prediction_grid(model, [[0.0, 0.0], [1.0, 1.0]], resolution=5)
    >>> xx.shape, out.shape
    ((5, 5), (5, 5, 1))
    """
    X = _points(X)
    gx, gy = _grid_axes(X, resolution, margin)
    xx, yy = np.meshgrid(gx, gy)
    out = _predict_host(model, np.column_stack([xx.ravel(), yy.ravel()]))
    return xx, yy, out.reshape(resolution, resolution, -1)


def _accuracy(out: np.ndarray, y: np.ndarray) -> float | None:
    """Accuracy of host predictions (n, k) against integer labels; None for non-probabilities."""
    if out.shape[1] == 1:
        if np.any(out < 0) or np.any(out > 1):
            return None  # a regression output: no class threshold to speak of
        return float(np.mean((out[:, 0] >= 0.5) == (y == 1)))
    return float(np.mean(np.argmax(out, axis=1) == y))


def plot_decision_boundary(
    model: Any,
    X: Any,
    y: Any,
    ax: Axes | None = None,
    resolution: int = 200,
    margin: float = 0.1,
    title: str | None = None,
    colorbar: bool = True,
) -> Figure:
    """The classification regions of a two-input model, with the data on top.

    A single output (sigmoid) is drawn as filled contours of ``P(class 1)`` on a fixed 0..1
    scale with its colorbar and the ``P = 0.5`` decision line; ``k > 1`` outputs (softmax) as
    the regions of the argmax class, separated by thin lines.

    A regression (one output and targets other than 0 and 1, e.g. a model compiled with
    ``"mse"`` or ``"mae"`` on real values) has no classes and no boundary: its output is drawn
    as a map, the points colored by their targets on the same scale (a point that stands out
    from the map around it is badly fit), and the title gives the loss on these points.

    Parameters
    ----------
    model : Sequential
        A model with two inputs, on any backend.
    X : array_like, shape (n_samples, 2)
        The points to draw; the grid covers their bounding box plus ``margin``.
    y : array_like, shape (n_samples,) or (n_samples, n_classes)
        Their labels (integers, other labels such as strings, taken in sorted order as
        scikit-learn's ``classes_``, or one-hot rows), or real targets for a regression.
    ax : matplotlib.axes.Axes, optional
        Draw here; by default a new figure is made.
    resolution : int
        Grid points along each axis (``resolution**2`` predictions, in one ``predict`` call).
    margin : float
        Padding around the data, as a fraction of its larger span.
    title : str, optional
        Axes title; by default ``"Decision boundary"`` with the accuracy on these points, or
        for a regression ``"Model output"`` with the model's loss on them (e.g.
        ``"Model output (mse 0.0123)"``; no loss before ``compile``).
    colorbar : bool
        Add the probability (or output) colorbar (single-output models).

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes.
    """
    mpl = _plt()
    X = _points(X)
    gx, gy = _grid_axes(X, resolution, margin)
    xx, yy = np.meshgrid(gx, gy)
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    # the grid and the data in one predict call: one transfer each way on a device backend
    out = _predict_host(model, np.concatenate([grid, X], axis=0))
    out_grid, out_X = out[: grid.shape[0]], out[grid.shape[0] :]
    k = out.shape[1]
    fig, ax = _figure_and_axes(ax, (6.4, 5.2))
    if k == 1 and _is_continuous(y, X.shape[0]):
        _draw_regression(ax, fig, xx, yy, out_grid, X, y, colorbar)
        if title is None:
            loss = _regression_loss(model, out_X, y)
            title = "Model output" + (f" ({loss[0]} {loss[1]:.4g})" if loss else "")
        _decorate_plane(ax, title)
        ax.set_xlim(gx[0], gx[-1])
        ax.set_ylim(gy[0], gy[-1])
        return fig

    classes = _labels(y, X.shape[0])
    n_classes = max(len(classes.names), k if k > 1 else 2)
    if k == 1:
        Z = out_grid[:, 0].reshape(resolution, resolution)
        probabilities = bool(np.all((Z >= 0) & (Z <= 1)))
        # fixed levels on [0, 1] so that the same color means the same probability in every
        # figure and every frame; an unbounded output gets levels fitted to its range
        levels = np.linspace(0.0, 1.0, 11) if probabilities else 12
        cs = ax.contourf(xx, yy, Z, levels=levels, cmap=_BINARY_CMAP, alpha=0.7)
        if Z.min() < 0.5 < Z.max():
            ax.contour(xx, yy, Z, levels=[0.5], colors="k", linewidths=1.5)
        if colorbar:
            cbar = fig.colorbar(cs, ax=ax, shrink=0.9)
            cbar.set_label("P(class 1)" if probabilities else "model output")
            if probabilities:
                # the decision threshold, marked on the scale as it is drawn on the plane
                cbar.ax.axhline(0.5, color="k", linewidth=1.5)
    else:
        Z = np.argmax(out_grid, axis=1).reshape(resolution, resolution)
        colors = _class_colors(n_classes)[:k]
        cmap = mpl.colors.ListedColormap(colors)
        edges = np.arange(k + 1) - 0.5
        ax.contourf(xx, yy, Z, levels=edges, cmap=cmap, alpha=0.35)
        crossed = [v for v in edges[1:-1] if Z.min() < v < Z.max()]
        if crossed:  # matplotlib warns about a contour with no line
            ax.contour(xx, yy, Z, levels=crossed, colors="k", linewidths=0.8)
    _scatter_classes(ax, X, classes, n_classes, _marker_size(X.shape[0]))
    if title is None:
        acc = _accuracy(out_X, classes.index)
        title = "Decision boundary" + (f" (accuracy {acc:.1%})" if acc is not None else "")
    _decorate_plane(ax, title)
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    _legend(ax)
    return fig


def _draw_regression(
    ax: Axes,
    fig: Figure,
    xx: np.ndarray,
    yy: np.ndarray,
    out_grid: np.ndarray,
    X: np.ndarray,
    y: Any,
    colorbar: bool,
) -> None:
    """A one-output regression: the output as filled contours, the points colored by target."""
    mpl = _plt()
    target = np.asarray(to_numpy(y), dtype=np.float64).reshape(-1)
    Z = out_grid[:, 0].reshape(xx.shape)
    lo = float(min(Z.min(), target.min()))
    hi = float(max(Z.max(), target.max()))
    levels = mpl.ticker.MaxNLocator(nbins=12).tick_values(lo, hi) if hi > lo else [lo, lo + 1]
    cmap = mpl.colormaps["viridis"]
    # one boundary norm for the map and the points: a point whose target lies in the band the
    # model predicts there has exactly the color of the region around it
    norm = mpl.colors.BoundaryNorm(levels, cmap.N)
    cs = ax.contourf(xx, yy, Z, levels=levels, cmap=cmap, norm=norm)
    ax.scatter(
        X[:, 0],
        X[:, 1],
        c=target,
        cmap=cmap,
        norm=norm,
        s=_marker_size(X.shape[0]),
        edgecolors="black",
        linewidths=0.4,
        zorder=3,
    )
    if colorbar:
        fig.colorbar(cs, ax=ax, shrink=0.9).set_label("model output (points: targets)")


def _regression_loss(model: Any, out: np.ndarray, y: Any) -> tuple[str, float] | None:
    """The compiled model's loss (name, value) on host predictions ``out``; None before compile."""
    loss = getattr(model, "loss", None)
    if loss is None or not callable(loss):
        return None
    import array_api_compat.numpy as xp

    target = np.asarray(to_numpy(y), dtype=np.float64).reshape(-1, 1)
    name = getattr(loss, "name", None) or "loss"
    return name, float(loss(target, out, xp))


# ---------------------------------------------------------------------------------------------
# Training animation


def _accuracy_key(logs: Mapping[str, float]) -> str | None:
    for key in ("accuracy", "acc", "binary_accuracy", "categorical_accuracy"):
        if key in logs:
            return key
    return None


def _frame_title(epoch: int, logs: Mapping[str, float]) -> str:
    parts = [f"Epoch {epoch}"]
    if "loss" in logs:
        parts.append(f"loss {logs['loss']:.4f}")
    key = _accuracy_key(logs)
    if key is not None:
        parts.append(f"accuracy {logs[key]:.1%}")
    return " | ".join(parts)


def _frame_image(out: np.ndarray) -> np.ndarray:
    # what a frame shows: P(class 1) for one output, the argmax class for several
    if out.shape[-1] == 1:
        return out[..., 0]
    return np.argmax(out, axis=-1).astype(np.float64)


def animate_training(
    model: Any,
    X: Any,
    y: Any,
    epochs: int = 50,
    path: str | None = None,
    fps: int = 10,
    batch_size: int = 32,
    interval: int = 1,
    resolution: int = 100,
    margin: float = 0.1,
    dpi: float | None = None,
    **fit_kwargs: Any,
) -> Animation:
    """Train a compiled model and animate its classification regions epoch by epoch.

    The model is trained by one ``model.fit(X, y, epochs=epochs, ...)`` call whose callback
    records the predicted grid every ``interval`` epochs (so ``model.history`` holds the whole
    run, and callbacks such as early stopping work); the frames are rendered afterwards from
    those host arrays, which keeps drawing cheap and independent of the backend.

    Parameters
    ----------
    model : Sequential
        A compiled model with two inputs, on any backend. It is trained in place.
    X : array_like, shape (n_samples, 2)
        Training points.
    y : array_like, shape (n_samples,) or (n_samples, n_classes)
        Their labels, in the layout the model's loss expects.
    epochs : int
        Epochs to train.
    path : str, optional
        Where to save the animation as a GIF (matplotlib's Pillow writer; no ImageMagick).
    fps : int
        Frames per second of the saved GIF.
    batch_size : int
        Passed to ``fit``.
    interval : int
        Epochs per frame.
    resolution : int
        Grid points along each axis of the drawn regions.
    margin : float
        Padding around the data, as a fraction of its larger span.
    dpi : float, optional
        Dots per inch of the saved GIF (default the figure's, 100: 640 x 520 pixels).
    **fit_kwargs
        More arguments for ``fit`` (``validation_data``, ``callbacks``, ``verbose``, ...).

    Returns
    -------
    matplotlib.animation.Animation
        One frame before training (epoch 0), one after every ``interval`` epochs, and one after
        the last epoch: ``1 + ceil(epochs / interval)`` frames when training runs to the end.
        Its title shows the epoch with the training loss and accuracy of that epoch.

    Notes
    -----
    An animation that is never saved or displayed makes matplotlib warn when it is deleted;
    give ``path``, or keep the result and call ``anim.save(...)`` or display it.
    """
    mpl = _plt()
    epochs_int, interval_int, fps_number = as_int(epochs), as_int(interval), as_number(fps)
    if epochs_int is None or epochs_int < 1:
        raise ValueError(f"epochs must be an int >= 1, received {epochs!r}.")
    if interval_int is None or interval_int < 1:
        raise ValueError(f"interval (epochs per frame) must be an int >= 1, received {interval!r}.")
    if fps_number is None or not 0 < fps_number < math.inf:
        raise ValueError(f"fps must be a positive number, received {fps!r}.")
    epochs, interval, fps = epochs_int, interval_int, fps_number
    resolution = _check_resolution(resolution)
    if getattr(model, "loss", None) is None:
        raise RuntimeError(
            "animate_training() trains the model: call model.compile(loss=..., optimizer=...) "
            "first."
        )
    Xh = _points(X)
    y_host = to_numpy(y)
    gx, gy = _grid_axes(Xh, resolution, margin)
    xx, yy = np.meshgrid(gx, gy)
    grid = np.column_stack([xx.ravel(), yy.ravel()])

    def snapshot() -> np.ndarray:
        return _predict_host(model, grid).reshape(resolution, resolution, -1)

    # frame 0: the untrained model; its loss and accuracy come from evaluate, as there is no
    # epoch log yet (and an unbuilt model is built by this first predict)
    out0 = snapshot()
    n_out = out0.shape[-1]
    frames: list[tuple[int, np.ndarray, dict[str, float]]] = [
        (0, _frame_image(out0), dict(model.evaluate(Xh, y_host)))
    ]

    class _Recorder(Callback):
        def on_epoch_end(self, epoch, logs=None):
            done = epoch + 1
            if done % interval == 0 or done == epochs:
                frames.append((done, _frame_image(snapshot()), dict(logs or {})))

    callbacks = [*(fit_kwargs.pop("callbacks", None) or []), _Recorder()]
    fit_kwargs.setdefault("verbose", 0)
    history = model.fit(
        Xh, y_host, epochs=epochs, batch_size=batch_size, callbacks=callbacks, **fit_kwargs
    )
    if history.epoch and frames[-1][0] != history.epoch[-1] + 1:
        # training stopped early between two recorded frames: show where it ended
        logs = {k: v[-1] for k, v in history.history.items()}
        frames.append((history.epoch[-1] + 1, _frame_image(snapshot()), logs))

    labels = _labels(y_host, Xh.shape[0])
    n_classes = max(len(labels.names), n_out if n_out > 1 else 2)
    image0 = frames[0][1]

    # a fixed layout, not the constrained one: the title changes width from frame to frame and
    # must not move the axes, and a layout engine would cost an extra draw per frame
    fig = mpl.figure.Figure(figsize=(6.4, 5.2))
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.1, top=0.92)
    ax = fig.add_subplot()
    extent = (gx[0], gx[-1], gy[0], gy[-1])
    if n_out == 1:
        im = ax.imshow(
            image0,
            origin="lower",
            extent=extent,
            cmap=_BINARY_CMAP,
            vmin=0.0,
            vmax=1.0,
            interpolation="bilinear",
            alpha=0.7,
            aspect="equal",
        )
        cbar = fig.colorbar(im, ax=ax, shrink=0.9)
        cbar.set_label("P(class 1)")
        line_levels = [0.5]
    else:
        cmap = mpl.colors.ListedColormap(_class_colors(n_classes)[:n_out])
        im = ax.imshow(
            image0,
            origin="lower",
            extent=extent,
            cmap=cmap,
            vmin=-0.5,
            vmax=n_out - 0.5,
            interpolation="nearest",
            alpha=0.45,
            aspect="equal",
        )
        line_levels = [k - 0.5 for k in range(1, n_out)]
    _scatter_classes(ax, Xh, labels, n_classes, _marker_size(Xh.shape[0]))
    _decorate_plane(ax, _frame_title(frames[0][0], frames[0][2]))
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    _legend(ax, "upper right")  # "best" would search for a place on every frame

    boundary: list[Any] = []

    def draw(i: int) -> list[Any]:
        epoch, image, logs = frames[i]
        im.set_data(image)
        for artist in boundary:
            artist.remove()
        boundary.clear()
        # only levels the image crosses: matplotlib warns about a contour with no line
        crossed = [v for v in line_levels if image.min() < v < image.max()]
        if crossed:
            boundary.append(ax.contour(xx, yy, image, levels=crossed, colors="k", linewidths=1.2))
        ax.set_title(_frame_title(epoch, logs))
        return [im, *boundary]

    draw(0)
    anim = mpl.animation.FuncAnimation(
        fig, draw, frames=len(frames), interval=1000.0 / fps, blit=False, repeat=True
    )
    if path is not None:
        anim.save(str(path), writer=mpl.animation.PillowWriter(fps=fps), dpi=dpi)
    return anim


# ---------------------------------------------------------------------------------------------
# Training curves


def _history_dict(history: Any) -> tuple[dict[str, list[float]], list[int] | None]:
    """The ``{key: per-epoch values}`` dict and epoch numbers of a History, a model or a dict."""
    epochs = None
    obj = history
    # a model has .history (a History), a History has .history (the dict): unwrap to the dict
    for _ in range(3):
        if isinstance(obj, Mapping):
            break
        epochs = getattr(obj, "epoch", epochs)
        obj = getattr(obj, "history", None)
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            "plot_history expects a History (what fit returns), a trained model or a non-empty "
            f"dict of per-epoch lists, received {type(history).__name__}."
        )
    return {k: [float(v) for v in vs] for k, vs in obj.items()}, epochs


def plot_history(history: Any, title: str | None = None) -> Figure:
    """Loss and metrics per epoch, for training and (when recorded) validation.

    Parameters
    ----------
    history : History or dict or Sequential
        What ``fit`` returns, its ``.history`` dict (``{"loss": [...], "val_loss": [...],
        "accuracy": [...], ...}``), or a model that has been fit.
    title : str, optional
        Figure title (default ``"Training history"``).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels, loss and the other metrics (training solid, validation dashed, same
        color); one panel when no metric besides the loss was recorded.
    """
    data, epochs = _history_dict(history)
    n = max(len(v) for v in data.values())
    x = np.asarray(epochs) + 1 if epochs is not None and len(epochs) == n else np.arange(1, n + 1)
    metrics = [k for k in data if not k.startswith("val_") and k != "loss"]
    # a validation key without its training twin still gets drawn
    metrics += [
        k[4:] for k in data if k.startswith("val_") and k != "val_loss" and k[4:] not in data
    ]
    has_loss = "loss" in data or "val_loss" in data
    panels = (["loss"] if has_loss else []) + (["metrics"] if metrics else [])
    fig = _new_figure((5.2 * len(panels) + 0.6, 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]

    def curves(ax: Axes, key: str, color: Any) -> None:
        if key in data:
            ax.plot(x[: len(data[key])], data[key], color=color, lw=2, label=f"train {key}")
        if f"val_{key}" in data:
            v = data[f"val_{key}"]
            ax.plot(x[: len(v)], v, color=color, lw=2, ls="--", label=f"validation {key}")

    for ax, panel in zip(axes, panels, strict=True):
        if panel == "loss":
            curves(ax, "loss", "C0")
            ax.set_title("Loss")
            ax.set_ylabel("loss")
        else:
            for i, key in enumerate(metrics):
                curves(ax, key, f"C{(i + 1) % 10}")
            ax.set_title("Metrics" if len(metrics) > 1 else metrics[0].capitalize())
            ax.set_ylabel("value" if len(metrics) > 1 else metrics[0])
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
        if n < 12:  # few epochs: whole-number ticks, not 0.5 steps
            ax.set_xticks(x)
    fig.suptitle(title or "Training history")
    return fig


# ---------------------------------------------------------------------------------------------
# Activation functions


def _activation_label(act: _activations.ActivationFunction) -> str:
    extra = {k: v for k, v in act.get_config().items() if k != "name"}
    if not extra:
        return act.name
    args = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in extra.items()
    )
    return f"{act.name} ({args})"


def plot_activations(
    names: Sequence[str | _activations.ActivationFunction] | None = None,
    ncols: int = 4,
    z_range: tuple[float, float] = (-5.0, 5.0),
) -> Figure:
    """One panel per activation: g(z) and its derivative g'(z).

    Parameters
    ----------
    names : sequence of str or ActivationFunction, optional
        Activations to draw (default: sigmoid, tanh, relu, leaky_relu, elu, gelu, linear).
        Softmax is refused: it is not elementwise, so it has no g'(z) curve.
    ncols : int
        Panels per row.
    z_range : (float, float)
        The interval of z drawn.

    Returns
    -------
    matplotlib.figure.Figure
        ``len(names)`` axes titled with the activation names, a legend for the figure.

    Raises
    ------
    ValueError
        For an unknown name or softmax.
    """
    import array_api_compat.numpy as xp

    acts = [_activations.get(n) for n in (_DEFAULT_ACTIVATIONS if names is None else names)]
    if not acts:
        raise ValueError("plot_activations needs at least one activation name.")
    for act in acts:
        if act.name == "softmax":
            raise ValueError(
                "softmax is not elementwise (each output depends on the whole row), so it has "
                "no g(z), g'(z) curve; leave it out of names."
            )
    ncols_int = as_int(ncols)
    if ncols_int is None or ncols_int < 1:
        raise ValueError(f"ncols must be an int >= 1, received {ncols!r}.")
    ncols = min(ncols_int, len(acts))
    nrows = math.ceil(len(acts) / ncols)
    # an odd count of points puts z = 0 on the grid, so kinks are drawn where they are
    z = xp.linspace(float(z_range[0]), float(z_range[1]), 401, dtype=xp.float64)
    fig = _new_figure((3.1 * ncols, 2.8 * nrows + 0.5))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    for i, ax in enumerate(axes.flat):
        if i >= len(acts):
            ax.remove()  # no empty frames in the last row
            continue
        act = acts[i]
        g = act.forward(z, xp)
        dg = act.derivative(z, g, xp)
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.axvline(0.0, color="0.6", lw=0.8)
        ax.plot(np.asarray(z), np.asarray(g), color="C0", lw=2.2, label="g(z)")
        ax.plot(np.asarray(z), np.asarray(dg), color="C1", lw=1.8, ls="--", label="g'(z)")
        ax.set_title(_activation_label(act))
        ax.grid(True, alpha=0.3)
        if i // ncols == nrows - 1 or i + ncols >= len(acts):
            ax.set_xlabel("z")
            ax.tick_params(labelbottom=True)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2)
    fig.suptitle("Activation functions g(z) and their derivatives g'(z)")
    return fig


# ---------------------------------------------------------------------------------------------
# Architecture diagram


# Layers that act on each feature apart (or on each row, feature by feature): they add no
# neurons and no connections, so the diagram draws them as a labelled band across the features
# they act on. The style is the band's (face, edge, line style).
_BAND_STYLES = {
    "normalization": ("#e8dcf5", "#6a3d9a", "-"),
    "activation": ("#fdf0c2", "#9a6f00", "-"),
    "dropout": ("#eeeeee", "#555555", "--"),  # dashed: some features are dropped
}


def _band_of(layer: Any, width: int) -> dict[str, Any] | None:
    """The band drawn for a per-feature layer (normalization, activation, dropout), else None."""
    from . import layers as _layers

    kind = type(layer).__name__
    if isinstance(layer, _layers.BatchNormalization | _layers.LayerNormalization):
        text = {"BatchNormalization": "BatchNorm", "LayerNormalization": "LayerNorm"}.get(kind)
        # gamma and beta if kept, and BatchNormalization's moving mean and variance
        per_feature = int(layer.scale) + int(layer.center)
        if isinstance(layer, _layers.BatchNormalization):
            per_feature += 2
        return {
            "layer": kind,
            "text": text or kind,
            "style": "normalization",
            "params": per_feature * width,
        }
    if isinstance(layer, _layers.Activation):
        return {"layer": kind, "text": layer.activation.name, "style": "activation", "params": 0}
    if isinstance(layer, _layers.Dropout):
        return {"layer": kind, "text": f"dropout {layer.rate:g}", "style": "dropout", "params": 0}
    return None


def _columns(model: Any) -> list[dict[str, Any]]:
    """The diagram's elements, left to right: neuron columns and bands.

    The input and every Dense layer (or any other layer, named by its type) are a column of
    neurons, fully connected to the column before; normalization, Activation and Dropout layers
    add no neurons and are bands across the features of the column before them.
    """
    layers = list(getattr(model, "layers", []))
    if not layers:
        raise ValueError("plot_architecture needs a model with layers.")
    width = getattr(model, "input_dim", None) or getattr(layers[0], "input_dim", None)
    if width is None:
        raise ValueError(
            "plot_architecture needs the input size: give the first layer input_dim=... "
            "(e.g. Dense(4, 'relu', input_dim=2)), or fit the model first."
        )
    width = int(width)
    elements: list[dict[str, Any]] = [{"kind": "neurons", "units": width, "activation": None}]
    for layer in layers:
        built = getattr(layer, "built", False)
        units = getattr(layer, "units", None)
        band = None if units is not None else _band_of(layer, width)
        if band is not None:
            if built:
                band["params"] = layer.count_params()
            elements.append({"kind": "band", "units": width, **band})
            continue
        if units is not None:  # Dense: a new column of neurons
            act = getattr(layer, "activation", None)
            params = width * units + (units if getattr(layer, "use_bias", True) else 0)
            name = getattr(act, "name", None)
            units = int(units)
        else:  # any other layer: its own column, named by its type
            units = int(layer.output_dim(width))
            params, name = 0, type(layer).__name__
        elements.append(
            {
                "kind": "neurons",
                "units": units,
                "activation": name,
                "params": layer.count_params() if built else params,
            }
        )
        width = units
    return elements


def _layout_x(elements: list[dict[str, Any]], dx: float) -> list[float]:
    """The x of each element, left to right.

    A column gets a full gap before it (room for its fan of connections), a band a short one
    (the feature lines cross it straight).
    """
    xs = [0.0]
    for prev, el in itertools.pairwise(elements):
        if el["kind"] == "neurons":
            xs.append(xs[-1] + dx)
        else:
            xs.append(xs[-1] + (1.0 if prev["kind"] == "neurons" else 0.9))
    return xs


def plot_architecture(
    model: Any,
    ax: Axes | None = None,
    max_neurons: int = 12,
    title: str | None = None,
) -> Figure:
    """The layer diagram: one circle per neuron, in a column per layer, fully connected.

    Columns are labeled input / hidden k / output with their unit counts and activations. A
    layer wider than ``max_neurons`` shows its first and last neurons around a vertical
    ellipsis; its label still gives the true count.

    Layers that add no neurons and act feature by feature (BatchNormalization,
    LayerNormalization, Activation, Dropout) are drawn as what they are: a labelled band across
    the features of the column before them, in the model's order, each feature's line running
    straight through it; the next Dense layer is fully connected to its output.

    Parameters
    ----------
    model : Sequential
        Built, or with ``input_dim`` on its first layer.
    ax : matplotlib.axes.Axes, optional
        Draw here; by default a new figure is made.
    max_neurons : int
        Most neurons drawn per column (at least 3).
    title : str, optional
        Axes title (default: the widths of the neuron columns and the parameter count, e.g.
        ``"2-4-6-6-4-1 network, 103 parameters"``).

    Returns
    -------
    matplotlib.figure.Figure
        The figure; each drawn neuron is a :class:`matplotlib.patches.Circle` in ``ax.patches``,
        each band a :class:`matplotlib.patches.FancyBboxPatch` whose label is its layer's class
        name (``"BatchNormalization"``, ...).

    Examples
    --------
    >>> import backprop as bp
    >>> model = bp.Sequential([
    ...     bp.layers.Dense(4, input_dim=2), bp.layers.BatchNormalization(),
    ...     bp.layers.Activation("relu"), bp.layers.Dense(1, "sigmoid"),
    ... ])
    >>> ax = plot_architecture(model).axes[0]
    >>> ax.get_title()
    '2-4-1 network, 33 parameters'
    >>> [p.get_label() for p in ax.patches if type(p).__name__ == "FancyBboxPatch"]
    ['BatchNormalization', 'Activation']
    """
    mpl = _plt()
    max_neurons_int = as_int(max_neurons)
    if max_neurons_int is None or max_neurons_int < 3:
        raise ValueError(f"max_neurons must be an int >= 3, received {max_neurons!r}.")
    max_neurons = max_neurons_int
    elements = _columns(model)
    columns = [el for el in elements if el["kind"] == "neurons"]
    dx, radius = 2.6, 0.32
    xs = _layout_x(elements, dx)
    # the rows a column occupies: all its neurons, or max_neurons slots, the middle one an
    # ellipsis
    rows = [min(c["units"], max_neurons) for c in columns]
    tallest = max(rows)
    # a band spans the neurons it acts on, and is at least tall enough for its rotated label
    min_band = 2.4
    top = max((tallest - 1) / 2.0 + radius, min_band / 2.0)
    bottom = -top
    n_label_lines = max(2 + bool(c["activation"]) for c in columns)
    xlim = (-dx * 0.45, xs[-1] + dx * 0.45)
    ylim = (bottom - 0.55 - 0.42 * n_label_lines, top + 0.3)
    # the figure takes the diagram's proportions (the axes are equal-aspect), at about half an
    # inch per neuron, within a size that suits a page or a screen
    w, h = xlim[1] - xlim[0], ylim[1] - ylim[0]
    scale = min(0.5, 13.0 / w, 9.0 / h)
    fig, ax = _figure_and_axes(ax, (max(w * scale, 4.0) + 0.2, h * scale + 0.5))

    palette = {"input": "#8fd18f", "hidden": "#8fb8e8", "output": "#f4a582"}
    edge = {"input": "#2d7a2d", "hidden": "#2c5d9e", "output": "#b2452a"}
    last_column = max(i for i, el in enumerate(elements) if el["kind"] == "neurons")
    segments: list[list[tuple[float, float]]] = []
    # where the features of the current width come from: the x and row heights that the next
    # fully connected column's lines start from (a column, or the last band after it)
    source_x, source_rows = 0.0, np.zeros(0)
    run_start = 0.0  # the column a run of bands follows: its lines cross them all
    for i, (el, x) in enumerate(zip(elements, xs, strict=True)):
        if el["kind"] == "band":
            face, edgecolor, linestyle = _BAND_STYLES[el["style"]]
            half = max((source_rows.max() - source_rows.min()) / 2.0 + radius + 0.18, min_band / 2)
            mid = (source_rows.max() + source_rows.min()) / 2.0
            band_w = 0.5
            ax.add_patch(
                mpl.patches.FancyBboxPatch(
                    (x - band_w / 2, mid - half),
                    band_w,
                    2 * half,
                    boxstyle="round,pad=0,rounding_size=0.12",
                    facecolor=face,
                    edgecolor=edgecolor,
                    linewidth=1.3,
                    linestyle=linestyle,
                    zorder=2,
                    label=el["layer"],
                )
            )
            ax.text(
                x,
                mid,
                el["text"],
                rotation=90,
                ha="center",
                va="center",
                fontsize=8.5,
                color=edgecolor,
                zorder=4,
            )
            source_x = x
            continue
        role = "input" if i == 0 else "output" if i == last_column else "hidden"
        el["role"] = role
        n_rows = min(el["units"], max_neurons)
        ys = (np.arange(n_rows) - (n_rows - 1) / 2.0)[::-1]
        if el["units"] > n_rows:
            gap = n_rows // 2
            # the middle slot shows the ellipsis: three dots, not a neuron
            ax.plot(
                [x] * 3,
                ys[gap] + np.array([-0.22, 0.0, 0.22]),
                ls="none",
                marker="o",
                ms=2.5,
                color="0.25",
                zorder=4,
            )
            ys = np.delete(ys, gap)
        for yc in ys:
            ax.add_patch(
                mpl.patches.Circle(
                    (x, yc),
                    radius,
                    facecolor=palette[role],
                    edgecolor=edge[role],
                    linewidth=1.4,
                    zorder=3,
                )
            )
        if i > 0:
            # every feature line crosses the bands since the last column, then every feature
            # reaches every neuron of this column
            if source_x > run_start:
                segments += [[(run_start, ya), (source_x, ya)] for ya in source_rows]
            segments += [[(source_x, ya), (x, yb)] for ya in source_rows for yb in ys]
        source_x, source_rows, run_start = x, ys, x
    if source_x > run_start:  # bands after the last column
        segments += [[(run_start, ya), (source_x, ya)] for ya in source_rows]
    # a LineCollection is one artist however many edges there are
    ax.add_collection(
        mpl.collections.LineCollection(segments, colors="0.55", linewidths=0.6, alpha=0.6, zorder=1)
    )

    hidden = 0
    for el, x in zip(elements, xs, strict=True):
        if el["kind"] != "neurons":
            continue
        if el["role"] == "input":
            name = "input"
        elif el["role"] == "output":
            name = "output"
        else:
            hidden += 1
            name = f"hidden {hidden}"
        lines = [name, f"{el['units']} unit" + ("s" if el["units"] != 1 else "")]
        if el["activation"]:
            lines.append(el["activation"])
        ax.text(
            x,
            bottom - 0.45,
            "\n".join(lines),
            ha="center",
            va="top",
            fontsize=10,
            color=edge[el["role"]],
            fontweight="bold" if el["role"] != "hidden" else "normal",
        )
    widths = "-".join(str(c["units"]) for c in columns)
    if title is None:
        built = getattr(model, "built", False)
        n_params = model.count_params() if built else sum(el.get("params", 0) for el in elements)
        title = f"{widths} network, {n_params:,} parameters"
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.axis("off")
    return fig


# ---------------------------------------------------------------------------------------------
# Gradient descent on a loss surface


def _bowl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a * a + 1.6 * a * b + b * b


def _bowl_grad(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return 2.0 * a + 1.6 * b, 1.6 * a + 2.0 * b


def _rosenbrock(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (1.0 - a) ** 2 + 100.0 * (b - a * a) ** 2


def _rosenbrock_grad(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return -2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)


class _Surface(NamedTuple):
    """A built-in loss surface and the defaults that make a telling picture of it."""

    title: str
    loss: Callable[[Any, Any], Any]
    grad: Callable[[Any, Any], tuple[Any, Any]]
    start: tuple[float, float]
    learning_rate: float
    steps: int
    extent: tuple[float, float, float, float]
    minimum: tuple[float, float]
    log_scale: bool  # draw log10 L: the loss spans decades
    view: tuple[float, float]  # elevation and azimuth of the 3-D panel


_SURFACES = {
    "bowl": _Surface(
        "a tilted bowl", _bowl, _bowl_grad, (-2.4, 0.4), 0.5, 30, (-3.0, 3.0, -3.0, 3.0),
        (0.0, 0.0), False, (35, -60),
    ),
    # seen along its valley: from the side, the near wall hides the floor and the path
    "rosenbrock": _Surface(
        "the Rosenbrock function", _rosenbrock, _rosenbrock_grad, (-1.2, 1.0), 1.5e-3, 4000,
        (-2.0, 2.0, -1.0, 3.0), (1.0, 1.0), True, (45, -110),
    ),
}  # fmt: skip


def _gradient_descent(
    grad: Callable[[Any, Any], tuple[Any, Any]], start: Sequence[float], lr: float, steps: int
) -> np.ndarray:
    """Plain gradient descent ``w <- w - lr * grad(w)``; returns the ``(steps + 1, 2)`` path."""
    path = np.empty((steps + 1, 2))
    path[0] = start
    for t in range(steps):
        # a diverging run overflows: that is reported below, as the error it is, not warned
        with np.errstate(over="ignore", invalid="ignore"):
            g = np.asarray(grad(path[t, 0], path[t, 1]), dtype=np.float64)
            path[t + 1] = path[t] - lr * g
        if not np.all(np.isfinite(path[t + 1])):
            raise ValueError(
                f"gradient descent diverged at step {t + 1} with learning_rate={lr}: "
                "use a smaller learning rate."
            )
    return path


def plot_loss_surface(
    loss: str | Callable[[np.ndarray, np.ndarray], np.ndarray] = "bowl",
    *,
    grad: Callable[[Any, Any], tuple[Any, Any]] | None = None,
    start: tuple[float, float] | None = None,
    learning_rate: float | None = None,
    steps: int | None = None,
    extent: tuple[float, float, float, float] | None = None,
    surface: bool = True,
    ax: Axes | None = None,
    resolution: int = 150,
) -> Figure:
    """Gradient descent on a two-parameter loss: the surface, its contours and the path.

    Built-in losses of the parameters ``(w1, w2)``:

    - ``"bowl"``: the tilted quadratic ``L = w1^2 + 1.6 w1 w2 + w2^2`` (minimum 0 at the
      origin). Its Hessian has eigenvalues 3.6 across the valley and 0.4 along it, so a step
      that is fast along the valley overshoots across it: the path zigzags down.
    - ``"rosenbrock"``: ``L = (1 - w1)^2 + 100 (w2 - w1^2)^2`` (minimum 0 at ``(1, 1)``), a
      curved, flat-bottomed valley where gradient descent is slow.

    Each step is ``w <- w - learning_rate * dL/dw``.

    Parameters
    ----------
    loss : {"bowl", "rosenbrock"} or callable
        A built-in loss, or ``f(w1, w2)`` that works elementwise on NumPy arrays (then ``grad``,
        ``start``, ``learning_rate``, ``steps`` and ``extent`` are required).
    grad : callable, optional
        ``grad(w1, w2) -> (dL/dw1, dL/dw2)`` for a custom loss.
    start : (float, float), optional
        The starting parameters (built-ins have a default).
    learning_rate : float, optional
        Step size (bowl 0.5, rosenbrock 1.5e-3 by default).
    steps : int, optional
        Number of gradient steps (bowl 30, rosenbrock 4000 by default).
    extent : (w1_min, w1_max, w2_min, w2_max), optional
        The window drawn.
    surface : bool
        Add the 3-D surface panel next to the contour panel (ignored when ``ax`` is given).
    ax : matplotlib.axes.Axes, optional
        Draw the contour panel here; by default a new figure is made.
    resolution : int
        Grid points along each axis of the contours.

    Returns
    -------
    matplotlib.figure.Figure
        The contour panel (filled contours, the path with markers and arrows, start, end and
        minimum), preceded by the 3-D surface with the same path when ``surface``.
    """
    mpl = _plt()
    minimum = None
    if isinstance(loss, str):
        if loss not in _SURFACES:
            raise ValueError(f"Unknown loss surface {loss!r}. Expected one of {sorted(_SURFACES)}.")
        spec = _SURFACES[loss]
        name, f, log_scale, view, minimum = (
            spec.title,
            spec.loss,
            spec.log_scale,
            spec.view,
            spec.minimum,
        )
        grad = grad or spec.grad
        start = start if start is not None else spec.start
        learning_rate = learning_rate if learning_rate is not None else spec.learning_rate
        steps = steps if steps is not None else spec.steps
        extent = extent if extent is not None else spec.extent
    elif callable(loss):
        missing = [
            k
            for k, v in {
                "grad": grad,
                "start": start,
                "learning_rate": learning_rate,
                "steps": steps,
                "extent": extent,
            }.items()
            if v is None
        ]
        if missing:
            raise ValueError(f"A custom loss needs {', '.join(missing)} as well.")
        name, f, log_scale = getattr(loss, "__name__", "custom loss"), loss, False
        view = (35, -60)
    else:
        raise TypeError(
            f"loss must be 'bowl', 'rosenbrock' or a callable, received {type(loss).__name__}."
        )
    steps_int, lr = as_int(steps), as_float(learning_rate)
    if steps_int is None or steps_int < 1:
        raise ValueError(f"steps must be an int >= 1, received {steps!r}.")
    # "not 0 < lr" refuses NaN as well; bools are refused like everywhere else
    if lr is None or not 0 < lr < math.inf:
        raise ValueError(f"learning_rate must be a positive number, received {learning_rate!r}.")
    steps = steps_int
    resolution = _check_resolution(resolution)

    path = _gradient_descent(grad, start, lr, steps)
    w1 = np.linspace(extent[0], extent[1], resolution)
    w2 = np.linspace(extent[2], extent[3], resolution)
    A, B = np.meshgrid(w1, w2)
    L = np.asarray(f(A, B), dtype=np.float64)
    path_loss = np.asarray(f(path[:, 0], path[:, 1]), dtype=np.float64)

    if ax is not None:
        fig, ax2d, ax3d = _root_figure(ax), ax, None
    else:
        fig = _new_figure((12.0, 5.2) if surface else (6.4, 5.2))
        ax3d = fig.add_subplot(1, 2, 1, projection="3d") if surface else None
        ax2d = fig.add_subplot(1, 2, 2) if surface else fig.add_subplot()

    ticker = mpl.ticker.MaxNLocator(nbins=20)
    if log_scale:
        # a loss spanning decades is drawn as log10 L (floored at 1e-3): on a linear scale its
        # valley floor, where gradient descent crawls, would be one flat color
        D, label = np.log10(np.maximum(L, 1e-3)), "$\\log_{10} L(w_1, w_2)$"
    else:
        D, label = L, "$L(w_1, w_2)$"
    levels = ticker.tick_values(float(D.min()), float(D.max()))
    cs = ax2d.contourf(A, B, D, levels=levels, cmap="viridis", extend="neither")
    ax2d.contour(A, B, D, levels=levels[::2], colors="white", linewidths=0.5, alpha=0.5)
    fig.colorbar(cs, ax=ax2d, shrink=0.9, label=label)

    # markers and arrows on at most ~40 points: thousands of steps would otherwise be a smear
    stride = max(1, math.ceil(steps / 40))
    idx = np.unique(np.append(np.arange(0, steps + 1, stride), steps))
    shown = path[idx]
    ax2d.plot(path[:, 0], path[:, 1], color="#ff5a36", lw=1.4, zorder=3, label="gradient descent")
    ax2d.plot(shown[:, 0], shown[:, 1], ls="none", marker="o", ms=3.5, color="#ff5a36", zorder=4)
    ax2d.quiver(
        shown[:-1, 0],
        shown[:-1, 1],
        np.diff(shown[:, 0]),
        np.diff(shown[:, 1]),
        angles="xy",
        scale_units="xy",
        scale=1.0,
        color="#ff5a36",
        width=0.004,
        zorder=4,
    )
    ax2d.plot(
        *path[0],
        marker="o",
        ms=9,
        color="white",
        mec="k",
        ls="none",
        zorder=5,
        label=f"start, L = {path_loss[0]:.3g}",
    )
    ax2d.plot(
        *path[-1],
        marker="X",
        ms=10,
        color="#ff5a36",
        mec="k",
        ls="none",
        zorder=5,
        label=f"after {steps} steps, L = {path_loss[-1]:.3g}",
    )
    if minimum is not None:
        ax2d.plot(
            *minimum, marker="*", ms=14, color="gold", mec="k", ls="none", zorder=5, label="minimum"
        )
    ax2d.set_xlim(extent[0], extent[1])
    ax2d.set_ylim(extent[2], extent[3])
    ax2d.set_xlabel("$w_1$")
    ax2d.set_ylabel("$w_2$")
    ax2d.set_title(f"Gradient descent on {name}, learning rate {learning_rate:g}")
    ax2d.legend(loc="best", fontsize=8, framealpha=0.9)

    if ax3d is not None:
        # a coarser mesh is enough for the surface and keeps the 3-D render fast
        step = max(1, resolution // 60)
        # log10(1 + L): the log scale without the spikes log10 L has in a narrow valley
        Ls = np.log10(1.0 + L) if log_scale else L
        ax3d.plot_surface(
            A[::step, ::step],
            B[::step, ::step],
            Ls[::step, ::step],
            cmap="viridis",
            norm=None,
            alpha=0.75,
            linewidth=0,
            antialiased=True,
        )
        pz = np.log10(1.0 + path_loss) if log_scale else path_loss
        ax3d.plot(
            shown[:, 0], shown[:, 1], pz[idx], color="#ff5a36", marker="o", ms=3, lw=1.5, zorder=5
        )
        ax3d.set_xlabel("$w_1$")
        ax3d.set_ylabel("$w_2$")
        ax3d.set_zlabel("$\\log_{10}(1 + L)$" if log_scale else "$L$")
        ax3d.set_title("Loss surface")
        for axis in (ax3d.xaxis, ax3d.yaxis, ax3d.zaxis):  # fewer ticks: none overlap in 3-D
            axis.set_major_locator(mpl.ticker.MaxNLocator(nbins=5))
        ax3d.view_init(elev=view[0], azim=view[1])
    return fig


# ---------------------------------------------------------------------------------------------
# Convolution: the sliding window, the learned filters, the feature maps

# a 5x5 image with a bright vertical bar, and a kernel that answers to vertical edges (positive
# where the left column is brighter than the right): small integers, so that every product of
# the highlighted window can be checked by eye
_DEFAULT_IMAGE = np.array(
    [
        [0, 1, 2, 1, 0],
        [0, 1, 3, 1, 0],
        [0, 2, 3, 1, 0],
        [0, 1, 2, 1, 0],
        [0, 1, 2, 2, 0],
    ],
    dtype=np.float64,
)
_DEFAULT_KERNEL = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float64)
_WINDOW_COLOR = "#e6550d"  # the window, the kernel's frame and the output cell: one color
_SIGNED_CMAP = "RdBu_r"  # weights and signed outputs: white at 0, red > 0, blue < 0


def _grid(a: Any, name: str, what: str) -> np.ndarray:
    """``a`` on the host as a finite 2-D float64 array, or a ValueError saying what was wanted."""
    try:
        g = np.asarray(to_numpy(a), dtype=np.float64)
    except (TypeError, ValueError):
        g = None
    if g is None or g.ndim != 2 or 0 in g.shape or not np.all(np.isfinite(g)):
        shape = None if g is None else g.shape
        raise ValueError(
            f"plot_convolution expected {name} to be {what}: a 2-D array of finite numbers "
            f"(one channel), received {type(a).__name__} of shape {shape}."
        )
    return g


def _cell_text(v: float) -> str:
    """A cell's value as printed in the figure: integers without a decimal point."""
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"


def _annotate_cells(ax: Axes, values: np.ndarray, image: Any, x0: int = 0, y0: int = 0) -> None:
    """Write each value in its cell, dark or light against the cell's color."""
    hidden = np.ma.getmaskarray(values)  # masked cells (padding) are written by the caller
    for (r, c), v in np.ndenumerate(np.ma.getdata(values)):
        if hidden[r, c]:
            continue
        red, green, blue, _ = image.cmap(image.norm(v))
        light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.55
        ax.text(
            c + x0, r + y0, _cell_text(v), ha="center", va="center", fontsize=9,
            color="black" if light else "white",
        )  # fmt: skip


def _cell_axes(ax: Axes, rows: range, cols: range) -> None:
    """Integer ticks at the cells' centres (row 0 on top), grid lines between the cells."""
    ax.set_xticks(list(cols))
    ax.set_yticks(list(rows))
    ax.set_xticks([c - 0.5 for c in [*cols, cols[-1] + 1]], minor=True)
    ax.set_yticks([r - 0.5 for r in [*rows, rows[-1] + 1]], minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="both", length=0, labelsize=8)


def plot_convolution(
    x: Any = None,
    kernel: Any = None,
    strides: int | tuple[int, int] = 1,
    padding: str = "valid",
    position: tuple[int, int] = (0, 0),
    title: str | None = None,
) -> Figure:
    """One step of a convolution: the window on the input, the kernel, the output cell.

    Draws ``y[p, q] = sum_{i, j} x_pad[sh*p + i, sw*q + j] * W[i, j]`` for one output cell
    ``(p, q) = position``, as ``Conv2D`` computes it for one input and one output channel (a
    cross-correlation, as in every framework): the input with the window highlighted, the
    kernel, and the whole output with the cell highlighted. With ``padding="same"`` the zeros
    around the input are drawn as hatched cells, split as TensorFlow and ``Conv2D`` split them.

    Parameters
    ----------
    x : array_like, shape (h, w), optional
        One channel of an input image (default: a 5x5 image with a vertical bar).
    kernel : array_like, shape (kh, kw), optional
        The weights ``W`` (default: a 3x3 vertical-edge kernel, columns 1, 0, -1).
    strides : int or pair of int
        ``(sh, sw)``, the step between windows.
    padding : {"valid", "same"}
        As in ``Conv2D``.
    position : pair of int
        ``(p, q)``, the output cell whose window is drawn.
    title : str, optional
        Figure title (default: the sum for the drawn cell, e.g. ``"y[0, 1] = 3"``).

    Returns
    -------
    matplotlib.figure.Figure
        Three axes titled ``"input x"``, ``"kernel W"`` and ``"output y"``. The input axes'
        cell ``(r, c)`` is centred at ``(c, r)`` (padding at -1, h, ...); its window is the
        :class:`matplotlib.patches.Rectangle` with gid ``"window"``, and each padded zero a
        rectangle with gid ``"padding"``; the output's cell is the rectangle with gid
        ``"cell"``. Each grid is an image whose data are the values (padding masked).

    Raises
    ------
    ValueError
        If ``x`` or ``kernel`` is not a finite 2-D array, the kernel does not fit the (padded)
        input, or ``position`` lies outside the output.

    Examples
    --------
    >>> fig = plot_convolution(padding="same", strides=2, position=(0, 2))
    >>> [ax.get_title() for ax in fig.axes]
    ['input x', 'kernel W', 'output y']
    >>> fig.get_suptitle()
    'y[0, 2] = sum of x * W over the window = 2'
    """
    from .layers import _im2col

    mpl = _plt()
    x = _grid(_DEFAULT_IMAGE if x is None else x, "x", "one channel of an image, (h, w)")
    W = _grid(_DEFAULT_KERNEL if kernel is None else kernel, "kernel", "the weights, (kh, kw)")
    kernel_size = (W.shape[0], W.shape[1])
    sh, sw = _im2col.check_pair(strides, "strides", "plot_convolution")
    padding = _im2col.check_padding(padding, "plot_convolution")
    (h, w), (kh, kw) = x.shape, kernel_size
    oh, ow = _im2col.check_window_fits(
        h, w, kernel_size, (sh, sw), padding, "kernel", "plot_convolution"
    )
    pair = list(position) if isinstance(position, tuple | list) else []
    pq = [as_int(v) for v in pair] if len(pair) == 2 else []
    if len(pq) != 2 or any(v is None for v in pq) or not (0 <= pq[0] < oh and 0 <= pq[1] < ow):
        raise ValueError(
            f"plot_convolution expected position to be an output cell (p, q) with "
            f"0 <= p < {oh} and 0 <= q < {ow} (the output is {oh}x{ow}), received "
            f"position={position!r}."
        )
    p, q = pq
    top, bottom, left, right = _im2col.paddings(h, w, kernel_size, (sh, sw), padding)
    x_pad = np.pad(x, ((top, bottom), (left, right)))
    y = np.array(
        [
            [np.sum(x_pad[sh * a : sh * a + kh, sw * b : sw * b + kw] * W) for b in range(ow)]
            for a in range(oh)
        ]
    )
    hp, wp = x_pad.shape
    fig = _new_figure((1.0 + 0.55 * (wp + kw + ow), 1.2 + 0.55 * max(hp, kh, oh)))
    ax_x, ax_w, ax_y = fig.subplots(1, 3, width_ratios=[wp, kw, ow])
    big = max(hp, wp) <= 16  # write the values in the cells unless there are too many

    # input: the padded grid in the input's own coordinates (padding at -1, h, ...)
    is_pad = np.ones(x_pad.shape, dtype=bool)
    is_pad[top : top + h, left : left + w] = False
    shown = np.ma.masked_array(x_pad, mask=is_pad)
    extent = (-left - 0.5, w + right - 0.5, h + bottom - 0.5, -top - 0.5)
    lo, hi = float(x.min()), float(x.max())
    image = ax_x.imshow(shown, cmap="Greys", vmin=min(lo, 0.0), vmax=max(hi, lo + 1e-12) * 1.6,
                        extent=extent)  # fmt: skip
    for r, c in zip(*np.nonzero(is_pad), strict=True):
        ax_x.add_patch(
            mpl.patches.Rectangle(
                (c - left - 0.5, r - top - 0.5), 1, 1, facecolor="#f2f2f2", edgecolor="#bbbbbb",
                hatch="///", lw=0.5, gid="padding",
            )
        )  # fmt: skip
        if big:
            ax_x.text(c - left, r - top, "0", ha="center", va="center", fontsize=8, color="0.45")
    if big:
        _annotate_cells(ax_x, shown, image, x0=-left, y0=-top)
    _cell_axes(ax_x, range(-top, h + bottom), range(-left, w + right))
    ax_x.add_patch(
        mpl.patches.Rectangle(
            (sw * q - left - 0.5, sh * p - top - 0.5), kw, kh, fill=False,
            edgecolor=_WINDOW_COLOR, lw=3, gid="window", zorder=5,
            clip_on=False,  # a window on the border is framed whole
        )
    )  # fmt: skip
    pads = f", padding {top}/{bottom} rows, {left}/{right} columns" if padding == "same" else ""
    ax_x.set_title("input x")
    ax_x.set_xlabel(f"{h}x{w}, strides ({sh}, {sw}){pads}", fontsize=8)

    # kernel
    m = max(float(np.max(np.abs(W))), 1e-12)
    image = ax_w.imshow(W, cmap=_SIGNED_CMAP, vmin=-1.6 * m, vmax=1.6 * m)
    if max(kh, kw) <= 16:
        _annotate_cells(ax_w, W, image)
    _cell_axes(ax_w, range(kh), range(kw))
    ax_w.add_patch(
        mpl.patches.Rectangle(
            (-0.5, -0.5), kw, kh, fill=False, edgecolor=_WINDOW_COLOR, lw=3, clip_on=False
        )
    )
    ax_w.set_title("kernel W")
    ax_w.set_xlabel(f"{kh}x{kw}", fontsize=8)

    # output
    m = max(float(np.max(np.abs(y))), 1e-12)
    image = ax_y.imshow(y, cmap=_SIGNED_CMAP, vmin=-1.6 * m, vmax=1.6 * m)
    if max(oh, ow) <= 16:
        _annotate_cells(ax_y, y, image)
    _cell_axes(ax_y, range(oh), range(ow))
    ax_y.add_patch(
        mpl.patches.Rectangle(
            (q - 0.5, p - 0.5), 1, 1, fill=False, edgecolor=_WINDOW_COLOR, lw=3, gid="cell",
            zorder=5, clip_on=False,
        )
    )  # fmt: skip
    ax_y.set_title("output y")
    ax_y.set_xlabel(f"{oh}x{ow}", fontsize=8)
    value = _cell_text(y[p, q])
    fig.suptitle(title or f"y[{p}, {q}] = sum of x * W over the window = {value}")
    if kh * kw <= 12:  # the products, one per window entry, in the window's row-major order
        window = x_pad[sh * p : sh * p + kh, sw * q : sw * q + kw]
        terms = [
            f"{_cell_text(a)}*" + (f"({_cell_text(b)})" if b < 0 else _cell_text(b))
            for a, b in zip(window.flat, W.flat, strict=True)
        ]
        fig.supxlabel(f"y[{p}, {q}] = " + " + ".join(terms) + f" = {value}", fontsize=9)
    return fig


def _panel_grid(panels: int, most: int) -> tuple[int, int]:
    """``(ncols, nrows)``: at most ``most`` columns, rows as evenly filled as they can be."""
    nrows = math.ceil(panels / most)
    return math.ceil(panels / nrows), nrows


def _layer_index(model: Any, layer: Any, function: str) -> int:
    """The index in ``model.layers`` of ``layer`` (an index, a name or the layer itself).

    None picks the model's first Conv2D.
    """
    from .layers import Conv2D

    layers = list(getattr(model, "layers", None) or [])
    if not layers:
        raise ValueError(f"{function} expected a model with layers, received {model!r}.")
    names = [lay.name for lay in layers]
    if layer is None:
        found = [i for i, lay in enumerate(layers) if isinstance(lay, Conv2D)]
        if not found:
            raise ValueError(
                f"{function}: the model has no Conv2D layer (its layers: {', '.join(names)}); "
                "name the layer to draw with layer=..."
            )
        return found[0]
    index = as_int(layer)
    if index is not None:
        if not -len(layers) <= index < len(layers):
            raise ValueError(
                f"{function} expected layer to be an index into the model's {len(layers)} "
                f"layers, a layer name ({', '.join(names)}) or a layer of the model, received "
                f"layer={layer!r}."
            )
        return index % len(layers)
    for i, lay in enumerate(layers):
        if lay is layer or (isinstance(layer, str) and lay.name == layer):
            return i
    raise ValueError(
        f"{function} expected layer to be an index, a layer name ({', '.join(names)}) or a "
        f"layer of the model, received layer={layer!r}."
    )


def plot_filters(
    model_or_layer: Any,
    layer: Any = None,
    channel: int | str = "mean",
    ncols: int = 8,
    title: str | None = None,
) -> Figure:
    """The kernels of a Conv2D layer as small images, one per filter (output channel).

    Each panel is ``W[:, :, c, f]`` for filter ``f`` (Keras's layout ``(kh, kw, c_in,
    filters)``), for one input channel ``c`` or averaged over them; every panel shares one
    color scale, symmetric about 0 (white), so that filters can be compared.

    Parameters
    ----------
    model_or_layer : Sequential or Conv2D
        A built Conv2D layer, or a model holding one.
    layer : int or str or Layer, optional
        With a model: the layer (its index, its name, or the layer); default the first Conv2D.
    channel : int or "mean"
        The input channel drawn, or ``"mean"`` (default) for the average over the input
        channels (the same as channel 0 for greyscale images).
    ncols : int
        Most panels per row (the rows are filled evenly).
    title : str, optional
        Figure title (default: the layer's name, kernel size and channel).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per filter, titled with its index, whose image data are that filter's
        weights; and a colorbar.

    Raises
    ------
    ValueError
        If the layer is not a Conv2D, is not built, or ``channel`` is not an input channel.

    Examples
    --------
    >>> import backprop as bp
    >>> conv = bp.layers.Conv2D(4, 3, input_shape=(8, 8, 1))
    >>> model = bp.Sequential([conv], seed=0)
    >>> fig = plot_filters(model)
    >>> [ax.get_title() for ax in fig.axes if ax.images]
    ['0', '1', '2', '3']
    """
    from .layers import Conv2D, Layer

    if isinstance(model_or_layer, Layer):
        if layer is not None:
            raise ValueError(
                "plot_filters: layer=... picks a layer of a model; it was given the layer "
                f"{model_or_layer.name!r} itself. Leave layer out, or pass the model."
            )
        conv = model_or_layer
    else:
        conv = model_or_layer.layers[_layer_index(model_or_layer, layer, "plot_filters")]
    if not isinstance(conv, Conv2D):
        raise ValueError(
            f"plot_filters expected a Conv2D layer, whose kernels are images; received "
            f"{type(conv).__name__} {conv.name!r}. Pick a convolution, e.g. layer=0."
        )
    if not conv.built:
        raise ValueError(
            f"plot_filters: {conv.name!r} is not built, so it has no kernel yet: give the "
            "model's first layer input_shape=(h, w, c), or fit the model first."
        )
    ncols_int = as_int(ncols)
    if ncols_int is None or ncols_int < 1:
        raise ValueError(f"ncols must be an int >= 1, received {ncols!r}.")
    W = np.asarray(to_numpy(conv.params["W"]), dtype=np.float64)  # (kh, kw, c_in, filters)
    kh, kw, c_in, filters = W.shape
    index = as_int(channel)
    if isinstance(channel, str) and channel == "mean":
        images, which = W.mean(axis=2), f"averaged over the {c_in} input channels"
    elif index is not None and 0 <= index < c_in:
        images, which = W[:, :, index, :], f"input channel {index}"
    else:
        raise ValueError(
            f"plot_filters expected channel to be an input channel (0 to {c_in - 1}) or "
            f"'mean', received channel={channel!r}."
        )
    if c_in == 1:
        which = "one input channel"
    ncols, nrows = _panel_grid(filters, ncols_int)
    fig = _new_figure((0.4 + 1.15 * ncols + 0.8, 0.7 + 1.25 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    m = max(float(np.max(np.abs(images))), 1e-12)  # one symmetric scale for every filter
    image = None
    for f, ax in enumerate(axes.flat):
        if f >= filters:
            ax.remove()
            continue
        image = ax.imshow(images[:, :, f], cmap=_SIGNED_CMAP, vmin=-m, vmax=m)
        ax.set_title(str(f), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    fig.suptitle(title or f"Filters of {conv.name} ({filters} filters, {kh}x{kw}, {which})")
    return fig


def plot_feature_maps(
    model: Any,
    x: Any,
    layer: Any = None,
    ncols: int = 8,
    show_input: bool = True,
    title: str | None = None,
) -> Figure:
    """The feature maps of one image after a layer: one panel per channel.

    Runs the model's layers up to and including ``layer`` on ``x`` in inference mode (as
    ``predict`` does: dropout off, the moving statistics of batch normalization) and draws each
    channel of the result as an image, all on one color scale so that channels compare.

    Parameters
    ----------
    model : Sequential
        A built model whose input is images, ``input_shape=(h, w, c)``.
    x : array_like
        One image, ``(h, w, c)`` as the model's ``input_shape``, a batch of one
        ``(1, h, w, c)``, or ``(h, w)`` when ``c`` is 1.
    layer : int or str or Layer, optional
        The layer after which the maps are taken (its index, its name, or the layer); it must
        output images ``(h', w', c')``. Default: the first Conv2D.
    ncols : int
        Most panels per row (the rows are filled evenly).
    show_input : bool
        Draw the input image first, in a panel titled ``"input"`` (the mean of its channels
        when it has more than one).
    title : str, optional
        Figure title (default: the layer's name and the maps' shape).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per channel, titled with its index, whose image data are that channel of the
        layer's output; the input's panel first (when ``show_input``); a colorbar.

    Raises
    ------
    ValueError
        If ``x`` is not one image of the model's input shape, or the layer's output is not
        images.

    Examples
    --------
    >>> import numpy as np
    >>> import backprop as bp
    >>> model = bp.Sequential([bp.layers.Conv2D(3, 3, input_shape=(8, 8, 1))], seed=0)
    >>> fig = plot_feature_maps(model, np.zeros((8, 8, 1)))
    >>> [ax.get_title() for ax in fig.axes if ax.images]
    ['input', '0', '1', '2']
    """
    shape = getattr(model, "input_shape", None)
    if not getattr(model, "layers", None) or shape is None or not model.built:
        raise ValueError(
            "plot_feature_maps needs a built model: give its first layer "
            "input_shape=(h, w, c), or fit it first."
        )
    shape = tuple(int(d) for d in shape)
    img = np.asarray(to_numpy(x), dtype=np.float64)
    if img.shape == (1, *shape):
        img = img[0]
    elif len(shape) == 3 and shape[2] == 1 and img.shape == shape[:2]:
        img = img[:, :, None]
    if img.shape != shape or len(shape) != 3:
        raise ValueError(
            f"plot_feature_maps expected one image of the model's input shape {shape} (or a "
            f"batch of one, {(1, *shape)}), received shape {img.shape}. Reshape it, e.g. "
            f"x.reshape{shape}."
        )
    ncols_int = as_int(ncols)
    if ncols_int is None or ncols_int < 1:
        raise ValueError(f"ncols must be an int >= 1, received {ncols!r}.")
    index = _layer_index(model, layer, "plot_feature_maps")
    target = model.layers[index]
    out_shape = shape
    for lay in model.layers[: index + 1]:
        out_shape = tuple(lay.compute_output_shape(out_shape))
    if len(out_shape) != 3:
        raise ValueError(
            f"plot_feature_maps: {target.name!r} outputs {out_shape}, not images "
            "(height, width, channels); pick a convolution or pooling layer before it, "
            "e.g. layer=0."
        )
    with model.backend.activate():
        a = model.backend.asarray(img[None], dtype=model.dtype)
        for lay in model.layers[: index + 1]:
            a = lay.forward(a, training=False)
    maps = np.asarray(to_numpy(a), dtype=np.float64)[0]  # (h', w', c')
    channels = maps.shape[2]
    panels = channels + bool(show_input)
    ncols, nrows = _panel_grid(panels, ncols_int)
    fig = _new_figure((0.4 + 1.3 * ncols + 0.8, 0.7 + 1.4 * nrows))
    axes = list(fig.subplots(nrows, ncols, squeeze=False).flat)
    for ax in axes[panels:]:
        ax.remove()
    for ax in axes[:panels]:
        ax.set_xticks([])
        ax.set_yticks([])
    if show_input:
        ax = axes.pop(0)
        ax.imshow(img.mean(axis=2), cmap="Greys")
        ax.set_title("input" if img.shape[2] == 1 else "input (mean)", fontsize=9)
        ax.set_frame_on(True)
    lo, hi = float(maps.min()), float(maps.max())
    image = None
    for k in range(channels):
        image = axes[k].imshow(maps[:, :, k], cmap="viridis", vmin=lo, vmax=max(hi, lo + 1e-12))
        axes[k].set_title(str(k), fontsize=9)
    fig.colorbar(image, ax=axes[:channels], shrink=0.8, label="activation")
    oh, ow, _ = out_shape
    fig.suptitle(title or f"Feature maps after {target.name} ({channels} channels, {oh}x{ow})")
    return fig
