"""Scheduler workloads: vCPU behaviours for CPU-bound, I/O-bound, periodic and mixed guests.

Design note
-----------
Behaviours are the ``next(now_ns) -> Demand`` objects of :mod:`pvsim.core.engine`. They model
what matters to a scheduler and nothing else: how long a vCPU computes before it blocks, how long
it stays blocked, and (for the latency-sensitive kind) when a request arrived and when it was
answered. Random burst lengths come from a generator the caller passes in (use
``engine.rng(name)``), so runs are reproducible.
"""

from __future__ import annotations

import numpy as np

from pvsim.core.engine import Block, Done, Run, Wait  # noqa: F401  (Wait for users)
from pvsim.core.errors import ScenarioError


class CpuHog:
    """CPU-bound: always runnable (``Run`` in chunks of ``chunk_ns``; a chunk end is not a decision
    the scheduler sees, only the dispatcher)."""

    def __init__(self, chunk_ns: int = 1_000_000_000, until_ns: int | None = None):
        self.chunk_ns = int(chunk_ns)
        self.until_ns = until_ns

    def next(self, now_ns: int):
        if self.until_ns is not None:
            if now_ns >= self.until_ns:
                return Done()
            return Run(min(self.chunk_ns, self.until_ns - now_ns))
        return Run(self.chunk_ns)


class IoBound:
    """I/O-bound: compute ``run_ns`` then block ``block_ns`` (exponential if ``rng`` is given)."""

    def __init__(self, run_ns: int, block_ns: int, rng: np.random.Generator | None = None):
        self.run_ns = int(run_ns)
        self.block_ns = int(block_ns)
        self.rng = rng
        self._ran = False

    def next(self, now_ns: int):
        self._ran = not self._ran
        if self._ran:
            n = self.run_ns if self.rng is None else max(1, int(self.rng.exponential(self.run_ns)))
            return Run(n)
        n = self.block_ns if self.rng is None else max(1, int(self.rng.exponential(self.block_ns)))
        return Block(n)


class Periodic:
    """Latency-sensitive: a request arrives every ``period_ns`` (offset ``phase_ns``); the vCPU
    wakes, computes ``work_ns`` and blocks until the next arrival. ``response_ns`` records the
    arrival-to-completion time of every request (wake latency + queueing + work)."""

    def __init__(self, period_ns: int, work_ns: int, phase_ns: int = 0):
        self.period_ns = int(period_ns)
        self.work_ns = int(work_ns)
        self.next_arrival = int(phase_ns)
        self.response_ns: list[int] = []
        self._busy = False
        self._arrival = 0

    def next(self, now_ns: int):
        if self._busy:  # finished the work of the current request
            self._busy = False
            self.response_ns.append(now_ns - self._arrival)
        while self.next_arrival + self.period_ns <= now_ns:  # overran: skip missed arrivals
            self.next_arrival += self.period_ns
        if self.next_arrival > now_ns:
            return Block(self.next_arrival - now_ns)
        self._arrival = self.next_arrival
        self.next_arrival += self.period_ns
        self._busy = True
        return Run(self.work_ns)


class Mix:
    """Alternate phases: ``[(behaviour, duration_ns), ...]`` in turn, then repeat."""

    def __init__(self, phases: list[tuple[object, int]]):
        if not phases:
            raise ValueError("Mix needs at least one phase")
        self.phases = phases
        self.i = 0
        self.phase_end: int | None = None

    def next(self, now_ns: int):
        if self.phase_end is None:
            self.phase_end = now_ns + self.phases[0][1]
        while now_ns >= self.phase_end:
            self.i = (self.i + 1) % len(self.phases)
            self.phase_end += self.phases[self.i][1]
        d = self.phases[self.i][0].next(now_ns)
        if isinstance(d, (Run, Block)) and d.ns > self.phase_end - now_ns:
            return type(d)(max(1, self.phase_end - now_ns))
        return d


def make_behaviour(kind: str, rng: np.random.Generator | None = None, **kw):
    """A behaviour by name: ``cpu``, ``io``, ``periodic`` (scenario files use these names)."""
    if kind == "cpu":
        return CpuHog(**kw)
    if kind == "io":
        return IoBound(rng=rng, **kw)
    if kind == "periodic":
        return Periodic(**kw)
    raise ScenarioError("workload.kind", f"unknown workload {kind!r}; allowed: cpu, io, periodic")
