"""One training step, printed layer by layer as the equations of backpropagation.

For learners who want to see the algorithm happen: ``model.explain(X, y)`` runs the forward
pass, the loss, the backward pass and the optimizer's update on a small batch, on a copy of the
model (the model itself is not changed), and prints every equation with the shapes of its
arrays and summary values (norm, min, max).

Notation (the article's): ``A0 = X``; for layer l, ``Zl = A(l-1) @ Wl + bl`` and
``Al = g(Zl)``; backward, ``dZl = dAl * g'(Zl)``, ``dWl = A(l-1).T @ dZl``,
``dbl = sum(dZl, axis=0)``, ``dA(l-1) = dZl @ Wl.T``. The mean over the m samples of the batch
is taken in the loss, so ``1/m`` sits inside ``dZ`` of the last layer (``dZ = (A - Y) / m``
for the fused sigmoid/softmax + cross-entropy): the same numbers as ``dW = A.T @ dZ / m``.

The copy is ``backprop.clone``'s working copy (``bp.clone_model`` with the model's weights and
compile settings). This module sits below the model, which hands ``explain`` over to it, and
never imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import to_numpy
from .clone import _working_copy
from .data import check_positive_int
from .layers import BatchNormalization, Dense, LayerNormalization


def _stats(a: Any) -> str:
    h = np.asarray(to_numpy(a), dtype=np.float64)
    return f"norm {np.linalg.norm(h):.4g}, min {h.min():.4g}, max {h.max():.4g}"


def _shape(a: Any) -> str:
    return str(tuple(a.shape))


def _grads(slots: list) -> list:
    return [layer.grads[k] for layer, k in slots]


def _describe(layer: Any) -> str:
    if isinstance(layer, Dense):
        shapes = f"W {_shape(layer.params['W'])}" + (
            f", b {_shape(layer.params['b'])}" if "b" in layer.params else ""
        )
        return f"Dense({layer.units}, {layer.activation.name}): {shapes}"
    if isinstance(layer, BatchNormalization | LayerNormalization):
        over = "the batch" if isinstance(layer, BatchNormalization) else "the features"
        return f"{type(layer).__name__} over {over}, eps {layer.epsilon:g}"
    return repr(layer)


def _axes(layer: Any, ndim: int) -> tuple[tuple[int, ...], str]:
    """The axes the layer's statistics are over, and how the equations write them.

    BatchNormalization: every axis but the features (the last), as the layer computes them
    (per channel over n*h*w for images); LayerNormalization: the features of each sample.
    """
    if isinstance(layer, LayerNormalization):
        return (-1,), "axis=-1"
    return _all_but_last(ndim)


def _all_but_last(ndim: int) -> tuple[tuple[int, ...], str]:
    """Every axis but the last (where gamma and beta were broadcast), as the equations say."""
    axes = tuple(range(ndim - 1))
    return axes, "axis=0" if axes == (0,) else f"axis={axes}"


def _normalization_forward(row: Any, layer: Any, i: int, A_prev: Any, A: Any, xp: Any) -> None:
    """The equations of a normalization layer's forward pass (training mode)."""
    if isinstance(layer, BatchNormalization) and not layer.batch_mode:  # frozen: inference
        row(f"Xhat{i} = (A{i - 1} - moving_mean{i}) / sqrt(moving_var{i} + eps)", layer.xhat)
        row(f"A{i} = gamma{i} * Xhat{i} + beta{i}   (frozen: moving statistics)", A)
        return
    axes, written = _axes(layer, A_prev.ndim)
    mu = xp.mean(A_prev, axis=axes, keepdims=True)
    var = xp.mean((A_prev - mu) * (A_prev - mu), axis=axes, keepdims=True)
    row(f"mu{i} = mean(A{i - 1}, {written})", mu)
    row(f"var{i} = mean((A{i - 1} - mu{i})^2, {written})", var)
    row(f"Xhat{i} = (A{i - 1} - mu{i}) / sqrt(var{i} + eps)", layer.xhat)
    row(f"A{i} = gamma{i} * Xhat{i} + beta{i}", A)
    if isinstance(layer, BatchNormalization):
        m = layer.momentum
        row(
            f"moving_mean{i} <- {m:g} moving_mean{i} + {1 - m:g} mu{i}",
            layer.buffers["moving_mean"],
        )
        row(
            f"moving_var{i} <- {m:g} moving_var{i} + {1 - m:g} var{i}",
            layer.buffers["moving_variance"],
        )


def _normalization_backward(row: Any, layer: Any, i: int, dA: Any) -> Any:
    """The equations of a normalization layer's backward pass; returns ``dA(i-1)``."""
    axes, _ = _axes(layer, dA.ndim)
    if isinstance(layer, LayerNormalization):
        mean = "mean per row" if dA.ndim == 2 else "means over the last axis"
    else:
        mean = "mean over the batch" if dA.ndim == 2 else f"means over axes {axes}"
    _, summed = _all_but_last(dA.ndim)  # gamma and beta were broadcast over these axes
    dA_prev = layer.backward(dA)
    if "beta" in layer.grads:
        row(f"dbeta{i} = sum(dA{i}, {summed})", layer.grads["beta"])
    if "gamma" in layer.grads:
        row(f"dgamma{i} = sum(dA{i} * Xhat{i}, {summed})", layer.grads["gamma"])
    row(f"dXhat{i} = dA{i} * gamma{i}")
    if dA_prev is not None and isinstance(layer, BatchNormalization) and not layer.batch_mode:
        row(f"dA{i - 1} = dXhat{i} / sqrt(moving_var{i} + eps)", dA_prev)
    elif dA_prev is not None:
        row(f"dA{i - 1} = (dXhat{i} - mean(dXhat{i})", None)
        row(f"   - Xhat{i} * mean(dXhat{i} * Xhat{i}))", None)
        row(f"   / sqrt(var{i} + eps)   ({mean})", dA_prev)
    return dA_prev


def explain(model: Any, X: Any, y: Any, batch: int = 4, print_fn: Any = print) -> str:
    """Run one training step on the first ``batch`` rows of ``(X, y)`` and describe it.

    Parameters
    ----------
    model : Sequential
        A compiled model (built or not); it is copied, not changed.
    X, y : array_like
        Data; only the first ``batch`` rows are used.
    batch : int
        Rows in the batch (small, so the printout stays readable).
    print_fn : callable or None
        Where the text goes (None: only return it).

    Returns
    -------
    str
        The printed text.
    """
    model._require_compiled("explain")
    check_positive_int(batch, "batch")
    Xc, yc = model._check(X, y)
    m = min(batch, Xc.shape[0])
    work = _working_copy(model, input_shape=tuple(Xc.shape[1:]))
    Xd, Y = work._prepare(Xc[:m], yc[:m])
    xp, lines = work.xp, []
    out = lines.append

    def row(equation: str, a: Any = None, stats: bool = True) -> None:
        shape = _shape(a) if a is not None else ""
        tail = f"  {_stats(a)}" if (a is not None and stats) else ""
        shown = f"{shape:>10s}"
        if len(equation) >= 34 and not shown.startswith(" "):  # a long equation: a space
            shown = " " + shown
        out(f"    {equation:34s}{shown}{tail}")

    out(
        f"One training step on a batch of m = {m} samples "
        f"({work.backend.spec}, {work._dtype_name})."
    )
    out("")
    out("Forward propagation")
    row("A0 = X", Xd)
    A, L = Xd, len(work.layers)
    for i, layer in enumerate(work.layers, start=1):
        A_prev, A = A, layer.forward(A, training=True)
        out(f"  Layer {i}: {_describe(layer)}")
        if isinstance(layer, BatchNormalization | LayerNormalization):
            _normalization_forward(row, layer, i, A_prev, A, xp)
        elif isinstance(layer, Dense):
            g = layer.activation.name
            bias = f" + b{i}" if "b" in layer.params else ""
            row(f"Z{i} = A{i - 1} @ W{i}{bias}", layer.z)
            row(f"A{i} = {g}(Z{i})", A)
            if g == "relu":
                active = to_numpy(xp.any(layer.z > 0, axis=0))
                dead = "   <- DEAD LAYER: no unit is active" if not active.any() else ""
                out(f"    {'':46s}active units: {int(active.sum())}/{layer.units}{dead}")
        else:
            row(f"A{i} = {type(layer).__name__.lower()}(A{i - 1})", A)

    out("")
    last, fused = work.layers[-1], work._fused
    if fused:
        loss, dZ_last = work.loss.from_logits(Y, last.z, A, xp)
    else:
        loss, dZ_last = work.loss.forward(Y, A, xp), None
    penalties = ""  # the regularizers' terms, named in the printed loss
    for i, layer in enumerate(work.layers, start=1):
        if layer.penalty() is not None:
            loss = loss + layer.penalty()
            penalties += f" + R{i}(W{i})"
    value = float(to_numpy(xp.asarray(loss)))
    out(f"Loss  L = {work.loss.name}(Y, A{L}){penalties} = {value:.6g}")
    out("")
    out("Backward propagation (the chain rule, from the last layer to the first)")
    dA = None
    for i in range(L, 0, -1):
        layer = work.layers[i - 1]
        out(f"  Layer {i}:")
        if i == L and fused:
            dZ = dZ_last
            row(f"dZ{i} = (A{i} - Y) / m", dZ)
            out(f"    {'':46s}(fused {last.activation.name} + {work.loss.name})")
        elif i == L:
            dA = work.loss.gradient(Y, A, xp)
            row(f"dA{i} = dL/dA{i}", dA)
        if isinstance(layer, Dense):
            if not (i == L and fused):
                dZ = layer.activation.backward(dA, layer.z, layer.y, xp)
                row(f"dZ{i} = dA{i} * {layer.activation.name}'(Z{i})", dZ)
            dA = layer.backward_from_logits(dZ)
            reg = f" + dR{i}/dW{i}" if getattr(layer, "kernel_regularizer", None) else ""
            row(f"dW{i} = A{i - 1}.T @ dZ{i}{reg}", layer.grads["W"])
            if "b" in layer.grads:
                row(f"db{i} = sum(dZ{i}, axis=0)", layer.grads["b"])
            if i > 1:
                row(f"dA{i - 1} = dZ{i} @ W{i}.T", dA)
        elif isinstance(layer, BatchNormalization | LayerNormalization) and not (i == L and fused):
            dA = _normalization_backward(row, layer, i, dA)
        else:
            dA = layer.backward_from_logits(dZ) if i == L and fused else layer.backward(dA)
            row(f"dA{i - 1} = backward of {type(layer).__name__}", dA)
    out("")
    opt = work.optimizer
    out(f"Update: {opt!r}, learning rate {opt.current_learning_rate():g}")
    slots = work._param_slots
    index = {id(layer): i for i, layer in enumerate(work.layers, start=1)}
    # copies: the update happens in place
    old = [xp.asarray(layer.params[k], copy=True) for layer, k in slots]
    new = opt.apply([layer.params[k] for layer, k in slots], _grads(slots), xp)
    for (layer, k), W0, W1 in zip(slots, old, new, strict=True):
        i = index[id(layer)]
        out(f"    {f'{k}{i} <- {k}{i} - step(d{k}{i})':34s}{_shape(W1):>10s}  change: "
            f"{_stats(W1 - W0)}")  # fmt: skip
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text
