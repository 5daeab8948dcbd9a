"""Beyond one process: data-parallel training over MPI or NCCL, and prediction with Dask.

Launch the same script on K processes (``mpirun -n K python train.py``) and train with
``model.fit(..., distributed=True)`` or :class:`DataParallel`: one allreduce of the packed
gradient per step, the same weights on every rank, and only rank 0 printing and saving.
:func:`predict` runs a trained model over the row chunks of a Dask array.
"""

from .. import registry as _registry
from . import comm
from .comm import (
    Communicator,
    DistributedError,
    MPICommunicator,
    NCCLCommunicator,
    SingleProcess,
    get_communicator,
    launched_by_mpi,
    local_rank,
)
from .parallel import DataParallel, shard
from .predict import predict

# fit(distributed=...) finds the communicators by name: the model sits below this package and
# never imports it (see backprop.trainer)
_registry.register("distributed", "communicators", comm)

__all__ = [
    "Communicator",
    "DataParallel",
    "DistributedError",
    "MPICommunicator",
    "NCCLCommunicator",
    "SingleProcess",
    "get_communicator",
    "launched_by_mpi",
    "local_rank",
    "predict",
    "shard",
]
