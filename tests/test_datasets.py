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


# ---------------------------------------------------------------------------------------------
# IDX files, MNIST and Fashion-MNIST. Nothing here leaves this machine: downloads come from an
# HTTP server on 127.0.0.1 serving a few generated images, with their hashes given to
# load_idx_dataset; the official loaders are checked against their table, never run online.

IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Any request to a host other than 127.0.0.1 fails the test instead of going out."""
    import urllib.parse
    import urllib.request

    real = urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        host = urllib.parse.urlsplit(getattr(url, "full_url", url)).hostname
        if host not in ("127.0.0.1", None):  # None: a file:// URL
            pytest.fail(f"a test tried to reach {url!r}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)
    monkeypatch.setenv("no_proxy", "*")  # a proxy set in the environment must not see loopback


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def idx_files(tmp_path):
    """Five train and three test 28x28 images with labels, as gzipped IDX bytes by file name."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 5, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    folder = tmp_path / "made"
    folder.mkdir()
    blobs = {}
    for name, a in arrays.items():
        ds.write_idx(folder / name, a)
        blobs[name] = (folder / name).read_bytes()
    return arrays, blobs


class _Server:
    """An HTTP server on 127.0.0.1 (port 0) serving ``files`` under /data/, counting requests."""

    def __init__(self, files: dict[str, bytes]):
        import http.server
        import threading

        self.files = dict(files)
        self.cut: dict[str, int] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # the name http.server calls
                server.requests.append(self.path)
                body = server.files.get(self.path.removeprefix("/data/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # a transfer cut short: the connection closes after `cut` bytes
                self.wfile.write(body[: server.cut.get(self.path.removeprefix("/data/"))])

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(idx_files):
    s = _Server(idx_files[1])
    yield s
    s.close()


@pytest.fixture
def dead_url():
    """The address of a server that has just closed: nothing listens there."""
    s = _Server({})
    url = s.url
    s.close()
    return url


def _hashes(blobs):
    return {name: _sha256(blob) for name, blob in blobs.items()}


def _assert_loaded(loaded, arrays):
    (x_train, y_train), (x_test, y_test) = loaded
    for got, name in zip((x_train, y_train, x_test, y_test), IDX_NAMES, strict=True):
        assert isinstance(got, np.ndarray) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[name])
    assert x_train.shape == (5, 28, 28) and y_train.shape == (5,)
    assert x_test.shape == (3, 28, 28) and y_test.shape == (3,)


def test_idx_round_trips_images_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    for a in (
        rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 7, dtype=np.uint8),
        np.zeros((0, 28, 28), dtype=np.uint8),
        rng.integers(-128, 128, (2, 3), dtype=np.int8),
        rng.integers(-30000, 30000, (3, 2), dtype=np.int16),
        rng.integers(-(2**31), 2**31 - 1, (5,), dtype=np.int32),
        rng.normal(size=(2, 2, 2)).astype(np.float32),
        rng.normal(size=(3,)),
    ):
        for name in ("a-idx.gz", "a-idx"):
            ds.write_idx(tmp_path / name, a)
            b = ds.read_idx(tmp_path / name)
            assert b.dtype == a.dtype and b.shape == a.shape and b.dtype.isnative
            np.testing.assert_array_equal(b, a)
            b[...] = 0  # a copy the caller may write to, not a view of the file's bytes


def test_idx_header_is_the_standard_one(tmp_path):
    """The bytes are those of the IDX format: 0, 0, type code, ndim, big-endian sizes, data."""
    ds.write_idx(tmp_path / "a", np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8))
    assert (tmp_path / "a").read_bytes() == bytes(
        [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]
    )
    ds.write_idx(tmp_path / "b", np.array([1, 256], dtype=np.int16))
    assert (tmp_path / "b").read_bytes() == bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 1, 0])
    # written compressed, the bytes do not depend on the time (the hashes stay stable)
    ds.write_idx(tmp_path / "c.gz", np.arange(5, dtype=np.uint8))
    first = (tmp_path / "c.gz").read_bytes()
    ds.write_idx(tmp_path / "c.gz", np.arange(5, dtype=np.uint8))
    assert (tmp_path / "c.gz").read_bytes() == first


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"too short to be an IDX file: 0 bytes"),
        (b"\x00\x00\x08", r"too short to be an IDX file: 3 bytes"),
        (b"PK\x03\x04rest", r"not an IDX file: it starts with 50 4b, .*two zero bytes"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", r"unknown IDX type code 0x07.*0x08 \(uint8\)"),
        (b"\x00\x00\x08\x00", r"0 dimensions.*at least 1"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00", r"truncated: its header declares 3 dim"),
        (
            b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03\x01\x02\x03\x04",
            r"truncated: its header declares shape \(2, 3\) of uint8, 6 bytes of data.*holds 4",
        ),
        (
            b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02\x03",
            r"1 byte\(s\) more than its header declares \(shape \(2,\) of uint8",
        ),
        (b"\x1f\x8b\x08\x00garbage", r"not a readable gzip file"),
    ],
)
def test_idx_refuses_damaged_files_naming_them(tmp_path, data, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        ds.read_idx(path)
    assert str(path) in str(info.value)


def test_idx_refuses_a_truncated_gzip_naming_it(tmp_path):
    path = tmp_path / "t-idx3-ubyte.gz"
    ds.write_idx(path, np.ones((3, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*not a readable gzip file"):
        ds.read_idx(path)


@pytest.mark.parametrize(
    ("array", "exc", "message"),
    [
        (np.array(3, dtype=np.uint8), ValueError, r"at least 1 dimension.*received shape \(\)"),
        (np.zeros(2, dtype=np.uint16), TypeError, r"uint8, int8, int16, int32, float32.*uint16"),
        (np.zeros(2, dtype=np.int64), TypeError, r"received dtype int64"),
        ([1, 2], TypeError, r"must be a numpy.ndarray, received list"),
    ],
)
def test_write_idx_bad_arguments(tmp_path, array, exc, message):
    with pytest.raises(exc, match=message):
        ds.write_idx(tmp_path / "x", array)
    assert not (tmp_path / "x").exists()


def test_download_verifies_caches_and_then_reads_the_cache_only(tmp_path, idx_files, server):
    arrays, blobs = idx_files
    cache = tmp_path / "cache"
    loaded = ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url, cache_dir=cache)
    _assert_loaded(loaded, arrays)
    assert sorted(server.requests) == sorted(f"/data/{n}" for n in IDX_NAMES)
    # the cache holds the four verified files under <cache_dir>/<name>/ and nothing else
    assert sorted(p.name for p in (cache / "tiny").iterdir()) == sorted(IDX_NAMES)
    for name in IDX_NAMES:
        assert (cache / "tiny" / name).read_bytes() == blobs[name]
    server.requests.clear()
    again = ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url, cache_dir=cache)
    _assert_loaded(again, arrays)
    assert server.requests == []


def test_only_the_missing_files_are_downloaded(tmp_path, idx_files, server):
    arrays, blobs = idx_files
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(blobs["train-labels-idx1-ubyte.gz"])
    loaded = ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url, cache_dir=tmp_path)
    _assert_loaded(loaded, arrays)
    assert "/data/train-labels-idx1-ubyte.gz" not in server.requests
    assert len(server.requests) == 3


def test_cache_folder_from_environment_and_home(tmp_path, idx_files, server, monkeypatch):
    arrays, blobs = idx_files
    monkeypatch.setenv("BACKPROP_DATA", str(tmp_path / "env"))
    _assert_loaded(ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url), arrays)
    assert sorted(p.name for p in (tmp_path / "env" / "tiny").iterdir()) == sorted(IDX_NAMES)
    # the argument wins over the environment
    ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url, cache_dir=tmp_path / "arg")
    assert (tmp_path / "arg" / "tiny").is_dir()
    # without either: ~/.backprop/datasets/<name>/
    monkeypatch.delenv("BACKPROP_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _assert_loaded(ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url), arrays)
    home = tmp_path / "home" / ".backprop" / "datasets" / "tiny"
    assert sorted(p.name for p in home.iterdir()) == sorted(IDX_NAMES)


def test_a_corrupted_download_is_refused_and_leaves_nothing(tmp_path, idx_files, server, dead_url):
    _, blobs = idx_files
    name = "train-images-idx3-ubyte.gz"
    good = blobs[name]
    server.files[name] = good[:-1] + bytes([good[-1] ^ 1])  # one bit flipped
    with pytest.raises(ValueError, match="SHA-256") as info:
        ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url, cache_dir=tmp_path)
    message = str(info.value)
    assert server.url + name in message and _hashes(blobs)[name] in message
    assert _sha256(server.files[name]) in message
    # no partial or unverified file is left behind: the folder holds only verified files
    left = sorted(p.name for p in (tmp_path / "tiny").iterdir())
    assert name not in left and all(n in IDX_NAMES for n in left)
    # among mirrors, wrong bytes from one are a reason to try the next; when none is intact
    # the error is still about the bytes (the machine is online), listing every mirror
    with pytest.raises(ValueError, match=r"No mirror delivered an intact .*\n.*\n.*SHA-256"):
        ds.load_idx_dataset(
            "tiny", _hashes(blobs), origin=[dead_url, server.url], cache_dir=tmp_path
        )
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == left
    # with the right bytes on the server the next call succeeds
    server.files[name] = good
    ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url, cache_dir=tmp_path)


def test_a_local_folder_is_a_mirror_too(tmp_path, idx_files):
    """origin may be a file:// URL: a copy on a shared drive, say."""
    arrays, blobs = idx_files
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, blob in blobs.items():
        (mirror / name).write_bytes(blob)
    loaded = ds.load_idx_dataset(
        "tiny", _hashes(blobs), origin=mirror.as_uri(), cache_dir=tmp_path / "cache"
    )
    _assert_loaded(loaded, arrays)
    assert sorted(p.name for p in (tmp_path / "cache" / "tiny").iterdir()) == sorted(IDX_NAMES)


def test_a_transfer_cut_short_leaves_nothing(tmp_path, idx_files, server):
    _, blobs = idx_files
    server.cut["train-images-idx3-ubyte.gz"] = 1000
    with pytest.raises(
        ds.DownloadError, match=r"ubyte\.gz: the transfer broke off after 1000 of \d+ bytes"
    ):
        ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url, cache_dir=tmp_path)
    assert list((tmp_path / "tiny").iterdir()) == []


def test_a_damaged_cached_file_is_named(tmp_path, idx_files, server):
    arrays, blobs = idx_files
    ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url, cache_dir=tmp_path)
    path = tmp_path / "tiny" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])  # as an interrupted copy by hand leaves it
    server.requests.clear()
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*SHA-256.*[Dd]elete it"):
        ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url, cache_dir=tmp_path)
    assert server.requests == []  # refused, not silently fetched again
    path.unlink()
    _assert_loaded(
        ds.load_idx_dataset("tiny", _hashes(blobs), origin=server.url, cache_dir=tmp_path), arrays
    )


def test_files_that_do_not_make_a_data_set_are_named(tmp_path, idx_files):
    arrays, blobs = idx_files
    # the hashes match, but the labels are one short of the images
    ds.write_idx(tmp_path / "short.gz", arrays["train-labels-idx1-ubyte.gz"][:4])
    blobs = dict(blobs, **{"train-labels-idx1-ubyte.gz": (tmp_path / "short.gz").read_bytes()})
    s = _Server(blobs)
    try:
        with pytest.raises(
            ValueError, match=r"5 images but .*train-labels-idx1-ubyte\.gz holds 4 labels"
        ):
            ds.load_idx_dataset("tiny", _hashes(blobs), origin=s.url, cache_dir=tmp_path)
        # images of the wrong rank
        ds.write_idx(tmp_path / "flat.gz", np.zeros((5, 784), dtype=np.uint8))
        s.files["train-images-idx3-ubyte.gz"] = (tmp_path / "flat.gz").read_bytes()
        with pytest.raises(ValueError, match=r"shape \(n, rows, cols\).*shape \(5, 784\)"):
            ds.load_idx_dataset("flat", _hashes(s.files), origin=s.url, cache_dir=tmp_path)
    finally:
        s.close()


def test_offline_error_names_the_url_and_the_folder(tmp_path, idx_files, dead_url):
    _, blobs = idx_files
    with pytest.raises(ds.DownloadError) as info:
        ds.load_idx_dataset("tiny", _hashes(blobs), origin=dead_url, cache_dir=tmp_path)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, OSError)
    message = str(info.value)
    assert dead_url + "train-images-idx3-ubyte.gz" in message
    assert "offline" in message
    assert str(tmp_path / "tiny") in message and all(n in message for n in IDX_NAMES)
    assert not any((tmp_path / "tiny").iterdir())  # no temporary file left


def test_mirrors_are_tried_in_order(tmp_path, idx_files, server, dead_url):
    arrays, blobs = idx_files
    origins = [dead_url, server.url]
    loaded = ds.load_idx_dataset("tiny", _hashes(blobs), origin=origins, cache_dir=tmp_path)
    _assert_loaded(loaded, arrays)
    assert len(server.requests) == 4
    # an HTTP error (the file is not on that server) is also a reason to try the next
    empty = _Server({})
    try:
        loaded = ds.load_idx_dataset(
            "again", _hashes(blobs), origin=(empty.url, server.url), cache_dir=tmp_path
        )
        _assert_loaded(loaded, arrays)
        assert len(empty.requests) == 4
    finally:
        empty.close()
    with pytest.raises(ds.DownloadError, match=r"HTTP Error 404.*\n.*Connection refused"):
        other = _Server({})
        try:
            ds.load_idx_dataset(
                "none", _hashes(blobs), origin=[other.url, dead_url], cache_dir=tmp_path
            )
        finally:
            other.close()


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "message"),
    [
        (("../up", {}), {"origin": "http://127.0.0.1/"}, ValueError, r"name must be .*'\.\./up'"),
        (("", {}), {"origin": "http://127.0.0.1/"}, ValueError, "name must be"),
        (("x", {"a.gz": "0" * 64}), {"origin": "http://127.0.0.1/"}, ValueError, r"missing"),
        (("x", [1]), {"origin": "http://127.0.0.1/"}, TypeError, r"files must be a mapping"),
        (("x", "bad-hash"), {"origin": "http://127.0.0.1/"}, ValueError, "64 hexadecimal"),
        (("x", None), {"origin": []}, ValueError, r"origin must be a URL or a non-empty"),
        (("x", None), {"origin": 3}, TypeError, r"origin must be a URL .*received int"),
        (("x", None), {"origin": "u", "cache_dir": 3}, TypeError, r"cache_dir must be a path"),
        (("x", None), {"origin": "127.0.0.1/data"}, ValueError, r"http://, https:// or file://"),
    ],
)
def test_load_idx_dataset_bad_arguments(tmp_path, args, kwargs, exc, message):
    name, files = args
    good = {n: "0" * 64 for n in IDX_NAMES}
    if files is None:
        files = good
    elif files == "bad-hash":
        files = dict(good, **{IDX_NAMES[0]: "xyz"})
    with pytest.raises(exc, match=message):
        ds.load_idx_dataset(name, files, **{"cache_dir": tmp_path, **kwargs})


# the published SHA-256 of the official archives (see the table in backprop/datasets.py)
MNIST_SHA256 = {
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
FASHION_MNIST_SHA256 = {
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


@pytest.mark.parametrize(
    ("loader", "name", "hashes", "mirror"),
    [
        (
            ds.load_mnist,
            "mnist",
            MNIST_SHA256,
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        (
            ds.load_fashion_mnist,
            "fashion_mnist",
            FASHION_MNIST_SHA256,
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        ),
    ],
)
def test_official_loaders_use_the_official_files(
    monkeypatch, tmp_path, loader, name, hashes, mirror
):
    calls = []
    monkeypatch.setattr(ds, "load_idx_dataset", lambda *a, **k: calls.append((a, k)) or "data")
    assert loader() == "data"
    assert loader(cache_dir=tmp_path, origin="http://127.0.0.1:1/m/") == "data"
    (args, kwargs), (args2, kwargs2) = calls
    assert args == (name, hashes) == args2
    assert list(args[1]) == list(IDX_NAMES)
    assert kwargs["cache_dir"] is None and kwargs["origin"][0] == mirror
    assert all(u.startswith("https://") for u in kwargs["origin"])
    assert kwargs2 == {"cache_dir": tmp_path, "origin": "http://127.0.0.1:1/m/"}


@pytest.mark.parametrize("loader", [ds.load_mnist, ds.load_fashion_mnist])
def test_official_loaders_refuse_other_files(tmp_path, server, loader):
    """Served the small files under the official names, an official loader asks for exactly
    those names and refuses the bytes: the official hashes are checked."""
    with pytest.raises(ValueError, match="SHA-256"):
        loader(cache_dir=tmp_path, origin=server.url)
    assert server.requests == ["/data/train-images-idx3-ubyte.gz"]
