"""Pooling layers (channels last), with Keras's names and defaults.

``MaxPooling2D``, ``AveragePooling2D``, ``GlobalMaxPooling2D`` and ``GlobalAveragePooling2D``.

A pooling window reads the same ``kh*kw`` strided slices of the image as a convolution's
im2col (``backprop.layers._im2col``), and reduces them instead of multiplying: with
``maximum`` or with ``+``. Its backward pass sends each slice's gradient back with col2im.
Reached as ``bp.layers.MaxPooling2D`` and so on.
"""

from __future__ import annotations

from .._checks import check_bool
from . import _im2col
from .core import Array, Layer


class _Pooling2D(Layer):
    """What MaxPooling2D and AveragePooling2D share: the arguments, shapes and the slices.

    Shapes: ``x (n, h, w, c)``, ``y (n, oh, ow, c)``; ``oh = floor((h - kh) / sh) + 1`` with
    ``"valid"`` padding, ``ceil(h / sh)`` with ``"same"`` (and so ``ow``).
    """

    # what pads the image for 'same': a value that never changes the reduction
    _pad_value = 0.0

    def __init__(
        self,
        pool_size: int | tuple[int, int] = (2, 2),
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        name: str | None = None,
        trainable: bool = True,
        input_shape: tuple[int, ...] | None = None,
    ):
        cls = type(self).__name__
        self.pool_size = _im2col.check_pair(pool_size, "pool_size", cls)
        # Keras: strides=None means windows side by side (the stride is the window)
        self.strides = (
            self.pool_size if strides is None else _im2col.check_pair(strides, "strides", cls)
        )
        self.padding = _im2col.check_padding(padding, cls)
        if input_shape is not None:
            _im2col.check_image_shape(input_shape, cls)
        super().__init__(name, trainable, input_shape)

    def compute_output_shape(self, input_shape):
        h, w, c = _im2col.check_image_shape(input_shape, self.name)
        oh, ow = _im2col.check_window_fits(
            h, w, self.pool_size, self.strides, self.padding, "pool_size", self.name
        )
        return (oh, ow, c)

    def build_from_shape(self, input_shape, backend, rng, dtype):
        """Record the input shape (``(h, w, c)``) and the backend; a pooling has no weights.

        Raises
        ------
        ValueError
            If ``input_shape`` is not ``(h, w, c)`` or the window is larger than the padded
            image.
        """
        input_shape = tuple(int(d) for d in input_shape)
        self.compute_output_shape(input_shape)
        Layer.build(self, input_shape[2], backend, rng, dtype)
        self.input_shape = input_shape

    def _slices(self, x: Array) -> list[Array]:
        """Check ``x``, pad it, cache what backward needs, and return the window's slices."""
        self._check_built()
        _im2col.check_images(x, self.input_dim, self.name)
        h, w = x.shape[1], x.shape[2]
        out = _im2col.check_window_fits(
            h, w, self.pool_size, self.strides, self.padding, "pool_size", self.name
        )
        pads = _im2col.paddings(h, w, self.pool_size, self.strides, self.padding)
        x_pad = _im2col.pad_image(x, pads, self._pad_value, self.xp)
        self.x_shape, self.x_pad, self.pads, self.out = tuple(x.shape), x_pad, pads, out
        return _im2col.window_slices(x_pad, self.pool_size, self.strides, out)

    def _unpad(self, pieces: list[Array]) -> Array:
        """``dx`` from the gradients of the slices: col2im, then the padding cut off."""
        _, h, w, _ = self.x_shape
        top, _, left, _ = self.pads
        dx_pad = _im2col.col2im(
            pieces, self.x_pad.shape[1:3], self.pool_size, self.strides, self.xp
        )
        return dx_pad[:, top : top + h, left : left + w, :]

    def get_config(self):
        return self._with_trainable(
            {
                "name": self.name,
                "pool_size": list(self.pool_size),
                "strides": list(self.strides),
                "padding": self.padding,
            }
        )


class MaxPooling2D(_Pooling2D):
    r"""Max pooling: each output pixel is the largest entry of its window, per channel.

    forward:   y = max over the window positions (i, j) of x_pad[:, i + sh*p, j + sw*q, :]
    backward:  dx = dy at the first maximum of each window (row-major window order), 0 elsewhere

    When several entries of a window tie for the maximum, the whole gradient goes to the first
    of them, as in Keras and PyTorch (a subgradient; splitting it would be another). 'same'
    padding pads with -inf, so a padded entry is never the maximum.

    Parameters
    ----------
    pool_size : int or pair of int, default (2, 2)
        ``(kh, kw)``, the window.
    strides : int or pair of int, optional
        ``(sh, sw)``; None (the default) means ``pool_size``: windows side by side.
    padding : {"valid", "same"}, default "valid"
        As in Conv2D.

    Shapes: ``x (n, h, w, c)``, ``y (n, oh, ow, c)``.
    """

    _pad_value = -float("inf")

    def forward(self, x, training=False):
        xp = self.xp
        slices = self._slices(x)
        y = slices[0]
        for s in slices[1:]:
            y = xp.maximum(y, s)
        self.y = y
        self._has_forward = True
        return y

    def backward(self, dy):
        self._check_forward_done()
        if not self.need_dx:
            return None
        xp, y = self.xp, self.y
        zero = xp.zeros_like(dy)
        # walk the window in order; `taken` marks the windows whose maximum has been found, so
        # only the first entry equal to the maximum gets dy (no boolean-mask indexing: the step
        # stays capture-safe)
        pieces, taken = [], None
        for s in _im2col.window_slices(self.x_pad, self.pool_size, self.strides, self.out):
            hit = s == y
            if taken is not None:
                hit = xp.logical_and(hit, xp.logical_not(taken))
            pieces.append(xp.where(hit, dy, zero))
            taken = hit if taken is None else xp.logical_or(taken, hit)
        return self._unpad(pieces)


class AveragePooling2D(_Pooling2D):
    r"""Average pooling: each output pixel is the mean of its window, per channel.

    forward:   y = (sum over the window positions (i, j) of x_pad[:, i + sh*p, j + sw*q, :]) / m
    backward:  every entry of a window gets dy / m (summed where windows overlap)

    ``m`` is the number of real entries in the window: ``kh*kw`` with 'valid' padding; with
    'same' padding the padded zeros are not counted (as in Keras and TensorFlow), so a window
    on the border divides by fewer.

    Parameters
    ----------
    pool_size : int or pair of int, default (2, 2)
        ``(kh, kw)``, the window.
    strides : int or pair of int, optional
        ``(sh, sw)``; None (the default) means ``pool_size``.
    padding : {"valid", "same"}, default "valid"
        As in Conv2D.

    Shapes: ``x (n, h, w, c)``, ``y (n, oh, ow, c)``, ``m`` a number or ``(1, oh, ow, 1)``.
    """

    def forward(self, x, training=False):
        slices = self._slices(x)
        total = slices[0]
        for s in slices[1:]:
            total = total + s
        self.m = self._counts(x)
        self._has_forward = True
        return total / self.m

    def _counts(self, x: Array) -> Array | float:
        """``m``: how many real entries each window holds (the same slices of an image of ones)."""
        kh, kw = self.pool_size
        if self.pads == (0, 0, 0, 0):
            return float(kh * kw)
        xp = self.xp
        ones = xp.ones((1, *x.shape[1:3], 1), dtype=x.dtype, device=_im2col.device(x))
        ones = _im2col.pad_image(ones, self.pads, 0.0, xp)
        m = None
        for s in _im2col.window_slices(ones, self.pool_size, self.strides, self.out):
            m = s if m is None else m + s
        return m

    def backward(self, dy):
        self._check_forward_done()
        if not self.need_dx:
            return None
        g = dy / self.m  # the same gradient for every entry of the window
        return self._unpad([g] * (self.pool_size[0] * self.pool_size[1]))


class _GlobalPooling2D(Layer):
    """What the global poolings share: a reduction over height and width, per channel.

    Shapes: ``x (n, h, w, c)``, ``y (n, c)``, or ``(n, 1, 1, c)`` with ``keepdims=True``.
    """

    def __init__(
        self,
        keepdims: bool = False,
        name: str | None = None,
        trainable: bool = True,
        input_shape: tuple[int, ...] | None = None,
    ):
        self.keepdims = check_bool(keepdims, "keepdims")
        if input_shape is not None:
            _im2col.check_image_shape(input_shape, type(self).__name__)
        super().__init__(name, trainable, input_shape)

    def compute_output_shape(self, input_shape):
        c = _im2col.check_image_shape(input_shape, self.name)[2]
        return (1, 1, c) if self.keepdims else (c,)

    def build_from_shape(self, input_shape, backend, rng, dtype):
        """Record the input shape (``(h, w, c)``) and the backend; no weights."""
        input_shape = tuple(int(d) for d in input_shape)
        self.compute_output_shape(input_shape)
        Layer.build(self, input_shape[2], backend, rng, dtype)
        self.input_shape = input_shape

    def _check(self, x: Array) -> None:
        self._check_built()
        _im2col.check_images(x, self.input_dim, self.name)
        self.x_shape = tuple(x.shape)

    def _as_4d(self, dy: Array) -> Array:
        """``dy`` as ``(n, 1, 1, c)``, to broadcast over the image."""
        return dy if self.keepdims else self.xp.reshape(dy, (dy.shape[0], 1, 1, dy.shape[1]))

    def get_config(self):
        return self._with_trainable({"name": self.name, "keepdims": self.keepdims})


class GlobalAveragePooling2D(_GlobalPooling2D):
    r"""The mean of each channel over the image: ``y[b, c] = mean over (p, q) of x[b, p, q, c]``.

    backward:  dx[b, p, q, c] = dy[b, c] / (h * w)   (the mean's adjoint: a spread-out copy)

    Parameters
    ----------
    keepdims : bool, default False
        Whether ``y`` keeps the height and width axes, as ``(n, 1, 1, c)``.
    """

    def forward(self, x, training=False):
        self._check(x)
        self._has_forward = True
        return self.xp.mean(x, axis=(1, 2), keepdims=self.keepdims)

    def backward(self, dy):
        self._check_forward_done()
        if not self.need_dx:
            return None
        _, h, w, _ = self.x_shape
        return self.xp.broadcast_to(self._as_4d(dy) / (h * w), self.x_shape)


class GlobalMaxPooling2D(_GlobalPooling2D):
    r"""The largest entry of each channel over the image: ``y[b, c] = max over (p, q)``.

    backward:  dx = dy at the first maximum of each channel (row-major order), 0 elsewhere,
    as in Keras and PyTorch when entries tie.

    Parameters
    ----------
    keepdims : bool, default False
        Whether ``y`` keeps the height and width axes, as ``(n, 1, 1, c)``.
    """

    def forward(self, x, training=False):
        self._check(x)
        xp = self.xp
        n, h, w, c = x.shape
        pixels = xp.reshape(x, (n, h * w, c))
        # argmax gives the first maximum (the standard says so); backward routes dy to it
        self.first = xp.argmax(pixels, axis=1)  # (n, c)
        self._has_forward = True
        return xp.max(x, axis=(1, 2), keepdims=self.keepdims)

    def backward(self, dy):
        self._check_forward_done()
        if not self.need_dx:
            return None
        xp = self.xp
        n, h, w, c = self.x_shape
        dy = xp.reshape(dy, (n, 1, c))
        # one-hot of the first maximum by comparison with the pixel index (no scatter needed)
        where = xp.arange(h * w, device=_im2col.device(dy))[None, :, None] == self.first[:, None, :]
        dx = xp.where(where, dy, xp.zeros_like(dy))  # (n, h*w, c)
        return xp.reshape(dx, self.x_shape)
