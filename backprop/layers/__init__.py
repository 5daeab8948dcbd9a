"""Layers: each a forward pass that caches what its backward pass needs.

The contract every layer keeps (checked for all of them in ``tests/test_layers.py``):

- ``params`` and ``grads`` are dicts with the same keys; ``backward`` overwrites ``grads``.
- ``forward(x, training)`` returns ``y`` and caches what backward needs, under names from
  the math; ``backward(dy)`` returns ``dx = dL/dx`` given ``dy = dL/dy``.
- Samples are rows (axis 0): ``x`` has shape ``(n, *input_shape)``, ``y`` has shape
  ``(n, *compute_output_shape(input_shape))``; ``(n, in_dim)`` to ``(n, out_dim)`` for the
  layers that read features on the last axis; images are channels last ``(n, h, w, c)``.
- The model builds a layer with ``build_from_shape(input_shape, backend, rng, dtype)`` and
  chains the shapes with ``compute_output_shape``. The defaults in ``core.Layer`` read the
  features on the last axis (``build(input_shape[-1], ...)`` and ``output_dim``), so a layer
  that defines only ``build`` and ``output_dim`` works on inputs of any rank.

A layer ending in an activation (``Dense``, ``Activation``) also exposes ``z`` (the logits of
the last forward pass) and ``backward_from_logits(dz)``: the model uses them to fuse the output
activation with its loss (sigmoid + binary cross-entropy, softmax + categorical cross-entropy),
whose combined gradient ``dz = (y_hat - y) / n`` is exact and never overflows.

The modules, one per kind of layer as Keras groups them; each imports only ``core``, which
imports none of them (tests/test_layers.py and an import-linter contract keep it so), and this
package puts their names in one namespace, ``bp.layers.NAME``:

- ``core``: the base class ``Layer``, ``Dense`` and ``Activation``, and the helpers every
  layer shares (default names, argument checks, initializer configs);
- ``regularization``: ``Dropout``;
- ``normalization``: ``BatchNormalization`` and ``LayerNormalization``;
- ``reshaping``: ``Flatten`` and ``Reshape``;
- ``convolutional``: ``Conv2D``;
- ``pooling``: ``MaxPooling2D``, ``AveragePooling2D``, ``GlobalMaxPooling2D``,
  ``GlobalAveragePooling2D``;
- ``_im2col`` (private): the strided slices, padding, im2col and col2im that convolution and
  pooling share.

A new kind is a module of its own beside these, subclassing ``core.Layer``; imported here and
listed in ``_REGISTRY`` below, its layers load from files by class name as soon as
``backprop.layers`` is imported.
"""

from __future__ import annotations

import inspect
from typing import Any

from .convolutional import Conv2D
from .core import (  # noqa: F401  (every name layers.py had stays readable here)
    Activation,
    Array,
    Dense,
    Layer,
    _auto_name,
    _check_positive_int,
    _counters,
    _initializer_config,
    _Unresolvable,
)
from .normalization import (  # noqa: F401
    BatchNormalization,
    LayerNormalization,
    _check_epsilon,
    _Normalization,
)
from .pooling import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
)
from .regularization import Dropout
from .reshaping import Flatten, Reshape

__all__ = [
    "Activation",
    "AveragePooling2D",
    "BatchNormalization",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Layer",
    "LayerNormalization",
    "MaxPooling2D",
    "Reshape",
    "from_config",
]

_REGISTRY = {
    cls.__name__: cls
    for cls in (
        Dense,
        Activation,
        Dropout,
        BatchNormalization,
        LayerNormalization,
        Flatten,
        Reshape,
        Conv2D,
        MaxPooling2D,
        AveragePooling2D,
        GlobalAveragePooling2D,
        GlobalMaxPooling2D,
    )
}


def _known_layers() -> dict[str, type[Layer]]:
    """The built-in layers, then every subclass of Layer defined in this process.

    Only classes that already exist can be named: a model file never imports or runs code.
    A custom layer must return its constructor's arguments from ``get_config`` (as in Keras).
    """
    known, todo = dict(_REGISTRY), list(Layer.__subclasses__())
    while todo:
        cls = todo.pop()
        known.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return known


def from_config(class_name: str, config: dict[str, Any]) -> Layer:
    """Rebuild a layer from ``type(layer).__name__`` and ``layer.get_config()``.

    Parameters
    ----------
    class_name : str
        The class name, e.g. ``"Dense"``: a built-in layer or a subclass of ``Layer`` already
        defined in this process.
    config : dict
        Its constructor arguments, as ``get_config`` returns them.

    Returns
    -------
    Layer
        A new, unbuilt layer.

    Raises
    ------
    ValueError
        For an unknown class name.
    """
    known = _known_layers()
    if class_name not in known:
        public = sorted(n for n in known if not n.startswith("_"))
        raise ValueError(f"Unknown layer class {class_name!r}. Expected one of {public}.")
    config = dict(config)
    for key in (
        "kernel_initializer",
        "bias_initializer",
        "beta_initializer",
        "gamma_initializer",
        "moving_mean_initializer",
        "moving_variance_initializer",
    ):
        # a user's function cannot be stored: a stand-in that refuses to draw, never a
        # default (loading draws nothing, so a loaded layer is whole without it)
        if isinstance(config.get(key), dict) and config[key].get("name") == "custom":
            config[key] = _Unresolvable(class_name, key, config[key])
    return known[class_name](**config)


# repr, tracebacks and pickles name the layers where users reach them, as before the split
for _name in __all__:
    _obj = globals()[_name]
    if inspect.isclass(_obj):
        _obj.__module__ = __name__
del _name, _obj
