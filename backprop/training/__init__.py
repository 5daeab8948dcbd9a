"""Training: the loop around a network, and the engines that run its steps.

``Sequential`` (``backprop/model.py``) is the network: its layers, the flat parameter vector,
forward and backward. This package trains it, and knows nothing above it:

- ``compilation``: what ``compile`` sets (loss, optimizer, metrics) and the checks on it;
- ``loop``: ``fit``/``evaluate``/``predict``: epochs, batches, shuffling, validation,
  callbacks, logs, and the restore after a non-finite loss;
- ``base``: what a step engine is (``Engine``, the ``Epoch`` it returns);
- ``choose``: :func:`choose_engine`, which picks the engine of a fit, and why;
- ``eager``: one step at a time, on any backend;
- ``compiled``: an epoch as one program (``Backend.compile`` + ``Backend.scan``: JAX);
- ``sharded``: the data-parallel step; the communicator is handed in by ``backprop.distributed``;
- ``captured``: the place of a step recorded once as a CUDA graph and replayed (not yet built);
- ``step``: the optimizer's update of the flat vector, shared by the engines;
- ``logs``: the epoch's loss and metric sums and their host values;
- ``probe``: the dead-network probe;
- ``errors``: what training raises and warns.

Each engine runs an epoch, ``run_epoch(model, X, Y, order, batch_size, steps, callbacks)``,
and returns its sums on the device; the loop reads them back once per epoch.
"""

from .base import Engine, Epoch
from .choose import choose_engine
from .errors import DeadNetworkWarning, NonFiniteLossError

__all__ = ["DeadNetworkWarning", "Engine", "Epoch", "NonFiniteLossError", "choose_engine"]
