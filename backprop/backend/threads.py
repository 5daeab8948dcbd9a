"""The host threads of a backend's CPU kernels, limited for the duration of a command."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator

# the variables by which a user sets the CPU threads of torch's kernels themselves
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def limit_cpu_threads(spec: str | None, n: int = 1) -> Iterator[None]:
    """``n`` intra-op CPU threads for torch while the block runs, unless the user set some.

    torch starts one OpenMP thread per core. For small networks each matrix product is over
    in microseconds, and coordinating the threads costs more than it saves; on a machine whose
    cores are busy (a small VM, a CI runner) the spinning threads compete with the work
    itself (docs/faq.md gives the figures). The library never changes the setting on its own;
    the command line does, through this function, for the duration of one command.

    Parameters
    ----------
    spec : str or None
        The backend the block runs on (``"torch"``, ``"torch:cpu"``, ...); None reads
        ``BACKPROP_BACKEND``. Any other backend leaves everything alone, and torch is
        imported only when the spec names it.
    n : int, default 1
        The thread count inside the block.

    Notes
    -----
    Nothing changes when ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set: the user chose.
    The previous count is restored when the block ends.
    """
    name = (spec or os.environ.get("BACKPROP_BACKEND") or "").split(":")[0].strip().lower()
    if name != "torch" or any(os.environ.get(v) for v in THREAD_VARIABLES):
        yield
        return
    try:
        torch = importlib.import_module("torch")
    except ImportError:  # the command reports the missing backend itself
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)  # called from Python: the caller's setting back
