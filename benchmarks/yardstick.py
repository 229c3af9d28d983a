"""This machine's yardstick, measured in the same run as each benchmark: a bare SimPy timeout loop.

Every benchmark prints its figures absolute and as ratios to :func:`simpy_events_per_s` (and to its
Python references), so a figure means the same on a loaded laptop and a quiet server. Nothing here
asserts a speed.
"""

from __future__ import annotations

import time

import simpy

_CACHE: dict = {}


def simpy_events_per_s(n_events: int = 400_000, procs: int = 64, repeat: int = 3) -> float:
    """Events per wall second of a bare SimPy loop: ``procs`` processes each yielding
    ``env.timeout(d)`` with a small varying delay, the cheapest decision SimPy can make (best of
    ``repeat``; measured once per process and cached)."""
    key = (n_events, procs)
    if key in _CACHE:
        return _CACHE[key]
    per = n_events // procs
    best = 0.0
    for _ in range(repeat):
        env = simpy.Environment()

        def proc(env, k):
            d = 1 + k % 7
            for _ in range(per):
                yield env.timeout(d)

        for k in range(procs):
            env.process(proc(env, k))
        t0 = time.perf_counter()
        env.run()
        wall = time.perf_counter() - t0
        best = max(best, per * procs / wall)
    _CACHE[key] = best
    return best


def report(label: str, per_wall_s: float, unit: str = "events") -> str:
    """``label: X unit/wall s = R x the bare SimPy loop (S events/wall s)``."""
    y = simpy_events_per_s()
    return f"{label}: {per_wall_s:,.0f} {unit}/wall s = {per_wall_s / y:.3f} x bare SimPy ({y:,.0f} events/wall s)"


if __name__ == "__main__":
    print(f"bare SimPy timeout loop: {simpy_events_per_s():,.0f} events/wall s")
