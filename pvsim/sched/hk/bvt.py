"""``bvt`` compiled: :mod:`pvsim.sched.bvt` over the arena (not yet written: every op is the
template's no-op, and :data:`READY` is False, so the builder keeps the Python dispatcher for it).

Design note
-----------
To be written step for step from :mod:`pvsim.sched.bvt`, after the model of
:mod:`pvsim.sched.hk.rr` (the template) and :mod:`pvsim.sched.hk.base` (the dispatcher's services).
"""

from __future__ import annotations

from numba import njit

from pvsim.sched.hk.layout import F_CPU

READY = False
SIZES = {"sv": 1, "sp": 1, "sd": 1, "sg": 4, "rq_rows": 1, "timers": 4}


def init(arena, sched) -> None:
    pass


@njit(cache=True)
def pick_cpu(A, v):
    return A.V[F_CPU, v]


@njit(cache=True)
def insert(A, v):
    pass


@njit(cache=True)
def remove(A, v):
    pass


@njit(cache=True)
def wake(A, v):
    pass


@njit(cache=True)
def sleep(A, v):
    pass


@njit(cache=True)
def yield_(A, v):
    pass


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
    return 0


def adjust(runner, dom, params: dict) -> None:
    raise NotImplementedError


def adjust_global(runner, params: dict) -> None:
    raise NotImplementedError


@njit(cache=True)
def do_schedule(A, cpu, now, prev):
    return -1, -1
