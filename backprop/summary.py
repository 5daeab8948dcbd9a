"""``model.summary()``: the table of a model's layers, output shapes and parameter counts.

A module of its own, below the model: it reads a model through its public attributes
(``name``, ``layers``, ``input_shape``, ``backend``, ``count_params``) and imports nothing of it.
Each layer's output shape comes from its ``compute_output_shape``, chained from the model's
``input_shape``, and is printed as Keras prints it, the batch axis as None: ``(None, 28, 28, 32)``.
"""

from __future__ import annotations

from typing import Any


def summary(model: Any, print_fn: Any = print) -> str:
    """Print (and return) a table of the layers, their output shapes and parameter counts.

    Parameters
    ----------
    model : Sequential
        The model described (built or not).
    print_fn : callable, default print
        Called with the table; None only returns it.

    Returns
    -------
    str
        The table, as Keras's ``model.summary()`` draws it.

    Examples
    --------
    >>> import backprop as bp
    >>> from backprop.summary import summary
    >>> model = bp.Sequential([bp.layers.Dense(3, input_dim=2, name="d")])
    >>> print(summary(model, print_fn=None).splitlines()[-3])
    Total params: 9
    """
    rows = [("Layer (type)", "Output Shape", "Param #")]
    dims = model.input_shape
    for layer in model.layers:
        dims = layer.compute_output_shape(dims) if dims is not None else None
        # as Keras: the batch axis is None, "(None, 28, 28, 32)"
        shape = f"({', '.join(str(d) for d in (None, *dims))})" if dims is not None else "?"
        count = str(layer.count_params()) if layer.built else "0 (unbuilt)"
        rows.append((f"{layer.name} ({type(layer).__name__})", shape, count))
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
    line = "-" * sum(widths)
    out = [f'Model: "{model.name}"  (backend {model.backend.spec}, {model._dtype_name})', line]
    out.append("".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True)))
    out.append("=" * sum(widths))
    for r in rows[1:]:
        out.append("".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    out.append("=" * sum(widths))
    total = model.count_params()
    trainable = model._count_trainable() if model.built else total
    out.append(f"Total params: {total}")
    out.append(f"Trainable params: {trainable}")
    out.append(f"Non-trainable params: {total - trainable}")
    text = "\n".join(out)
    if print_fn is not None:
        print_fn(text)
    return text
