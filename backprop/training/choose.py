"""Which engine runs a fit: one visible function, with the reasons.

:func:`choose_engine` gives the engine with its ``reason``; ``fit`` records both in
``history.params`` (``"engine"``, ``"engine_reason"``) and prints them with ``verbose=1``.
:func:`describe_engines` says, per backend, which engine a plain fit runs there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import backend as _backend
from .. import layers as _layers
from . import captured as _captured
from . import compiled as _compiled
from .base import Engine, watches_batches
from .eager import Eager
from .sharded import Sharded

_COMPILED = "the epoch as one jax.jit program (lax.scan over the steps)"
_CAPTURED = "each step recorded once as a CUDA graph and replayed"


def choose_engine(model: Any, callbacks: list, comm: Any, batch_size: int) -> Engine:
    """The engine of a fit: the fastest one that computes what the eager steps compute.

    Parameters
    ----------
    model : Sequential
        A compiled, built model.
    callbacks : list of Callback
        Every callback of the fit.
    comm : Communicator or None
        The ranks of a data-parallel fit.
    batch_size : int
        Rows per step.

    Returns
    -------
    Engine
        With ``reason``: why this engine, in a few words (e.g. "Dropout keeps the eager
        engine: its masks are drawn on the host").
    """
    engine, engine.reason = _choose(model, callbacks, comm, batch_size)
    return engine


def _choose(model: Any, callbacks: list, comm: Any, batch_size: int) -> tuple[Engine, str]:
    b = model.backend
    # data parallelism: each step's gradient is summed over the ranks before the update
    if comm is not None:
        ranks = f"{comm.size} rank" + ("s" if comm.size != 1 else "")
        return Sharded(comm), f"data parallelism over {ranks}: each gradient summed over them"
    # a callback that looks at the model after each batch needs each step to have run when
    # it is called: the compiled epoch runs them all in one program
    watcher = next((c for c in callbacks if watches_batches(c)), None)
    if watcher is not None:
        return Eager(), (
            f"callback {type(watcher).__name__} looks at the model after each batch: "
            "each step runs on its own"
        )
    # a backend that compiles (JAX) runs the epoch as one program, unless the model needs
    # what the program cannot hold (host-drawn dropout masks, per-array clipping)
    epoch = _compiled.program(model, batch_size)
    if epoch is not None:
        return _compiled.Compiled(epoch), f"backend {b.name}: {_COMPILED}"
    # on a GPU (CuPy, torch on CUDA), each step recorded once as a CUDA graph and replayed:
    # one launch per step instead of one per array operation
    if model.capture and b.can_capture and _captured.supports(model):
        return _captured.Captured(b.capture), f"backend {_label(b)}: {_CAPTURED}"
    return Eager(), _why_eager(model)


def _why_eager(model: Any) -> str:
    """Why a model without a batch-watching callback or ranks trains step by step."""
    b, opt = model.backend, model.optimizer
    faster = b.compile(_noop) is not None or b.can_capture  # a faster engine exists here
    if faster:
        dropout = [layer for layer in model.layers if isinstance(layer, _layers.Dropout)]
        if model._theta is None:
            return "the model has no trainable weights: nothing to compile or record"
        if dropout:
            return (
                f"Dropout ({dropout[0].name}) keeps the eager engine: its masks are drawn on "
                "the host for each step"
            )
        if opt.clipnorm is not None:
            return (
                "clipnorm (per-array clipping) keeps the eager engine; global_clipnorm clips "
                "inside the compiled or recorded step"
            )
        if b.can_capture and not model.capture:
            return "Sequential(capture=False) keeps the eager engine"
        return f"backend {_label(b)}: this model's step cannot be recorded"
    return (
        f"backend {_label(b)} neither compiles an epoch (JAX) nor records a step (CUDA "
        "graphs): one step at a time"
    )


def _noop() -> None:
    """A function to ask ``Backend.compile`` whether it compiles at all."""


def _label(b: Any) -> str:
    """The backend's name, with its device where the name alone does not say it."""
    device = str(getattr(b, "device", "") or "")
    return f"{b.name} on {device}" if b.name == "torch" and device else b.name


def describe_engines(backends: Iterable[Any] | None = None) -> dict[str, str]:
    """Which engine a plain single-process fit runs on each backend, in a short sentence.

    For ``python -m backprop info``. A plain fit: no Dropout, no ``clipnorm``, no callback
    that watches each batch (each of which keeps the eager engine), one process.

    Parameters
    ----------
    backends : iterable of str or Backend, optional
        Backend specs (``"numpy"``, ``"torch:cuda"``) or backends; by default every
        backend usable here (:func:`backprop.available_backends`).

    Returns
    -------
    dict of str to str
        For each backend (its spec as given, or its name), e.g. ``"eager: one step at a
        time (numpy neither compiles an epoch nor records a step)"``.

    Examples
    --------
    >>> describe_engines(["numpy"])["numpy"]
    'eager: one step at a time (numpy neither compiles an epoch nor records a step)'
    """
    specs = _backend.available_backends() if backends is None else list(backends)
    out = {}
    for spec in specs:
        b = spec if isinstance(spec, _backend.Backend) else _backend.resolve(spec)
        key = spec if isinstance(spec, str) else b.name
        if b.compile(_noop) is not None:
            text = f"compiled: {_COMPILED}"
        elif b.can_capture:
            text = f"captured: {_CAPTURED} (Sequential(capture=False) for eager)"
        else:
            text = (
                f"eager: one step at a time ({_label(b)} neither compiles an epoch nor "
                "records a step)"
            )
            out[key] = text
            continue
        out[key] = f"{text}; eager with Dropout, clipnorm or a callback that watches batches"
    return out
