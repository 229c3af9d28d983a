"""``bvt`` compiled: :mod:`pvsim.sched.bvt` (Borrowed Virtual Time, ``xen/common/sched_bvt.c`` @
``db51cd09d3^``) over the arena.

Design note
-----------
Step for step :class:`pvsim.sched.bvt.Bvt`. A unit's ``_Bu`` is its ``SV`` column (``avt``,
``warping``, ``unwarp_until``, ``warped_ns``, ``queued``; ``warp_start`` is never read); the
dispatch time ``unit.last_run_start`` is the dispatcher's own ``V[F_LAST_RUN_START]``, which the
Python scheduler writes too. pCPU ``c``'s runqueue is row ``c`` of ``RQ`` (its length
``SP[BP_LEN, c]``) kept *unordered*: the Python list is sorted by ``(evt, uid)`` -- a total order --
before every pick, so only its set matters; ``do_schedule`` takes the least and the second least
``(evt, uid)`` in one pass, ``sleep`` removes by swapping with the last. ``_svt`` is the same scan of
the runqueue and the current unit as the Python code (O(runqueue), as there).

Per domain (``SD``, written from ``dom.params`` by :func:`load_dom` at start, for a domain added at
run time, and by :func:`adjust`): the explicit ``mcu_advance`` (0 = none: the kernel derives
``max(1, round(10 x 256 / weight))`` from ``D[D_WEIGHT]``, rounding half to even as Python's
``round``), the warp in virtual time, and ``warpl_ms`` / ``warpu_ms`` stored + 1 (0 = the
default), so a zero column (a regrown arena) means the Python defaults. Global: ``ctx_allow`` in
``SG``. The Python scheduler emits no trace records of its own, nor timers: the only events are
``raise_softirq``'s, in the same places.

``unit_info`` (avt, evt, warping, mcu_advance) is answered from the arena under the compiled
dispatcher: :func:`init` gives the scheduler object an instance-level ``unit_info`` that reads it
(the Python ``_Bu`` objects are never made there). ``dom_info`` and ``global_info`` read the Python
parameters, which :func:`adjust` / :func:`adjust_global` keep up to date.

Integers: ``avt`` grows by at most ``ceil(ran / MCU) x 65535`` per dispatch (~6.6e8 per simulated
second), the slice's ``(evt2 - evt1) x MCU`` stays below 2^63 for days of simulated time.

Simplifications: as :mod:`pvsim.sched.bvt`.
"""

from __future__ import annotations

from numba import njit

from pvsim.sched.bvt import MCU, MCU_ADVANCE, MS
from pvsim.sched.hk.base import allowed, raise_softirq, runnable
from pvsim.sched.hk.layout import (
    D_WEIGHT,
    F_CPU,
    F_DOM,
    F_LAST_RUN_START,
    F_MIGRATING,
    G_NOW,
    G_NP,
    P_CURR,
    SD,
    SG,
    SV,
)

READY = True
BV_AVT, BV_WARPING, BV_UNWARP_UNTIL, BV_WARPED_NS, BV_QUEUED = range(5)  # SV
BP_LEN = 0  # SP
BD_MCU, BD_WARP, BD_WARPL, BD_WARPU = range(4)  # SD
BG_CTX_ALLOW = 0  # SG
SIZES = {"sv": 5, "sp": 1, "sd": 4, "sg": 2, "timers": 4}  # RQ: one row per pCPU (the default)
DEF_WARPL_MS, DEF_WARPU_MS = 2000, 1000


def load_dom(arena, dom, i: int) -> None:
    """Domain ``dom``'s parameters into column ``i`` of ``SD``."""
    SDr = arena.region(SD)
    p = dom.params
    SDr[BD_MCU, i] = p.get("mcu_advance", 0)
    SDr[BD_WARP, i] = p.get("warp_us", 0) * MCU_ADVANCE // 100
    SDr[BD_WARPL, i] = p["warpl_ms"] + 1 if "warpl_ms" in p else 0
    SDr[BD_WARPU, i] = p["warpu_ms"] + 1 if "warpu_ms" in p else 0


def init(arena, sched) -> None:
    """The context-switch allowance and every domain's parameters; ``unit_info`` from the arena."""
    runner = sched.runner
    arena.region(SG)[0, BG_CTX_ALLOW] = sched.ctx_allow
    for d in runner.domains.values():
        load_dom(arena, d, runner._dom_index[d.domid])
    sched.unit_info = lambda unit, runner=runner: _unit_info(runner, unit)


def load_unit(runner, unit) -> None:
    """A vCPU loaded into the arena (at the start, or added at run time into a regrown arena): its
    domain's parameters."""
    load_dom(runner.arena, unit.dom, runner._dom_index[unit.domid])


def _unit_info(runner, unit) -> dict:
    a = runner.arena
    SVr = a.region(SV)
    v = unit.uid
    d = runner._dom_index[unit.domid]
    SDr = a.region(SD)
    adv = int(SDr[BD_MCU, d]) or max(1, round(MCU_ADVANCE * 256 / unit.dom.weight))
    avt = int(SVr[BV_AVT, v])
    warping = bool(SVr[BV_WARPING, v])
    return {"avt": avt, "evt": avt - (int(SDr[BD_WARP, d]) if warping else 0), "warping": warping,
            "mcu_advance": adv}


# ---------------------------------------------------------------- per-domain values
@njit(cache=True)
def _adv(A, v):
    d = A.V[F_DOM, v]
    x = A.SD[BD_MCU, d]
    if x > 0:
        return x
    w = A.D[D_WEIGHT, d]
    n = MCU_ADVANCE * 256
    q = n // w
    r2 = 2 * (n - q * w)
    if r2 > w or (r2 == w and q & 1):  # round(): half to even
        q += 1
    return q if q > 1 else 1


@njit(cache=True)
def _warp(A, v):
    return A.SD[BD_WARP, A.V[F_DOM, v]]


@njit(cache=True)
def _evt(A, v):
    SV = A.SV
    if SV[BV_WARPING, v]:
        return SV[BV_AVT, v] - _warp(A, v)
    return SV[BV_AVT, v]


@njit(cache=True)
def _svt(A, cpu):
    """The least ``avt`` of the runqueue and the current unit; ``(False, 0)`` for ``None``."""
    SV = A.SV
    rq = A.RQ[cpu]
    n = A.SP[BP_LEN, cpu]
    found = False
    m = 0
    for i in range(n):
        a = SV[BV_AVT, rq[i]]
        if not found or a < m:
            m = a
            found = True
    cur = A.P[P_CURR, cpu]
    if cur >= 0:
        a = SV[BV_AVT, cur]
        if not found or a < m:
            m = a
            found = True
    return found, m


@njit(cache=True)
def _append(A, cpu, v):
    SP = A.SP
    n = SP[BP_LEN, cpu]
    A.RQ[cpu, n] = v
    SP[BP_LEN, cpu] = n + 1
    A.SV[BV_QUEUED, v] = 1


@njit(cache=True)
def _rq_remove(A, cpu, v):
    SP = A.SP
    rq = A.RQ[cpu]
    n = SP[BP_LEN, cpu]
    for i in range(n):
        if rq[i] == v:
            rq[i] = rq[n - 1]
            SP[BP_LEN, cpu] = n - 1
            return


# ---------------------------------------------------------------- ops
@njit(cache=True)
def pick_cpu(A, v):
    """The allowed pCPU with the fewest units (queued + running), the unit's own first, then the
    lowest."""
    P = A.P
    SP = A.SP
    cur = A.V[F_CPU, v]
    best = -1
    bl = 0
    bo = 0
    for c in range(A.G[G_NP]):
        if not allowed(A, v, c):
            continue
        ld = SP[BP_LEN, c] + (1 if P[P_CURR, c] >= 0 else 0)
        o = 1 if c != cur else 0
        if best < 0 or ld < bl or (ld == bl and o < bo):
            best, bl, bo = c, ld, o
    return best


@njit(cache=True)
def insert(A, v):
    SV = A.SV
    SV[BV_AVT, v] = 0
    SV[BV_WARPING, v] = 0
    SV[BV_UNWARP_UNTIL, v] = 0
    SV[BV_WARPED_NS, v] = 0
    SV[BV_QUEUED, v] = 0
    c = pick_cpu(A, v)
    A.V[F_CPU, v] = c
    found, svt = _svt(A, c)
    SV[BV_AVT, v] = svt if found else 0


@njit(cache=True)
def sleep(A, v):
    c = A.V[F_CPU, v]
    if A.P[P_CURR, c] == v:
        raise_softirq(A, c)
    elif A.SV[BV_QUEUED, v]:
        _rq_remove(A, c, v)
        A.SV[BV_QUEUED, v] = 0


@njit(cache=True)
def remove(A, v):
    sleep(A, v)


@njit(cache=True)
def _account(A, v, now):
    """Advance ``avt`` for the time run since dispatch (``ceil(ran / MCU) x mcu_advance``)."""
    V = A.V
    SV = A.SV
    ran = now - V[F_LAST_RUN_START, v]
    if ran > 0:
        SV[BV_AVT, v] += ((ran + MCU - 1) // MCU) * _adv(A, v)
        if SV[BV_WARPING, v]:
            SV[BV_WARPED_NS, v] += ran
            d = V[F_DOM, v]
            wl = A.SD[BD_WARPL, d]
            wl = DEF_WARPL_MS if wl == 0 else wl - 1
            if SV[BV_WARPED_NS, v] >= wl * MS:
                SV[BV_WARPING, v] = 0
                wu = A.SD[BD_WARPU, d]
                wu = DEF_WARPU_MS if wu == 0 else wu - 1
                SV[BV_UNWARP_UNTIL, v] = now + wu * MS
    V[F_LAST_RUN_START, v] = now


@njit(cache=True)
def wake(A, v):
    SV = A.SV
    V = A.V
    P = A.P
    cpu = V[F_CPU, v]
    if P[P_CURR, cpu] == v or SV[BV_QUEUED, v]:
        return
    now = A.G[G_NOW]
    found, svt = _svt(A, cpu)
    if found and SV[BV_AVT, v] < svt:
        SV[BV_AVT, v] = svt
    if _warp(A, v) > 0 and now >= SV[BV_UNWARP_UNTIL, v] and V[F_MIGRATING, v] == 0:
        SV[BV_WARPING, v] = 1
        SV[BV_WARPED_NS, v] = 0
    _append(A, cpu, v)
    cur = P[P_CURR, cpu]
    if cur < 0:
        raise_softirq(A, cpu)
    else:
        ran = now - V[F_LAST_RUN_START, cur]
        cur_evt = _evt(A, cur) + (((ran + MCU - 1) // MCU) * _adv(A, cur) if ran > 0 else 0)
        if _evt(A, v) <= cur_evt:
            raise_softirq(A, cpu)


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
    pass  # Scheduler.affinity_changed: the dispatcher migrates the unit if needed


@njit(cache=True)
def call(A, op, a, b):
    """Python-requested operations; bvt has none."""
    return 0


def adjust(runner, dom, params: dict) -> None:
    """``xl sched-bvt -d``: weight (``D``, written by the runner after this) and the domain's own
    parameters (``SD``)."""
    runner.sched.adjust(dom, params)
    load_dom(runner.arena, dom, runner._dom_index[dom.domid])


def adjust_global(runner, params: dict) -> None:
    """``xl sched-bvt -s``: the context-switch allowance."""
    runner.sched.adjust_global(params)
    runner.arena.region(SG)[0, BG_CTX_ALLOW] = runner.sched.ctx_allow


@njit(cache=True)
def do_schedule(A, cpu, now, prev):
    SV = A.SV
    SP = A.SP
    if prev >= 0:
        _account(A, prev, now)
        if not runnable(A, prev):
            SV[BV_WARPING, prev] = 0
        elif SV[BV_QUEUED, prev] == 0:
            _append(A, cpu, prev)
    n = SP[BP_LEN, cpu]
    if n == 0:
        return -1, -1
    rq = A.RQ[cpu]
    # the least and the second least (evt, uid)
    i1 = -1
    e1 = 0
    u1 = 0
    e2 = 0
    u2 = -1
    for i in range(n):
        u = rq[i]
        e = _evt(A, u)
        if i1 < 0 or e < e1 or (e == e1 and u < u1):
            if i1 >= 0:
                e2, u2 = e1, u1
            i1, e1, u1 = i, e, u
        elif u2 < 0 or e < e2 or (e == e2 and u < u2):
            e2, u2 = e, u
    rq[i1] = rq[n - 1]
    SP[BP_LEN, cpu] = n - 1
    SV[BV_QUEUED, u1] = 0
    A.V[F_CPU, u1] = cpu
    A.V[F_LAST_RUN_START, u1] = now
    ctx = A.SG[BG_CTX_ALLOW]
    if n > 1:
        r = (e2 - e1) * MCU // _adv(A, u1) + ctx
    else:
        r = 10 * ctx
    return u1, (r if r > MCU else MCU)

