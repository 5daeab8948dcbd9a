"""A model's weights: ``get_weights``/``set_weights`` (NumPy copies) and ``model.weights``.

``model.weights``, ``model.trainable_weights`` and ``model.non_trainable_weights`` are lists of
:class:`Weight`, Keras's ``Variable`` for what a user does with one: its ``name``, ``path``,
``shape``, ``dtype`` and ``trainable``; ``numpy()`` (a host copy: writing into it changes
nothing); ``value`` (the device array the model computes with now); ``assign(value)``, which
writes the model's weight, on every backend (JAX's arrays included). A :class:`Weight` looks its
array up at each use, so it stays right when the model re-packs its flat parameter vector
(``compile``, ``set_weights``, a layer frozen); a bare device array would not: it would be a
view of the vector the model used at that moment.

These are the model's methods and properties, written as functions of the model (``self``) and
bound in ``Sequential``'s class body, as ``backprop.trainer`` does for the training methods.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import data as _data

Array = Any

# the functions are Sequential's methods and properties, documented there
__all__ = ["Weight"]

# Keras's names of the weights this library keys by their letters in the equations
_KERAS_NAMES = {"W": "kernel", "b": "bias"}


class Weight:
    """One weight array of a model, as Keras's ``Variable``: read and assigned through it.

    Parameters
    ----------
    model : Sequential
        The model that holds the weight.
    layer : Layer
        Its layer.
    store : {"params", "buffers"}
        Where the layer keeps it: parameters, or buffers (moving statistics).
    key : str
        Its key there (``"W"``, ``"b"``, ``"gamma"``, ``"moving_mean"``, ...).

    Examples
    --------
    >>> import numpy as np, backprop as bp
    >>> model = bp.Sequential([bp.layers.Dense(2, input_dim=3, name="d")], seed=0)
    >>> kernel = model.weights[0]
    >>> kernel.path, kernel.shape, kernel.trainable
    ('d/kernel', (3, 2), True)
    >>> kernel.assign(np.ones((3, 2)))
    >>> model.predict(np.ones((1, 3)))
    array([[3., 3.]], dtype=float32)
    """

    def __init__(self, model: Any, layer: Any, store: str, key: str):
        self._model, self._layer, self._store, self._key = model, layer, store, key

    @property
    def name(self) -> str:
        """Keras's name of the weight: ``"kernel"``, ``"bias"``, ``"gamma"``, ``"moving_mean"``."""
        return _KERAS_NAMES.get(self._key, self._key)

    @property
    def path(self) -> str:
        """``"<layer name>/<name>"``, e.g. ``"dense_1/kernel"`` (Keras's ``Variable.path``)."""
        return f"{self._layer.name}/{self.name}"

    @property
    def trainable(self) -> bool:
        """Whether the optimizer updates it (a parameter of a layer that is not frozen)."""
        return self._store == "params" and self._layer.trainable

    @property
    def value(self) -> Array:
        """The device array the model computes with now (not a copy; change it with assign)."""
        return getattr(self._layer, self._store)[self._key]

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return tuple(self.value.shape)

    @property
    def dtype(self) -> Any:
        """The array's dtype (the model's)."""
        return self.value.dtype

    def numpy(self) -> np.ndarray:
        """A copy of the weight as a NumPy array: writing into it leaves the model as it is.

        Returns
        -------
        numpy.ndarray
        """
        return self._model.backend.to_numpy(self.value).copy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self.numpy()
        return a if dtype is None else a.astype(dtype, copy=False)

    def assign(self, value: Any) -> None:
        """Set the weight of the model to ``value`` (checked first; the model keeps a copy).

        Parameters
        ----------
        value : array_like
            An array of the weight's shape, of any supported library and device.

        Raises
        ------
        ValueError
            If the shape differs, or the layer is no longer in the model (``pop``); the model
            is left as it was.
        """
        model, layer, store, k = self._model, self._layer, self._store, self._key
        if not any(layer is other for other in model.layers):
            raise ValueError(
                f"{self.path} is a weight of layer {layer.name!r}, which is no longer in the "
                "model (model.pop() removed it): take the weights from model.weights again."
            )
        where = f"assign: {self.path}"
        array = _converted(model, where, f"weights for {self.path}", value, self.shape)
        model._sync_trainable()  # a layer frozen since the last packing leaves theta first
        if self.trainable and model.backend.mutable:
            self.value[...] = array  # a view of theta: the flat vector the optimizer updates
            return
        getattr(layer, store)[k] = array
        if self.trainable:  # immutable arrays (JAX): theta is the concatenation, made anew
            model._collect_params()

    def __repr__(self) -> str:
        return (
            f"<Weight path={self.path}, shape={self.shape}, dtype={self.dtype}, "
            f"trainable={self.trainable}>"
        )


def _converted(model: Any, where: str, name: str, value: Any, expected: tuple) -> Array:
    """``value`` checked against the weight's shape, as a new array of the model's.

    ``where`` and ``name`` name the weight in the messages (``"set_weights: dense.W"``,
    ``"weights for dense.W"``).
    """
    value = _data.as_array(value, name)
    if tuple(value.shape) != expected:
        raise ValueError(f"{where} expects shape {expected}, received {tuple(value.shape)}.")
    return model.backend.asarray(model.backend.to_numpy(value), model.dtype)


def _slots(model: Any) -> list[tuple[Any, str, str]]:
    """Every weight of a built model as (layer, store, key), in Keras's order."""
    if not model.built:
        return []
    return [
        (layer, store, k)
        for layer in model.layers
        for store in ("params", "buffers")
        for k in getattr(layer, store)
    ]


def weights(self: Any) -> list[Weight]:
    """Every weight, in Keras's order: each layer's parameters, then its buffers.

    A Dense layer gives its kernel and bias; a BatchNormalization layer gamma, beta,
    moving_mean and moving_variance. Each is a :class:`~backprop.weights.Weight`:
    ``numpy()`` is a copy, ``assign(value)`` changes the model. An unbuilt model has none yet.

    Returns
    -------
    list of Weight
    """
    return [Weight(self, *slot) for slot in _slots(self)]


def trainable_weights(self: Any) -> list[Weight]:
    """The weights the optimizer updates: the parameters of the layers not frozen.

    Returns
    -------
    list of Weight
        In :attr:`weights` order.
    """
    return [w for w in weights(self) if w.trainable]


def non_trainable_weights(self: Any) -> list[Weight]:
    """The weights the optimizer leaves: moving statistics, and frozen layers' parameters.

    Returns
    -------
    list of Weight
        In :attr:`weights` order.
    """
    return [w for w in weights(self) if not w.trainable]


def get_weights(self: Any) -> list:
    """Copies of the weights as NumPy arrays, in Keras order: W1, b1, W2, b2, ...

    Each layer's trainable weights, then its non-trainable ones: BatchNormalization gives
    gamma, beta, moving_mean, moving_variance.

    Returns
    -------
    list of numpy.ndarray
        ``W`` of shape ``(in_dim, units)`` and ``b`` of shape ``(units,)`` for each ``Dense``.
    """
    self._require_built("get_weights")
    return [
        self.backend.to_numpy(getattr(layer, store)[k]).copy()
        for layer, store, k in self._weight_slots
    ]


def set_weights(self: Any, weights: list) -> None:
    """Replace the weights from a list shaped like :meth:`get_weights` (checked first).

    Parameters
    ----------
    weights : list of array_like
        Arrays shaped like those of :meth:`get_weights`, in the same order.
    """
    self._require_built("set_weights")
    slots = self._weight_slots
    if not isinstance(weights, list | tuple) or len(weights) != len(slots):
        received = len(weights) if isinstance(weights, list | tuple) else type(weights).__name__
        raise ValueError(
            f"set_weights expects a list of {len(slots)} arrays (as get_weights returns), "
            f"received {received}."
        )
    arrays = []
    for (layer, store, k), w in zip(slots, weights, strict=True):
        where, name = f"set_weights: {layer.name}.{k}", f"weights for {layer.name}.{k}"
        arrays.append(_converted(self, where, name, w, tuple(getattr(layer, store)[k].shape)))
    for (layer, store, k), w in zip(slots, arrays, strict=True):
        getattr(layer, store)[k] = w
    self._collect_params()
