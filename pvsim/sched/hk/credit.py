"""``credit`` compiled: :mod:`pvsim.sched.credit` (Xen's credit1, ``xen/common/sched/credit.c``) over the
arena.

Design note
-----------
Step for step :class:`pvsim.sched.credit.Credit`, function by function (``_runq_insert``,
``_burn``, ``pick_cpu``, ``wake`` + ``_tickle``, ``_global_tick`` / ``_tick`` / ``_unit_acct``,
``_acct`` = ``csched_acct``, ``do_schedule`` + ``_load_balance``), over these arena fields:

* ``SV`` per vCPU: credit, priority, flags (ACTIVE, PARKED, YIELD, MIGRATING: the bits of
  :mod:`pvsim.sched.credit_core`), the burn residual, ``start_time``, ``last_sched``, ``on_runq``,
  and two scratch rows (the PARKED changes of an accounting pass, the runqueue sort);
* ``SP`` per pCPU: the runqueue's length, ``runq_sort_last``, ``last_lb``, ``last_tickle``; the
  runqueue itself is row ``cpu`` of ``RQ`` (in order, head first: ``list.insert`` / ``pop(0)`` are
  shifts, as in the Python list);
* ``SD`` per domain: ``active_unit_count``, whether it is on the active list, the list itself (row
  ``CD_ORDER``: position -> domain) and the accounting pass's scratch (fair share, per-vCPU cap,
  moved-to-head marks and order);
* ``SG``: the derived parameters (``tslice``, ``tick_period``, ``credits_per_tslice``, ...),
  ``credit_balance``, ``weight`` (``prv->weight``), ``runq_sort``, ``balance_bias``, the ledger, the
  ticker's timer handle; ``SX`` row 0: the idlers bitmap.

The accounting pass is :func:`pvsim.sched.credit_core._csched_acct_kernel` written in place over
these fields (its two passes: the domains in active-list order, then the units in index order),
followed, as in ``Credit._acct``, by the parks and unparks in ascending unit order and
``runq_sort += 1``. Python's set and ``min(key=...)`` orders become scans: ``sorted(idlers & aff)``
ascending pCPUs, ``min(mask, key=(c - cpu) % n)`` the first pCPU of the mask at or after ``cpu``
cyclically. Timers: the ticker (``TK_TICK``) and the accounting timer (``TK_ACCT``), created where
the Python scheduler calls ``runner.timer``.

Python-side introspection under the compiled dispatcher: ``unit_info`` and ``credit_sum`` of the
scheduler object read the arena (bound on the instance by :func:`init`), ``global_info`` reads the
parameters :func:`adjust_global` keeps up to date, ``ledger`` is brought up to date by
:func:`sync_ledger`. Simplifications: the Python scheduler's test and benchmark hooks
(``acct_hooks``, ``shadow_reference``, ``core_time_s``) and ``wake_latency_by_pri`` are not kept
(they do not change a decision; the per-unit wake latencies are the dispatcher's own).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hypercalls.trace import (
    PVSIM_TRC_CSCHED_ACCT_CREDIT,
    PVSIM_TRC_CSCHED_BURN_CREDIT,
    TRC_CSCHED_ACCOUNT_START,
    TRC_CSCHED_BOOST_END,
    TRC_CSCHED_BOOST_START,
    TRC_CSCHED_RATELIMIT,
    TRC_CSCHED_STOLEN_UNIT,
    TRC_CSCHED_TICKLE,
)
from pvsim.core.errors import ScenarioError
from pvsim.sched.credit import CSCHED_MIN_TIMER_NS, FLAG_MIGRATING, FLAG_YIELD, MS, US
from pvsim.sched.credit_core import (
    CSCHED_PRI_IDLE,
    CSCHED_PRI_TS_BOOST,
    CSCHED_PRI_TS_OVER,
    CSCHED_PRI_TS_UNDER,
    FLAG_ACTIVE,
    FLAG_PARKED,
)
from pvsim.sched.hk.base import (
    allowed,
    pause_pre,
    raise_softirq,
    request_migrate_running,
    runnable,
    soft_allowed,
    timer_cancel,
    trace,
    unpause_pre,
)
from pvsim.sched.hk.base import timer as set_timer
from pvsim.sched.hk.layout import (
    D_CAP,
    D_WEIGHT,
    F_CPU,
    F_DOM,
    F_DOMID,
    F_HARD_ALL,
    F_IS_RUNNING,
    F_LAST_RUN_START,
    F_MIGRATING,
    F_SOFT_NONE,
    F_VCPU_ID,
    G_ND,
    G_NOW,
    G_NP,
    P_CURR,
    SD,
    SG,
    SP,
    SV,
    SX,
    views,
)

READY = True

# SV rows (per vCPU)
CV_CREDIT, CV_PRI, CV_FLAGS, CV_RESIDUAL, CV_START, CV_LAST_SCHED, CV_ON_RUNQ, CV_CHG, CV_TMP = range(9)
# SP rows (per pCPU)
CP_RQLEN, CP_SORT_LAST, CP_LAST_LB, CP_LAST_TICKLE = range(4)
# SD rows (per domain)
CD_AC, CD_LISTED, CD_ORDER, CD_FAIR, CD_CAPU, CD_MOVED, CD_SEQ, CD_IN_ORDER = range(8)
# SG fields
(CG_TSLICE, CG_TICKS, CG_TICK_PERIOD, CG_CPT, CG_PRV_CREDIT, CG_RATELIMIT, CG_MIGR_DELAY, CG_LB_RATELIMIT,
 CG_SAMPLED, CG_TICKLE_ONE, CG_BALANCE, CG_WEIGHT, CG_RUNQ_SORT, CG_BIAS, CG_NORDER, CG_TICKER, CG_NUNITS,
 CG_ISSUED, CG_BURNED, CG_CLAMP, CG_HALVED) = range(21)
SX_IDLERS = 0
TK_TICK, TK_ACCT = 1, 2
CALL_ARM_TICKER = 1

SIZES = {"sv": 9, "sp": 4, "sd": 8, "sg": 24, "sx": 1, "timers": 64}


# ============================================================================== Python side
def _derived_to_arena(arena, sched) -> None:
    g = arena.region(SG)[0]
    g[CG_TSLICE], g[CG_TICKS], g[CG_TICK_PERIOD] = sched.tslice, sched.ticks_per_tslice, sched.tick_period
    g[CG_CPT], g[CG_PRV_CREDIT] = sched.credits_per_tslice, sched.prv_credit
    g[CG_RATELIMIT], g[CG_MIGR_DELAY], g[CG_LB_RATELIMIT] = sched.ratelimit, sched.migr_delay, sched.lb_ratelimit
    g[CG_TICKLE_ONE] = int(bool(sched.params["tickle_one_idle"]))


def init(arena, sched) -> None:
    """Copy the attached Python scheduler's parameters and (initial) state into the arena."""
    if sched.units or sched.active_doms:
        raise RuntimeError("credit (compiled): the Python scheduler already holds units")
    _derived_to_arena(arena, sched)
    g = arena.region(SG)[0]
    g[CG_SAMPLED] = int(sched.sampled)
    g[CG_BALANCE], g[CG_WEIGHT], g[CG_RUNQ_SORT], g[CG_BIAS] = (sched.credit_balance, sched.weight, sched.runq_sort,
                                                                sched.balance_bias)
    g[CG_NORDER], g[CG_TICKER], g[CG_NUNITS] = 0, -1, 0
    sp = arena.region(SP)
    sp[CP_RQLEN, :] = 0
    sp[CP_SORT_LAST, :] = 0
    sp[CP_LAST_LB, :] = -(10 ** 18)
    sp[CP_LAST_TICKLE, :] = 0
    arena.region(SV)[CV_PRI, :] = CSCHED_PRI_TS_UNDER
    idl = arena.region(SX)[SX_IDLERS]
    idl[:] = 0
    for c in range(sched.n_pcpus):
        idl[c >> 6] |= np.int64(1) << np.int64(c & 63)
    for i, d in enumerate(sched.doms):
        if d.priv != i:  # pragma: no cover - the arena's domain index is the scheduler's dom.priv
            raise RuntimeError("credit (compiled): domain order differs from the scheduler's")
    # the Python scheduler's introspection reads the arena from now on
    sched.unit_info = lambda unit, s=sched: _unit_info(s, unit)
    sched.credit_sum = lambda s=sched: _credit_sum(s)


def _unit_info(sched, unit) -> dict:
    sv = sched.runner.arena.region(SV)
    u = unit.uid
    f = int(sv[CV_FLAGS, u])
    return {"credit": int(sv[CV_CREDIT, u]), "pri": int(sv[CV_PRI, u]),
            "active": bool(f & FLAG_ACTIVE), "parked": bool(f & FLAG_PARKED)}


def _credit_sum(sched) -> int:
    a = sched.runner.arena
    n = int(a.region(SG)[0, CG_NUNITS])
    return int(a.region(SV)[CV_CREDIT, :n].sum())


def sync_ledger(runner) -> dict:
    """The Python scheduler's ``ledger`` (and active-domain state) brought up to date from the arena."""
    s = runner.sched
    a = runner.arena
    g = a.region(SG)[0]
    s.ledger.update({"issued": int(g[CG_ISSUED]), "burned": int(g[CG_BURNED]), "clamp_added": int(g[CG_CLAMP]),
                     "halving_removed": int(g[CG_HALVED])})
    s.credit_balance, s.weight = int(g[CG_BALANCE]), int(g[CG_WEIGHT])
    sd = a.region(SD)
    s.active_doms = [int(x) for x in sd[CD_ORDER, :int(g[CG_NORDER])]]
    for i, d in enumerate(s.doms):
        d.params["active_unit_count"] = int(sd[CD_AC, i])
    return s.ledger


def adjust(runner, dom, params: dict) -> None:
    """``csched_dom_cntl`` putinfo: as ``Credit.adjust`` over the arena's ``active_unit_count``,
    active list and ``prv->weight`` (the runner then writes ``D_WEIGHT`` / ``D_CAP``)."""
    a = runner.arena
    sd = a.region(SD)
    g = a.region(SG)[0]
    i = dom.priv
    if "weight" in params:
        ac = int(sd[CD_AC, i])
        if sd[CD_LISTED, i]:
            g[CG_WEIGHT] += (params["weight"] - dom.weight) * ac
        dom.weight = params["weight"]
        dom.params["active_unit_count"] = ac
    if "cap" in params:
        dom.cap = params["cap"]


def adjust_global(runner, params: dict) -> None:
    """``csched_sys_cntl`` putinfo: as ``Credit.adjust_global`` (the Python object's parameters too,
    for ``global_info``), the ticker re-armed in the kernel. ``charging`` is read at attach only, as
    by the Python scheduler."""
    s = runner.sched
    type(s).__mro__[1].adjust_global(s, params)  # Scheduler.adjust_global: validate, update params
    if s.params["ratelimit_us"] > s.params["tslice_ms"] * 1000:
        raise ScenarioError("sched-credit.ratelimit_us", "must not exceed tslice_ms")
    s._set_tslice(s.params["tslice_ms"])
    s.ratelimit = s.params["ratelimit_us"] * US
    s.migr_delay = s.params["vcpu_migr_delay_us"] * US
    s.lb_ratelimit = s.params["load_balance_ratelimit_us"] * US
    _derived_to_arena(runner.arena, s)
    if runner.started:
        runner._call(k_call, CALL_ARM_TICKER, 0, 0)


# ============================================================================== bitmaps
@njit(cache=True)
def _idle(A, c):
    return (A.SX[SX_IDLERS, c >> 6] >> (c & 63)) & 1 == 1


@njit(cache=True)
def _idle_set(A, c):
    A.SX[SX_IDLERS, c >> 6] |= np.int64(1) << (c & 63)


@njit(cache=True)
def _idle_clear(A, c):
    A.SX[SX_IDLERS, c >> 6] &= ~(np.int64(1) << (c & 63))


@njit(cache=True)
def _any_idle(A):
    row = A.SX[SX_IDLERS]
    for w in range(row.shape[0]):
        if row[w] != 0:
            return True
    return False


@njit(cache=True)
def _in_mask(A, v, c, soft):
    """``c`` in the step's mask: the soft one (soft & hard) or the hard one (all when None)."""
    if soft:
        return soft_allowed(A, v, c) and allowed(A, v, c)
    return allowed(A, v, c)


@njit(cache=True)
def _soft_mask_empty(A, v):
    """``not (soft & hard)`` (soft not None)."""
    V = A.V
    if V[F_HARD_ALL, v]:
        return False  # soft is a non-empty set
    s = A.SOFT[v]
    h = A.HARD[v]
    for w in range(s.shape[0]):
        if s[w] & h[w]:
            return False
    return True


@njit(cache=True)
def _hard_one(A, v):
    """``new.hard is not None and len(new.hard) == 1``."""
    if A.V[F_HARD_ALL, v]:
        return False
    h = A.HARD[v]
    c = 0
    for w in range(h.shape[0]):
        x = np.uint64(h[w])
        while x:
            x &= x - np.uint64(1)
            c += 1
            if c > 1:
                return False
    return c == 1


@njit(cache=True)
def _hard_meets_idlers(A, v):
    """``new.hard is None or new.hard & idlers``."""
    if A.V[F_HARD_ALL, v]:
        return True
    h = A.HARD[v]
    idl = A.SX[SX_IDLERS]
    for w in range(h.shape[0]):
        if h[w] & idl[w]:
            return True
    return False


# ============================================================================== runqueues
@njit(cache=True)
def _runq_insert(A, v):
    """``__runq_insert``: after every element of >= priority; YIELD goes one further."""
    SV_ = A.SV
    cpu = A.V[F_CPU, v]
    rq = A.RQ[cpu]
    n = A.SP[CP_RQLEN, cpu]
    p = SV_[CV_PRI, v]
    i = 0
    while i < n and p <= SV_[CV_PRI, rq[i]]:
        i += 1
    if SV_[CV_FLAGS, v] & FLAG_YIELD and i < n:
        i += 1
    for j in range(n, i, -1):
        rq[j] = rq[j - 1]
    rq[i] = v
    A.SP[CP_RQLEN, cpu] = n + 1
    SV_[CV_ON_RUNQ, v] = 1


@njit(cache=True)
def _rq_delete(A, cpu, i):
    rq = A.RQ[cpu]
    n = A.SP[CP_RQLEN, cpu]
    for j in range(i, n - 1):
        rq[j] = rq[j + 1]
    A.SP[CP_RQLEN, cpu] = n - 1


@njit(cache=True)
def _runq_remove(A, v):
    cpu = A.V[F_CPU, v]
    rq = A.RQ[cpu]
    for i in range(A.SP[CP_RQLEN, cpu]):
        if rq[i] == v:
            _rq_delete(A, cpu, i)
            break
    A.SV[CV_ON_RUNQ, v] = 0


@njit(cache=True)
def _runq_sort(A, cpu):
    """``csched_runq_sort``: every UNDER/BOOST ahead of the OVERs, keeping order."""
    SP_ = A.SP
    SG_ = A.SG
    if SP_[CP_SORT_LAST, cpu] == SG_[CG_RUNQ_SORT]:
        return
    SP_[CP_SORT_LAST, cpu] = SG_[CG_RUNQ_SORT]
    rq = A.RQ[cpu]
    n = SP_[CP_RQLEN, cpu]
    pri = A.SV[CV_PRI]
    tmp = A.SV[CV_TMP]
    k = 0
    m = 0
    for i in range(n):
        x = rq[i]
        if pri[x] >= CSCHED_PRI_TS_UNDER:
            rq[k] = x
            k += 1
        else:
            tmp[m] = x
            m += 1
    for i in range(m):
        rq[k + i] = tmp[i]


@njit(cache=True)
def _burn(A, v, now):
    """``burn_credits``: exact ns charging with a sub-credit residual."""
    SG_ = A.SG
    if SG_[CG_SAMPLED]:
        return
    SV_ = A.SV
    delta = now - SV_[CV_START, v]
    if delta <= 0:
        return
    val = delta * 10 + SV_[CV_RESIDUAL, v]  # CSCHED_CREDITS_PER_MSEC
    credits = val // MS
    SV_[CV_RESIDUAL, v] = val - credits * MS
    SV_[CV_CREDIT, v] -= credits
    SG_[CG_BURNED] += credits
    SV_[CV_START, v] += credits * MS // 10
    if credits != 0:  # pvsim's record {dom, vcpu, credit, burned}, as Credit._burn
        trace(A, A.V[F_CPU, v], PVSIM_TRC_CSCHED_BURN_CREDIT, 4, A.V[F_DOMID, v], A.V[F_VCPU_ID, v],
              SV_[CV_CREDIT, v], credits, 0)


# ============================================================================== placement
@njit(cache=True)
def _pick(A, v, commit):
    """``_csched_cpu_pick`` (flat topology) + ``csched_res_pick`` setting MIGRATING."""
    V = A.V
    cpu = V[F_CPU, v]
    n = A.G[G_NP]
    best = cpu
    for step in range(2):
        soft = step == 0
        if soft:
            if V[F_SOFT_NONE, v]:
                continue
            if _soft_mask_empty(A, v):
                continue
        if _in_mask(A, v, cpu, soft):
            c0 = cpu
        else:
            c0 = cpu
            for k in range(1, n):
                c = cpu + k
                if c >= n:
                    c -= n
                if _in_mask(A, v, c, soft):
                    c0 = c
                    break
        idle = _idle(A, c0) or (c0 == cpu and A.SP[CP_RQLEN, c0] == 0 and
                                (A.P[P_CURR, c0] < 0 or A.P[P_CURR, c0] == v))
        if not idle and _any_idle(A):
            for k in range(n):
                c = c0 + k
                if c >= n:
                    c -= n
                if _idle(A, c) and _in_mask(A, v, c, soft):
                    c0 = c
                    idle = True
                    break
        best = c0
        if idle:
            break
    if commit:
        A.SV[CV_FLAGS, v] |= FLAG_MIGRATING
    return best


@njit(cache=True)
def pick_cpu(A, v):
    return _pick(A, v, True)


# ============================================================================== unit hooks
@njit(cache=True)
def insert(A, v):
    SV_ = A.SV
    SG_ = A.SG
    if v + 1 > SG_[CG_NUNITS]:
        SG_[CG_NUNITS] = v + 1
    SV_[CV_CREDIT, v] = 0
    SV_[CV_PRI, v] = CSCHED_PRI_TS_UNDER
    SV_[CV_FLAGS, v] = 0
    A.V[F_CPU, v] = _pick(A, v, True)
    if runnable(A, v) and A.V[F_IS_RUNNING, v] == 0 and SV_[CV_ON_RUNQ, v] == 0:
        _runq_insert(A, v)


@njit(cache=True)
def remove(A, v):
    SV_ = A.SV
    if SV_[CV_ON_RUNQ, v]:
        _runq_remove(A, v)
    if SV_[CV_FLAGS, v] & FLAG_PARKED:
        SV_[CV_FLAGS, v] &= ~FLAG_PARKED
        if unpause_pre(A, v):
            wake(A, v)
    if SV_[CV_FLAGS, v] & FLAG_ACTIVE:
        _acct_stop(A, v)


@njit(cache=True)
def sleep(A, v):
    cpu = A.V[F_CPU, v]
    if A.P[P_CURR, cpu] == v:
        raise_softirq(A, cpu)
    elif A.SV[CV_ON_RUNQ, v]:
        _runq_remove(A, v)


@njit(cache=True)
def wake(A, v):
    V = A.V
    SV_ = A.SV
    cpu = V[F_CPU, v]
    if A.P[P_CURR, cpu] == v or SV_[CV_ON_RUNQ, v]:
        return
    migrating = (SV_[CV_FLAGS, v] & FLAG_MIGRATING) != 0 or V[F_MIGRATING, v] != 0
    SV_[CV_FLAGS, v] &= ~FLAG_MIGRATING
    if not migrating and SV_[CV_PRI, v] == CSCHED_PRI_TS_UNDER and (SV_[CV_FLAGS, v] & FLAG_PARKED) == 0:
        SV_[CV_PRI, v] = CSCHED_PRI_TS_BOOST
        trace(A, cpu, TRC_CSCHED_BOOST_START, 2, V[F_DOMID, v], V[F_VCPU_ID, v], 0, 0, 0)
    _runq_insert(A, v)
    _tickle(A, v)


@njit(cache=True)
def yield_(A, v):
    A.SV[CV_FLAGS, v] |= FLAG_YIELD
    if A.V[F_IS_RUNNING, v]:
        raise_softirq(A, A.V[F_CPU, v])


@njit(cache=True)
def _kick(A, c):
    trace(A, c, TRC_CSCHED_TICKLE, 1, c, 0, 0, 0, 0)
    _idle_clear(A, c)
    raise_softirq(A, c)


@njit(cache=True)
def _tickle(A, v):
    """``__runq_tickle``."""
    V = A.V
    P = A.P
    SV_ = A.SV
    cpu = V[F_CPU, v]
    cur = P[P_CURR, cpu]
    cur_pri = CSCHED_PRI_IDLE if cur < 0 else SV_[CV_PRI, cur]
    new_pri = SV_[CV_PRI, v]
    if _hard_one(A, v) and _idle(A, cpu):
        _kick(A, cpu)  # exclusive pinning fast path
        return
    any_idle = _any_idle(A)
    if cur_pri == CSCHED_PRI_IDLE or (not any_idle and new_pri > cur_pri):
        _kick(A, cpu)
        return
    if not any_idle:
        return
    n = A.G[G_NP]
    for step in range(2):
        soft = step == 0
        if soft and V[F_SOFT_NONE, v]:
            continue
        first = -1
        for c in range(n):
            if _idle(A, c) and _in_mask(A, v, c, soft):
                first = c
                break
        if first < 0 and soft:
            continue
        if first < 0 and new_pri > cur_pri:
            if _hard_meets_idlers(A, v):
                request_migrate_running(A, cur)  # _VPF_migrating on cur: it moves to an idler
            _kick(A, cpu)
            return
        if first >= 0:
            if A.SG[CG_TICKLE_ONE]:
                last = A.SP[CP_LAST_TICKLE, cpu]
                nxt = first
                for c in range(max(last + 1, first), n):
                    if _idle(A, c) and _in_mask(A, v, c, soft):
                        nxt = c
                        break
                A.SP[CP_LAST_TICKLE, cpu] = nxt
                _kick(A, nxt)
            else:
                # every candidate, ascending (a kick clears only its own pCPU's idler bit)
                for c in range(first, n):
                    if _idle(A, c) and _in_mask(A, v, c, soft):
                        _kick(A, c)
            return
        return  # the hard step found nothing to do


# ============================================================================== ticks and accounting
@njit(cache=True)
def _acct_start(A, v):
    V = A.V
    SD_ = A.SD
    SG_ = A.SG
    d = V[F_DOM, v]
    A.SV[CV_FLAGS, v] |= FLAG_ACTIVE
    SD_[CD_AC, d] += 1
    SG_[CG_WEIGHT] += A.D[D_WEIGHT, d]
    if SD_[CD_LISTED, d] == 0:
        order = SD_[CD_ORDER]
        k = SG_[CG_NORDER]
        for j in range(k, 0, -1):
            order[j] = order[j - 1]
        order[0] = d
        SG_[CG_NORDER] = k + 1
        SD_[CD_LISTED, d] = 1
    trace(A, V[F_CPU, v], TRC_CSCHED_ACCOUNT_START, 3, V[F_DOMID, v], V[F_VCPU_ID, v], SD_[CD_AC, d], 0, 0)


@njit(cache=True)
def _acct_stop(A, v):
    SD_ = A.SD
    SG_ = A.SG
    d = A.V[F_DOM, v]
    A.SV[CV_FLAGS, v] &= ~FLAG_ACTIVE
    SD_[CD_AC, d] -= 1
    SG_[CG_WEIGHT] -= A.D[D_WEIGHT, d]
    if SD_[CD_AC, d] == 0 and SD_[CD_LISTED, d]:
        order = SD_[CD_ORDER]
        k = SG_[CG_NORDER]
        for i in range(k):
            if order[i] == d:
                for j in range(i, k - 1):
                    order[j] = order[j + 1]
                break
        SG_[CG_NORDER] = k - 1
        SD_[CD_LISTED, d] = 0


@njit(cache=True)
def _unit_acct(A, v, cpu, now):
    """``csched_unit_acct``."""
    SV_ = A.SV
    SG_ = A.SG
    V = A.V
    if SV_[CV_PRI, v] == CSCHED_PRI_TS_BOOST:
        SV_[CV_PRI, v] = CSCHED_PRI_TS_UNDER
        trace(A, cpu, TRC_CSCHED_BOOST_END, 2, V[F_DOMID, v], V[F_VCPU_ID, v], 0, 0, 0)
    if SG_[CG_SAMPLED]:
        per_tick = SG_[CG_CPT] // SG_[CG_TICKS]
        SV_[CV_CREDIT, v] -= per_tick
        SG_[CG_BURNED] += per_tick
        if per_tick != 0:  # the tick's debit is this mode's burn, as Credit._unit_acct
            trace(A, cpu, PVSIM_TRC_CSCHED_BURN_CREDIT, 4, V[F_DOMID, v], V[F_VCPU_ID, v], SV_[CV_CREDIT, v],
                  per_tick, 0)
    else:
        _burn(A, v, now)
    if (SV_[CV_FLAGS, v] & FLAG_ACTIVE) == 0:
        _acct_start(A, v)
    elif A.G[G_NP] > 1:
        new_cpu = _pick(A, v, False)
        if new_cpu != cpu:
            request_migrate_running(A, v)  # v is running on cpu


@njit(cache=True)
def _tick(A, cpu, now):
    cur = A.P[P_CURR, cpu]
    if cur >= 0:
        _unit_acct(A, cur, cpu, now)
    _runq_sort(A, cpu)


@njit(cache=True)
def _arm_ticker(A, now):
    SG_ = A.SG
    tp = SG_[CG_TICK_PERIOD]
    if SG_[CG_TICKER] >= 0:
        timer_cancel(A, SG_[CG_TICKER])
    SG_[CG_TICKER] = set_timer(A, tp - now % tp, TK_TICK, 0)


@njit(cache=True)
def _global_tick(A, now):
    P = A.P
    for cpu in range(A.G[G_NP]):
        if P[P_CURR, cpu] >= 0:  # the tick of an idle pCPU is stopped
            _tick(A, cpu, now)
    A.SG[CG_TICKER] = -1
    _arm_ticker(A, now)


@njit(cache=True)
def _acct(A, now):
    """``csched_acct``: :func:`pvsim.sched.credit_core._csched_acct_kernel` in place, then the parks and
    unparks (ascending units) and ``runq_sort += 1``, as ``Credit._acct``."""
    SG_ = A.SG
    SD_ = A.SD
    SV_ = A.SV
    D = A.D
    n = SG_[CG_NUNITS]
    if n == 0:
        return
    nd = A.G[G_ND]
    cpt = SG_[CG_CPT]
    n_order = SG_[CG_NORDER]
    weight_total = SG_[CG_WEIGHT]
    credit_total = SG_[CG_PRV_CREDIT]
    bal_prev = SG_[CG_BALANCE]
    if bal_prev < 0:
        credit_total -= bal_prev
    new_weight = weight_total
    issued = 0
    clamp_added = 0
    halving_removed = 0
    parks = 0
    credit_balance = 0
    order = SD_[CD_ORDER]
    for d in range(nd):
        SD_[CD_IN_ORDER, d] = 0
        SD_[CD_MOVED, d] = -1
        SD_[CD_FAIR, d] = 0
        SD_[CD_CAPU, d] = 0
    n_moved = 0
    # pass 1: the domains, in active-list order
    if weight_total != 0:
        weight_left = weight_total
        credit_xtra = False
        credit_cap = 0
        for i in range(n_order):
            d = order[i]
            SD_[CD_IN_ORDER, d] = 1
            w = D[D_WEIGHT, d]
            ac = SD_[CD_AC, d]
            cap = D[D_CAP, d]
            weight_left -= w * ac
            credit_peak = ac * cpt
            if bal_prev < 0:
                credit_peak += (-bal_prev * w * ac + weight_total - 1) // weight_total
            if cap != 0:
                credit_cap = (cap * cpt + 99) // 100
                if credit_cap < credit_peak:
                    credit_peak = credit_cap
                credit_cap = (credit_cap + ac - 1) // ac
            SD_[CD_CAPU, d] = credit_cap
            credit_fair = (credit_total * w * ac + weight_total - 1) // weight_total
            if credit_fair < credit_peak:
                credit_xtra = True
            else:
                if weight_left != 0:
                    credit_total += ((credit_fair - credit_peak) * weight_total + weight_left - 1) // weight_left
                if credit_xtra:
                    SD_[CD_MOVED, d] = n_moved
                    SD_[CD_SEQ, n_moved] = d
                    n_moved += 1
                credit_fair = credit_peak
            SD_[CD_FAIR, d] = (credit_fair + ac - 1) // ac
    # pass 2: the units
    for u in range(n):
        c = SV_[CV_CREDIT, u]
        f = SV_[CV_FLAGS, u]
        d = A.V[F_DOM, u]
        SV_[CV_CHG, u] = 0
        if weight_total != 0 and (f & FLAG_ACTIVE) != 0 and SD_[CD_IN_ORDER, d]:
            f0 = f
            cf = SD_[CD_FAIR, d]
            c += cf
            issued += cf
            cap = D[D_CAP, d]
            if c < 0:
                p = CSCHED_PRI_TS_OVER
                if cap != 0 and c < -SD_[CD_CAPU, d] and (f & FLAG_PARKED) == 0:
                    f |= FLAG_PARKED
                    parks += 1
                if c < -cpt:
                    clamp_added += -cpt - c
                    c = -cpt
            else:
                p = CSCHED_PRI_TS_UNDER
                if (f & FLAG_PARKED) != 0:
                    f &= ~FLAG_PARKED
                if c > cpt:
                    f &= ~FLAG_ACTIVE
                    SD_[CD_AC, d] -= 1
                    new_weight -= D[D_WEIGHT, d]
                    halving_removed += c - c // 2
                    c //= 2
            credit_balance += c
            SV_[CV_CREDIT, u] = c
            SV_[CV_PRI, u] = p
            SV_[CV_FLAGS, u] = f
            # pvsim's record {dom, vcpu, credit, pri} per credited unit, as Credit._acct writes it
            trace(A, A.V[F_CPU, u], PVSIM_TRC_CSCHED_ACCT_CREDIT, 4, A.V[F_DOMID, u], A.V[F_VCPU_ID, u], c, p, 0)
            if (f ^ f0) & FLAG_PARKED:
                SV_[CV_CHG, u] = 1
    # the new active-domain order: moved domains (latest move first), then the others; drop emptied
    k = 0
    if weight_total != 0:
        seq = SD_[CD_SEQ]
        tmp = SD_[CD_CAPU]  # per-vCPU caps are no longer needed: the new order is built here
        for j in range(n_moved - 1, -1, -1):
            d = seq[j]
            if SD_[CD_AC, d] > 0:
                tmp[k] = d
                k += 1
        for i in range(n_order):
            d = order[i]
            if SD_[CD_MOVED, d] < 0 and SD_[CD_AC, d] > 0:
                tmp[k] = d
                k += 1
        for d in range(nd):
            SD_[CD_LISTED, d] = 0
        for i in range(k):
            order[i] = tmp[i]
            SD_[CD_LISTED, tmp[i]] = 1
    else:
        k = n_order
    SG_[CG_NORDER] = k
    SG_[CG_BALANCE] = credit_balance
    SG_[CG_WEIGHT] = new_weight
    SG_[CG_ISSUED] += issued
    SG_[CG_CLAMP] += clamp_added
    SG_[CG_HALVED] += halving_removed
    for u in range(n):
        if SV_[CV_CHG, u]:
            SV_[CV_CHG, u] = 0
            if SV_[CV_FLAGS, u] & FLAG_PARKED:
                if pause_pre(A, u):
                    sleep(A, u)
            else:
                # unpause while still flagged PARKED so the wake is not boosted
                SV_[CV_FLAGS, u] |= FLAG_PARKED
                if unpause_pre(A, u):
                    wake(A, u)
                SV_[CV_FLAGS, u] &= ~FLAG_PARKED
    SG_[CG_RUNQ_SORT] += 1
    return parks


@njit(cache=True)
def timer(A, kind, arg, now):
    """The scheduler's timers: the ticker (``_global_tick``) and the accounting (``_acct_timer``)."""
    if kind == TK_TICK:
        _global_tick(A, now)
    elif kind == TK_ACCT:
        _acct(A, now)
        set_timer(A, A.SG[CG_TSLICE], TK_ACCT, 0)


@njit(cache=True)
def start(A, now):
    _arm_ticker(A, now)
    set_timer(A, A.SG[CG_TSLICE], TK_ACCT, 0)


@njit(cache=True)
def context_saved(A, v):
    pass


@njit(cache=True)
def affinity_changed(A, v):
    pass


@njit(cache=True)
def call(A, op, a, b):
    """Python-requested operations: ``CALL_ARM_TICKER`` (``adjust_global`` on a started host)."""
    if op == CALL_ARM_TICKER:
        _arm_ticker(A, A.G[G_NOW])
    return 0


# ============================================================================== schedule
@njit(cache=True)
def _load_balance(A, cpu, pri):
    """``csched_load_balance`` + ``csched_runq_steal`` (one node): the stolen unit or -1."""
    SG_ = A.SG
    SV_ = A.SV
    SP_ = A.SP
    P = A.P
    V = A.V
    n = A.G[G_NP]
    now = A.G[G_NOW]
    md = SG_[CG_MIGR_DELAY]
    first = SG_[CG_BIAS] % n
    for step in range(2):
        soft = step == 0
        for k in range(n):
            peer = first + k
            if peer >= n:
                peer -= n
            if peer == cpu or _idle(A, peer):
                continue
            nq = SP_[CP_RQLEN, peer]
            if nq + (1 if P[P_CURR, peer] >= 0 else 0) <= 1:
                continue
            if P[P_CURR, peer] < 0:
                continue
            rq = A.RQ[peer]
            for i in range(nq):
                sv = rq[i]
                if SV_[CV_PRI, sv] <= pri:
                    break
                if soft and V[F_SOFT_NONE, sv]:
                    continue
                hot = md != 0 and (now - SV_[CV_LAST_SCHED, sv]) < md
                if not hot and _in_mask(A, sv, cpu, soft):
                    _rq_delete(A, peer, i)  # _runq_remove: sv is on its pCPU's (peer's) runqueue
                    SV_[CV_ON_RUNQ, sv] = 0
                    V[F_CPU, sv] = cpu
                    trace(A, cpu, TRC_CSCHED_STOLEN_UNIT, 3, peer, V[F_DOMID, sv], V[F_VCPU_ID, sv], 0, 0)
                    SG_[CG_BIAS] = peer
                    return sv
    return -1


@njit(cache=True)
def do_schedule(A, cpu, now, prev):
    """``csched_schedule``."""
    SG_ = A.SG
    SV_ = A.SV
    SP_ = A.SP
    V = A.V
    if prev >= 0:
        runtime = now - V[F_LAST_RUN_START, prev]
        _burn(A, prev, now)
        SV_[CV_START, prev] -= now
        SV_[CV_LAST_SCHED, prev] = now
        rl = SG_[CG_RATELIMIT]
        prev_runnable = runnable(A, prev)
        if rl != 0 and (SV_[CV_FLAGS, prev] & FLAG_YIELD) == 0 and prev_runnable and runtime < rl:
            SV_[CV_START, prev] += now
            tslice = rl - runtime
            if runtime < CSCHED_MIN_TIMER_NS:
                tslice = CSCHED_MIN_TIMER_NS
            trace(A, cpu, TRC_CSCHED_RATELIMIT, 2, (V[F_VCPU_ID, prev] << 16) | V[F_DOMID, prev], runtime, 0, 0, 0)
            return prev, tslice
        if prev_runnable:
            _runq_insert(A, prev)
        SV_[CV_FLAGS, prev] &= ~FLAG_YIELD
    tslice = SG_[CG_TSLICE]
    rq = A.RQ[cpu]
    nq = SP_[CP_RQLEN, cpu]
    snext = rq[0] if nq > 0 else -1
    snext_pri = CSCHED_PRI_IDLE if snext < 0 else SV_[CV_PRI, snext]
    if snext_pri > CSCHED_PRI_TS_OVER:
        _rq_delete(A, cpu, 0)
        SV_[CV_ON_RUNQ, snext] = 0
    elif snext < 0 or now - SP_[CP_LAST_LB, cpu] > SG_[CG_LB_RATELIMIT]:
        SP_[CP_LAST_LB, cpu] = now
        stolen = _load_balance(A, cpu, snext_pri) if A.G[G_NP] > 1 else -1
        if stolen >= 0:
            snext = stolen
        elif snext >= 0:
            _rq_delete(A, cpu, 0)
            SV_[CV_ON_RUNQ, snext] = 0
    else:
        _rq_delete(A, cpu, 0)
        SV_[CV_ON_RUNQ, snext] = 0
    if snext < 0:
        _idle_set(A, cpu)
        return -1, -1
    _idle_clear(A, cpu)
    SV_[CV_START, snext] += now
    V[F_CPU, snext] = cpu
    return snext, tslice


@njit(cache=True)
def k_call(M, op, a, b):
    """:func:`call` from Python (as ``core.k_call``, without importing ``core``, which imports this
    module)."""
    return call(views(M), op, a, b)
