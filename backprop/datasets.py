"""Toy data sets and a train/test split, drawn on the host with NumPy from a seed.

The two-class pictures that make backpropagation visible (rings, moons, spirals, XOR, blobs)
plus :func:`train_test_split`, :func:`one_hot` and :func:`load_digits`; and the image sets
that convolutional networks start with, :func:`load_mnist` and :func:`load_fashion_mnist`, read
from their IDX files (downloaded once into a cache folder, checked against published SHA-256
hashes). Everything runs on the host in NumPy and returns NumPy arrays: ``model.fit`` moves the
data onto the model's backend once, so a data set never has to know where it will be trained.

Where scikit-learn has a function of the same name, the signature and the meaning of every
argument are the same (``make_circles``, ``make_moons``, ``make_blobs``, ``train_test_split``,
``load_digits``), and without noise and without shuffling the points are the very same. The
random draws are not: randomness here comes from a ``numpy.random.Generator`` rather than
scikit-learn's legacy ``RandomState``, so a seed gives a different (but just as reproducible)
sample than the same ``random_state`` does in scikit-learn.

Seeds
-----
Every random function takes ``seed`` (``random_state`` is accepted as an alias, so code
written for scikit-learn keeps working): an integer ``>= 0`` gives the same arrays on every
call and every machine; a ``numpy.random.Generator`` is drawn from (and advanced), so
consecutive calls give different samples from one reproducible stream; ``None`` draws fresh
entropy from the operating system.

Examples
--------
>>> X, y = make_circles(1000, factor=0.3, noise=0.1, seed=0)
>>> X.shape, y.shape, str(X.dtype), str(y.dtype)
((1000, 2), (1000,), 'float64', 'int64')
>>> Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.1, seed=42)
>>> len(Xtr), len(Xte)
(900, 100)
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import math
import numbers
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .backend import array_backend_name, to_numpy

__all__ = [
    "DownloadError",
    "load_digits",
    "load_fashion_mnist",
    "load_idx_dataset",
    "load_mnist",
    "make_blobs",
    "make_circles",
    "make_moons",
    "make_spirals",
    "make_xor",
    "one_hot",
    "read_idx",
    "train_test_split",
    "write_idx",
]

Seed = int | np.integer | np.random.Generator | None

# where scikit-learn keeps its copy of the digits, relative to the package
_DIGITS_FILE = ("datasets", "data", "digits.csv.gz")


# ---------------------------------------------------------------------------------------------
# Argument checks. Each raises TypeError for the wrong kind of value and ValueError for a value
# of the right kind out of range, naming the argument and echoing what was received.


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but n_samples=True is always a mistake
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if not _is_int(value):
        raise TypeError(
            f"{name} must be {what}, received {name}={value!r} ({type(value).__name__})."
        )
    if value < minimum:
        raise ValueError(f"{name} must be {what}, received {name}={value!r}.")
    return int(value)


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(
            f"{name} must be True or False, received {name}={value!r} ({type(value).__name__})."
        )
    return bool(value)


def _check_noise(noise: Any) -> float:
    """The standard deviation of the Gaussian noise; None means none (0.0)."""
    if noise is None:
        return 0.0
    if not _is_real(noise):
        raise TypeError(
            "noise must be a non-negative float or None, "
            f"received noise={noise!r} ({type(noise).__name__})."
        )
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(
            f"noise must be a non-negative finite float or None, received noise={noise!r}."
        )
    return float(noise)


def _check_positive_real(value: Any, name: str) -> float:
    if not _is_real(value):
        raise TypeError(
            f"{name} must be a positive float, received {name}={value!r} ({type(value).__name__})."
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite float, received {name}={value!r}.")
    return float(value)


def _rng(seed: Any, random_state: Any) -> np.random.Generator:
    """The generator for ``seed`` or its alias ``random_state`` (see the module docstring)."""
    name = "seed"
    if random_state is not None:
        if seed is not None:
            raise TypeError(
                "seed and random_state are the same argument (random_state is the "
                f"scikit-learn spelling); pass only one, received seed={seed!r} and "
                f"random_state={random_state!r}."
            )
        seed, name = random_state, "random_state"
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, np.random.Generator):
        return seed
    if _is_int(seed):
        if seed < 0:
            raise ValueError(f"{name} must be a non-negative integer, received {name}={seed!r}.")
        return np.random.default_rng(int(seed))
    hint = (
        " Legacy RandomState objects are not accepted; use np.random.default_rng(...)."
        if isinstance(seed, np.random.RandomState)
        else ""
    )
    raise TypeError(
        f"{name} must be a non-negative integer, a numpy.random.Generator or None, "
        f"received {name}={seed!r} ({type(seed).__name__}).{hint}"
    )


def _two_counts(n_samples: Any, names: tuple[str, str]) -> tuple[int, int]:
    """``n_samples`` as (first group, second group).

    An int splits in half, the second group taking the odd sample (as scikit-learn does); a
    pair is taken as is.
    """
    if isinstance(n_samples, tuple | list):
        if len(n_samples) != 2 or not all(_is_int(k) for k in n_samples):
            raise ValueError(
                f"n_samples must be a positive integer or a pair of integers ({names[0]}, "
                f"{names[1]}), received n_samples={n_samples!r}."
            )
        first, second = (int(k) for k in n_samples)
        if first < 0 or second < 0 or first + second < 1:
            raise ValueError(
                f"n_samples as a pair ({names[0]}, {names[1]}) must hold non-negative "
                f"integers with a positive sum, received n_samples={n_samples!r}."
            )
        return first, second
    if not _is_int(n_samples):
        raise TypeError(
            f"n_samples must be a positive integer or a pair of integers ({names[0]}, "
            f"{names[1]}), received n_samples={n_samples!r} ({type(n_samples).__name__})."
        )
    n = _check_int(n_samples, "n_samples")
    return n // 2, n - n // 2


def _finish(
    X: np.ndarray, y: np.ndarray, shuffle: bool, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    # noise is drawn last (scikit-learn's order too), so one seed gives the same order of
    # points with and without noise: changing only the noise changes only the positions
    if shuffle:
        order = rng.permutation(len(y))
        X, y = X[order], y[order]
    if noise > 0:
        X = X + rng.normal(scale=noise, size=X.shape)
    return X, y


def _labels(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


# ---------------------------------------------------------------------------------------------
# Generators


def make_circles(
    n_samples: int | tuple[int, int] = 100,
    *,
    shuffle: bool = True,
    noise: float | None = None,
    seed: Seed = None,
    factor: float = 0.8,
    random_state: Seed = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: a large one (class 0) around a small one (class 1).

    The points of each circle are evenly spaced in angle, starting at angle 0, which is what
    scikit-learn's ``make_circles`` does; without noise and without shuffling the two give the
    same arrays.

    Parameters
    ----------
    n_samples : int or tuple of (int, int), default=100
        The number of points; an odd one goes to the inner circle. A pair
        ``(n_outer, n_inner)`` gives each circle's count.
    shuffle : bool, default=True
        Shuffle the points; otherwise the outer circle comes first.
    noise : float or None, default=None
        Standard deviation of the Gaussian noise added to every coordinate (None or 0: none).
    seed : int, numpy.random.Generator or None, default=None
        Seed of the shuffle and the noise (see the module docstring).
    factor : float, default=0.8
        Radius of the inner circle, in ``[0, 1)``; the outer circle has radius 1.
    random_state : int, numpy.random.Generator or None, default=None
        Alias of ``seed``, for code written for scikit-learn.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, 2), float64
        The points.
    y : numpy.ndarray of shape (n_samples,), int64
        0 for the outer circle, 1 for the inner one.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or out of range.

    Examples
    --------
    >>> X, y = make_circles(6, shuffle=False, factor=0.5)
    >>> np.hypot(X[:, 0], X[:, 1]).round(6).tolist()
    [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    >>> y.tolist()
    [0, 0, 0, 1, 1, 1]
    """
    n_out, n_in = _two_counts(n_samples, ("n_outer", "n_inner"))
    shuffle = _check_bool(shuffle, "shuffle")
    noise = _check_noise(noise)
    if not _is_real(factor):
        raise TypeError(
            f"factor must be a float in [0, 1), received factor={factor!r} "
            f"({type(factor).__name__})."
        )
    if not 0 <= factor < 1:
        raise ValueError(f"factor must be a float in [0, 1), received factor={factor!r}.")
    rng = _rng(seed, random_state)

    # endpoint=False: with it the last point would repeat the first (angle 2*pi == 0)
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.column_stack(
        [
            np.concatenate([np.cos(t_out), np.cos(t_in) * factor]),
            np.concatenate([np.sin(t_out), np.sin(t_in) * factor]),
        ]
    )
    return _finish(X, _labels([n_out, n_in]), shuffle, noise, rng)


def make_moons(
    n_samples: int | tuple[int, int] = 100,
    *,
    shuffle: bool = True,
    noise: float | None = None,
    seed: Seed = None,
    random_state: Seed = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles of radius 1.

    Class 0 is the upper half circle centred at ``(0, 0)``; class 1 is the lower half circle
    centred at ``(1, 0.5)``. Each is sampled evenly in angle, both end points included, as in
    scikit-learn's ``make_moons`` (the same arrays without noise and without shuffling).

    Parameters
    ----------
    n_samples : int or tuple of (int, int), default=100
        The number of points; an odd one goes to the lower moon. A pair
        ``(n_upper, n_lower)`` gives each moon's count.
    shuffle : bool, default=True
        Shuffle the points; otherwise the upper moon comes first.
    noise : float or None, default=None
        Standard deviation of the Gaussian noise added to every coordinate (None or 0: none).
    seed : int, numpy.random.Generator or None, default=None
        Seed of the shuffle and the noise (see the module docstring).
    random_state : int, numpy.random.Generator or None, default=None
        Alias of ``seed``, for code written for scikit-learn.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, 2), float64
        The points.
    y : numpy.ndarray of shape (n_samples,), int64
        0 for the upper moon, 1 for the lower one.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or out of range.

    Examples
    --------
    >>> X, y = make_moons(6, shuffle=False)
    >>> X.round(3).tolist()
    [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, 0.5], [1.0, -0.5], [2.0, 0.5]]
    >>> y.tolist()
    [0, 0, 0, 1, 1, 1]
    """
    n_up, n_low = _two_counts(n_samples, ("n_upper", "n_lower"))
    shuffle = _check_bool(shuffle, "shuffle")
    noise = _check_noise(noise)
    rng = _rng(seed, random_state)

    t_up = np.linspace(0, np.pi, n_up)
    t_low = np.linspace(0, np.pi, n_low)
    X = np.column_stack(
        [
            np.concatenate([np.cos(t_up), 1 - np.cos(t_low)]),
            np.concatenate([np.sin(t_up), 1 - np.sin(t_low) - 0.5]),
        ]
    )
    return _finish(X, _labels([n_up, n_low]), shuffle, noise, rng)


def make_spirals(
    n_samples: int = 100,
    *,
    n_classes: int = 2,
    noise: float | None = 0.0,
    turns: float = 1.0,
    shuffle: bool = True,
    seed: Seed = None,
    random_state: Seed = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""``n_classes`` interleaved spiral arms around the origin, one class per arm.

    Arm ``j`` of ``k`` is the Archimedean spiral

    .. math:: r = 0.1 + 0.9\,t, \qquad \theta = 2\pi\,(\text{turns}\cdot t + j/k),

    sampled at evenly spaced ``t`` in ``[0, 1]``: the radius grows from 0.1 to 1 while the arm
    winds ``turns`` times, and the arms are rotated by ``1/k`` of a turn against each other.
    The arms start at radius 0.1 rather than 0 so that they do not all meet in one point.
    Without noise, neighbouring arms are ``0.9 / (turns * k)`` apart along every ray.

    Parameters
    ----------
    n_samples : int, default=100
        The total number of points, at least ``n_classes``; split as evenly as possible
        between the arms, the first ``n_samples % n_classes`` arms taking one more.
    n_classes : int, default=2
        The number of arms (classes), at least 1.
    noise : float or None, default=0.0
        Standard deviation of the Gaussian noise added to every coordinate (None or 0: none).
    turns : float, default=1.0
        How many full turns each arm makes, > 0; more turns make a harder problem.
    shuffle : bool, default=True
        Shuffle the points; otherwise arm 0 comes first, each arm from the inside out.
    seed : int, numpy.random.Generator or None, default=None
        Seed of the shuffle and the noise (see the module docstring).
    random_state : int, numpy.random.Generator or None, default=None
        Alias of ``seed``.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, 2), float64
        The points.
    y : numpy.ndarray of shape (n_samples,), int64
        The arm of each point, ``0 .. n_classes - 1``.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or out of range.

    Examples
    --------
    >>> X, y = make_spirals(300, n_classes=3, noise=0.05, turns=1.5, seed=0)
    >>> X.shape, np.bincount(y).tolist()
    ((300, 2), [100, 100, 100])
    >>> X, y = make_spirals(4, n_classes=2, shuffle=False)
    >>> np.hypot(X[:, 0], X[:, 1]).round(6).tolist()
    [0.1, 1.0, 0.1, 1.0]
    """
    n = _check_int(n_samples, "n_samples")
    k = _check_int(n_classes, "n_classes")
    if n < k:
        raise ValueError(
            "n_samples must be at least n_classes so that every arm gets a point, "
            f"received n_samples={n} and n_classes={k}."
        )
    noise = _check_noise(noise)
    turns = _check_positive_real(turns, "turns")
    shuffle = _check_bool(shuffle, "shuffle")
    rng = _rng(seed, random_state)

    counts = [n // k + (j < n % k) for j in range(k)]
    arms = []
    for j, m in enumerate(counts):
        t = np.linspace(0.0, 1.0, m)
        radius = 0.1 + 0.9 * t
        angle = 2 * np.pi * (turns * t + j / k)
        arms.append(np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]))
    return _finish(np.concatenate(arms), _labels(counts), shuffle, noise, rng)


def make_xor(
    n_samples: int = 100,
    *,
    noise: float | None = 0.0,
    shuffle: bool = True,
    seed: Seed = None,
    random_state: Seed = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Points in the four quadrants of the square ``[-1, 1]^2``, labelled by the XOR of signs.

    The label is 1 where the two coordinates have opposite signs (``x0 * x1 < 0``: the second
    and fourth quadrants) and 0 where they agree: the classic problem no linear model solves.
    The points are uniform within their quadrant and the quadrants hold equal shares (the
    first ``n_samples % 4`` quadrants, counted counter-clockwise from the first, one more), so
    an even ``n_samples`` gives exactly half of each class. No point lies on an axis.

    Parameters
    ----------
    n_samples : int, default=100
        The number of points.
    noise : float or None, default=0.0
        Standard deviation of the Gaussian noise added to every coordinate *after* labelling
        (None or 0: none). Noise can carry a point across an axis while it keeps the label of
        its quadrant, which acts as label noise near the axes.
    shuffle : bool, default=True
        Shuffle the points; otherwise they come quadrant by quadrant (I, II, III, IV).
    seed : int, numpy.random.Generator or None, default=None
        Seed of the positions, the shuffle and the noise (see the module docstring).
    random_state : int, numpy.random.Generator or None, default=None
        Alias of ``seed``.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, 2), float64
        The points.
    y : numpy.ndarray of shape (n_samples,), int64
        ``1`` where ``x0 * x1 < 0`` (before noise), else ``0``.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or out of range.

    Examples
    --------
    >>> X, y = make_xor(200, seed=0)
    >>> bool(np.all(y == (X[:, 0] * X[:, 1] < 0))), np.bincount(y).tolist()
    (True, [100, 100])
    """
    n = _check_int(n_samples, "n_samples")
    noise = _check_noise(noise)
    shuffle = _check_bool(shuffle, "shuffle")
    rng = _rng(seed, random_state)

    counts = [n // 4 + (q < n % 4) for q in range(4)]
    signs = np.repeat(np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]), counts, 0)
    # 1 - U[0, 1) lies in (0, 1]: no coordinate is exactly 0, so every label is well defined
    X = signs * (1.0 - rng.random((n, 2)))
    y = np.repeat(np.array([0, 1, 0, 1], dtype=np.int64), counts)
    return _finish(X, y, shuffle, noise, rng)


def make_blobs(
    n_samples: int | Any = 100,
    n_features: int = 2,
    *,
    centers: int | Any | None = None,
    cluster_std: float | Any = 1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    shuffle: bool = True,
    seed: Seed = None,
    return_centers: bool = False,
    random_state: Seed = None,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Isotropic Gaussian blobs, one class per blob (scikit-learn's ``make_blobs``).

    Parameters
    ----------
    n_samples : int or sequence of int, default=100
        An int is the total, split as evenly as possible between the centers (the first
        ``n_samples % n_centers`` take one more); a sequence gives each center's count.
    n_features : int, default=2
        The dimension of the points; ignored when ``centers`` is an array (its width wins).
    centers : int, array-like of shape (n_centers, n_features) or None, default=None
        The number of centers drawn uniformly in ``center_box``, or the centers themselves.
        None means 3 for an int ``n_samples`` and ``len(n_samples)`` for a sequence. With a
        sequence ``n_samples``, ``centers`` must be None or an array of ``len(n_samples)``
        rows.
    cluster_std : float or sequence of float, default=1.0
        The standard deviation of every blob, or one per blob (>= 0).
    center_box : tuple of (float, float), default=(-10.0, 10.0)
        The ``(min, max)`` box the random centers are drawn from.
    shuffle : bool, default=True
        Shuffle the points; otherwise they come blob by blob.
    seed : int, numpy.random.Generator or None, default=None
        Seed of the centers, the points and the shuffle (see the module docstring).
    return_centers : bool, default=False
        Also return the centers.
    random_state : int, numpy.random.Generator or None, default=None
        Alias of ``seed``, for code written for scikit-learn.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, n_features), float64
        The points.
    y : numpy.ndarray of shape (n_samples,), int64
        The blob of each point, ``0 .. n_centers - 1``.
    centers : numpy.ndarray of shape (n_centers, n_features), float64
        Only with ``return_centers=True``.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type, shape or range.

    Examples
    --------
    >>> X, y = make_blobs(10, 3, centers=2, seed=0)
    >>> X.shape, np.bincount(y).tolist()
    ((10, 3), [5, 5])
    >>> X, y, c = make_blobs([2, 3], centers=[[0.0, 0.0], [5.0, 5.0]], seed=0,
    ...                      return_centers=True)
    >>> X.shape, np.bincount(y).tolist(), c.tolist()
    ((5, 2), [2, 3], [[0.0, 0.0], [5.0, 5.0]])
    """
    per_center: list[int] | None = None
    if isinstance(n_samples, np.ndarray) and n_samples.ndim == 0:
        n_samples = n_samples.item()
    if _is_int(n_samples):
        total = _check_int(n_samples, "n_samples")
    elif isinstance(n_samples, list | tuple | np.ndarray):
        if (
            len(n_samples) == 0
            or not all(_is_int(k) and k >= 0 for k in n_samples)
            or sum(n_samples) < 1
        ):
            raise ValueError(
                "n_samples must be a positive integer or a non-empty sequence of non-negative "
                f"integers (one count per center), received n_samples={n_samples!r}."
            )
        per_center = [int(k) for k in n_samples]
    else:
        raise TypeError(
            "n_samples must be a positive integer or a sequence of integers, "
            f"received n_samples={n_samples!r} ({type(n_samples).__name__})."
        )
    n_features = _check_int(n_features, "n_features")
    shuffle = _check_bool(shuffle, "shuffle")
    return_centers = _check_bool(return_centers, "return_centers")
    if (
        not isinstance(center_box, tuple | list)
        or len(center_box) != 2
        or not all(_is_real(v) and math.isfinite(v) for v in center_box)
        or not center_box[0] < center_box[1]
    ):
        raise ValueError(
            "center_box must be a pair of finite floats (min, max) with min < max, "
            f"received center_box={center_box!r}."
        )
    rng = _rng(seed, random_state)

    if centers is None:
        centers = 3 if per_center is None else len(per_center)
    elif _is_int(centers) and per_center is not None:
        raise ValueError(
            "centers must be None or an array of shape (len(n_samples), n_features) when "
            f"n_samples is a sequence, received centers={centers!r} with "
            f"n_samples={n_samples!r}."
        )
    if _is_int(centers):
        n_centers = _check_int(centers, "centers")
        # drawn before anything else, so a seed fixes the centers whatever the other options
        center_arr = rng.uniform(center_box[0], center_box[1], size=(n_centers, n_features))
    else:
        try:
            center_arr = np.asarray(centers, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                "centers must be a positive integer, an array of shape (n_centers, "
                f"n_features) or None, received centers={centers!r}."
            ) from None
        if center_arr.ndim != 2 or center_arr.shape[0] < 1 or center_arr.shape[1] < 1:
            raise ValueError(
                "centers must be a positive integer or an array of shape (n_centers, "
                f"n_features), received centers={centers!r} of shape {center_arr.shape}."
            )
        if not np.all(np.isfinite(center_arr)):
            raise ValueError("centers must be finite, received NaN or infinite values.")
        n_centers, n_features = center_arr.shape
        if per_center is not None and n_centers != len(per_center):
            raise ValueError(
                f"centers must have one row per entry of n_samples: received {n_centers} "
                f"centers and {len(per_center)} counts (n_samples={n_samples!r})."
            )

    if _is_real(cluster_std):
        stds = np.full(n_centers, float(cluster_std))
    else:
        try:
            stds = np.asarray(cluster_std, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                "cluster_std must be a non-negative float or a sequence of them (one per "
                f"center), received cluster_std={cluster_std!r}."
            ) from None
        if stds.shape != (n_centers,):
            raise ValueError(
                f"cluster_std must be a float or a sequence of {n_centers} floats (one per "
                f"center), received cluster_std={cluster_std!r}."
            )
    if not np.all(np.isfinite(stds) & (stds >= 0)):
        raise ValueError(
            f"cluster_std must be non-negative and finite, received cluster_std={cluster_std!r}."
        )

    if per_center is None:
        per_center = [total // n_centers + (i < total % n_centers) for i in range(n_centers)]
    X = np.concatenate(
        [
            rng.normal(loc=center_arr[i], scale=stds[i], size=(m, n_features))
            for i, m in enumerate(per_center)
        ]
    )
    X, y = _finish(X, _labels(per_center), shuffle, 0.0, rng)
    if return_centers:
        return X, y, center_arr
    return X, y


# ---------------------------------------------------------------------------------------------
# Splitting


def _n_rows(a: Any, position: int) -> int:
    shape = getattr(a, "shape", None)
    if shape is not None:
        if len(shape) == 0:
            raise TypeError(
                f"arrays[{position}] must have at least one dimension (samples are rows), "
                f"received a 0-d {type(a).__name__}."
            )
        return int(shape[0])
    if isinstance(a, list | tuple):
        return len(a)
    raise TypeError(
        f"arrays[{position}] must be an array or a list (samples are rows), "
        f"received {type(a).__name__}."
    )


def _take(a: Any, idx: np.ndarray) -> Any:
    """The rows ``idx`` of ``a``, as the same kind of container (lists stay lists)."""
    if isinstance(a, np.ndarray):
        return a[idx]
    if isinstance(a, list | tuple):
        return [a[i] for i in idx]
    if array_backend_name(a) is not None:
        # an array of another Array API library (torch, cupy, jax...): index it where it lives
        from array_api_compat import array_namespace, device

        xp = array_namespace(a)
        return xp.take(a, xp.asarray(idx, device=device(a)), axis=0)
    return np.asarray(a)[idx]


def _check_size(value: Any, name: str, n: int) -> None:
    if value is None:
        return
    expected = f"a float in (0, 1) or an integer in [1, {n - 1}] (n_samples={n})"
    if _is_int(value):
        if not 1 <= value < n:
            raise ValueError(f"{name} must be {expected}, received {name}={value!r}.")
    elif _is_real(value):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be {expected}, received {name}={value!r}.")
    else:
        raise TypeError(
            f"{name} must be {expected} or None, received {name}={value!r} "
            f"({type(value).__name__})."
        )


def _split_sizes(n: int, test_size: Any, train_size: Any) -> tuple[int, int]:
    """(n_train, n_test) as scikit-learn counts them.

    A test fraction rounds up, a train fraction rounds down, a missing size is the complement
    of the other.
    """
    _check_size(test_size, "test_size", n)
    _check_size(train_size, "train_size", n)
    if test_size is None and train_size is None:
        test_size = 0.25
    fractions = [s for s in (test_size, train_size) if _is_real(s) and not _is_int(s)]
    if len(fractions) == 2 and sum(fractions) > 1:
        raise ValueError(
            "test_size + train_size must be at most 1 as fractions, received "
            f"test_size={test_size!r} and train_size={train_size!r} "
            f"(sum {test_size + train_size!r})."
        )

    def count(size: Any, rounding: Any) -> int | None:
        if size is None:
            return None
        return int(size) if _is_int(size) else int(rounding(size * n))

    n_test = count(test_size, math.ceil)
    n_train = count(train_size, math.floor)
    if n_train is None:
        n_train = n - n_test
    if n_test is None:
        n_test = n - n_train
    if n_train + n_test > n:
        raise ValueError(
            f"train and test sets together must fit in the n_samples={n} samples, received "
            f"test_size={test_size!r} and train_size={train_size!r} giving {n_test} + "
            f"{n_train} = {n_train + n_test}. Reduce test_size and/or train_size."
        )
    if n_train == 0:
        raise ValueError(
            f"with n_samples={n}, test_size={test_size!r} and train_size={train_size!r} the "
            "train set would be empty. Increase train_size or decrease test_size."
        )
    return n_train, n_test


def _share(counts: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``n_draws`` between classes of sizes ``counts`` in proportion.

    Largest remainders first, ties broken at random so no class is favoured by its position.
    """
    exact = counts / counts.sum() * n_draws
    share = np.floor(exact).astype(np.int64)
    left = n_draws - int(share.sum())
    if left > 0:
        # np.lexsort sorts by the last key first: largest remainder, then a random tie-break
        order = np.lexsort((rng.random(len(counts)), -(exact - share)))
        share[order[:left]] += 1
    return share


def _stratified(
    labels: np.ndarray, n_train: int, n_test: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if labels.ndim == 2:
        # multi-label rows: one class per distinct row
        labels = np.unique(labels, axis=0, return_inverse=True)[1].reshape(-1)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if counts.min() < 2:
        raise ValueError(
            "stratify needs at least 2 samples of every class, received classes with a "
            f"single sample: {classes[counts < 2].tolist()}."
        )
    for name, size in (("train", n_train), ("test", n_test)):
        if size < len(classes):
            raise ValueError(
                f"a stratified {name} set needs at least one sample per class: the {name} "
                f"set would hold {size} samples for {len(classes)} classes. "
                f"Increase {name}_size."
            )
    n_tr = _share(counts, n_train, rng)
    n_te = _share(counts - n_tr, n_test, rng)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    train, test = [], []
    for rows, a, b in zip(members, n_tr, n_te, strict=True):
        rows = rng.permutation(rows)
        train.append(rows[:a])
        test.append(rows[a : a + b])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def train_test_split(
    *arrays: Any,
    test_size: float | int | None = None,
    train_size: float | int | None = None,
    seed: Seed = None,
    shuffle: bool = True,
    stratify: Any = None,
    random_state: Seed = None,
) -> list[Any]:
    """Split arrays into random train and test subsets (scikit-learn's ``train_test_split``).

    The sizes are exactly scikit-learn's: a float ``test_size`` is a fraction rounded up, a
    float ``train_size`` a fraction rounded down, an int is a count, a missing size is the
    complement of the other, and with neither the test set is 25% (rounded up).

    Parameters
    ----------
    *arrays : array-like
        Arrays or lists of the same length (first dimension). NumPy arrays come back as NumPy
        arrays, lists as lists, arrays of another Array API library (CuPy, PyTorch...) on
        their own device.
    test_size : float or int or None, default=None
        A fraction in ``(0, 1)`` or a count in ``[1, n_samples - 1]``.
    train_size : float or int or None, default=None
        Likewise; when both are given their sets may leave samples unused.
    seed : int, numpy.random.Generator or None, default=None
        Seed of the shuffle (see the module docstring).
    shuffle : bool, default=True
        Shuffle before splitting; ``False`` takes the first ``n_train`` rows for training and
        the next ``n_test`` for testing (and cannot be stratified).
    stratify : array-like of shape (n_samples,) or (n_samples, n_labels) or None, default=None
        Class labels whose proportions both sets keep (as closely as whole samples allow;
        every class needs at least 2 samples). Typically ``y``.
    random_state : int, numpy.random.Generator or None, default=None
        Alias of ``seed``, for code written for scikit-learn.

    Returns
    -------
    list
        ``[a_train, a_test, b_train, b_test, ...]``: two entries per input array.

    Raises
    ------
    TypeError, ValueError
        For no arrays, arrays of different lengths, or sizes out of range.

    Examples
    --------
    >>> X, y = np.arange(20).reshape(10, 2), np.arange(10)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.33, seed=0)
    >>> X_train.shape, X_test.shape
    ((6, 2), (4, 2))
    >>> train_test_split(list(range(5)), shuffle=False)
    [[0, 1, 2], [3, 4]]
    >>> y = np.array([0] * 80 + [1] * 20)
    >>> y_train, y_test = train_test_split(y, test_size=0.25, stratify=y, seed=0)
    >>> np.bincount(y_train).tolist(), np.bincount(y_test).tolist()
    ([60, 15], [20, 5])
    """
    if not arrays:
        raise TypeError("train_test_split needs at least one array, received none.")
    lengths = [_n_rows(a, i) for i, a in enumerate(arrays)]
    if len(set(lengths)) > 1:
        raise ValueError(
            "all arrays must have the same number of samples (first dimension), received "
            f"lengths {lengths}."
        )
    n = lengths[0]
    if n < 2:
        raise ValueError(
            "train_test_split needs at least 2 samples to give a train and a test set, "
            f"received n_samples={n}."
        )
    shuffle = _check_bool(shuffle, "shuffle")
    n_train, n_test = _split_sizes(n, test_size, train_size)
    rng = _rng(seed, random_state)

    if not shuffle:
        if stratify is not None:
            raise ValueError(
                "stratify needs shuffle=True: a split without shuffling cannot keep class "
                "proportions. Pass shuffle=True or stratify=None."
            )
        train, test = np.arange(n_train), np.arange(n_train, n_train + n_test)
    elif stratify is not None:
        labels = to_numpy(stratify)
        if labels.ndim not in (1, 2) or labels.shape[0] != n:
            raise ValueError(
                f"stratify must have shape ({n},) or ({n}, n_labels) like the arrays, "
                f"received shape {labels.shape}."
            )
        train, test = _stratified(labels, n_train, n_test, rng)
    else:
        order = rng.permutation(n)
        test, train = order[:n_test], order[n_test : n_test + n_train]

    out: list[Any] = []
    for a in arrays:
        out += [_take(a, train), _take(a, test)]
    return out


# ---------------------------------------------------------------------------------------------
# Labels and real data


def one_hot(y: Any, num_classes: int | None = None, dtype: Any = np.float32) -> np.ndarray:
    """Integer class labels as one-hot rows, like ``keras.utils.to_categorical``.

    Parameters
    ----------
    y : array-like of shape (n,) or (n, 1)
        Class labels ``0 .. num_classes - 1``: integers, or floats with integral values.
    num_classes : int or None, default=None
        The number of classes; None means ``max(y) + 1``.
    dtype : data-type, default=numpy.float32
        The dtype of the result: float32, the model's default dtype, unless asked otherwise.

    Returns
    -------
    numpy.ndarray of shape (n, num_classes)
        Row ``i`` is all zeros except a one in column ``y[i]``.

    Raises
    ------
    TypeError
        For non-numeric labels, a non-integer ``num_classes`` or an unknown ``dtype``.
    ValueError
        For labels of the wrong shape, negative, non-integral or ``>= num_classes``.

    Examples
    --------
    >>> one_hot([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    >>> one_hot(np.array([1, 0]), num_classes=3, dtype="int64").tolist()
    [[0, 1, 0], [1, 0, 0]]
    """
    labels = to_numpy(y)
    if labels.dtype.kind not in "biuf":
        raise TypeError(
            f"y must hold integer class labels, received an array of dtype {labels.dtype}."
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"y must be 1-D (n,) or a column (n, 1) of labels, received shape {labels.shape}."
        )
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            raise ValueError(
                "y must hold integer class labels, received non-integral values such as "
                f"{labels[bad][:3].tolist()}."
            )
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(
            "y must hold non-negative class labels, received negative values such as "
            f"{labels[labels < 0][:3].tolist()}."
        )
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("num_classes must be given when y is empty, received None.")
        k = int(labels.max()) + 1
    else:
        k = _check_int(num_classes, "num_classes")
        if labels.size and labels.max() >= k:
            raise ValueError(
                f"y must hold labels in [0, num_classes - 1] = [0, {k - 1}], received "
                f"labels such as {labels[labels >= k][:3].tolist()} with num_classes={k}."
            )
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy data type, received dtype={dtype!r}.") from None
    out = np.zeros((labels.size, k), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


def load_digits(
    *, n_class: int = 10, scale: bool = True, return_X_y: bool = True
) -> tuple[np.ndarray, np.ndarray] | dict[str, Any]:
    """The 8x8 handwritten digits bundled with scikit-learn (1797 images, 10 classes).

    The data are read from the copy that ships with scikit-learn, so this needs it installed
    (``pip install scikit-learn``, or the ``backprop[test]`` extra); nothing is downloaded.
    The arrays are those of ``sklearn.datasets.load_digits(return_X_y=True)`` (divided by 16
    with ``scale=True``), in the same order.

    Parameters
    ----------
    n_class : int, default=10
        Keep the digits ``0 .. n_class - 1`` only, in ``[1, 10]``.
    scale : bool, default=True
        Divide the pixel values (integers 0..16) by 16, so ``X`` lies in ``[0, 1]``: the
        range in which a network with default initial weights learns fastest. ``False``
        keeps scikit-learn's raw values.
    return_X_y : bool, default=True
        Return ``(X, y)``; ``False`` returns a dict (see Returns).

    Returns
    -------
    X : numpy.ndarray of shape (n, 64), float64
        One flattened image per row (``n = 1797`` for all ten digits).
    y : numpy.ndarray of shape (n,), int64
        The digit of each image.
    dict
        With ``return_X_y=False``: ``{"data": X, "target": y, "images": X.reshape(-1, 8, 8),
        "target_names": numpy.arange(n_class)}``.

    Raises
    ------
    ImportError
        If scikit-learn is not installed.
    TypeError, ValueError
        For an argument of the wrong type or out of range.

    Examples
    --------
    >>> X, y = load_digits()
    >>> X.shape, y.shape, float(X.min()), float(X.max())
    ((1797, 64), (1797,), 0.0, 1.0)
    """
    n_class = _check_int(n_class, "n_class")
    if n_class > 10:
        raise ValueError(f"n_class must be an integer in [1, 10], received n_class={n_class}.")
    scale = _check_bool(scale, "scale")
    return_X_y = _check_bool(return_X_y, "return_X_y")
    # Read the bundled file directly rather than through sklearn.datasets: importing that takes
    # seconds (it pulls in scipy), reading 1797 rows takes milliseconds. find_spec locates the
    # installed package without importing it; the public loader is the fallback should the
    # file ever move.
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ImportError(
            "load_digits reads the digits bundled with scikit-learn, which is not installed. "
            "Install it with `pip install scikit-learn` (or `pip install backprop[test]`)."
        )
    path = Path(spec.origin).parent.joinpath(*_DIGITS_FILE)
    if path.is_file():
        data = np.loadtxt(path, delimiter=",")
        X, y = data[:, :-1], data[:, -1].astype(np.int64)
        keep = y < n_class
        X, y = X[keep], y[keep]
    else:
        from sklearn.datasets import load_digits as sklearn_load_digits

        X, y = sklearn_load_digits(n_class=n_class, return_X_y=True)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if scale:
        X = X / 16.0
    if return_X_y:
        return X, y
    return {
        "data": X,
        "target": y,
        "images": X.reshape(-1, 8, 8),
        "target_names": np.arange(n_class),
    }


# ---------------------------------------------------------------------------------------------
# IDX files: MNIST, Fashion-MNIST and any other set published in the same four files
#
# IDX (LeCun's format for MNIST) is a 4-byte magic number -- two zero bytes, a type code, the
# number of dimensions -- then each dimension's size as a big-endian uint32, then the values,
# big-endian, in C order. The files are usually gzipped.

# the type codes of the IDX format and their (big-endian) NumPy types
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in _IDX_TYPES.items()}
_IDX_KNOWN = ", ".join(f"0x{c:02x} ({d.newbyteorder('=').name})" for c, d in _IDX_TYPES.items())

# The four files of a data set in MNIST's layout, in the order the arrays are returned:
# (x_train, y_train), (x_test, y_test).
_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# SHA-256 of the official archives. MNIST: TensorFlow Datasets' checksum list for the
# mirror below (tensorflow_datasets/url_checksums/mnist.txt); Keras ships MNIST as one
# mnist.npz instead, so it has no hash for these files. The same digests are what the
# archives on yann.lecun.com gave, so every faithful mirror serves these bytes.
# Fashion-MNIST: Keras 3's FILE_HASHES (keras/src/datasets/fashion_mnist.py), identical to
# TensorFlow Datasets' list (url_checksums/fashion_mnist.txt). Zalando publishes MD5 sums only.
_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}
_FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
    ),
    "train-labels-idx1-ubyte.gz": (
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
    ),
}
# Mirrors, tried in order (yann.lecun.com itself now refuses most downloads): Google's copy
# that TensorFlow Datasets reads, then the one torchvision reads; for Fashion-MNIST, the copy
# Keras reads, then Zalando's own repository.
_MNIST_ORIGINS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
_FASHION_MNIST_ORIGINS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

_DATA_ENV = "BACKPROP_DATA"
_DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte before a mirror counts as unreachable
_CHUNK = 1 << 20


class DownloadError(ConnectionError):
    """No mirror could deliver a data set's file: the machine is offline or the mirrors are down.

    A :class:`ConnectionError` (so an :class:`OSError`); the message lists every URL tried with
    its reason and says where to put the files by hand.
    """


def _parse_idx(data: bytes, source: str) -> np.ndarray:
    """The array in the bytes of an IDX file (gzipped or not); ``source`` names it in errors."""
    if data[:2] == b"\x1f\x8b":  # gzip's magic number
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(
                f"{source} is not a readable gzip file ({error}): it is truncated or damaged. "
                "Delete it and download it again."
            ) from None
    if len(data) < 4:
        raise ValueError(
            f"{source} is too short to be an IDX file: {len(data)} bytes, where an IDX header "
            "alone takes at least 4. The file is truncated or empty; download it again."
        )
    if data[:2] != b"\x00\x00":
        raise ValueError(
            f"{source} is not an IDX file: it starts with {data[:2].hex(' ')}, where an IDX "
            "file starts with two zero bytes (then its type code and its number of "
            "dimensions). Check that the file is the one you meant."
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        raise ValueError(
            f"{source} has the unknown IDX type code 0x{code:02x}; the format knows {_IDX_KNOWN}. "
            "The file is damaged or not an IDX file."
        )
    if ndim == 0:
        raise ValueError(
            f"{source} declares an array of 0 dimensions, where an IDX file holds at least 1. "
            "The file is damaged or not an IDX file."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{source} is truncated: its header declares {ndim} dimensions, whose sizes take "
            f"{header} bytes, but the file holds only {len(data)}. Download it again."
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_TYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    received = len(data) - header
    what = f"shape {shape} of {dtype.newbyteorder('=').name}"
    if received < expected:
        raise ValueError(
            f"{source} is truncated: its header declares {what}, {expected} bytes of data "
            f"after the {header}-byte header, but it holds {received}. Download it again."
        )
    if received > expected:
        raise ValueError(
            f"{source} has {received - expected} byte(s) more than its header declares "
            f"({what}, {expected} bytes after the {header}-byte header): the file is damaged "
            "or not an IDX file."
        )
    values = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header)
    # astype copies: the caller gets a writable array in the machine's byte order rather than
    # a read-only view of the file's bytes
    return values.reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read the array stored in an IDX file, the format of MNIST's files (gzipped or not).

    Parameters
    ----------
    path : str or os.PathLike
        The file; a gzipped one (as the data sets are published) is recognized by its first
        bytes, whatever its name.

    Returns
    -------
    numpy.ndarray
        The array, of the shape the header declares (``(n, 28, 28)`` for MNIST's images,
        ``(n,)`` for its labels) and of its type (``uint8`` for both), in native byte order.

    Raises
    ------
    ValueError
        Naming the file, when it is not an IDX file, is truncated or has bytes left over.
    OSError
        When the file cannot be read.

    See Also
    --------
    write_idx : the inverse.
    load_idx_dataset : the four files of a data set, downloaded and checked.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "labels-idx1-ubyte.gz"
    ...     write_idx(path, np.array([5, 0, 4], dtype=np.uint8))
    ...     read_idx(path)
    array([5, 0, 4], dtype=uint8)
    """
    path = Path(path)
    return _parse_idx(path.read_bytes(), str(path))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write an array as an IDX file, gzipped when the name ends with ``.gz``.

    The gzip header carries no time stamp, so the same array always gives the same bytes (and
    the same SHA-256).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (replaced if it exists).
    array : numpy.ndarray
        At least one dimension, each under 2**32; of a type IDX knows: uint8, int8, int16,
        int32, float32 or float64.

    Raises
    ------
    TypeError
        For an array of another type, or not a NumPy array.
    ValueError
        For a 0-d array or one of more than 255 dimensions or a dimension of 2**32 or more.

    See Also
    --------
    read_idx : the inverse.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"array must be a numpy.ndarray, received {type(array).__name__}; "
            "convert it with numpy.asarray(...) first."
        )
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(
            "array must have a type IDX knows (uint8, int8, int16, int32, float32 or float64), "
            f"received dtype {array.dtype}; convert it with array.astype(...) first."
        )
    if not 1 <= array.ndim <= 255 or any(n >= 2**32 for n in array.shape):
        raise ValueError(
            "array must have at least 1 dimension, at most 255, each under 2**32 (what an IDX "
            f"header can hold), received shape {array.shape}."
        )
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    data = header + np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)


def _check_files(files: Any) -> dict[str, str]:
    if not isinstance(files, Mapping):
        raise TypeError(
            "files must be a mapping {file name: SHA-256 hex digest}, received "
            f"{type(files).__name__}."
        )
    missing = [n for n in _IDX_FILES if n not in files]
    extra = [n for n in files if n not in _IDX_FILES]
    if missing or extra:
        raise ValueError(
            f"files must name exactly the four files {list(_IDX_FILES)}; missing {missing}, "
            f"not known {extra}."
        )
    out = {}
    for name in _IDX_FILES:
        digest = files[name]
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest)):
            raise ValueError(
                f"files[{name!r}] must be the file's SHA-256 as 64 hexadecimal digits, received "
                f"{digest!r}. Compute it with `sha256sum {name}`."
            )
        out[name] = digest.lower()
    return out


def _check_origins(origin: Any) -> list[str]:
    """``origin`` as a list of base URLs, each ending with a slash."""
    if isinstance(origin, str):
        origin = [origin]
    elif not isinstance(origin, Sequence):
        raise TypeError(
            "origin must be a URL or a non-empty sequence of URLs (mirrors, tried in order), "
            f"received {type(origin).__name__}."
        )
    if not origin or not all(isinstance(u, str) and u for u in origin):
        raise ValueError(
            "origin must be a URL or a non-empty sequence of URLs (mirrors, tried in order), "
            f"received origin={origin!r}."
        )
    for url in origin:
        if urlsplit(url).scheme not in ("http", "https", "file"):
            raise ValueError(
                "origin must hold http://, https:// or file:// URLs (the folder the four files "
                f"lie in), received {url!r}."
            )
    # the files lie right under each base URL
    return [u if u.endswith("/") else u + "/" for u in origin]


def _data_folder(name: Any, cache_dir: Any) -> Path:
    """``<cache_dir or $BACKPROP_DATA or ~/.backprop/datasets>/<name>``."""
    if not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name)):
        raise ValueError(
            "name must be a folder name made of letters, digits, '.', '_' and '-' (such as "
            f"'mnist'), received name={name!r}."
        )
    if cache_dir is None:
        cache_dir = os.environ.get(_DATA_ENV) or Path("~", ".backprop", "datasets")
    elif not isinstance(cache_dir, str | os.PathLike):
        raise TypeError(
            f"cache_dir must be a path (str or os.PathLike) or None, received "
            f"{type(cache_dir).__name__}."
        )
    return Path(cache_dir).expanduser() / name


class _Unreachable(Exception):
    """A mirror that could not deliver (no connection, an HTTP error, a transfer cut short)."""


class _WrongBytes(ValueError):
    """A mirror delivered bytes with another SHA-256 than expected."""


def _download(url: str, target: Path, sha256: str) -> None:
    """Fetch ``url`` into ``target``, which appears only complete and verified.

    The bytes go to a temporary file in the same folder, renamed onto ``target`` once their
    SHA-256 matches: a reader (or a second process downloading at the same time) never sees a
    partial file, and an interrupted or refused download leaves nothing behind. A network
    failure raises _Unreachable and wrong bytes _WrongBytes; an error of this machine (a full
    disk, a folder it may not write to) is raised as it is, since no mirror can help there.
    """
    # imported here: urllib.request pulls in http.client, ssl and email, which `import
    # backprop` does not need until something is downloaded
    import http.client
    import urllib.error
    import urllib.request

    network_errors = (OSError, http.client.HTTPException)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".part", dir=target.parent
    )
    try:
        digest, received = hashlib.sha256(), 0
        with os.fdopen(handle, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT)
            except urllib.error.HTTPError as error:
                error.close()  # it holds the server's answer open
                raise _Unreachable(str(error)) from None  # "HTTP Error 404: Not Found"
            except urllib.error.URLError as error:
                raise _Unreachable(str(error.reason)) from None  # "[Errno 111] Connection..."
            except network_errors as error:
                raise _Unreachable(str(error) or type(error).__name__) from None
            with response:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except network_errors as error:
                        raise _Unreachable(
                            f"the transfer broke off ({type(error).__name__}: {error})"
                        ) from None
                    if not chunk:
                        break
                    received += len(chunk)
                    digest.update(chunk)
                    out.write(chunk)
                # http.client ends a body cut short quietly; the bytes still announced (the
                # Content-Length left; a file:// answer has none) tell it from a whole file
                # with the wrong content
                left = getattr(response, "length", None)
                if left:
                    raise _Unreachable(
                        f"the transfer broke off after {received} of {received + left} bytes"
                    )
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise _WrongBytes(
                f"The file downloaded from {url} has SHA-256 {digest.hexdigest()}, expected "
                f"{sha256}: the transfer was damaged or the mirror serves a different file. "
                f"It was discarded (nothing was written to {target.parent}); try again, or "
                "pass origin= another mirror."
            )
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _fetch(name: str, file: str, folder: Path, sha256: str, origins: list[str]) -> None:
    """Download ``file`` from the first mirror that delivers it intact."""
    failures = []
    refused = None
    for base in origins:
        url = base + file
        try:
            _download(url, folder / file, sha256)
            return
        except _WrongBytes as error:  # the next mirror may have the right bytes
            failures.append(f"  {url}: {error}")
            refused = refused or error
        except _Unreachable as error:
            failures.append(f"  {url}: {error}")
    tried = "\n".join(failures)
    if refused is not None and len(origins) == 1:
        raise refused
    by_hand = (
        f"To install {name} by hand, download the files {', '.join(_IDX_FILES)} on a machine "
        f"that is online and copy them unchanged into {folder} (their SHA-256 is checked), or "
        f"pass origin= a mirror that this machine can reach, or cache_dir= (or set "
        f"{_DATA_ENV} to) a folder whose {name}/ subfolder already holds them."
    )
    if refused is not None:
        raise ValueError(f"No mirror delivered an intact {file}:\n{tried}\n{by_hand}")
    raise DownloadError(
        f"Could not download {file} for {name}; tried:\n{tried}\nThis machine seems to be "
        f"offline, or the mirrors are down. {by_hand}"
    )


def load_idx_dataset(
    name: str,
    files: Mapping[str, str],
    *,
    origin: str | Sequence[str],
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load a data set published as MNIST is, in four IDX files, downloading what is missing.

    The files are looked for in the data set's cache folder, ``<cache_dir>/<name>/``. Each one
    missing is downloaded from the first mirror in ``origin`` that delivers it intact, and
    kept; every file, cached or fresh, must have the SHA-256 given in ``files`` before it is
    read. A download is written to a temporary file beside its final place and renamed once
    complete and verified, so the cache never holds a partial or unverified file.

    Parameters
    ----------
    name : str
        The data set's folder in the cache, such as ``"mnist"``.
    files : mapping of str to str
        The SHA-256 (64 hexadecimal digits) of each of the four files
        ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
        ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``.
    origin : str or sequence of str
        The base URL under which the four files lie (``origin + file name``; http, https or
        a local folder as ``file://``), or several such mirrors, tried in order.
    cache_dir : str, os.PathLike or None, default=None
        The folder holding one subfolder per data set. None: the environment variable
        ``BACKPROP_DATA`` if set, else ``~/.backprop/datasets``.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuples of numpy.ndarray
        The images ``(n, rows, cols)`` and their labels ``(n,)``, of the files' types (uint8).

    Raises
    ------
    DownloadError
        A :class:`ConnectionError`: a missing file could be fetched from no mirror (offline);
        the message lists the URLs tried and says where to put the files by hand.
    ValueError
        Naming the file: a cached file with a SHA-256 other than expected (delete it to fetch
        it anew), a download with the wrong SHA-256 (discarded), a file that is not IDX or is
        truncated, or files that do not make a data set (images not 3-D, labels not 1-D, or
        counts that differ). Also for an invalid argument.
    TypeError
        For an argument of the wrong type.

    See Also
    --------
    load_mnist, load_fashion_mnist : the two best-known such sets, with their official hashes.
    read_idx : one IDX file.
    """
    folder = _data_folder(name, cache_dir)
    files = _check_files(files)
    origins = _check_origins(origin)
    arrays = []
    for file in _IDX_FILES:
        path = folder / file
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            _fetch(name, file, folder, files[file], origins)
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != files[file]:
            # Downloads land only verified, so this file was put here some other way (a copy
            # by hand cut short, a different release): refuse it rather than overwrite it.
            raise ValueError(
                f"{path} is not the expected file: its SHA-256 is {digest}, expected "
                f"{files[file]}. It may be truncated, damaged or another version. Delete it "
                "and call again to download it anew."
            )
        arrays.append(_parse_idx(data, str(path)))
    x_train, y_train, x_test, y_test = arrays
    for x, y, (fx, fy) in ((x_train, y_train, _IDX_FILES[:2]), (x_test, y_test, _IDX_FILES[2:])):
        if x.ndim != 3:
            raise ValueError(
                f"{folder / fx} must hold images of shape (n, rows, cols), received shape "
                f"{x.shape}."
            )
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(
                f"{folder / fx} holds {len(x)} images but {folder / fy} holds {len(y)} labels "
                f"(shape {y.shape}): expected one label per image, shape ({len(x)},)."
            )
    return (x_train, y_train), (x_test, y_test)


def load_mnist(
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    origin: str | Sequence[str] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28 grayscale.

    The arrays of ``keras.datasets.mnist.load_data()``. The four IDX files are downloaded on
    the first call (about 11 MB) into ``~/.backprop/datasets/mnist/`` (see ``cache_dir``),
    checked against their published SHA-256, and read from there on every later call.

    Parameters
    ----------
    cache_dir : str, os.PathLike or None, default=None
        The folder holding one subfolder per data set. None: the environment variable
        ``BACKPROP_DATA`` if set, else ``~/.backprop/datasets``.
    origin : str, sequence of str or None, default=None
        Another mirror (base URL) or mirrors to download from; the files must still be the
        official ones. None: Google's copy (``storage.googleapis.com/cvdf-datasets/mnist/``),
        then PyTorch's (``ossci-datasets.s3.amazonaws.com/mnist/``).

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuples of numpy.ndarray
        ``x_train`` uint8 ``(60000, 28, 28)``, pixels 0 to 255; ``y_train`` uint8 ``(60000,)``,
        digits 0 to 9; ``x_test`` uint8 ``(10000, 28, 28)``; ``y_test`` uint8 ``(10000,)``.

    Raises
    ------
    DownloadError
        Offline: the message says which URLs failed and where to put the files by hand.
    ValueError
        A file that is not the official one (the message names it).

    Notes
    -----
    MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, derived from NIST's
    data, and available under the Creative Commons Attribution-Share Alike 3.0 license.

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
    >>> x_train.shape, y_train.shape, x_test.shape, y_test.shape  # doctest: +SKIP
    ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    """
    origin = _MNIST_ORIGINS if origin is None else origin
    return load_idx_dataset("mnist", _MNIST_FILES, origin=origin, cache_dir=cache_dir)


def load_fashion_mnist(
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    origin: str | Sequence[str] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Zalando's Fashion-MNIST: 60,000 training and 10,000 test images of clothes, 28x28.

    A drop-in replacement for MNIST that is harder to learn; the arrays of
    ``keras.datasets.fashion_mnist.load_data()``. The four IDX files are downloaded on the
    first call (about 30 MB) into ``~/.backprop/datasets/fashion_mnist/`` (see ``cache_dir``),
    checked against their published SHA-256, and read from there on every later call.

    The labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
    7 Sneaker, 8 Bag, 9 Ankle boot.

    Parameters
    ----------
    cache_dir : str, os.PathLike or None, default=None
        The folder holding one subfolder per data set. None: the environment variable
        ``BACKPROP_DATA`` if set, else ``~/.backprop/datasets``.
    origin : str, sequence of str or None, default=None
        Another mirror (base URL) or mirrors to download from; the files must still be the
        official ones. None: Keras's copy (``storage.googleapis.com/tensorflow/
        tf-keras-datasets/``), then Zalando's repository on GitHub.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuples of numpy.ndarray
        ``x_train`` uint8 ``(60000, 28, 28)``, pixels 0 to 255; ``y_train`` uint8 ``(60000,)``,
        classes 0 to 9; ``x_test`` uint8 ``(10000, 28, 28)``; ``y_test`` uint8 ``(10000,)``.

    Raises
    ------
    DownloadError
        Offline: the message says which URLs failed and where to put the files by hand.
    ValueError
        A file that is not the official one (the message names it).

    Notes
    -----
    Fashion-MNIST is by Zalando SE (Han Xiao, Kashif Rasul, Roland Vollgraf, 2017), under the
    MIT license.

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist()  # doctest: +SKIP
    >>> x_train.shape, y_train.shape, x_test.shape, y_test.shape  # doctest: +SKIP
    ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    """
    origin = _FASHION_MNIST_ORIGINS if origin is None else origin
    return load_idx_dataset(
        "fashion_mnist", _FASHION_MNIST_FILES, origin=origin, cache_dir=cache_dir
    )
