"""Which engine runs a fit: one visible function, with the reasons."""

from __future__ import annotations

from typing import Any

from . import captured as _captured
from . import compiled as _compiled
from .base import Engine, watches_batches
from .eager import Eager
from .sharded import Sharded


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
    """
    # data parallelism: each step's gradient is summed over the ranks before the update
    if comm is not None:
        return Sharded(comm)
    # a callback that looks at the model after each batch needs each step to have run when
    # it is called: the compiled epoch runs them all in one program
    if any(watches_batches(c) for c in callbacks):
        return Eager()
    # a backend that compiles (JAX) runs the epoch as one program, unless the model needs
    # what the program cannot hold (host-drawn dropout masks, per-array clipping)
    epoch = _compiled.program(model, batch_size)
    if epoch is not None:
        return _compiled.Compiled(epoch)
    # on a GPU (CuPy, torch on CUDA), each step recorded once as a CUDA graph and replayed:
    # one launch per step instead of one per array operation
    if model.capture and model.backend.can_capture and _captured.supports(model):
        return _captured.Captured(model.backend.capture)
    return Eager()
