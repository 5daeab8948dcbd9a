"""What convolution and pooling share: argument checks, output sizes, padding, im2col, col2im.

A window of ``kh x kw`` positions slides over an image ``x (n, h, w, c)`` with strides
``(sh, sw)``. Taking, for each of the ``kh*kw`` positions ``(i, j)`` of the window, the strided
slice ``x[:, i : i + sh*oh : sh, j : j + sw*ow : sw, :]`` (shape ``(n, oh, ow, c)``) gives every
window's entry ``(i, j)`` at once: a convolution joins the slices into one matrix and does one
``matmul`` (im2col); a pooling reduces them with ``maximum`` or ``+``. Only Python loops over
the ``kh*kw`` window positions; none over the batch or the pixels.

The backward pass is the adjoint of taking the slices (:func:`col2im`): each slice's gradient
goes back to the positions it was read from, summed where windows overlap. It is written with
zero padding and stacking only, no writes into arrays, so the one formulation runs on mutable
(NumPy, torch, CuPy) and immutable (JAX) arrays alike.

Like ``core``, this module imports no other layer module; ``convolutional`` and ``pooling``
import it (Chainer keeps the same helpers in ``chainer.utils.conv``).
"""

from __future__ import annotations

import itertools
from typing import Any

# the device of any array, JAX's traced ones included (they have no .device attribute)
from array_api_compat import device

from .._checks import as_int

Array = Any

PADDINGS = ("valid", "same")


# -- arguments -------------------------------------------------------------------------------
def check_pair(value: Any, what: str, layer: str) -> tuple[int, int]:
    """``value`` (a positive int, or a pair of them) as a pair of Python ints.

    Parameters
    ----------
    value : int or sequence of two ints
        E.g. ``kernel_size=3`` or ``strides=(2, 1)``.
    what : str
        The argument's name, for the message.
    layer : str
        The layer's class name, for the message.

    Returns
    -------
    tuple of int
        ``(rows, columns)``.

    Raises
    ------
    ValueError
        If ``value`` is not a positive integer or a pair of positive integers.
    """
    entries = [value, value] if as_int(value) is not None else value
    pair = (
        [as_int(v) for v in entries]
        if isinstance(entries, tuple | list) and len(entries) == 2
        else None
    )
    if pair is None or any(v is None or v <= 0 for v in pair):
        raise ValueError(
            f"{layer}: Expected {what} to be a positive integer or a pair of positive "
            f"integers (rows, columns), e.g. {what}=3 or {what}=(3, 3); received "
            f"{what}={value!r}."
        )
    return pair[0], pair[1]


def check_padding(padding: Any, layer: str) -> str:
    """``"valid"`` or ``"same"`` (any case, as Keras reads it), else a ValueError."""
    name = padding.lower() if isinstance(padding, str) else None
    if name not in PADDINGS:
        raise ValueError(
            f"{layer}: Expected padding to be 'valid' (no padding) or 'same' (zeros around the "
            f"image, so that the output has ceil(size / stride) rows and columns); received "
            f"padding={padding!r}."
        )
    return name


def check_image_shape(input_shape: Any, layer: str) -> tuple[int, int, int]:
    """``input_shape`` as ``(h, w, c)``: an image, channels last, without the batch axis."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"{layer} expected images of shape (height, width, channels) (channels last, "
            f"without the batch axis), received input_shape={shape}. Add a channel axis to "
            "greyscale images, e.g. x.reshape(n, 28, 28, 1) and input_shape=(28, 28, 1)."
        )
    return shape[0], shape[1], shape[2]


def check_images(x: Array, channels: int, layer: str) -> None:
    """Refuse a batch that is not ``(n, h, w, channels)``."""
    if x.ndim != 4 or x.shape[3] != channels:
        raise ValueError(
            f"{layer} expected a batch of images of shape (n, height, width, {channels}) "
            f"(channels last), received shape {tuple(x.shape)}."
        )


# -- sizes -----------------------------------------------------------------------------------
def output_size(size: int, k: int, s: int, padding: str) -> int:
    """Rows (or columns) of the output: Keras's formulas.

    ``"valid"``: ``floor((size - k) / s) + 1``; ``"same"``: ``ceil(size / s)``.
    """
    if padding == "same":
        return -(-size // s)
    return (size - k) // s + 1


def same_padding(size: int, k: int, s: int) -> tuple[int, int]:
    """Zeros before and after one axis for ``"same"``, split as TensorFlow splits them.

    ``total = max((out - 1) * s + k - size, 0)``; the odd one goes after (bottom or right).
    """
    total = max((output_size(size, k, s, "same") - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def paddings(
    h: int, w: int, kernel: tuple[int, int], strides: tuple[int, int], padding: str
) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)``: how many rows and columns pad an ``h x w`` image."""
    if padding == "valid":
        return 0, 0, 0, 0
    return (*same_padding(h, kernel[0], strides[0]), *same_padding(w, kernel[1], strides[1]))


def check_window_fits(
    h: int,
    w: int,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    what: str,
    layer: str,
) -> tuple[int, int]:
    """The output size ``(oh, ow)``; a ValueError when the window is larger than the image."""
    top, bottom, left, right = paddings(h, w, kernel, strides, padding)
    if kernel[0] > h + top + bottom or kernel[1] > w + left + right:
        raise ValueError(
            f"{layer}: the {what} {kernel} is larger than the (padded) image "
            f"{(h + top + bottom, w + left + right)} with padding={padding!r}, received "
            f"images of shape {(h, w)}. Use a smaller {what}, padding='same', or larger images."
        )
    return output_size(h, kernel[0], strides[0], padding), output_size(
        w, kernel[1], strides[1], padding
    )


# -- padding ---------------------------------------------------------------------------------
def pad_axis(a: Array, axis: int, before: int, after: int, value: float, xp: Any) -> Array:
    """``a`` with ``before`` and ``after`` entries of ``value`` added along ``axis``.

    The standard has no ``pad``: the constant blocks are made on ``a``'s device, in its dtype,
    and joined to it.
    """
    if before == 0 and after == 0:
        return a
    parts = []
    for count in (before, after):
        shape = list(a.shape)
        shape[axis] = count
        parts.append(xp.full(tuple(shape), value, dtype=a.dtype, device=device(a)))
    return xp.concat([p for p in (parts[0], a, parts[1]) if p.shape[axis] > 0], axis=axis)


def pad_image(x: Array, pads: tuple[int, int, int, int], value: float, xp: Any) -> Array:
    """``x (n, h, w, c)`` padded with ``value``: ``pads = (top, bottom, left, right)``."""
    top, bottom, left, right = pads
    return pad_axis(pad_axis(x, 1, top, bottom, value, xp), 2, left, right, value, xp)


def shifted_sum(parts: list[tuple[int, Array]], axis: int, length: int, xp: Any) -> Array:
    """``sum(pad_axis(a, axis, d, length - d - a.shape[axis], 0) for d, a in parts)``, unpadded.

    The sum of arrays shifted by ``d`` along ``axis`` into an axis of ``length`` entries,
    without making the padded copies: the axis is cut where the set of arrays covering it
    changes, each stretch is the sum of the slices that cover it (in the order of ``parts``,
    so the result is the padded sum's, bit for bit), and one ``concat`` joins the stretches.
    Each shifted array must fit: ``0 <= d`` and ``d + a.shape[axis] <= length``.
    """
    cuts = sorted({0, length} | {d for d, _ in parts} | {d + a.shape[axis] for d, a in parts})
    stretches = []
    for lo, hi in itertools.pairwise(cuts):
        total, fresh = None, False
        for d, a in parts:
            if d <= lo and hi <= d + a.shape[axis]:
                index = [slice(None)] * a.ndim
                index[axis] = slice(lo - d, hi - d)
                piece = a[tuple(index)]
                if total is None:
                    total = piece  # a view of the caller's array: not written into
                elif fresh:
                    total += piece  # in place where arrays are mutable, else rebinds (JAX)
                else:
                    total, fresh = total + piece, True
        if total is None:  # a stretch no array reaches: zeros
            a = parts[0][1]
            shape = list(a.shape)
            shape[axis] = hi - lo
            total = xp.zeros(tuple(shape), dtype=a.dtype, device=device(a))
        stretches.append(total)
    return stretches[0] if len(stretches) == 1 else xp.concat(stretches, axis=axis)


# -- the window's slices and their adjoint ---------------------------------------------------
def window_slices(
    x_pad: Array, kernel: tuple[int, int], strides: tuple[int, int], out: tuple[int, int]
) -> list[Array]:
    """The ``kh*kw`` strided slices of ``x_pad``, window position ``(i, j)`` in row-major order.

    Parameters
    ----------
    x_pad : array, shape (n, hp, wp, c)
        The padded images.
    kernel, strides, out : pair of int
        ``(kh, kw)``, ``(sh, sw)`` and the output size ``(oh, ow)``.

    Returns
    -------
    list of array, each shape (n, oh, ow, c)
        Slice ``i*kw + j`` holds entry ``(i, j)`` of every window:
        ``x_pad[:, i + sh*p, j + sw*q, :]`` at ``[:, p, q, :]``.
    """
    (kh, kw), (sh, sw), (oh, ow) = kernel, strides, out
    return [
        x_pad[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]


def im2col(
    x_pad: Array,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    out: tuple[int, int],
    xp: Any,
) -> Array:
    """The windows of ``x_pad`` as the rows of one matrix.

    Returns
    -------
    cols : array, shape (n*oh*ow, kh*kw*c)
        Row ``(b, p, q)`` is the window under output pixel ``(p, q)`` of image ``b``,
        flattened in the order of a kernel ``(kh, kw, c, ...)``: ``cols @ W.reshape(-1, f)``
        is the convolution.
    """
    n, c = x_pad.shape[0], x_pad.shape[3]
    cols = xp.stack(window_slices(x_pad, kernel, strides, out), axis=3)  # (n, oh, ow, kh*kw, c)
    return xp.reshape(cols, (n * out[0] * out[1], kernel[0] * kernel[1] * c))


def col2im(
    pieces: list[Array],
    padded: tuple[int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    xp: Any,
) -> Array:
    """The adjoint of :func:`window_slices`: each piece added back where its slice was read.

    ``dx_pad[:, i + sh*p, j + sw*q, :] += pieces[i*kw + j][:, p, q, :]`` for every window
    position ``(i, j)``, without writing into an array (JAX's arrays are immutable, and a
    portable formulation needs no backend branch). Row ``r`` of the padded image is row
    ``r // sh`` of the phase ``r % sh``; on the coarse grid of its phase, slice ``(i, j)`` is
    the piece shifted by ``(i // sh, j // sw)``, a zero padding. So each phase sums its shifted
    pieces, and the phases are interleaved (stacked and reshaped) into the full image. With
    stride 1 there is one phase and no interleaving; when the stride equals the window
    (pooling's default) each phase holds one unshifted piece and no sum.

    Parameters
    ----------
    pieces : list of array, each shape (n, oh, ow, c)
        ``dL/d(slice)`` for every window position, in :func:`window_slices`'s order.
    padded : pair of int
        ``(hp, wp)``, the padded image's size.
    kernel, strides : pair of int
        ``(kh, kw)`` and ``(sh, sw)``.

    Returns
    -------
    dx_pad : array, shape (n, hp, wp, c)
        The gradient with respect to the padded image.
    """
    (hp, wp), (kh, kw), (sh, sw) = padded, kernel, strides
    n, oh, ow, c = pieces[0].shape
    # the coarse grid: every shifted piece fits, and sh * hc covers the padded image
    hc = max((kh - 1) // sh + oh, -(-hp // sh))
    wc = max((kw - 1) // sw + ow, -(-wp // sw))
    # each phase's pieces with their shifts: summed along the width for every window row i
    # first, then the rows along the height (the order of the sums is the order of the window)
    shifted: dict[tuple[int, int], list[tuple[int, Array]]] = {}
    for i in range(kh):
        di, r = divmod(i, sh)
        rows: dict[int, list[tuple[int, Array]]] = {}
        for j in range(kw):
            dj, q = divmod(j, sw)
            rows.setdefault(q, []).append((dj, pieces[i * kw + j]))
        for q, row in rows.items():
            shifted.setdefault((r, q), []).append((di, shifted_sum(row, 2, wc, xp)))
    phases = {rq: shifted_sum(rows_, 1, hc, xp) for rq, rows_ in shifted.items()}
    if sh == 1 and sw == 1:
        dx_pad = phases[0, 0]
    else:
        zeros = None
        grid = []
        for r in range(sh):
            row = []
            for q in range(sw):
                if (r, q) not in phases and zeros is None:  # a phase no window position reads
                    zeros = xp.zeros(
                        (n, hc, wc, c), dtype=pieces[0].dtype, device=device(pieces[0])
                    )
                row.append(phases.get((r, q), zeros))
            grid.append(xp.stack(row, axis=3))  # (n, hc, wc, sw, c)
        # (n, hc, sh, wc, sw, c): padded row a*sh + r is coarse row a of phase r
        dx_pad = xp.reshape(xp.stack(grid, axis=2), (n, hc * sh, wc * sw, c))
    return dx_pad[:, :hp, :wp, :]
