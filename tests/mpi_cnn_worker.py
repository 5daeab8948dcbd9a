"""What each rank runs in ``test_cnn_engines.py`` (launched by ``mpirun``, not collected).

``python mpi_cnn_worker.py OUT_DIR``: trains the test's small CNN with ``fit(distributed=True)``;
rank 0 writes the weights and history to OUT_DIR.
"""

import json
import pathlib
import sys

import numpy as np
from test_cnn_engines import FIT, cnn, images

from backprop.distributed import get_communicator


def main(out: str) -> None:
    X, y = images()
    model = cnn()
    history = model.fit(X, y, distributed=True, **FIT)
    comm = get_communicator("auto")
    if comm.rank == 0:
        (pathlib.Path(out) / "size").write_text(str(comm.size))
        np.savez(f"{out}/weights.npz", *[np.asarray(w) for w in model.get_weights()])
        with open(f"{out}/history.json", "w") as f:
            json.dump(history.history, f)


if __name__ == "__main__":
    main(sys.argv[1])
