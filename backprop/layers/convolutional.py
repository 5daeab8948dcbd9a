"""Convolutional layers: ``Conv2D``, with Keras's arguments, defaults and weight layout.

A convolution is a Dense layer applied to every window of the image: im2col joins the
``kh*kw`` strided slices of the padded image into one matrix whose rows are the windows, and
one ``matmul`` with the kernel reshaped to ``(kh*kw*c_in, filters)`` computes every output
pixel at once. The backward pass is Dense's, then col2im scatters the windows' gradient back
onto the image (``backprop.layers._im2col``). No convolution primitive of any library is
used, so it runs wherever the Array API runs. Reached as ``bp.layers.Conv2D``.
"""

from __future__ import annotations

from typing import Any

from .. import activations as _activations
from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from .._checks import check_bool
from . import _im2col
from .core import (
    Array,
    Layer,
    _check_positive_int,
    _constraint_configs,
    _initializer_config,
    _weight_constraints,
)

# The most entries of a column matrix built at once: a convolution runs its batch in runs of
# images whose columns fit, so that the largest array of a CNN's step no longer grows with the
# batch. Where each operation runs at once on a CPU (NumPy, torch), a run is sized for the
# processor's cache (512K entries: 2 MiB in float32), where the matrix product reads the
# columns just written: measured faster than one large matrix (bench/cnn.py). Where a step is
# traced into one program (JAX) or each operation launches a GPU kernel, many runs cost
# compilation or launches, so runs are sized for memory only (16M entries: 64 MiB).
COLS_ENTRIES = 2**19
COLS_ENTRIES_LARGE = 2**24


class Conv2D(Layer):
    r"""2-D convolution over images, channels last: ``y = g(conv(x, W) + b)``.

    With ``cols = im2col(pad(x))`` (one row per output pixel: its window, flattened) and the
    kernel as a matrix ``Wm = W.reshape(kh*kw*c_in, filters)``:

    forward:   z = cols @ Wm + b   (reshaped to (n, oh, ow, filters)),   y = g(z)
    backward:  dz = dy * g'(z),  dW = cols.T @ dz,  db = sum(dz over n, oh, ow),
               dx = unpad(col2im(dz @ Wm.T))

    It is Dense on the windows: ``z[b, p, q, f] = sum_{i, j, c} x_pad[b, sh*p + i, sw*q + j, c]
    * W[i, j, c, f] + b[f]`` (a cross-correlation, as in every framework). A pixel lies in
    several windows, so col2im sums its gradient over all of them.

    Parameters
    ----------
    filters : int
        Output channels (``c_out``), > 0.
    kernel_size : int or pair of int
        ``(kh, kw)``; an int means a square kernel.
    strides : int or pair of int, default 1
        ``(sh, sw)``, the step between windows.
    padding : {"valid", "same"}, default "valid"
        ``"valid"``: windows inside the image, ``oh = floor((h - kh) / sh) + 1``. ``"same"``:
        zeros around the image so that ``oh = ceil(h / sh)``, split as TensorFlow splits them
        (the odd row or column goes to the bottom or right).
    activation : str or ActivationFunction, optional
        ``g``; None means linear.
    use_bias : bool, default True
        Whether the layer has ``b``.
    kernel_initializer, bias_initializer : str or Initializer
        Keras's defaults: ``"glorot_uniform"`` and ``"zeros"``.
    kernel_regularizer : str or Regularizer, optional
        Penalty on W added to the loss.
    input_shape : tuple of int, optional
        ``(h, w, c_in)`` of one image, on the first layer (as in Keras).
    kernel_constraint, bias_constraint : str, dict, Constraint or callable, optional
        Applied to W and b after each optimizer step (:mod:`backprop.constraints`). As in
        Keras, a norm constraint's default ``axis=0`` runs over the kernel's rows only; give
        ``axis=[0, 1, 2]`` for one norm per filter (Keras's advice for conv kernels).

    Shapes: ``x (n, h, w, c_in)``, ``W (kh, kw, c_in, filters)`` (Keras's layout, so weights
    can be exchanged with Keras), ``b (filters,)``, ``z, y (n, oh, ow, filters)``.

    Memory: the column matrix (``n*oh*ow x kh*kw*c_in``) would be the largest array of a
    CNN's step (231 MB for a 3x3 'same' convolution of 28x28x32 images at batch 256 in
    float32). So it is built for a run of images at a time (at most ``COLS_ENTRIES`` entries;
    the products of the runs are joined, and their ``dW`` summed), and it is not kept between
    forward and backward: backward rebuilds each run's columns from the padded input, which
    costs one more copy and spares holding every layer's columns until the backward pass.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = 1,
        padding: str = "valid",
        activation: str | _activations.ActivationFunction | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        name: str | None = None,
        trainable: bool = True,
        input_shape: tuple[int, ...] | None = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
    ):
        cls = type(self).__name__
        self.filters = _check_positive_int(filters, "filters")
        self.kernel_size = _im2col.check_pair(kernel_size, "kernel_size", cls)
        self.strides = _im2col.check_pair(strides, "strides", cls)
        self.padding = _im2col.check_padding(padding, cls)
        if input_shape is not None:
            _im2col.check_image_shape(input_shape, cls)
        super().__init__(name, trainable, input_shape)
        self.activation = _activations.get(activation)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.kernel_constraint = _constraints.get(kernel_constraint, "kernel_constraint")
        self.bias_constraint = _constraints.get(bias_constraint, "bias_constraint")

    @property
    def constraints(self):
        return _weight_constraints(self)

    # -- shapes ---------------------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        h, w, _ = _im2col.check_image_shape(input_shape, self.name)
        oh, ow = _im2col.check_window_fits(
            h, w, self.kernel_size, self.strides, self.padding, "kernel_size", self.name
        )
        return (oh, ow, self.filters)

    def output_dim(self, input_dim):
        return self.filters

    def build_from_shape(self, input_shape, backend, rng, dtype):
        """Draw ``W (kh, kw, c_in, filters)`` and ``b (filters,)``; move them to the device.

        Parameters
        ----------
        input_shape : tuple of int
            ``(h, w, c_in)``, one image without the batch axis.
        backend : backprop.backend.Backend
            Where the arrays live.
        rng : numpy.random.Generator
            Seeded host generator for the initial values.
        dtype : dtype
            Floating dtype of the backend's namespace.

        Raises
        ------
        ValueError
            If ``input_shape`` is not ``(h, w, c)``, or the kernel is larger than the padded
            image.
        """
        input_shape = tuple(int(d) for d in input_shape)
        self.compute_output_shape(input_shape)  # refuses a bad shape before drawing anything
        c_in = input_shape[2]
        Layer.build(self, c_in, backend, rng, dtype)
        self.input_shape = input_shape
        kh, kw = self.kernel_size
        W = self.kernel_initializer((kh, kw, c_in, self.filters), rng)
        self.params = {"W": backend.asarray(W, dtype=dtype)}
        if self.use_bias:
            self.params["b"] = backend.asarray(self.bias_initializer((self.filters,), rng), dtype)
        self.grads = {}
        self._check_constraints()

    def build(self, input_dim, backend, rng, dtype):
        """Refused: a convolution needs the image's height and width (``build_from_shape``)."""
        raise ValueError(
            f"{self.name} needs the shape of its input images, not only their channels: call "
            "build_from_shape((h, w, c), backend, rng, dtype), or give the model "
            "input_shape=(h, w, c)."
        )

    # -- the math -------------------------------------------------------------------------------
    def _geometry(self, x: Array) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
        """The padding ``(top, bottom, left, right)`` and output size ``(oh, ow)`` for ``x``."""
        _im2col.check_images(x, self.input_dim, self.name)
        h, w = x.shape[1], x.shape[2]
        out = _im2col.check_window_fits(
            h, w, self.kernel_size, self.strides, self.padding, "kernel_size", self.name
        )
        return _im2col.paddings(h, w, self.kernel_size, self.strides, self.padding), out

    def _chunks(self, n: int) -> list[tuple[int, int]]:
        """The batch cut into runs of images whose column matrix fits (see ``COLS_ENTRIES``)."""
        eager_cpu = self.backend.mutable and not self.backend.can_capture
        entries = COLS_ENTRIES if eager_cpu else COLS_ENTRIES_LARGE
        per_image = self.out[0] * self.out[1] * self.kernel_size[0] * self.kernel_size[1]
        step = max(1, entries // (per_image * self.input_dim))
        return [(lo, min(lo + step, n)) for lo in range(0, n, step)]

    def forward(self, x, training=False):
        self._check_built()
        xp, W = self.xp, self.params["W"]
        pads, (oh, ow) = self._geometry(x)
        x_pad = _im2col.pad_image(x, pads, 0.0, xp)
        # backward rebuilds cols from x_pad (see the class docstring: memory)
        self.x_shape, self.x_pad, self.pads, self.out = tuple(x.shape), x_pad, pads, (oh, ow)
        parts = []
        for lo, hi in self._chunks(x.shape[0]):  # a run of images at a time (memory)
            cols = _im2col.im2col(x_pad[lo:hi, ...], self.kernel_size, self.strides, (oh, ow), xp)
            parts.append(xp.matmul(cols, xp.reshape(W, (-1, self.filters))))  # (rows, filters)
        z = parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)  # (n*oh*ow, filters)
        if self.use_bias:
            z = z + self.params["b"]
        z = xp.reshape(z, (x.shape[0], oh, ow, self.filters))
        self.z = z
        self.y = self.activation.forward(z, xp)
        self._has_forward = True
        return self.y

    def backward(self, dy):
        self._check_forward_done()
        return self.backward_from_logits(self.activation.backward(dy, self.z, self.y, self.xp))

    def backward_from_logits(self, dz: Array) -> Array | None:
        """The backward pass from ``dz = dL/dz`` (the pre-activations).

        Parameters
        ----------
        dz : array, shape (n, oh, ow, filters)
            ``dL/dz``.

        Returns
        -------
        dx : array, shape (n, h, w, c_in) or None
            ``dL/dx``; None when ``need_dx`` is False (the model's first layer). Fills
            ``grads["W"]`` (shape ``(kh, kw, c_in, filters)``) and ``grads["b"]``.
        """
        self._check_forward_done()
        xp, W = self.xp, self.params["W"]
        n, h, w, c_in = self.x_shape
        (top, _, left, _), (kh, kw) = self.pads, self.kernel_size
        dz = xp.reshape(dz, (-1, self.filters))  # one row per output pixel, as cols
        pixels = self.out[0] * self.out[1]
        dW, dx = None, []
        for lo, hi in self._chunks(n):  # a run of images at a time: cols is rebuilt (memory)
            cols = _im2col.im2col(
                self.x_pad[lo:hi, ...], self.kernel_size, self.strides, self.out, xp
            )
            dz_run = dz[lo * pixels : hi * pixels, ...]
            dW_run = xp.matmul(cols.T, dz_run)  # dW = cols.T @ dz, summed over the runs
            if dW is None:
                dW = dW_run
            else:
                dW += dW_run  # in place where arrays are mutable, else rebinds (JAX)
            if self.need_dx:
                # dL/dcols, then each window position's slice of it goes back where it was read
                dcols = xp.matmul(dz_run, xp.reshape(W, (-1, self.filters)).T)
                dcols = xp.reshape(dcols, (hi - lo, *self.out, kh * kw, c_in))
                pieces = [dcols[:, :, :, k, :] for k in range(kh * kw)]
                dx_pad = _im2col.col2im(
                    pieces, self.x_pad.shape[1:3], self.kernel_size, self.strides, xp
                )
                dx.append(dx_pad[:, top : top + h, left : left + w, :])
        dW = xp.reshape(dW, W.shape)
        if self.kernel_regularizer is not None:
            dW = dW + self.kernel_regularizer.gradient(W, xp)
        self._store_grad("W", dW)
        if self.use_bias:
            # b was broadcast over every pixel of every image, so its gradient sums over them
            self._store_grad("b", xp.sum(dz, axis=0))
        if not self.need_dx:
            return None
        return dx[0] if len(dx) == 1 else xp.concat(dx, axis=0)

    def penalty(self):
        if self.kernel_regularizer is None:
            return None
        return self.kernel_regularizer.penalty(self.params["W"], self.xp)

    def get_config(self):
        return self._with_trainable(
            {
                "name": self.name,
                "filters": self.filters,
                "kernel_size": list(self.kernel_size),
                "strides": list(self.strides),
                "padding": self.padding,
                "activation": self.activation.get_config(),
                "use_bias": self.use_bias,
                "kernel_initializer": _initializer_config(self.kernel_initializer),
                "bias_initializer": _initializer_config(self.bias_initializer),
                "kernel_regularizer": None
                if self.kernel_regularizer is None
                else self.kernel_regularizer.get_config(),
                **_constraint_configs(self),
            }
        )
