"""``rr`` compiled: :mod:`pvsim.sched.rr` over the arena (one global FIFO, a fixed slice).

Design note
-----------
Step for step :class:`pvsim.sched.rr.RoundRobin`: the FIFO is row 0 of ``RQ`` (its length in
``SG[RR_LEN]``), ``queued`` is ``SV[RR_QUEUED]``, the slice ``SG[RR_SLICE]``. The template for the
other compiled schedulers: a ``SIZES`` dict for the arena, an ``init`` from the Python scheduler's
parameters, and the ops as ``@njit`` functions over the tuple of views.
"""

from __future__ import annotations

from numba import njit

from pvsim.sched.hk.base import allowed, raise_softirq, runnable
from pvsim.sched.hk.layout import F_CPU, F_IS_RUNNING, G_NP, P_CURR, SG

READY = True
RR_LEN, RR_SLICE = 0, 1
RR_QUEUED = 0
SIZES = {"sv": 1, "sp": 1, "sd": 1, "sg": 4, "rq_rows": 1, "timers": 4}


def init(arena, sched) -> None:
    """Copy the Python scheduler's parameters into the arena."""
    arena.region(SG)[0, RR_SLICE] = sched.slice_ns


@njit(cache=True)
def _enqueue(A, v):
    SV = A.SV
    if SV[RR_QUEUED, v] == 0:
        SV[RR_QUEUED, v] = 1
        SG = A.SG
        A.RQ[0, SG[RR_LEN]] = v
        SG[RR_LEN] += 1


@njit(cache=True)
def _remove(A, v):
    SG = A.SG
    rq = A.RQ[0]
    n = SG[RR_LEN]
    for i in range(n):
        if rq[i] == v:
            for j in range(i, n - 1):
                rq[j] = rq[j + 1]
            SG[RR_LEN] = n - 1
            return


@njit(cache=True)
def pick_cpu(A, v):
    V = A.V
    if allowed(A, v, V[F_CPU, v]):
        return V[F_CPU, v]
    for c in range(A.G[G_NP]):
        if allowed(A, v, c):
            return c
    return V[F_CPU, v]


@njit(cache=True)
def insert(A, v):
    A.V[F_CPU, v] = pick_cpu(A, v)


@njit(cache=True)
def sleep(A, v):
    V = A.V
    if V[F_IS_RUNNING, v]:
        raise_softirq(A, V[F_CPU, v])
    elif A.SV[RR_QUEUED, v]:
        A.SV[RR_QUEUED, v] = 0
        _remove(A, v)


@njit(cache=True)
def remove(A, v):
    sleep(A, v)


@njit(cache=True)
def wake(A, v):
    V = A.V
    if V[F_IS_RUNNING, v] or A.SV[RR_QUEUED, v]:
        return
    _enqueue(A, v)
    P = A.P
    c0 = V[F_CPU, v]
    if allowed(A, v, c0) and P[P_CURR, c0] < 0:
        raise_softirq(A, c0)
        return
    for c in range(A.G[G_NP]):  # range(n) or sorted(hard): ascending either way
        if c != c0 and allowed(A, v, c) and P[P_CURR, c] < 0:
            raise_softirq(A, c)
            return


@njit(cache=True)
def yield_(A, v):
    V = A.V
    if V[F_IS_RUNNING, v]:
        raise_softirq(A, V[F_CPU, v])


@njit(cache=True)
def context_saved(A, v):
    pass


@njit(cache=True)
def timer(A, kind, arg, now):
    pass


@njit(cache=True)
def start(A, now):
    pass


@njit(cache=True)
def affinity_changed(A, v):
    pass


@njit(cache=True)
def call(A, op, a, b):
    """Python-requested operations (``CALL_*`` codes of this module); rr has none."""
    return 0


def adjust(runner, dom, params: dict) -> None:
    """``xl sched-rr -d``: weight and cap are accepted and ignored (as by the Python scheduler)."""
    runner.sched.adjust(dom, params)


def adjust_global(runner, params: dict) -> None:
    """``xl sched-rr -s``: the slice."""
    runner.sched.adjust_global(params)
    runner.arena.region(SG)[0, RR_SLICE] = runner.sched.slice_ns


@njit(cache=True)
def do_schedule(A, cpu, now, prev):
    if prev >= 0 and runnable(A, prev):
        _enqueue(A, prev)
    SG = A.SG
    rq = A.RQ[0]
    for i in range(SG[RR_LEN]):
        u = rq[i]
        if allowed(A, u, cpu):
            _remove(A, u)
            A.SV[RR_QUEUED, u] = 0
            return u, SG[RR_SLICE]
    return -1, -1
