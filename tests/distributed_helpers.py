"""K ranks in one process: threads sharing a communicator, to test data parallelism without MPI.

Each thread is a rank with its own model; the collective operations meet at a barrier. The sums
run on the host in rank order, as a reference implementation of the Communicator contract.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from backprop.distributed import Communicator, DistributedError


class ThreadGroup:
    """``size`` ranks that meet at one barrier (bounded by ``timeout`` seconds)."""

    def __init__(self, size: int, timeout: float = 30.0):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=timeout)
        self.slots: list[Any] = [None] * size
        self.failures: list[str] = []
        self.calls = {"allreduce": 0, "broadcast": 0}

    def run(self, fn, *, join_timeout: float = 120.0) -> list[Any]:
        """Run ``fn(rank, comm)`` on every rank; results (or the exception raised) by rank."""
        results: list[Any] = [None] * self.size

        def target(rank):
            try:
                results[rank] = fn(rank, ThreadCommunicator(self, rank))
            except BaseException as exc:  # handed back to the test
                results[rank] = exc

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(join_timeout)
        assert not any(t.is_alive() for t in threads), "a rank hung"
        return results


class ThreadCommunicator(Communicator):
    name = "threads"

    def __init__(self, group: ThreadGroup, rank: int):
        self.group, self.rank, self.size = group, rank, group.size

    def _meet(self) -> None:
        try:
            self.group.barrier.wait()
        except threading.BrokenBarrierError:
            why = "; ".join(self.group.failures) or "timed out"
            raise DistributedError(f"rank {self.rank} stopped: {why}") from None

    def _exchange(self, value: Any) -> list[Any]:
        self.group.slots[self.rank] = value
        self._meet()
        values = list(self.group.slots)
        self._meet()
        return values

    def allreduce(self, x, backend):
        if self.rank == 0:
            self.group.calls["allreduce"] += 1
        values = self._exchange(np.array(backend.to_numpy(x), copy=True))
        total = values[0].copy()
        for v in values[1:]:
            total += v
        return backend.asarray(total, x.dtype)

    def broadcast(self, x, backend, root=0):
        if self.rank == 0:
            self.group.calls["broadcast"] += 1
        values = self._exchange(np.array(backend.to_numpy(x), copy=True))
        # a copy: ranks of a real job never share memory (in-place updates would add up)
        return backend.asarray(values[root].copy(), x.dtype)

    def allgather(self, obj):
        return self._exchange(obj)

    def bcast(self, obj, root=0):
        return self._exchange(obj)[root]

    def notify_failure(self, exc):
        self.group.failures.append(f"rank {self.rank} failed: {type(exc).__name__}: {exc}")
        self.group.barrier.abort()
