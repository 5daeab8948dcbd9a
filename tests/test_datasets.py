"""Tests of backprop.datasets: shapes, seeds, geometry, agreement with scikit-learn, errors."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from backprop import datasets as ds


@pytest.fixture(scope="module")
def skd():
    return pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def sk_split():
    return pytest.importorskip("sklearn.model_selection").train_test_split


# (name, function, extra keyword arguments giving a noisy sample)
GENERATORS = [
    pytest.param(ds.make_circles, {"noise": 0.1, "factor": 0.5}, id="circles"),
    pytest.param(ds.make_moons, {"noise": 0.1}, id="moons"),
    pytest.param(ds.make_spirals, {"noise": 0.1, "n_classes": 2}, id="spirals"),
    pytest.param(ds.make_xor, {"noise": 0.1}, id="xor"),
    pytest.param(ds.make_blobs, {"centers": 2}, id="blobs"),
]


def radii(X, center=(0.0, 0.0)):
    return np.hypot(X[:, 0] - center[0], X[:, 1] - center[1])


# ---------------------------------------------------------------------------------------------
# Common to every generator


@pytest.mark.parametrize(("make", "kwargs"), GENERATORS)
@pytest.mark.parametrize("n", [2, 7, 100])
def test_shapes_and_dtypes(make, kwargs, n):
    X, y = make(n, seed=0, **kwargs)
    assert X.shape == (n, 2) and X.dtype == np.float64
    assert y.shape == (n,) and y.dtype == np.int64
    assert np.all(np.isfinite(X))


@pytest.mark.parametrize(("make", "kwargs"), GENERATORS)
def test_same_seed_same_arrays_other_seed_other_arrays(make, kwargs):
    X1, y1 = make(50, seed=3, **kwargs)
    X2, y2 = make(50, seed=3, **kwargs)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = make(50, seed=4, **kwargs)
    assert not np.array_equal(X1, X3)
    # random_state is the scikit-learn spelling of the same argument
    X4, y4 = make(50, random_state=3, **kwargs)
    np.testing.assert_array_equal(X1, X4)
    np.testing.assert_array_equal(y1, y4)


@pytest.mark.parametrize(("make", "kwargs"), GENERATORS)
def test_generator_seed_is_advanced_and_none_is_fresh(make, kwargs):
    rng = np.random.default_rng(0)
    a, _ = make(50, seed=rng, **kwargs)
    b, _ = make(50, seed=rng, **kwargs)
    assert not np.array_equal(a, b)
    again, _ = make(50, seed=np.random.default_rng(0), **kwargs)
    np.testing.assert_array_equal(a, again)
    c, _ = make(50, **kwargs)
    d, _ = make(50, **kwargs)
    assert not np.array_equal(c, d)


@pytest.mark.parametrize(("make", "kwargs"), GENERATORS)
def test_bad_seeds(make, kwargs):
    with pytest.raises(ValueError, match=r"seed must be a non-negative integer, received seed=-1"):
        make(10, seed=-1, **kwargs)
    with pytest.raises(TypeError, match=r"seed must be .* received seed=1\.5 \(float\)"):
        make(10, seed=1.5, **kwargs)
    with pytest.raises(TypeError, match=r"random_state=.*RandomState.*default_rng"):
        make(10, random_state=np.random.RandomState(0), **kwargs)
    with pytest.raises(TypeError, match=r"pass only one, received seed=1 and random_state=2"):
        make(10, seed=1, random_state=2, **kwargs)


@pytest.mark.parametrize(("make", "kwargs"), GENERATORS)
def test_shuffle_only_reorders(make, kwargs):
    # unshuffled, the labels come in a fixed order whatever the seed; shuffled, in another
    _, y0 = make(31, shuffle=False, seed=0, **kwargs)
    _, y1 = make(31, shuffle=False, seed=1, **kwargs)
    _, y2 = make(31, shuffle=True, seed=0, **kwargs)
    np.testing.assert_array_equal(y0, y1)
    assert not np.array_equal(y0, y2)
    np.testing.assert_array_equal(np.sort(y0), np.sort(y2))


@pytest.mark.parametrize(("make", "kwargs"), GENERATORS)
@pytest.mark.parametrize(
    ("bad", "exc", "message"),
    [
        ({"n_samples": -3}, ValueError, "n_samples must be a positive integer.*n_samples=-3"),
        ({"n_samples": 0}, ValueError, "n_samples must be a positive integer.*n_samples=0"),
        ({"n_samples": 2.5}, TypeError, r"n_samples must be .*received n_samples=2\.5 \(float\)"),
        ({"n_samples": "10"}, TypeError, "n_samples must be .*received n_samples='10'"),
        ({"n_samples": True}, TypeError, "n_samples must be .*received n_samples=True"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False, received shuffle='yes'"),
        ({"shuffle": 1}, TypeError, "shuffle must be True or False, received shuffle=1"),
    ],
)
def test_common_bad_arguments(make, kwargs, bad, exc, message):
    args = {"n_samples": 10, **kwargs, **bad}
    with pytest.raises(exc, match=message):
        make(**args)


@pytest.mark.parametrize("make", [ds.make_circles, ds.make_moons, ds.make_spirals, ds.make_xor])
@pytest.mark.parametrize(
    ("noise", "exc", "message"),
    [
        (-0.1, ValueError, r"noise must be a non-negative finite float or None.*noise=-0\.1"),
        (float("nan"), ValueError, "noise must be .*received noise=nan"),
        (float("inf"), ValueError, "noise must be .*received noise=inf"),
        ("0.1", TypeError, r"noise must be .*received noise='0\.1' \(str\)"),
        (True, TypeError, "noise must be .*received noise=True"),
    ],
)
def test_bad_noise(make, noise, exc, message):
    with pytest.raises(exc, match=message):
        make(10, noise=noise)


@pytest.mark.parametrize("make", [ds.make_circles, ds.make_moons, ds.make_spirals, ds.make_xor])
def test_noise_none_or_zero_is_exact_geometry(make):
    X0, y0 = make(40, noise=None, seed=1)
    X1, y1 = make(40, noise=0.0, seed=1)
    X2, y2 = make(40, noise=0.05, seed=1)
    np.testing.assert_array_equal(X0, X1)
    np.testing.assert_array_equal(y0, y1)
    # noise moves the points but not the labels, and by about its size only
    np.testing.assert_array_equal(y0, y2)
    assert 0 < np.abs(X2 - X0).max() < 0.5


# ---------------------------------------------------------------------------------------------
# make_circles and make_moons


@pytest.mark.parametrize("make", [ds.make_circles, ds.make_moons])
def test_two_groups_balance(make):
    for n in (2, 10, 100, 1000):
        assert np.bincount(make(n, seed=0)[1]).tolist() == [n // 2, n // 2]
    # like scikit-learn, an odd sample goes to the second group
    assert np.bincount(make(7, seed=0)[1]).tolist() == [3, 4]
    assert np.bincount(make(1, seed=0)[1], minlength=2).tolist() == [0, 1]
    assert np.bincount(make((3, 5), seed=0)[1]).tolist() == [3, 5]
    assert np.bincount(make([4, 0], seed=0)[1], minlength=2).tolist() == [4, 0]


@pytest.mark.parametrize("factor", [0.0, 0.3, 0.8, 0.99])
def test_circles_geometry(factor):
    X, y = ds.make_circles(101, factor=factor, seed=0)
    np.testing.assert_allclose(radii(X[y == 0]), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(radii(X[y == 1]), factor, rtol=0, atol=1e-12)
    # evenly spaced angles, no point repeated (endpoint excluded)
    X, y = ds.make_circles(8, shuffle=False, factor=factor)
    angles = np.arctan2(X[:4, 1], X[:4, 0]) % (2 * np.pi)
    np.testing.assert_allclose(angles, np.arange(4) * np.pi / 2, atol=1e-12)


def test_circles_noise_size():
    X, y = ds.make_circles(4000, factor=0.5, noise=0.05, seed=0)
    spread = radii(X[y == 0]) - 1.0
    assert abs(spread.mean()) < 0.01
    assert 0.04 < spread.std() < 0.06


def test_moons_geometry():
    X, y = ds.make_moons(201, seed=0)
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(radii(upper), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(radii(lower, center=(1.0, 0.5)), 1.0, rtol=0, atol=1e-12)
    assert np.all(upper[:, 1] >= -1e-12) and np.all(lower[:, 1] <= 0.5 + 1e-12)
    # both end points of each half circle are included
    X, _ = ds.make_moons(6, shuffle=False)
    np.testing.assert_allclose(X[[0, 2, 3, 5]], [[1, 0], [-1, 0], [0, 0.5], [2, 0.5]], atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 100, 101, (3, 7), (0, 4), (6, 0)])
def test_circles_and_moons_equal_sklearn(skd, n):
    for factor in (0.3, 0.8):
        ours = ds.make_circles(n, shuffle=False, factor=factor)
        theirs = skd.make_circles(n, shuffle=False, factor=factor)
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1], theirs[1])
    ours = ds.make_moons(n, shuffle=False)
    theirs = skd.make_moons(n, shuffle=False)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


def test_shuffled_circles_are_a_permutation_of_sklearn_points(skd):
    X, y = ds.make_circles(50, seed=0)
    Xs, ys = skd.make_circles(50, random_state=0)

    def rows(X, y):
        return sorted(zip(y.tolist(), X[:, 0].tolist(), X[:, 1].tolist(), strict=True))

    assert rows(X, y) == rows(Xs, ys)


@pytest.mark.parametrize(
    ("make", "bad", "exc", "message"),
    [
        (ds.make_circles, {"factor": 1.0}, ValueError, r"factor must be a float in \[0, 1\)"),
        (ds.make_circles, {"factor": -0.1}, ValueError, r"received factor=-0\.1"),
        (ds.make_circles, {"factor": "0.5"}, TypeError, "received factor='0.5' \\(str\\)"),
        (ds.make_circles, {"n_samples": (1, 2, 3)}, ValueError, r"pair of integers \(n_outer"),
        (ds.make_circles, {"n_samples": (-1, 3)}, ValueError, "non-negative integers"),
        (ds.make_circles, {"n_samples": (0, 0)}, ValueError, "with a positive sum"),
        (ds.make_moons, {"n_samples": (1.0, 2)}, ValueError, r"pair of integers \(n_upper"),
        (ds.make_moons, {"n_samples": None}, TypeError, "received n_samples=None"),
    ],
)
def test_circles_moons_bad_arguments(make, bad, exc, message):
    with pytest.raises(exc, match=message):
        make(**bad)


# ---------------------------------------------------------------------------------------------
# make_spirals


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_spirals_classes_equally_sized(k):
    _, y = ds.make_spirals(60 * k, n_classes=k, noise=0.2, seed=0)
    assert np.bincount(y).tolist() == [60] * k
    _, y = ds.make_spirals(7, n_classes=3, seed=0)
    assert np.bincount(y).tolist() == [3, 2, 2]


@pytest.mark.parametrize(("k", "turns"), [(2, 1.0), (3, 1.5), (4, 0.5)])
def test_spirals_geometry(k, turns):
    m = 50
    X, y = ds.make_spirals(m * k, n_classes=k, turns=turns, shuffle=False)
    t = np.linspace(0, 1, m)
    for j in range(k):
        arm = X[y == j]
        # radius grows linearly from 0.1 to 1 ...
        np.testing.assert_allclose(radii(arm), 0.1 + 0.9 * t, atol=1e-12)
        # ... while the angle winds `turns` times, each arm rotated by 1/k of a turn
        angle = np.arctan2(arm[:, 1], arm[:, 0])
        expected = 2 * np.pi * (turns * t + j / k)
        np.testing.assert_allclose(np.cos(angle - expected), 1.0, atol=1e-12)


def test_spirals_arms_do_not_touch():
    X, y = ds.make_spirals(400, n_classes=2, turns=1.0, seed=0)
    d = np.hypot(*(X[:, None, :] - X[None, :, :]).transpose(2, 0, 1))
    other = d[y[:, None] != y[None, :]]
    assert other.min() > 0.1


@pytest.mark.parametrize(
    ("bad", "exc", "message"),
    [
        ({"n_classes": 0}, ValueError, "n_classes must be a positive integer.*n_classes=0"),
        ({"n_classes": 2.0}, TypeError, r"n_classes must be .*n_classes=2\.0 \(float\)"),
        ({"n_samples": 2, "n_classes": 3}, ValueError, "n_samples=2 and n_classes=3"),
        ({"turns": 0}, ValueError, "turns must be a positive finite float, received turns=0"),
        ({"turns": float("inf")}, ValueError, "received turns=inf"),
        ({"turns": "1"}, TypeError, "turns must be a positive float, received turns='1'"),
    ],
)
def test_spirals_bad_arguments(bad, exc, message):
    with pytest.raises(exc, match=message):
        ds.make_spirals(**{"n_samples": 10, **bad})


# ---------------------------------------------------------------------------------------------
# make_xor


def test_xor_labels_quadrants_and_balance():
    X, y = ds.make_xor(1000, seed=0)
    np.testing.assert_array_equal(y, (X[:, 0] * X[:, 1] < 0).astype(np.int64))
    assert np.all((np.abs(X) > 0) & (np.abs(X) <= 1))
    quadrant = np.where(X[:, 0] > 0, np.where(X[:, 1] > 0, 0, 3), np.where(X[:, 1] > 0, 1, 2))
    assert np.bincount(quadrant).tolist() == [250] * 4
    for n in (2, 6, 10, 102):
        assert np.bincount(ds.make_xor(n, seed=0)[1]).tolist() == [n // 2, n // 2]
    _, y = ds.make_xor(7, shuffle=False, seed=0)
    assert y.tolist() == [0, 0, 1, 1, 0, 0, 1]


# ---------------------------------------------------------------------------------------------
# make_blobs


def test_blobs_counts_and_features():
    X, y = ds.make_blobs(10, 5, seed=0)
    assert X.shape == (10, 5) and np.bincount(y).tolist() == [4, 3, 3]
    X, y, c = ds.make_blobs([3, 0, 4], seed=0, return_centers=True)
    assert X.shape == (7, 2) and c.shape == (3, 2)
    assert np.bincount(y, minlength=3).tolist() == [3, 0, 4]
    assert np.all((c >= -10) & (c <= 10))
    _, _, c = ds.make_blobs(20, 3, centers=4, center_box=(2.0, 3.0), seed=0, return_centers=True)
    assert c.shape == (4, 3) and np.all((c >= 2) & (c <= 3))


def test_blobs_given_centers_and_stds():
    centers = np.array([[0.0, 0.0, 0.0], [10.0, -10.0, 5.0]])
    X, y = ds.make_blobs(4000, n_features=7, centers=centers, cluster_std=[0.5, 2.0], seed=0)
    assert X.shape == (4000, 3)  # the centers' width wins over n_features, as in scikit-learn
    for i, std in enumerate([0.5, 2.0]):
        np.testing.assert_allclose(X[y == i].mean(axis=0), centers[i], atol=0.15)
        np.testing.assert_allclose(X[y == i].std(axis=0), std, rtol=0.1)
    X, y = ds.make_blobs([2, 3], centers=centers, cluster_std=0.0, seed=0)
    np.testing.assert_array_equal(X, centers[y])


@pytest.mark.parametrize(
    ("n_samples", "kwargs"),
    [
        (100, {}),
        (10, {"centers": 4}),
        (11, {"centers": [[0, 0], [1, 1], [2, 2]]}),
        ([5, 1, 3], {}),
        ([5, 1], {"centers": [[0, 0, 0], [1, 1, 1]]}),
    ],
)
def test_blobs_counts_equal_sklearn(skd, n_samples, kwargs):
    X, y = ds.make_blobs(n_samples, seed=0, **kwargs)
    Xs, ys = skd.make_blobs(n_samples, random_state=0, **kwargs)
    assert X.shape == Xs.shape
    np.testing.assert_array_equal(np.bincount(y), np.bincount(ys))


@pytest.mark.parametrize(
    ("args", "exc", "message"),
    [
        ({"n_samples": []}, ValueError, r"non-empty sequence .*received n_samples=\[\]"),
        ({"n_samples": [2, -1]}, ValueError, r"received n_samples=\[2, -1\]"),
        ({"n_samples": np.array([[1, 2]])}, ValueError, "one count per center"),
        ({"n_samples": "many"}, TypeError, "received n_samples='many' \\(str\\)"),
        ({"n_features": 0}, ValueError, "n_features must be a positive integer.*n_features=0"),
        ({"centers": 0}, ValueError, "centers must be a positive integer, received centers=0"),
        ({"centers": [1.0, 2.0]}, ValueError, r"shape \(n_centers, n_features\).*shape \(2,\)"),
        ({"centers": [[0, np.nan]]}, ValueError, "centers must be finite"),
        ({"centers": "abc"}, TypeError, "centers must be a positive integer, an array"),
        ({"n_samples": [2, 3], "centers": 2}, ValueError, "centers must be None or an array"),
        ({"n_samples": [2, 3], "centers": [[0, 0]]}, ValueError, "1 centers and 2 counts"),
        ({"centers": 2, "cluster_std": [1.0]}, ValueError, "sequence of 2 floats"),
        ({"cluster_std": -1.0}, ValueError, r"non-negative and finite, received cluster_std=-1\.0"),
        ({"cluster_std": "wide"}, TypeError, "cluster_std must be a non-negative float"),
        ({"center_box": (1.0, 1.0)}, ValueError, r"min < max, received center_box=\(1\.0, 1\.0\)"),
        ({"center_box": 10}, ValueError, "center_box must be a pair"),
        ({"return_centers": None}, TypeError, "return_centers must be True or False"),
    ],
)
def test_blobs_bad_arguments(args, exc, message):
    with pytest.raises(exc, match=message):
        ds.make_blobs(**args)


# ---------------------------------------------------------------------------------------------
# train_test_split


SIZES = [None, 0.1, 0.25, 0.33, 0.5, 0.9, 0.999, 1, 3, 10, 99, 0, 1.0]


def test_split_sizes_equal_sklearn(sk_split):
    checked = 0
    for n in (1, 2, 3, 10, 11, 101):
        a = np.arange(n)
        for test_size in SIZES:
            for train_size in SIZES:
                try:
                    expected = [
                        len(p) for p in sk_split(a, test_size=test_size, train_size=train_size)
                    ]
                except ValueError:
                    with pytest.raises(ValueError, match=r"test_size|train_size|n_samples"):
                        ds.train_test_split(a, test_size=test_size, train_size=train_size)
                    continue
                tr, te = ds.train_test_split(a, test_size=test_size, train_size=train_size, seed=0)
                assert [len(tr), len(te)] == expected, (n, test_size, train_size)
                assert len(np.intersect1d(tr, te)) == 0
                checked += 1
    assert checked > 200  # the valid part of the grid is not empty by accident


def test_split_unshuffled_equals_sklearn(sk_split):
    X, y = np.arange(40).reshape(20, 2), np.arange(20) * 10
    for kwargs in ({}, {"test_size": 0.3}, {"train_size": 5}, {"train_size": 0.5, "test_size": 4}):
        ours = ds.train_test_split(X, y, shuffle=False, **kwargs)
        theirs = sk_split(X, y, shuffle=False, **kwargs)
        assert len(ours) == len(theirs) == 4
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)


def test_split_keeps_rows_together_and_is_seeded():
    X, y, w = np.arange(200).reshape(100, 2), np.arange(100), [f"s{i}" for i in range(100)]
    Xtr, Xte, ytr, yte, wtr, _ = ds.train_test_split(X, y, w, test_size=0.2, seed=5)
    assert Xtr.shape == (80, 2) and Xte.shape == (20, 2)
    np.testing.assert_array_equal(Xtr[:, 0], 2 * ytr)
    np.testing.assert_array_equal(Xte[:, 0], 2 * yte)
    assert isinstance(wtr, list) and wtr == [f"s{i}" for i in ytr]
    assert sorted(np.concatenate([ytr, yte]).tolist()) == list(range(100))
    again = ds.train_test_split(X, y, w, test_size=0.2, random_state=5)
    np.testing.assert_array_equal(again[2], ytr)
    other = ds.train_test_split(X, y, w, test_size=0.2, seed=6)
    assert not np.array_equal(other[2], ytr)


def test_split_of_another_array_library_stays_there():
    xp = pytest.importorskip("array_api_strict")
    X = xp.reshape(xp.arange(20, dtype=xp.float64), (10, 2))
    Xtr, Xte = ds.train_test_split(X, test_size=0.3, seed=0)
    assert type(Xtr) is type(X) and Xtr.shape == (7, 2) and Xte.shape == (3, 2)


@pytest.mark.parametrize(
    ("counts", "test_size"),
    [([50, 50], 0.25), ([80, 20], 0.1), ([60, 30, 10], 0.2), ([7, 5, 3, 2], 0.5), ([90, 9, 2], 7)],
)
def test_stratified_split_keeps_proportions(sk_split, counts, test_size):
    y = np.repeat(np.arange(len(counts)), counts)
    X = np.arange(len(y))
    Xtr, _, ytr, yte = ds.train_test_split(X, y, test_size=test_size, stratify=y, seed=0)
    sk_tr, sk_te = sk_split(y, test_size=test_size, stratify=y, random_state=0)
    assert (len(ytr), len(yte)) == (len(sk_tr), len(sk_te))
    np.testing.assert_array_equal(y[Xtr], ytr)
    for part in (ytr, yte):
        share = np.bincount(part, minlength=len(counts))
        exact = np.array(counts) * len(part) / len(y)
        assert np.all(np.abs(share - exact) < 1), (share, exact)
    # a seed fixes the split; a stratified split is still shuffled
    again = ds.train_test_split(X, y, test_size=test_size, stratify=y, seed=0)
    np.testing.assert_array_equal(again[0], Xtr)
    assert np.any(np.diff(Xtr) < 0)


def test_stratify_by_rows_of_a_2d_label_array():
    labels = np.repeat(np.array([[0, 1], [1, 0], [1, 1]]), [20, 20, 40], axis=0)
    _, te = ds.train_test_split(labels, test_size=0.25, stratify=labels, seed=0)
    assert len(te) == 20
    assert sorted(map(tuple, te.tolist())).count((1, 1)) == 10


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "message"),
    [
        ((), {}, TypeError, "needs at least one array, received none"),
        ((np.arange(3), np.arange(4)), {}, ValueError, r"received lengths \[3, 4\]"),
        ((np.float64(3.0),), {}, TypeError, "at least one dimension.*0-d"),
        ((5,), {}, TypeError, r"arrays\[0\] must be an array or a list .*received int"),
        ((np.arange(10),), {"test_size": 0}, ValueError, r"integer in \[1, 9\].*test_size=0"),
        ((np.arange(10),), {"test_size": 10}, ValueError, "received test_size=10"),
        ((np.arange(10),), {"test_size": 1.0}, ValueError, r"float in \(0, 1\).*test_size=1\.0"),
        ((np.arange(10),), {"test_size": "half"}, TypeError, "received test_size='half' \\(str\\)"),
        ((np.arange(10),), {"train_size": -0.5}, ValueError, r"received train_size=-0\.5"),
        (
            (np.arange(10),),
            {"test_size": 0.6, "train_size": 0.6},
            ValueError,
            r"at most 1 as fractions.*sum 1\.2",
        ),
        ((np.arange(10),), {"test_size": 6, "train_size": 5}, ValueError, "6 \\+ 5 = 11"),
        ((np.arange(2),), {"test_size": 0.9}, ValueError, "train set would be empty"),
        (([1],), {}, ValueError, "at least 2 samples .*received n_samples=1"),
        ((np.arange(10),), {"shuffle": 0}, TypeError, "shuffle must be True or False"),
        ((np.arange(10),), {"seed": -2}, ValueError, "seed must be a non-negative integer"),
        (
            (np.arange(10),),
            {"shuffle": False, "stratify": np.arange(10) % 2},
            ValueError,
            "stratify needs shuffle=True",
        ),
        (
            (np.arange(10),),
            {"stratify": np.arange(9) % 2},
            ValueError,
            r"stratify must have shape \(10,\).*received shape \(9,\)",
        ),
        (
            (np.arange(10),),
            {"stratify": np.array([0] * 9 + [1])},
            ValueError,
            r"at least 2 samples of every class.*\[1\]",
        ),
        (
            (np.arange(12),),
            {"test_size": 2, "stratify": np.arange(12) % 3},
            ValueError,
            "test set would hold 2 samples for 3 classes",
        ),
    ],
)
def test_split_bad_arguments(args, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        ds.train_test_split(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# one_hot


def test_one_hot_round_trips_with_argmax():
    y = np.random.default_rng(0).integers(0, 7, size=200)
    Y = ds.one_hot(y)
    assert Y.shape == (200, 7) and Y.dtype == np.float32
    np.testing.assert_array_equal(Y.argmax(axis=1), y)
    np.testing.assert_array_equal(Y.sum(axis=1), 1.0)
    assert ds.one_hot(y, num_classes=10).shape == (200, 10)
    assert ds.one_hot(y, dtype=np.float64).dtype == np.float64


def test_one_hot_accepts_lists_columns_integral_floats_and_empty():
    np.testing.assert_array_equal(ds.one_hot([[1], [0]]), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(ds.one_hot(np.array([2.0, 0.0])), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(ds.one_hot(np.array([True, False])), [[0, 1], [1, 0]])
    assert ds.one_hot(np.array([], dtype=np.int64), num_classes=3).shape == (0, 3)


@pytest.mark.parametrize(
    ("y", "kwargs", "exc", "message"),
    [
        ([0, -1, 2], {}, ValueError, r"non-negative class labels, .*such as \[-1\]"),
        ([0, 1.5], {}, ValueError, r"non-integral values such as \[1\.5\]"),
        ([0, np.nan], {}, ValueError, "non-integral values such as \\[nan\\]"),
        ([0, 3], {"num_classes": 3}, ValueError, r"labels in \[0, num_classes - 1\] = \[0, 2\]"),
        (["a", "b"], {}, TypeError, "integer class labels, received an array of dtype <U1"),
        ([[0, 1], [1, 0]], {}, ValueError, r"1-D \(n,\) or a column .*shape \(2, 2\)"),
        (3, {}, ValueError, r"received shape \(\)"),
        ([0, 1], {"num_classes": 0}, ValueError, "num_classes must be a positive integer"),
        ([0, 1], {"num_classes": 2.0}, TypeError, r"num_classes=2\.0 \(float\)"),
        ([], {}, ValueError, "num_classes must be given when y is empty"),
        ([0, 1], {"dtype": "not-a-dtype"}, TypeError, "dtype must be a NumPy data type"),
    ],
)
def test_one_hot_bad_arguments(y, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        ds.one_hot(y, **kwargs)


# ---------------------------------------------------------------------------------------------
# load_digits


def test_load_digits_shape_and_range():
    X, y = ds.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y).size == 10 and np.bincount(y).min() > 170
    raw, _ = ds.load_digits(scale=False)
    np.testing.assert_array_equal(raw, X * 16)
    assert np.array_equal(raw, np.round(raw)) and raw.max() == 16
    X3, y3 = ds.load_digits(n_class=3)
    assert set(y3.tolist()) == {0, 1, 2} and len(X3) == np.sum(y < 3)
    bunch = ds.load_digits(return_X_y=False)
    assert bunch["images"].shape == (1797, 8, 8)
    assert bunch["target_names"].tolist() == list(range(10))


def test_load_digits_equals_sklearn_also_through_the_fallback(skd, monkeypatch):
    Xs, ys = skd.load_digits(return_X_y=True)
    X, y = ds.load_digits(scale=False)
    np.testing.assert_array_equal(X, Xs)
    np.testing.assert_array_equal(y, ys)
    # should scikit-learn ever move its file, the public loader takes over
    monkeypatch.setattr(ds, "_DIGITS_FILE", ("no", "such", "file.csv.gz"))
    X, y = ds.load_digits(scale=False, n_class=5)
    Xs, ys = skd.load_digits(n_class=5, return_X_y=True)
    np.testing.assert_array_equal(X, Xs)
    np.testing.assert_array_equal(y, ys)


def test_load_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match=re.escape("pip install scikit-learn")):
        ds.load_digits()


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"n_class": 11}, ValueError, r"n_class must be an integer in \[1, 10\], received n_cl"),
        ({"n_class": 0}, ValueError, "n_class must be a positive integer, received n_class=0"),
        ({"scale": "yes"}, TypeError, "scale must be True or False, received scale='yes'"),
        ({"return_X_y": None}, TypeError, "return_X_y must be True or False"),
    ],
)
def test_load_digits_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        ds.load_digits(**kwargs)
