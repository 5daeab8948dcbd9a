"""The speed-ups of the convolution keep its results: col2im's shifted sums equal the padded
sums bit for bit, and a Conv2D that runs its batch in runs of images (to bound the column
matrix) computes what one run computes, on every backend, in float64."""

import itertools

import numpy as np
import pytest
from conftest import assert_close

from backprop.backend import resolve
from backprop.layers import Conv2D, _im2col
from backprop.layers import convolutional as conv_module


def _padded_sum(parts, axis, length):
    """The reference: every array zero-padded to its shift, then added in order."""
    total = None
    for d, a in parts:
        widths = [(0, 0)] * a.ndim
        widths[axis] = (d, length - d - a.shape[axis])
        padded = np.pad(a, widths)
        total = padded if total is None else total + padded
    return total


@pytest.mark.parametrize(
    "shifts, sizes, length",
    [
        ((0, 1, 2), (5, 5, 5), 7),  # a 3-wide window, stride 1
        ((0, 0), (3, 3), 3),  # no shift: a plain sum
        ((0,), (4,), 6),  # one array, zeros after it
        ((2,), (2,), 5),  # zeros on both sides
        ((0, 3), (2, 2), 6),  # a gap that no array reaches
        ((0, 1, 2, 3, 4), (1, 1, 1, 1, 1), 5),  # a window wider than the image
    ],
)
def test_shifted_sum_is_the_padded_sum_bit_for_bit(shifts, sizes, length):
    rng = np.random.default_rng(0)
    parts = [(d, rng.normal(size=(2, 3, s, 2))) for d, s in zip(shifts, sizes, strict=True)]
    got = _im2col.shifted_sum(parts, 2, length, np)
    np.testing.assert_array_equal(got, _padded_sum(parts, 2, length))
    for _, a in parts:  # the inputs are not written into
        assert np.isfinite(a).all()
    before = [a.copy() for _, a in parts]
    _im2col.shifted_sum(parts, 2, length, np)
    for (_, a), b in zip(parts, before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kernel, strides, out",
    [((3, 3), (1, 1), (5, 4)), ((2, 2), (2, 2), (3, 3)), ((3, 2), (2, 3), (3, 2))],
)
def test_col2im_is_the_adjoint_of_the_slices(kernel, strides, out):
    """The scatter-add of every slice's gradient, written out with writes (NumPy only).

    Only the order of the additions differs (rows of the window first): a few roundings."""
    rng = np.random.default_rng(1)
    (kh, kw), (sh, sw), (oh, ow) = kernel, strides, out
    hp, wp = sh * (oh - 1) + kh + 1, sw * (ow - 1) + kw  # one row no window reads
    pieces = [rng.normal(size=(2, oh, ow, 3)) for _ in range(kh * kw)]
    expected = np.zeros((2, hp, wp, 3))
    for i in range(kh):
        for j in range(kw):
            expected[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :] += (
                pieces[i * kw + j]
            )
    got = _im2col.col2im(pieces, (hp, wp), kernel, strides, np)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("padding, strides", [("same", 1), ("valid", 2)])
def test_runs_of_images_compute_what_one_run_computes(backend64, monkeypatch, padding, strides):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(7, 6, 5, 3))
    dy = rng.normal(size=(7, *Conv2D(4, 3, strides, padding).compute_output_shape((6, 5, 3))))

    def run(entries):
        monkeypatch.setattr(conv_module, "COLS_ENTRIES", entries)
        monkeypatch.setattr(conv_module, "COLS_ENTRIES_LARGE", entries)
        layer = Conv2D(4, 3, strides, padding, activation="tanh")
        layer.build_from_shape(
            (6, 5, 3), backend64, np.random.default_rng(3), backend64.dtype("float64")
        )
        layer.forward(backend64.asarray(x, dtype=layer.dtype), training=True)
        layer.need_dx = True
        assert len(layer._chunks(7)) == (1 if entries >= 2**24 else 7)
        dx = layer.backward(backend64.asarray(dy, dtype=layer.dtype))
        return layer, dx

    one, dx_one = run(2**24)
    runs, dx_runs = run(1)  # one image per run
    # only the blocking of the products differs: roundings (entries are O(1) to O(10))
    assert_close(runs.y, one.y, backend64, rtol=1e-12, atol=1e-13)
    assert_close(dx_runs, dx_one, backend64, rtol=1e-12, atol=1e-13)
    for k in ("W", "b"):
        assert_close(runs.grads[k], one.grads[k], backend64, rtol=1e-12, atol=1e-13)


def test_the_column_matrix_is_bounded():
    """At batch 256, the second convolution of the Fashion CNN builds its columns in runs."""
    layer = Conv2D(32, 3, padding="same")
    numpy = resolve("numpy")
    layer.build_from_shape((28, 28, 32), numpy, np.random.default_rng(0), numpy.dtype("float32"))
    layer.out = (28, 28)
    chunks = layer._chunks(256)
    assert chunks[0] == (0, chunks[0][1]) and chunks[-1][1] == 256
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
    biggest = max(hi - lo for lo, hi in chunks) * 28 * 28 * 9 * 32
    assert biggest <= conv_module.COLS_ENTRIES
