"""Where the time of backprop's ``fit`` goes: ``python -m bench.fit_profile [workload] [dtype]``.

Prints the time per step of a plain ``fit`` (one thread), the array operations per step
(``bench/opcount.py``), and cProfile's top functions by own time and by cumulative time.
Array operators (``@``, ``+``...) are not functions to cProfile: their time counts as the own
time of the Python function that uses them (a layer's ``forward`` owns its matmul), so read
"own time" as "this line's array work plus its Python".
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import time
import warnings


def _fit(workload: str, dtype: str, epochs: int, profile: cProfile.Profile | None = None):
    from bench import workloads
    from bench.peers.backprop_peer import build_model

    wl = workloads.get(workload)
    X, y = wl.data(dtype)
    model = build_model(wl, dtype)
    if profile is not None:
        profile.enable()
    t0 = time.perf_counter()
    model.fit(X, y, epochs=epochs, batch_size=wl.batch_size, verbose=0)
    seconds = time.perf_counter() - t0
    if profile is not None:
        profile.disable()
    return seconds / (epochs * wl.steps_per_epoch())


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    workload = argv[0] if argv else "seed"
    dtype = argv[1] if len(argv) > 1 else "float32"
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(k, "1")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from threadpoolctl import threadpool_limits

    from bench.opcount import count_ops

    threadpool_limits(1)
    warnings.simplefilter("ignore")
    epochs = {"seed": 20, "digits": 10, "large": 1}[workload]
    _fit(workload, dtype, 1)  # warm-up
    per_step = min(_fit(workload, dtype, epochs) for _ in range(3))
    ops = count_ops(workload, dtype)
    print(
        f"== {workload} {dtype}: fit takes {per_step * 1e6:.0f} us per step (best of 3); "
        f"{ops['per_step']} array operations per step "
        f"({', '.join(f'{k} {v}' for k, v in sorted(ops['by_op'].items(), key=lambda kv: -kv[1]))})"
    )
    prof = cProfile.Profile()
    _fit(workload, dtype, epochs, prof)
    for key, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(15)
        print(f"\n== cProfile of fit ({epochs} epochs), top 15 by {title}")
        print(out.getvalue().split("\n\n", 1)[-1].strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
