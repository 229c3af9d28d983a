"""``credit2`` compiled: :mod:`pvsim.sched.credit2` over the arena (runqueues, credit and reset, the load
balancing between runqueues, caps with their budgets and parking, ratelimit, tickling).

Design note
-----------
Step for step :class:`pvsim.sched.credit2.Credit2` (Xen's ``xen/common/sched/credit2.c`` as that
module models it), over the arena of :mod:`pvsim.sched.hk.layout`; every trace record, timer and
softirq is made at the point where the Python scheduler makes it, so both dispatchers give one trace.

Where the Python objects went:

* ``_Svc`` (per vCPU): ``SV[S_*, v]`` -- credit, ``start_time``, runqueue (-1 = none), ``tickled_cpu``,
  budget, parked, on_runq, yielding, and three links: the runqueue's ``svc`` list (doubly linked,
  ``S_SNEXT``/``S_SPREV``; its order is never observable: ``_reset`` and ``_update_max_weight`` only
  fold over it) and the domain's parked list (``S_PNEXT``, FIFO: the order of ``_unpark_all`` is;
  stored as the next vCPU + 1, 0 = the end).
* ``_Rqd`` (per runqueue ``r``, at most one per pCPU): columns of ``SP`` indexed by ``r`` -- the length
  of its runqueue ``RQ[r]`` (vCPUs, highest credit first, as the Python list), ``max_weight``, the head
  of ``svc``, its pCPUs (ascending, as a slice ``[R_OFF, R_OFF + R_NCPU)`` of row ``P2_LIST``), and the
  pCPU its reset record is traced on (``next(iter(rqd.cpus))`` of the frozenset, taken from Python).
  ``rqd.idle`` and ``rqd.tickled`` are two global bitmaps (``SX[X_IDLE]``, ``SX[X_TICKLED]``): the
  runqueues partition the pCPUs, so ``c in rqd.idle`` is ``SP[P2_RQD, c] == r and`` the bit of ``c``.
* ``_Sdom`` (per domain): ``SD[D2_*, d]`` -- budget, ``tot_budget``, the replenishment timer's handle
  and the parked list's head and tail, each stored + 1 (0 = none: the zeroed column of a domain
  added at run time, when the dispatcher regrows its arena, is a valid empty ``_Sdom``).
* The scheduler's parameters (``ratelimit``, ``migrate_resist``): ``SG``, copied by :func:`init` and by
  :func:`adjust_global`; weight and cap are the dispatcher's ``D_WEIGHT``/``D_CAP``.

Parking is ``base.pause_pre``/``unpause_pre`` followed by this module's ``sleep``/``wake`` (what
``runner.pause/unpause`` do); the per-domain replenishment is a scheduler timer of kind ``K_REPL``.
Python asks for two operations through :func:`k_op` (this module's own entry, as ``core.k_call``
would be, without importing ``core``): ``OP_MAXW`` (a weight changed: every
runqueue's ``max_weight`` again) and ``OP_CAP`` (``_cap_setup`` of a domain whose cap changed). The
Python scheduler's ``unit_info`` reads :func:`unit_info` (the arena) under the compiled dispatcher.

Integers: credit stays within a few ``CSCHED2_CREDIT_INIT`` (floored at ``CREDIT_MIN``, clipped at a
reset), ``delta * max_weight`` is below 2^63 for any delta under 1.4e14 ns (a running unit is burnt at
least every ``CSCHED2_MAX_TIMER``); every floor division has non-negative operands, so ``//`` rounds
as Python's.

Simplifications: those of :mod:`pvsim.sched.credit2`; the runqueue arrays hold every vCPU at most
once (as the Python lists do: a unit is queued only when it is neither running nor on a runqueue).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hypercalls.trace import (
    TRC_CSCHED2_CREDIT_BURN,
    TRC_CSCHED2_CREDIT_RESET,
    TRC_CSCHED2_LOAD_BALANCE,
    TRC_CSCHED2_TICKLE,
)
from pvsim.sched.credit2 import (
    CSCHED2_BDGT_REPL_PERIOD,
    CSCHED2_CARRYOVER_MAX,
    CSCHED2_CREDIT_INIT,
    CSCHED2_CREDIT_MIN,
    CSCHED2_CREDIT_RESET,
    CSCHED2_MAX_TIMER,
    CSCHED2_MIGRATE_COMPENSATION,
    CSCHED2_MIN_TIMER,
)
from pvsim.sched.hk.base import (
    allowed,
    bit,
    bit_clear,
    bit_set,
    pause_pre,
    raise_softirq,
    runnable,
    soft_allowed,
    timer_cancel,
    trace,
    unpause_pre,
)
from pvsim.sched.hk.base import timer as set_timer
from pvsim.sched.hk.layout import (
    D_CAP,
    D_NUNITS,
    D_WEIGHT,
    F_CPU,
    F_DOM,
    F_DOMID,
    F_IS_RUNNING,
    F_LAST_RUN_START,
    F_VCPU_ID,
    G_ND,
    G_NOW,
    G_TMN,
    P_CURR,
    SD,
    SG,
    SP,
    SV,
    SX,
    TM,
    D,
    views,
)

READY = True

# SV: per vCPU (_Svc)
S_CREDIT, S_START, S_RQD, S_TICKLED, S_BUDGET, S_PARKED, S_ONRUNQ, S_YIELDING, S_SNEXT, S_SPREV, S_PNEXT = range(11)
# SP: per pCPU c (P2_*) and per runqueue r < n_pcpus (R_*)
P2_RQD, P2_LIST, R_LEN, R_MAXW, R_HEAD, R_OFF, R_NCPU, R_TRCPU = range(8)
# SD: per domain (_Sdom)
D2_BUDGET, D2_TOT, D2_TIMER, D2_PHEAD, D2_PTAIL = range(5)
# SG: globals
G2_RATELIMIT, G2_RESIST, G2_NRQD = range(3)
# SX: bitmaps
X_IDLE, X_TICKLED = range(2)
# timer kinds, call ops
K_REPL = 1
OP_MAXW, OP_CAP = 1, 2

NO_BASE = -(10 ** 18)
TIMERS = 256  # timer slots: one per capped domain (grown by init / adjust when more may be needed)
SIZES = {"sv": 11, "sp": 8, "sd": 5, "sg": 4, "sx": 2, "timers": TIMERS}


# ============================================================================== Python side
def init(arena, sched) -> None:
    """Copy the attached Python scheduler's runqueues and parameters into the arena."""
    runner = sched.runner
    nd = int(arena.g[G_ND])
    if arena.dims[TM][1] < nd + 16:  # a slot per capped domain, and some for cancelled ones still queued
        runner._grow(TM, nd + 16)
        arena = runner.arena
    g2 = arena.region(SG)[0]
    g2[G2_RATELIMIT] = sched.ratelimit
    g2[G2_RESIST] = sched.migrate_resist
    g2[G2_NRQD] = len(sched.rqds)
    sp = arena.region(SP)
    k = 0
    for rq in sched.rqds:
        r = rq.id
        cpus = sorted(rq.cpus)
        sp[R_LEN, r] = 0
        sp[R_MAXW, r] = rq.max_weight
        sp[R_HEAD, r] = -1
        sp[R_OFF, r] = k
        sp[R_NCPU, r] = len(cpus)
        sp[R_TRCPU, r] = next(iter(rq.cpus))
        for c in cpus:
            sp[P2_RQD, c] = r
            sp[P2_LIST, k] = c
            k += 1
    sv = arena.region(SV)
    sv[:, :] = 0
    sv[S_CREDIT, :] = CSCHED2_CREDIT_INIT
    sv[S_RQD, :] = -1
    sv[S_TICKLED, :] = -1
    sv[S_SNEXT, :] = sv[S_SPREV, :] = -1
    arena.region(SD)[:, :] = 0  # no timer, empty parked lists (handles are stored + 1)
    sx = arena.region(SX)
    sx[:, :] = 0
    for rq in sched.rqds:  # rqd.idle starts as all its pCPUs
        for c in rq.cpus:
            sx[X_IDLE, c >> 6] |= np.int64(1) << np.int64(c & 63)


def _timer_room(runner) -> None:
    """Room for one more scheduler timer (a cap set again while its cancelled timer is still queued)."""
    a = runner.arena
    cols = a.dims[TM][1]
    if a.g[G_TMN] + 2 >= cols:
        runner._grow(TM, 2 * cols)


def adjust(runner, dom, params: dict) -> None:
    """``xl sched-credit2 -d``: ``Credit2.adjust`` on the domain object and the arena (weight: every
    runqueue's max_weight again; cap: ``_cap_setup`` in the kernel, which may arm or cancel the
    replenishment timer and unpark)."""
    i = runner._dom_index[dom.domid]
    if "weight" in params:
        dom.weight = params["weight"]
        runner.arena.region(D)[D_WEIGHT, i] = dom.weight
        runner._call(k_op, OP_MAXW, 0)
    if "cap" in params:
        dom.cap = params["cap"]
        runner.arena.region(D)[D_CAP, i] = dom.cap
        if runner.started:
            _timer_room(runner)
            runner._call(k_op, OP_CAP, i)


def adjust_global(runner, params: dict) -> None:
    """``xl sched-credit2 -s``: ratelimit and migrate_resist (the runqueue layout is set at attach)."""
    s = runner.sched
    s.adjust_global(params)
    g2 = runner.arena.region(SG)[0]
    g2[G2_RATELIMIT] = s.ratelimit
    g2[G2_RESIST] = s.migrate_resist


def unit_info(runner, unit) -> dict:
    """``Credit2.unit_info`` from the arena."""
    sv = runner.arena.region(SV)
    v = unit.uid
    return {"credit": int(sv[S_CREDIT, v]), "runqueue": int(sv[S_RQD, v]), "budget": int(sv[S_BUDGET, v]),
            "parked": bool(sv[S_PARKED, v])}


# ============================================================================== helpers
@njit(cache=True)
def _update_max_weight(A, r):
    SV_ = A.SV
    V = A.V
    D = A.D
    m = 1
    u = A.SP[R_HEAD, r]
    while u >= 0:
        w = D[D_WEIGHT, V[F_DOM, u]]
        if w > m:
            m = w
        u = SV_[S_SNEXT, u]
    A.SP[R_MAXW, r] = m


@njit(cache=True)
def _svc_remove(A, r, v):
    SV_ = A.SV
    n = SV_[S_SNEXT, v]
    p = SV_[S_SPREV, v]
    if p >= 0:
        SV_[S_SNEXT, p] = n
    else:
        A.SP[R_HEAD, r] = n
    if n >= 0:
        SV_[S_SPREV, n] = p
    SV_[S_SNEXT, v] = -1
    SV_[S_SPREV, v] = -1


@njit(cache=True)
def _assign(A, v, r):
    SV_ = A.SV
    old = SV_[S_RQD, v]
    if old == r:
        return
    if old >= 0:
        _svc_remove(A, old, v)
        _update_max_weight(A, old)
    SV_[S_RQD, v] = r
    h = A.SP[R_HEAD, r]
    SV_[S_SNEXT, v] = h
    SV_[S_SPREV, v] = -1
    if h >= 0:
        SV_[S_SPREV, h] = v
    A.SP[R_HEAD, r] = v
    w = A.D[D_WEIGHT, A.V[F_DOM, v]]  # max over svc, one more member
    if w > A.SP[R_MAXW, r]:
        A.SP[R_MAXW, r] = w


@njit(cache=True)
def _burn(A, v, now):
    """``burn_credits``."""
    SV_ = A.SV
    delta = now - SV_[S_START, v]
    if delta <= 0:
        return
    d = A.V[F_DOM, v]
    SV_[S_CREDIT, v] -= delta * A.SP[R_MAXW, SV_[S_RQD, v]] // A.D[D_WEIGHT, d]
    if SV_[S_CREDIT, v] < CSCHED2_CREDIT_MIN:
        SV_[S_CREDIT, v] = CSCHED2_CREDIT_MIN
    if A.D[D_CAP, d]:
        SV_[S_BUDGET, v] -= delta
    SV_[S_START, v] = now
    # TRC_CSCHED2_CREDIT_BURN {unit:16, dom:16; credit; budget (INT_MIN without a cap); delta}
    trace(A, A.V[F_CPU, v], TRC_CSCHED2_CREDIT_BURN, 4, (A.V[F_DOMID, v] << 16) | A.V[F_VCPU_ID, v],
          SV_[S_CREDIT, v], SV_[S_BUDGET, v] if A.D[D_CAP, d] else -(1 << 31), delta, 0)


@njit(cache=True)
def _runq_insert(A, v):
    SV_ = A.SV
    SP_ = A.SP
    r = SV_[S_RQD, v]
    rq = A.RQ[r]
    n = SP_[R_LEN, r]
    cr = SV_[S_CREDIT, v]
    i = 0
    while i < n and SV_[S_CREDIT, rq[i]] >= cr:
        i += 1
    j = n
    while j > i:
        rq[j] = rq[j - 1]
        j -= 1
    rq[i] = v
    SP_[R_LEN, r] = n + 1
    SV_[S_ONRUNQ, v] = 1


@njit(cache=True)
def _runq_remove(A, v):
    SV_ = A.SV
    SP_ = A.SP
    r = SV_[S_RQD, v]
    rq = A.RQ[r]
    n = SP_[R_LEN, r]
    for i in range(n):
        if rq[i] == v:
            for j in range(i, n - 1):
                rq[j] = rq[j + 1]
            SP_[R_LEN, r] = n - 1
            break
    SV_[S_ONRUNQ, v] = 0


@njit(cache=True)
def _load(A, r):
    """Queued units plus busy pCPUs of runqueue ``r``."""
    SP_ = A.SP
    P = A.P
    n = SP_[R_LEN, r]
    off = SP_[R_OFF, r]
    for k in range(off, off + SP_[R_NCPU, r]):
        if P[P_CURR, SP_[P2_LIST, k]] >= 0:
            n += 1
    return n


@njit(cache=True)
def pick_cpu(A, v):
    """``csched2_res_pick``: the least loaded runqueue the unit may use, an idle pCPU in it if any."""
    SP_ = A.SP
    P = A.P
    best_r = -1
    best_load = 0
    myr = A.SV[S_RQD, v]
    for r in range(A.SG[G2_NRQD]):
        off = SP_[R_OFF, r]
        load = SP_[R_LEN, r]
        ok = False
        for k in range(off, off + SP_[R_NCPU, r]):
            c = SP_[P2_LIST, k]
            if P[P_CURR, c] >= 0:
                load += 1
            if not ok and allowed(A, v, c):
                ok = True
        if not ok:
            continue
        if myr == r:
            load -= 1  # do not count ourselves
        if best_r < 0 or load < best_load:
            best_r = r
            best_load = load
    c0 = A.V[F_CPU, v]
    if SP_[P2_RQD, c0] == best_r and allowed(A, v, c0):
        return c0
    idle = A.SX[X_IDLE]
    first = -1
    off = SP_[R_OFF, best_r]
    for k in range(off, off + SP_[R_NCPU, best_r]):
        c = SP_[P2_LIST, k]
        if allowed(A, v, c):
            if bit(idle, c):
                return c
            if first < 0:
                first = c
    return first


# ============================================================================== unit hooks
@njit(cache=True)
def insert(A, v):
    SV_ = A.SV
    SV_[S_CREDIT, v] = CSCHED2_CREDIT_INIT
    SV_[S_START, v] = 0
    SV_[S_RQD, v] = -1
    SV_[S_TICKLED, v] = -1
    SV_[S_BUDGET, v] = 0
    SV_[S_PARKED, v] = 0
    SV_[S_ONRUNQ, v] = 0
    SV_[S_YIELDING, v] = 0
    c = pick_cpu(A, v)
    A.V[F_CPU, v] = c
    _assign(A, v, A.SP[P2_RQD, c])
    SV_[S_START, v] = A.G[G_NOW]


@njit(cache=True)
def remove(A, v):
    SV_ = A.SV
    if SV_[S_ONRUNQ, v]:
        _runq_remove(A, v)
    r = SV_[S_RQD, v]
    if r >= 0:
        _svc_remove(A, r, v)
        _update_max_weight(A, r)
        SV_[S_RQD, v] = -1


@njit(cache=True)
def sleep(A, v):
    c = A.V[F_CPU, v]
    if A.P[P_CURR, c] == v:
        raise_softirq(A, c)
    elif A.SV[S_ONRUNQ, v]:
        _runq_remove(A, v)


@njit(cache=True)
def wake(A, v):
    V = A.V
    c = V[F_CPU, v]
    if A.P[P_CURR, c] == v or A.SV[S_ONRUNQ, v]:
        return
    r = A.SP[P2_RQD, c]
    if not allowed(A, v, c):
        c = pick_cpu(A, v)
        V[F_CPU, v] = c
        r = A.SP[P2_RQD, c]
    _assign(A, v, r)
    _runq_insert(A, v)
    _tickle(A, v, A.G[G_NOW])


@njit(cache=True)
def yield_(A, v):
    A.SV[S_YIELDING, v] = 1
    if A.V[F_IS_RUNNING, v]:
        raise_softirq(A, A.V[F_CPU, v])


@njit(cache=True)
def context_saved(A, v):
    pass


@njit(cache=True)
def affinity_changed(A, v):
    pass


@njit(cache=True)
def _tickle(A, v, now):
    """``runq_tickle``."""
    SV_ = A.SV
    SP_ = A.SP
    P = A.P
    r = SV_[S_RQD, v]
    cpu = A.V[F_CPU, v]
    idle = A.SX[X_IDLE]
    tk = A.SX[X_TICKLED]
    off = SP_[R_OFF, r]
    end = off + SP_[R_NCPU, r]
    min_i = -1
    cpu_i = False
    min_s = -1
    cpu_s = False
    for k in range(off, end):  # (rqd.idle - rqd.tickled) & allowed, ascending
        c = SP_[P2_LIST, k]
        if bit(idle, c) and not bit(tk, c) and allowed(A, v, c):
            if min_i < 0:
                min_i = c
            if c == cpu:
                cpu_i = True
            if soft_allowed(A, v, c):
                if min_s < 0:
                    min_s = c
                if c == cpu:
                    cpu_s = True
    if min_i >= 0:
        if min_s >= 0:  # idle & new.soft
            ipid = cpu if cpu_s else min_s
        else:
            ipid = cpu if cpu_i else min_i
    else:
        ipid = -1
        best = 0
        for k in range(off, end):  # sorted(allowed - rqd.tickled)
            c = SP_[P2_LIST, k]
            if bit(tk, c) or not allowed(A, v, c):
                continue
            cur = P[P_CURR, c]
            if cur < 0:
                continue
            _burn(A, cur, now)
            score = SV_[S_CREDIT, v] - SV_[S_CREDIT, cur]
            if c != cpu:
                score -= A.SG[G2_RESIST]
            if score > best:
                ipid = c
                best = score
        if ipid < 0:
            return
    SV_[S_TICKLED, v] = ipid
    bit_set(tk, ipid)
    trace(A, ipid, TRC_CSCHED2_TICKLE, 1, ipid, 0, 0, 0, 0)
    raise_softirq(A, ipid)


# ============================================================================== caps
@njit(cache=True)
def _cap_setup(A, d, now):
    SD_ = A.SD
    cap = A.D[D_CAP, d]
    SD_[D2_TOT, d] = cap * CSCHED2_BDGT_REPL_PERIOD // 100
    if cap and SD_[D2_TIMER, d] == 0:
        SD_[D2_BUDGET, d] = SD_[D2_TOT, d]
        SD_[D2_TIMER, d] = set_timer(A, CSCHED2_BDGT_REPL_PERIOD, K_REPL, d) + 1
    elif not cap and SD_[D2_TIMER, d] != 0:
        timer_cancel(A, SD_[D2_TIMER, d] - 1)
        SD_[D2_TIMER, d] = 0
        _unpark_all(A, d)


@njit(cache=True)
def _replenish(A, d, now):
    """``replenish_domain_budget``: refill (debts are paid first) and unpark."""
    SD_ = A.SD
    b = SD_[D2_BUDGET, d] + SD_[D2_TOT, d]
    SD_[D2_BUDGET, d] = b if b < SD_[D2_TOT, d] else SD_[D2_TOT, d]
    SD_[D2_TIMER, d] = set_timer(A, CSCHED2_BDGT_REPL_PERIOD, K_REPL, d) + 1
    if SD_[D2_BUDGET, d] > 0:
        _unpark_all(A, d)


@njit(cache=True)
def _unpark_all(A, d):
    SD_ = A.SD
    SV_ = A.SV
    u = SD_[D2_PHEAD, d] - 1
    SD_[D2_PHEAD, d] = 0
    SD_[D2_PTAIL, d] = 0
    while u >= 0:
        nx = SV_[S_PNEXT, u] - 1
        SV_[S_PNEXT, u] = 0
        SV_[S_PARKED, u] = 0
        if unpause_pre(A, u):
            wake(A, u)
        u = nx


@njit(cache=True)
def _grab_budget(A, v):
    """``unit_grab_budget``: take a share of the domain's pool."""
    SV_ = A.SV
    SD_ = A.SD
    if SV_[S_BUDGET, v] > 0:
        return True
    d = A.V[F_DOM, v]
    if SD_[D2_BUDGET, d] <= 0:
        return False
    n = A.D[D_NUNITS, d]
    quota = SD_[D2_TOT, d] // (n if n > 1 else 1)
    if quota < 1:
        quota = 1
    take = quota if quota > CSCHED2_MIN_TIMER else CSCHED2_MIN_TIMER
    if SD_[D2_BUDGET, d] < take:
        take = SD_[D2_BUDGET, d]
    SD_[D2_BUDGET, d] -= take
    SV_[S_BUDGET, v] += take
    return SV_[S_BUDGET, v] > 0


@njit(cache=True)
def _return_budget(A, v):
    SV_ = A.SV
    b = SV_[S_BUDGET, v]
    if b != 0:  # what is left goes back; an overrun becomes the domain's debt
        A.SD[D2_BUDGET, A.V[F_DOM, v]] += b
    SV_[S_BUDGET, v] = 0


@njit(cache=True)
def _park(A, v):
    SV_ = A.SV
    if SV_[S_PARKED, v] == 0:
        SV_[S_PARKED, v] = 1
        SD_ = A.SD
        d = A.V[F_DOM, v]
        SV_[S_PNEXT, v] = 0
        t = SD_[D2_PTAIL, d] - 1
        if t >= 0:
            SV_[S_PNEXT, t] = v + 1
        else:
            SD_[D2_PHEAD, d] = v + 1
        SD_[D2_PTAIL, d] = v + 1
        if pause_pre(A, v):  # runner.pause
            sleep(A, v)


# ============================================================================== schedule
@njit(cache=True)
def _reset(A, r, snext, now):
    """``reset_credit``."""
    SV_ = A.SV
    SP_ = A.SP
    V = A.V
    m = 1
    if SV_[S_CREDIT, snext] < -CSCHED2_CREDIT_INIT:
        m += (-SV_[S_CREDIT, snext]) // CSCHED2_CREDIT_INIT
    top = CSCHED2_CREDIT_INIT + CSCHED2_CARRYOVER_MAX
    u = SP_[R_HEAD, r]
    while u >= 0:
        if V[F_IS_RUNNING, u] and u != snext:
            _burn(A, u, now)
        c = SV_[S_CREDIT, u] + m * CSCHED2_CREDIT_INIT
        SV_[S_CREDIT, u] = top if c > top else c
        SV_[S_START, u] = now
        u = SV_[S_SNEXT, u]
    rq = A.RQ[r]  # a stable sort, highest credit first
    n = SP_[R_LEN, r]
    for i in range(1, n):
        x = rq[i]
        cx = SV_[S_CREDIT, x]
        j = i - 1
        while j >= 0 and SV_[S_CREDIT, rq[j]] < cx:
            rq[j + 1] = rq[j]
            j -= 1
        rq[j + 1] = x
    trace(A, SP_[R_TRCPU, r], TRC_CSCHED2_CREDIT_RESET, 2, r, m, 0, 0, 0)
    _balance_load(A, r, now)


@njit(cache=True)
def _balance_load(A, r, now):
    """Simplified ``balance_load``: pull one queued unit from a runqueue busier by > 1 unit."""
    SP_ = A.SP
    nr = A.SG[G2_NRQD]
    if nr < 2:
        return
    mine = _load(A, r)
    bq = -1
    bl = 0
    for q in range(nr):
        if q == r:
            continue
        lq = _load(A, q)
        if bq < 0 or lq > bl:
            bq = q
            bl = lq
    if bl - mine <= 1:
        return
    rq = A.RQ[bq]
    off = SP_[R_OFF, r]
    end = off + SP_[R_NCPU, r]
    for i in range(SP_[R_LEN, bq]):
        u = rq[i]
        c = -1
        for k in range(off, end):  # min(rqd.cpus & u.hard)
            if allowed(A, u, SP_[P2_LIST, k]):
                c = SP_[P2_LIST, k]
                break
        if c >= 0:
            _runq_remove(A, u)
            _assign(A, u, r)
            A.V[F_CPU, u] = c
            _runq_insert(A, u)
            trace(A, c, TRC_CSCHED2_LOAD_BALANCE, 2, bq, r, 0, 0, 0)
            _tickle(A, u, now)
            return


@njit(cache=True)
def _candidate(A, r, scurr, cpu, now):
    """``runq_candidate`` -> (unit or -1, ratelimited?)."""
    SV_ = A.SV
    SP_ = A.SP
    V = A.V
    yielding = scurr >= 0 and SV_[S_YIELDING, scurr] != 0
    rl = A.SG[G2_RATELIMIT]
    if (scurr >= 0 and not yielding and rl and runnable(A, scurr)
            and now - V[F_LAST_RUN_START, scurr] < rl):
        return scurr, True
    snext = scurr if (scurr >= 0 and runnable(A, scurr)) else -1
    resist = A.SG[G2_RESIST]
    tk = A.SX[X_TICKLED]
    rq = A.RQ[r]
    i = 0
    while i < SP_[R_LEN, r]:
        u = rq[i]
        t = SV_[S_TICKLED, u]
        # tickled for another pCPU that has not rescheduled yet: leave it to that one
        if t != -1 and t != cpu and SP_[P2_RQD, t] == r and bit(tk, t):
            i += 1
            continue
        if not allowed(A, u, cpu):
            i += 1
            continue
        base = SV_[S_CREDIT, snext] if snext >= 0 and not yielding else NO_BASE
        if V[F_CPU, u] != cpu and base + resist > SV_[S_CREDIT, u] and snext >= 0:
            i += 1
            continue
        if A.D[D_CAP, V[F_DOM, u]] and not _grab_budget(A, u):
            _runq_remove(A, u)  # rq[i] is the next one now
            _park(A, u)
            continue
        if snext < 0 or yielding or SV_[S_CREDIT, u] > SV_[S_CREDIT, snext]:
            snext = u
        break
    return snext, False


@njit(cache=True)
def _runtime(A, r, snext, now, ratelimited):
    """``csched2_runtime``."""
    SV_ = A.SV
    rt_credit = SV_[S_CREDIT, snext]
    rq = A.RQ[r]
    for i in range(A.SP[R_LEN, r]):
        u = rq[i]
        if u != snext:
            if SV_[S_CREDIT, u] > 0:
                rt_credit -= SV_[S_CREDIT, u]
            break
    d = A.V[F_DOM, snext]
    if rt_credit <= 0:
        time = CSCHED2_MIN_TIMER
    else:
        mw = A.SP[R_MAXW, r]
        time = rt_credit * A.D[D_WEIGHT, d] // (mw if mw > 1 else 1)
    lo = CSCHED2_MIN_TIMER
    rl = A.SG[G2_RATELIMIT]
    if rl:
        left = rl - (now - A.V[F_LAST_RUN_START, snext]) if ratelimited else rl
        if left > lo:
            lo = left
    if time < lo:
        time = lo
    if time > CSCHED2_MAX_TIMER:
        time = CSCHED2_MAX_TIMER
    if A.D[D_CAP, d]:
        b = SV_[S_BUDGET, snext]
        if b < 1:
            b = 1
        if b < time:
            time = b
    return time


@njit(cache=True)
def do_schedule(A, cpu, now, prev):
    """``csched2_schedule``."""
    SV_ = A.SV
    V = A.V
    D = A.D
    r = A.SP[P2_RQD, cpu]
    if prev >= 0:
        _burn(A, prev, now)
        if D[D_CAP, V[F_DOM, prev]] and SV_[S_BUDGET, prev] <= 0 and runnable(A, prev):
            _return_budget(A, prev)
            _park(A, prev)
    bit_clear(A.SX[X_TICKLED], cpu)
    snext, ratelimited = _candidate(A, r, prev, cpu, now)
    if snext >= 0 and not ratelimited and SV_[S_CREDIT, snext] <= CSCHED2_CREDIT_RESET:
        _reset(A, r, snext, now)
        snext, ratelimited = _candidate(A, r, prev, cpu, now)
    if prev >= 0 and SV_[S_YIELDING, prev]:
        SV_[S_YIELDING, prev] = 0
    if snext != prev:
        if prev >= 0:
            if D[D_CAP, V[F_DOM, prev]]:
                _return_budget(A, prev)
            if runnable(A, prev):
                _runq_insert(A, prev)
        if snext >= 0:
            _runq_remove(A, snext)
            if V[F_CPU, snext] != cpu:
                SV_[S_CREDIT, snext] += CSCHED2_MIGRATE_COMPENSATION
                V[F_CPU, snext] = cpu
    if snext < 0:
        bit_set(A.SX[X_IDLE], cpu)
        return -1, -1
    bit_clear(A.SX[X_IDLE], cpu)
    SV_[S_START, snext] = now
    SV_[S_TICKLED, snext] = -1
    if D[D_CAP, V[F_DOM, snext]] and SV_[S_BUDGET, snext] <= 0:
        _grab_budget(A, snext)
    return snext, _runtime(A, r, snext, now, ratelimited)


# ============================================================================== timers, start, calls
@njit(cache=True)
def timer(A, kind, arg, now):
    if kind == K_REPL:
        _replenish(A, arg, now)


@njit(cache=True)
def start(A, now):
    for d in range(A.G[G_ND]):
        _cap_setup(A, d, now)


@njit(cache=True)
def call(A, op, a, b):
    """``OP_MAXW``: every runqueue's max_weight again (a weight changed); ``OP_CAP``: ``_cap_setup`` of
    domain index ``a``."""
    if op == OP_MAXW:
        for r in range(A.SG[G2_NRQD]):
            _update_max_weight(A, r)
    elif op == OP_CAP:
        _cap_setup(A, a, A.G[G_NOW])
    return 0


@njit(cache=True)
def k_op(M, op, a):
    """The entry from Python for :func:`call` (``runner._call(k_op, op, a)``)."""
    return call(views(M), op, a, 0)
