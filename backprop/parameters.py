"""The network's weights as views of one flat vector ``theta``, and its gradient likewise.

One vector makes the optimizer's update a dozen whole-vector operations instead of a dozen per
weight array, and the update, done in place, reaches every layer's view. :class:`FlatParameters`
is the base of ``Sequential`` that packs it (``_collect_params``), splits it back into the
layers' arrays (``_split``, ``_bind_views``), gathers the layers' gradients into its twin
(``_flat_grads``) and builds layers straight from saved arrays (``_add_built``, what loading
does). It also applies the layers' weight constraints to ``theta`` after an optimizer step
(``_constrain``) and writes one layer's new weights into ``theta`` (``_assign_layer_weights``,
what ``layer.set_weights`` calls). It reads the model's ``layers``, ``backend``, ``xp``,
``dtype``, ``_token`` and ``_build_args``; it never imports the model.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from typing import Any

from . import data as _data
from . import initializers as _initializers
from .layers.core import _check_input_shape

Array = Any


@contextlib.contextmanager
def _initializers_replaced(layer: Any, standin: Any) -> Any:
    """Build ``layer`` with ``standin`` in place of each of its initializers, then restore them."""
    held = {k: v for k, v in vars(layer).items() if isinstance(v, _initializers.Initializer)}
    try:
        for k in held:
            setattr(layer, k, standin)
        yield
    finally:
        for k, v in held.items():
            setattr(layer, k, v)


def _check_grad_shape(layer: Any, k: str, g: Any, shape: tuple) -> None:
    """A layer's gradient must have its parameter's shape (no silent broadcast into it)."""
    if tuple(g.shape) != shape:
        raise ValueError(
            f"{layer.name}.grads[{k!r}] has shape {tuple(g.shape)}; expected {shape}, the shape "
            f"of {layer.name}.params[{k!r}] (check the layer's backward)."
        )


def check_input_fits(layer: Any, shape: tuple[int, ...]) -> None:
    """Refuse a layer (not the first) given an input size the layer before it does not output.

    Parameters
    ----------
    layer : Layer
        The layer, unbuilt.
    shape : tuple of int
        The shape of one sample the layer before it outputs.

    Raises
    ------
    ValueError
        If the layer was made with another ``input_shape``, or another ``input_dim`` than
        ``shape[-1]``.
    """
    given = getattr(layer, "_input_shape_arg", None)
    if given is not None and tuple(given) != tuple(shape):
        raise ValueError(
            f"{layer.name} was given input_shape={tuple(given)}, but the layer before it "
            f"outputs samples of shape {tuple(shape)}."
        )
    if layer.input_dim is not None and layer.input_dim != shape[-1]:
        raise ValueError(
            f"{layer.name} was given input_dim={layer.input_dim}, but the layer before it "
            f"outputs {shape[-1]} features"
            + ("." if len(shape) == 1 else f" on its last axis (samples of shape {shape}).")
        )


class FlatParameters:
    """The flat parameter vector of a network and the views of it its layers hold.

    A base of ``Sequential``, private: the attributes it sets (``_theta``, ``_grad``,
    ``_param_slots``, ``_weight_slots``, ``_buffer_slots``, ``_shapes``, ``_bounds``,
    ``_trainable_key``) are what the training engines and ``io`` read.
    """

    layers: list
    backend: Any
    xp: Any
    dtype: Any
    _token: int

    def _add_built(self, layers: list, weights: Any, standin: Any, input_shape: Any = None) -> None:
        """Add ``layers`` built with ``weights`` as their values, drawing no initial weights.

        What loading a model does: each layer is built with its initializers standing aside
        (nothing is drawn only to be overwritten), then given its arrays, one layer at a time,
        so that memory holds about one copy of the weights (the file's) plus one layer's.

        Parameters
        ----------
        layers : list of Layer
            New, unbuilt layers; the first one knows its ``input_dim``.
        weights : iterable of numpy.ndarray
            Every weight in :meth:`get_weights` order (each layer's params, then its buffers).
            An iterator that lets go of each array once yielded lets its memory go too.
        standin : callable
            ``standin(shape, rng) -> numpy.ndarray``, called in place of every initializer: it
            should draw nothing and touch no memory (``numpy.empty`` of the model's dtype).
        input_shape : tuple of int, optional
            The shape of one input sample; the first layer's ``input_shape`` when omitted
            (files written before input shapes were saved: their first layer's ``input_dim``).
        """
        if input_shape is not None:
            input_shape = _check_input_shape(input_shape, "input_shape")
        elif layers:
            input_shape = layers[0].input_shape
        if not layers or input_shape is None:
            raise ValueError("the first layer has no input_shape")
        weights, shape = iter(weights), input_shape
        for i, layer in enumerate(layers):
            if i > 0:
                check_input_fits(layer, shape)
            with _initializers_replaced(layer, standin):
                layer.build_from_shape(shape, *self._build_args(layer))
            for store in ("params", "buffers"):
                arrays = getattr(layer, store)
                for k in list(arrays):
                    w = next(weights, None)
                    if w is None:
                        raise ValueError(f"no saved array for {layer.name}.{k}")
                    w = _data.as_array(w, f"weights for {layer.name}.{k}")
                    if tuple(w.shape) != tuple(arrays[k].shape):
                        raise ValueError(
                            f"{layer.name}.{k} expects shape {tuple(arrays[k].shape)}, "
                            f"received {tuple(w.shape)}."
                        )
                    arrays[k] = None  # the placeholder goes before its replacement comes
                    arrays[k] = self.backend.asarray(self.backend.to_numpy(w), self.dtype)
                    del w
            self.layers.append(layer)
            layer._model_token = self._token
            shape = layer.compute_output_shape(shape)
        if next(weights, None) is not None:
            raise ValueError("more saved weight arrays than the layers have weights")
        self._collect_params()

    def _collect_params(self) -> None:
        """Pack every weight into one flat vector ``theta``; the layers hold views of it.

        One vector makes the optimizer's update a dozen whole-vector operations instead of a
        dozen per weight array, and the update, done in place, reaches every layer's view.
        """
        xp = self.xp
        # trainable weights go into theta; every weight, in Keras's order (each layer's params,
        # then its buffers), is what get_weights shows
        self._param_slots = [
            (layer, k) for layer in self.layers if layer.trainable for k in layer.params
        ]
        self._weight_slots = [
            (layer, store, k)
            for layer in self.layers
            for store in ("params", "buffers")
            for k in getattr(layer, store)
        ]
        # what theta does not hold: frozen layers' params and every buffer (moving statistics)
        self._buffer_slots = [
            (layer, store, k)
            for layer, store, k in self._weight_slots
            if store == "buffers" or not layer.trainable
        ]
        self._trainable_key = tuple(layer.trainable for layer in self.layers)
        # the trained weights that have a constraint (kernel_constraint, ...): the slot's index
        # and the constraint, applied to theta after each optimizer step (_constrain)
        self._constrained = [
            (i, c)
            for i, (layer, k) in enumerate(self._param_slots)
            if (c := layer.constraints.get(k)) is not None
        ]
        for layer in self.layers:
            # layer.set_weights writes into theta through its model (a weak reference: a
            # layer does not keep a model alive)
            layer._flat_owner = weakref.ref(self)
        params = [layer.params[k] for layer, k in self._param_slots]
        self._shapes = [tuple(p.shape) for p in params]
        self._bounds, start = [], 0
        for shape in self._shapes:
            self._bounds.append((start, start + math.prod(shape)))
            start += math.prod(shape)
        # a copy: the model never shares memory with arrays a user handed in
        self._theta = None
        if params and self.backend.mutable:
            del params  # each array is dropped once copied: about one copy of theta at a time
            self._theta = self.backend.zeros((start,), self.dtype)
            for (layer, k), (a, b) in zip(self._param_slots, self._bounds, strict=True):
                self._theta[a:b] = xp.reshape(layer.params[k], (-1,))
                layer.params[k] = self._theta[a:b]  # reshaped by _bind_views below
        elif params:  # immutable arrays (JAX): no slice to write into
            self._theta = xp.concat([xp.reshape(p, (-1,)) for p in params])
        self._bind_views()
        # the gradients' flat vector, laid out as theta: the layers write into its views, the
        # optimizer reads it whole (immutable arrays have no views to write into)
        for layer in self.layers:
            layer._grad_views = {}
        self._grad = None
        if self._theta is not None and self.backend.mutable:
            # zeros, not zeros_like: NumPy's zeros takes pages from the OS as they are written
            # (a loaded model used only to predict never holds a second copy)
            self._grad = self.backend.zeros(tuple(self._theta.shape), self._theta.dtype)
            for (layer, k), view in zip(self._param_slots, self._split(self._grad), strict=True):
                layer._grad_views[k] = layer.grads[k] = view

    def _bind_views(self, compiled: bool = True) -> None:
        split = self._compiled_split() if compiled else None
        views = self._split(self._theta) if split is None else split(self._theta)
        for (layer, k), view in zip(self._param_slots, views, strict=True):
            layer.params[k] = view

    def _split(self, theta: Array) -> list[Array]:
        """The weight arrays as views (slices) of the flat vector ``theta``."""
        xp = self.xp
        return [
            xp.reshape(theta[a:b], shape)
            for (a, b), shape in zip(self._bounds, self._shapes, strict=True)
        ]

    def _compiled_split(self) -> Any:
        """``_split`` as one compiled program where the backend compiles (JAX), else None.

        Immutable arrays cannot be views: each array is a slice copied out of ``theta``, and
        one compiled call costs less than a dozen eager slices and reshapes.
        """
        key = (self.backend, tuple(self._bounds))
        if getattr(self, "_splitter", (None, None))[0] != key:
            self._splitter = (key, self.backend.compile(self._split))
        return self._splitter[1]

    def _replaced(self, theta: Array, pieces: dict[int, Array]) -> Array:
        """A new ``theta`` with slot ``i``'s entries replaced by ``pieces[i]``.

        ``pieces[i]`` has any shape of the slot's size. For immutable arrays (JAX), where no
        slice can be written.
        """
        xp, parts, start = self.xp, [], 0
        for i in sorted(pieces):
            a, b = self._bounds[i]
            if a > start:
                parts.append(theta[start:a])
            parts.append(xp.reshape(pieces[i], (-1,)))
            start = b
        if start < theta.shape[0]:
            parts.append(theta[start:])
        return xp.concat(parts) if len(parts) > 1 else parts[0]

    def _constrain(self, theta: Array) -> Array:
        """``theta`` with each constrained weight ``W`` replaced by ``constraint(W)``.

        What follows every optimizer step, as in Keras (the variable is assigned
        ``constraint(variable)`` after the update): the eager and sharded steps call it in
        ``training.step.update``, the compiled epoch and the captured step after their
        optimizer's step. A pure function of ``theta`` and the layout, so it can be traced
        (JAX) or recorded (a CUDA graph): where arrays are mutable it writes into ``theta``
        in place (its addresses stay those the layers' views and a recording hold) and
        returns it; on JAX it returns a new vector. Without constraints, ``theta`` itself.

        Parameters
        ----------
        theta : array, shape (n_params,)
            The flat vector of trained weights, laid out as the model's.

        Returns
        -------
        array, shape (n_params,)
            The constrained vector (``theta`` itself where it was written in place).
        """
        if not self._constrained:
            return theta
        xp, new = self.xp, {}
        for i, constraint in self._constrained:
            a, b = self._bounds[i]
            shape = self._shapes[i]
            w = constraint(xp.reshape(theta[a:b], shape))
            if tuple(w.shape) != shape:
                layer, k = self._param_slots[i]
                raise ValueError(
                    f"The constraint {constraint!r} of {layer.name}.params[{k!r}] returned "
                    f"shape {tuple(w.shape)}; expected {shape}, the weight's own shape."
                )
            new[i] = w if w.dtype == theta.dtype else xp.astype(w, theta.dtype)
        if not self.backend.mutable:
            return self._replaced(theta, new)
        for i, w in new.items():
            a, b = self._bounds[i]
            theta[a:b] = xp.reshape(w, (-1,))
        return theta

    def _owns(self, layer: Any) -> bool:
        """Whether ``layer`` is one of this model's layers (it may have been popped since)."""
        return any(layer is other for other in self.layers) and self.built

    def _assign_layer_weights(
        self, layer: Any, arrays: list[tuple[tuple[str, str], Array]]
    ) -> None:
        """Write one layer's checked weights where the model keeps them (``set_weights``).

        A trained weight goes into ``theta`` (in place where arrays are mutable, so the
        layers' views and a recorded step see it; a new vector on JAX); a buffer (moving
        statistics) or a frozen layer's weight replaces the layer's array.

        Parameters
        ----------
        layer : Layer
            One of this model's layers.
        arrays : list of ((store, key), array)
            The new arrays on the model's backend, with the model's dtype and the weights'
            shapes, ``store`` being ``"params"`` or ``"buffers"``.
        """
        xp = self.xp
        slots = {k: i for i, (other, k) in enumerate(self._param_slots) if other is layer}
        pieces = {}
        for (store, k), a in arrays:
            i = slots.get(k) if store == "params" else None
            if i is None:
                getattr(layer, store)[k] = a
            else:
                pieces[i] = a
        if not pieces:
            return
        if self.backend.mutable:
            for i, a in pieces.items():
                lo, hi = self._bounds[i]
                self._theta[lo:hi] = xp.reshape(a, (-1,))
        else:
            self._theta = self._replaced(self._theta, pieces)
            self._bind_views()

    def _sync_trainable(self) -> None:
        """Re-pack theta when a layer was frozen or unfrozen since the last packing."""
        if self.built and self._trainable_key != tuple(layer.trainable for layer in self.layers):
            self._collect_params()

    def _get_buffers(self) -> list[Array]:
        """The weights outside theta (frozen params, moving statistics), in slot order."""
        return [getattr(layer, store)[k] for layer, store, k in self._buffer_slots]

    def _set_buffers(self, arrays: list[Array]) -> None:
        for (layer, store, k), a in zip(self._buffer_slots, arrays, strict=True):
            getattr(layer, store)[k] = a

    def _trainable_mask(self) -> list[bool]:
        """For each array of :meth:`get_weights`, whether the optimizer trains it."""
        return [store == "params" and layer.trainable for layer, store, _ in self._weight_slots]

    def _flat_grads(self) -> Array:
        """The gradient of theta: the flat vector the layers wrote into, or their concatenation.

        A layer that rebinds ``grads[k]`` instead of calling ``_store_grad`` (a custom layer
        written to the older contract) has its gradient copied into place.
        """
        xp = self.xp
        grads = [layer.grads[k] for layer, k in self._param_slots]
        if self._grad is None:
            for (layer, k), g, shape in zip(self._param_slots, grads, self._shapes, strict=True):
                _check_grad_shape(layer, k, g, shape)
            return xp.concat([g if g.ndim == 1 else xp.reshape(g, (-1,)) for g in grads])
        for (layer, k), g in zip(self._param_slots, grads, strict=True):
            view = layer._grad_views[k]
            if g is not view:
                _check_grad_shape(layer, k, g, tuple(view.shape))
                view[...] = g
                layer.grads[k] = view
        return self._grad

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise RuntimeError(
                f"{what}() needs a built model: give the first layer input_dim=..., or fit it."
            )

    def _count_trainable(self) -> int:
        return sum(
            math.prod(layer.params[k].shape)
            for layer in self.layers
            if layer.trainable
            for k in layer.params
        )
