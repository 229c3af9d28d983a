"""``null`` compiled: :mod:`pvsim.sched.null` (Xen's static 1:1 scheduler, ``xen/common/sched/null.c``)
over the arena.

Design note
-----------
Step for step :class:`pvsim.sched.null.Null`: ``assigned[cpu]`` is ``SP[NL_ASSIGNED, cpu]`` (the vCPU
index + 1, 0 for ``None``), ``unit.priv`` is ``SV[NL_PRIV, v]`` (the assigned pCPU + 1, 0 for ``None``:
zero is "nobody", so the columns of a vCPU added at run time, zero in a regrown arena, are right), the
``waitq`` is row 0 of ``RQ`` in FIFO order (its length ``SG[NL_WLEN]``; ``unit in waitq`` is
``SV[NL_WAITING, v]``). ``_free_cpu`` (``pick_res``) makes its two passes -- the soft affinity
first when the unit has one and no hard affinity, else every pCPU; then the hard affinity --
over ascending pCPUs, as ``sorted(aff)`` does. Every hot op (``do_schedule``, ``wake``, ``sleep``,
``pick_cpu``) is O(1); the waitqueue is scanned and shifted only when a unit is removed or
re-assigned. The Python scheduler emits no scheduler-specific trace records (no
``TRC_SNULL_*``), so neither does this module: its only events are ``raise_softirq``'s.

Simplifications: as :mod:`pvsim.sched.null`.
"""

from __future__ import annotations

from numba import njit

from pvsim.sched.hk.base import allowed, raise_softirq, runnable, soft_allowed
from pvsim.sched.hk.layout import F_CPU, F_HARD_ALL, F_IS_RUNNING, F_SOFT_NONE, G_NP, P_CURR, SG, SP, SV

READY = True
NL_PRIV, NL_WAITING = 0, 1  # SV
NL_ASSIGNED = 0  # SP
NL_WLEN = 0  # SG
SIZES = {"sv": 2, "sp": 1, "sd": 1, "sg": 2, "rq_rows": 1, "timers": 4}
_ALL, _SOFT, _HARD = 0, 1, 2  # the affinity a pass of _free_cpu walks


def init(arena, sched) -> None:
    """Nobody is assigned nor waiting yet (the units are inserted when the runner brings them online)."""
    arena.region(SV)[NL_PRIV, :] = 0
    arena.region(SV)[NL_WAITING, :] = 0
    arena.region(SP)[NL_ASSIGNED, :] = 0
    arena.region(SG)[0, NL_WLEN] = 0


@njit(cache=True)
def _in_aff(A, v, c, mode):
    if mode == _ALL:
        return True
    if mode == _SOFT:
        return soft_allowed(A, v, c)
    return allowed(A, v, c)


@njit(cache=True)
def _free_cpu(A, v):
    """``_free_cpu``: the unit's pCPU if free (and in the pass's affinity), else the lowest free one
    of the pass's affinity it may run on; -1 when none is free."""
    V = A.V
    SP = A.SP
    n = A.G[G_NP]
    cur = V[F_CPU, v]
    for p in range(2):
        if p == 0:
            mode = _SOFT if (V[F_SOFT_NONE, v] == 0 and V[F_HARD_ALL, v] != 0) else _ALL
        else:
            mode = _ALL if V[F_HARD_ALL, v] != 0 else _HARD
        if allowed(A, v, cur) and SP[NL_ASSIGNED, cur] == 0 and _in_aff(A, v, cur, mode):
            return cur
        for c in range(n):
            if _in_aff(A, v, c, mode) and SP[NL_ASSIGNED, c] == 0 and allowed(A, v, c):
                return c
    return -1


@njit(cache=True)
def _waitq_del(A, i):
    SG = A.SG
    wq = A.RQ[0]
    n = SG[NL_WLEN]
    A.SV[NL_WAITING, wq[i]] = 0
    for j in range(i, n - 1):
        wq[j] = wq[j + 1]
    SG[NL_WLEN] = n - 1


@njit(cache=True)
def pick_cpu(A, v):
    p = A.SV[NL_PRIV, v]
    return p - 1 if p > 0 else A.V[F_CPU, v]


@njit(cache=True)
def insert(A, v):
    SV = A.SV
    c = _free_cpu(A, v)
    if c < 0:
        SV[NL_PRIV, v] = 0
        SG = A.SG
        A.RQ[0, SG[NL_WLEN]] = v
        SG[NL_WLEN] += 1
        SV[NL_WAITING, v] = 1
    else:
        A.SP[NL_ASSIGNED, c] = v + 1
        SV[NL_PRIV, v] = c + 1
        A.V[F_CPU, v] = c


@njit(cache=True)
def remove(A, v):
    SV = A.SV
    SP = A.SP
    if SV[NL_WAITING, v]:
        wq = A.RQ[0]
        for i in range(A.SG[NL_WLEN]):
            if wq[i] == v:
                _waitq_del(A, i)
                break
        return
    c = SV[NL_PRIV, v] - 1
    if c < 0 or SP[NL_ASSIGNED, c] != v + 1:
        return
    SP[NL_ASSIGNED, c] = 0
    SV[NL_PRIV, v] = 0
    wq = A.RQ[0]
    for i in range(A.SG[NL_WLEN]):
        w = wq[i]
        if allowed(A, w, c):
            _waitq_del(A, i)
            SP[NL_ASSIGNED, c] = w + 1
            SV[NL_PRIV, w] = c + 1
            A.V[F_CPU, w] = c
            if runnable(A, w):
                raise_softirq(A, c)
            break
    raise_softirq(A, c)


@njit(cache=True)
def wake(A, v):
    c = A.SV[NL_PRIV, v] - 1
    if c >= 0 and A.P[P_CURR, c] < 0:
        raise_softirq(A, c)


@njit(cache=True)
def sleep(A, v):
    V = A.V
    if V[F_IS_RUNNING, v]:
        raise_softirq(A, V[F_CPU, v])


@njit(cache=True)
def yield_(A, v):
    pass  # Scheduler.yield_ (the dispatcher raises the softirq of a running unit)


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
    c = A.SV[NL_PRIV, v] - 1
    if c >= 0 and not allowed(A, v, c):
        remove(A, v)
        insert(A, v)
        p = A.SV[NL_PRIV, v] - 1
        if p >= 0 and runnable(A, v):
            raise_softirq(A, p)


@njit(cache=True)
def call(A, op, a, b):
    """Python-requested operations; null has none."""
    return 0


def adjust(runner, dom, params: dict) -> None:
    """``xl sched-null -d``: weight and cap are accepted and ignored (as by the Python scheduler)."""
    runner.sched.adjust(dom, params)


def adjust_global(runner, params: dict) -> None:
    """null has no pool-wide parameters (validation rejects any)."""
    runner.sched.adjust_global(params)


@njit(cache=True)
def do_schedule(A, cpu, now, prev):
    u = A.SP[NL_ASSIGNED, cpu] - 1
    if u >= 0 and runnable(A, u):
        A.V[F_CPU, u] = cpu
        return u, -1
    return -1, -1
