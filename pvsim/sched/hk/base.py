"""Services of the compiled host that every compiled scheduler uses (``core.c``'s side of the ops).

Design note
-----------
The compiled counterparts of :class:`pvsim.sched.runner.HostRunner`'s services, over the arena of
:mod:`pvsim.sched.hk.layout`: the event heap (ordered by ``(time, id)``, the ids drawn from the
same counter as SimPy's, so a kernel event and a SimPy event compare as two SimPy events would),
``raise_softirq``, one-shot scheduler timers (cancelled lazily, as ``stop_timer`` leaves the SimPy
event in place), runstate changes with their trace records, the progress of a running unit, the
parking and migration primitives, affinity bitmaps. Each function is the Python one step for step;
a scheduler module (``pvsim/sched/hk/<name>.py``) calls these and its own functions only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hypercalls.ops import RUNSTATE_offline, RUNSTATE_runnable
from hypercalls.trace import TRC_SCHED_RUNSTATE_CHANGE
from pvsim.sched.hk.layout import (
    EV_SOFTIRQ,
    EV_STIMER,
    F_BLOCKED,
    F_CPU,
    F_DOMID,
    F_DONE,
    F_HARD_ALL,
    F_IS_RUNNING,
    F_MIGRATE_PENDING,
    F_PAUSE,
    F_RS0,
    F_RUNNABLE_SINCE,
    F_RUNSTATE,
    F_SOFT_NONE,
    F_STATE_ENTRY,
    F_VCPU_ID,
    G_EVENTS,
    G_NOW,
    G_NP,
    G_QN,
    G_SEQ,
    G_STARTED,
    G_TMN,
    G_TN,
    G_TRACE,
    P_SGEN,
    P_SOFTIRQ,
    Q_A,
    Q_B,
    Q_KIND,
    Q_SEQ,
    Q_T,
    T_CPU,
    T_EV,
    T_N,
    T_TIME,
    TM_ACTIVE,
    TM_ARG,
    TM_KIND,
    TM_WHEN,
)


# ---------------------------------------------------------------- the event heap
@njit(cache=True)
def _less(Q, i, j):
    ti = Q[Q_T, i]
    tj = Q[Q_T, j]
    return ti < tj or (ti == tj and Q[Q_SEQ, i] < Q[Q_SEQ, j])


@njit(cache=True)
def _swap(Q, i, j):
    for r in range(5):
        x = Q[r, i]
        Q[r, i] = Q[r, j]
        Q[r, j] = x


@njit(cache=True)
def push(A, t, kind, a, b):
    """Schedule an event at absolute time ``t`` (its id is the next of the shared counter)."""
    G = A.G
    Q = A.Q
    n = G[G_QN]
    Q[Q_T, n] = t
    Q[Q_SEQ, n] = G[G_SEQ]
    Q[Q_KIND, n] = kind
    Q[Q_A, n] = a
    Q[Q_B, n] = b
    G[G_SEQ] += 1
    G[G_EVENTS] += 1
    G[G_QN] = n + 1
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if _less(Q, i, p):
            _swap(Q, i, p)
            i = p
        else:
            break


@njit(cache=True)
def pop(A):
    """Remove the earliest event; its fields are left in column ``G_QN`` (one past the heap's end)."""
    G = A.G
    Q = A.Q
    n = G[G_QN] - 1
    _swap(Q, 0, n)
    G[G_QN] = n
    i = 0
    while True:
        lft = 2 * i + 1
        if lft >= n:
            break
        c = lft
        if lft + 1 < n and _less(Q, lft + 1, lft):
            c = lft + 1
        if _less(Q, c, i):
            _swap(Q, c, i)
            i = c
        else:
            break
    return n


# ---------------------------------------------------------------- tracing
@njit(cache=True)
def trace(A, cpu, ev, n, w0, w1, w2, w3, w4):
    """A trace record (only when someone subscribed): time, pCPU, event id, ``n`` words."""
    G = A.G
    if G[G_TRACE] == 0:
        return
    T = A.T
    k = G[G_TN]
    T[T_TIME, k] = G[G_NOW]
    T[T_CPU, k] = cpu
    T[T_EV, k] = ev
    T[T_N, k] = n
    T[T_N + 1, k] = w0
    T[T_N + 2, k] = w1
    T[T_N + 3, k] = w2
    T[T_N + 4, k] = w3
    T[T_N + 5, k] = w4
    G[G_TN] = k + 1


# ---------------------------------------------------------------- units and pCPUs
@njit(cache=True)
def now(A):
    return A.G[G_NOW]


@njit(cache=True)
def runnable(A, v):
    """``unit_runnable()``: not blocked, not paused, not offline for good."""
    V = A.V
    return V[F_BLOCKED, v] == 0 and V[F_PAUSE, v] == 0 and V[F_DONE, v] == 0


@njit(cache=True)
def allowed(A, v, cpu):
    V = A.V
    if V[F_HARD_ALL, v]:
        return True
    return (A.HARD[v, cpu >> 6] >> (cpu & 63)) & 1 == 1


@njit(cache=True)
def soft_allowed(A, v, cpu):
    """``cpu`` in the unit's soft affinity (False when it has none)."""
    V = A.V
    if V[F_SOFT_NONE, v]:
        return False
    return (A.SOFT[v, cpu >> 6] >> (cpu & 63)) & 1 == 1


@njit(cache=True)
def hard_count(A, v):
    if A.V[F_HARD_ALL, v]:
        return A.G[G_NP]
    c = 0
    row = A.HARD[v]
    for w in range(row.shape[0]):
        x = np.uint64(row[w])
        while x:
            x &= x - np.uint64(1)
            c += 1
    return c


@njit(cache=True)
def hard_min(A, v):
    """The lowest pCPU of the unit's hard affinity."""
    if A.V[F_HARD_ALL, v]:
        return 0
    for c in range(A.G[G_NP]):
        if allowed(A, v, c):
            return c
    return 0


@njit(cache=True)
def bit(row, c):
    return (row[c >> 6] >> (c & 63)) & 1 == 1


@njit(cache=True)
def bit_set(row, c):
    row[c >> 6] |= np.int64(1) << (c & 63)


@njit(cache=True)
def bit_clear(row, c):
    row[c >> 6] &= ~(np.int64(1) << (c & 63))


@njit(cache=True)
def bits_any(row):
    for w in range(row.shape[0]):
        if row[w] != 0:
            return True
    return False


@njit(cache=True)
def set_runstate(A, v, new, t):
    """``vcpu_runstate_change``."""
    V = A.V
    old = V[F_RUNSTATE, v]
    if old == new:
        return
    V[F_RS0 + old, v] += t - V[F_STATE_ENTRY, v]
    V[F_STATE_ENTRY, v] = t
    V[F_RUNSTATE, v] = new
    if new == RUNSTATE_runnable:
        V[F_RUNNABLE_SINCE, v] = t
    trace(A, V[F_CPU, v], TRC_SCHED_RUNSTATE_CHANGE | (old << 8) | (new << 4), 1,
          (V[F_DOMID, v] << 16) | V[F_VCPU_ID, v], 0, 0, 0, 0)


@njit(cache=True)
def raise_softirq(A, cpu):
    """``cpu_raise_softirq(cpu, SCHEDULE_SOFTIRQ)``: one zero-delay event; raises coalesce."""
    G = A.G
    P = A.P
    if P[P_SOFTIRQ, cpu] or G[G_STARTED] == 0:
        return
    P[P_SOFTIRQ, cpu] = 1
    P[P_SGEN, cpu] += 1
    push(A, G[G_NOW], EV_SOFTIRQ, cpu, P[P_SGEN, cpu])


@njit(cache=True)
def timer(A, delay, kind, arg):
    """A one-shot scheduler timer of ``kind`` (the scheduler's own code) firing after ``delay``; the
    handle for :func:`timer_cancel`."""
    G = A.G
    TM = A.TM
    n = G[G_TMN]
    h = -1
    for i in range(n):
        if TM[TM_ACTIVE, i] == 0 and TM[TM_WHEN, i] < 0:  # free (fired or cancelled, and popped)
            h = i
            break
    if h < 0:
        h = n
        G[G_TMN] = n + 1
    t = G[G_NOW] + delay
    TM[TM_ACTIVE, h] = 1
    TM[TM_KIND, h] = kind
    TM[TM_ARG, h] = arg
    TM[TM_WHEN, h] = t
    push(A, t, EV_STIMER, h, 0)
    return h


@njit(cache=True)
def timer_cancel(A, h):
    """``stop_timer``: the event stays queued and does nothing when it comes."""
    if h >= 0:
        A.TM[TM_ACTIVE, h] = 0


@njit(cache=True)
def pause_pre(A, v):
    """The dispatcher's part of ``sched_unit_pause_nosync``: True if the scheduler's ``sleep`` must
    follow (the unit was runnable)."""
    V = A.V
    was = runnable(A, v)
    V[F_PAUSE, v] += 1
    if was:
        if V[F_IS_RUNNING, v] == 0:
            set_runstate(A, v, RUNSTATE_offline, A.G[G_NOW])
        return True
    return False


@njit(cache=True)
def unpause_pre(A, v):
    """The dispatcher's part of ``sched_unit_unpause``: True if the scheduler's ``wake`` must follow."""
    V = A.V
    if V[F_PAUSE, v] <= 0:
        return False
    V[F_PAUSE, v] -= 1
    if runnable(A, v) and V[F_IS_RUNNING, v] == 0:
        set_runstate(A, v, RUNSTATE_runnable, A.G[G_NOW])
        return True
    return False


@njit(cache=True)
def request_migrate_running(A, v):
    """``_VPF_migrating`` on a running unit: off its pCPU at the next schedule, then re-placed."""
    V = A.V
    if V[F_MIGRATE_PENDING, v] == 0:
        V[F_MIGRATE_PENDING, v] = 1
        V[F_PAUSE, v] += 1
        raise_softirq(A, V[F_CPU, v])
