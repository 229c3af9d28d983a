"""RTDS's runqueue pick (``runq_pick`` / ``__runq_pick`` in ``xen/common/sched/rt.c``) over
struct-of-arrays state: reference and Numba kernel.

Design note
-----------
The global RTDS runqueue is kept as arrays indexed by unit: ``level`` (``priority_level``),
``deadline`` (``cur_deadline``), ``seq`` (when it was queued: FIFO among equal keys, as
``runq_insert`` puts a unit after every unit of equal priority), ``queued`` (on the runqueue, not
depleted, not running) and ``allowed[n, n_pcpus]`` (hard affinity). ``rt_pick`` returns the unit
with the smallest ``(level, deadline, seq)`` that may run on ``cpu`` (``cpu = -1``: on any pCPU),
or -1: EDF within a priority level, exactly the head-first scan of the sorted list in rt.c.

Layout: ``keys`` int64[3, n] (rows level, deadline, seq), ``queued`` int64[n] (0/1),
``allowed`` int64[n, n_pcpus] (0/1); ``out`` int64[1] receives the index.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pvsim.core import kernels


def rt_pick_ref(keys, queued, allowed, cpu, out):
    """Plain Python: the minimum key among the eligible units (``min`` over tuples)."""
    n = keys.shape[1]
    cands = [(int(keys[0, i]), int(keys[1, i]), int(keys[2, i]), i) for i in range(n)
             if queued[i] and (cpu < 0 or allowed[i, cpu])]
    out[0] = min(cands)[3] if cands else -1


@njit(cache=True)
def _rt_pick_kernel(keys, queued, allowed, cpu, out):
    n = keys.shape[1]
    best = -1
    bl = 0
    bd = 0
    bs = 0
    for i in range(n):
        if queued[i] == 0:
            continue
        if cpu >= 0 and allowed[i, cpu] == 0:
            continue
        lv = keys[0, i]
        dl = keys[1, i]
        sq = keys[2, i]
        if best < 0 or lv < bl or (lv == bl and (dl < bd or (dl == bd and sq < bs))):
            best = i
            bl = lv
            bd = dl
            bs = sq
    out[0] = best


def rt_pick(keys, queued, allowed, cpu: int, out=None, *, reference: bool = False) -> int:
    """Index of the highest-priority queued unit that may run on ``cpu`` (-1: any), or -1."""
    if keys.ndim != 2 or keys.shape[0] != 3 or queued.shape[0] != keys.shape[1] or allowed.shape[0] != keys.shape[1]:
        raise ValueError("rt_pick: keys must be int64[3, n], queued int64[n], allowed int64[n, n_pcpus]")
    if out is None:
        out = np.empty(1, np.int64)
    (rt_pick_ref if reference else _rt_pick_kernel)(keys, queued, allowed, int(cpu), out)
    return int(out[0])


def _cases(rng):
    for n, ncpu in ((1, 1), (5, 2), (40, 4), (300, 16)):
        for _ in range(4):
            keys = np.stack([rng.integers(0, 3, n), rng.integers(0, 5, n) * 1000, rng.permutation(n)]).astype(np.int64)
            queued = (rng.random(n) < 0.6).astype(np.int64)
            allowed = (rng.random((n, ncpu)) < 0.7).astype(np.int64)
            for cpu in (-1, int(rng.integers(0, ncpu))):
                yield keys, queued, allowed, cpu, np.zeros(1, np.int64)
    yield np.zeros((3, 0), np.int64), np.zeros(0, np.int64), np.zeros((0, 2), np.int64), 0, np.zeros(1, np.int64)


kernels.register("rt_pick", kernel=_rt_pick_kernel, reference=rt_pick_ref, cases=_cases)
