"""The compiled host dispatcher: ``core.c``'s scheduling loop and the programs, in Numba.

Design note
-----------
:class:`pvsim.sched.runner.HostRunner` step for step over the arena (:mod:`pvsim.sched.hk.layout`):
``schedule`` (the scheduler's ``do_schedule``, the context switch with its runstates, counters,
wake-to-run latency, trace record and switch cost, the deferred migration), the decision timer
(``arm`` / ``decision``), wake-ups from blocks, softirqs, scheduler timers, and the demand of each
vCPU. A vCPU whose behaviour is a :class:`guest_kernels.program.Program` is run here
(:func:`prog_next`, the loop of :class:`guest_kernels.program.ProgramVcpu` in integers); any other
(a full guest OS) is *external*: the kernel stops with ``ST_NEED_DEMAND`` and the continuation of
what it was doing (``C_SCHED``: the rest of a schedule pass, ``C_DECISION``: of a decision), the
Python side asks the behaviour, writes the demand, and :func:`k_resume` carries on -- every place
that asks for a demand is in tail position, so a continuation is one code and a pCPU.

:func:`k_advance` runs the host's events in ``(time, id)`` order up to a limit (the next event of
anyone else, from :meth:`pvsim.core.engine.Engine.run`), so a host whose vCPUs are all programs runs
a whole simulated minute in one call. The scheduler's ops are switched on ``G_SCHED``
(``pvsim/sched/hk/<name>.py``).

Simplifications: as :mod:`pvsim.sched.runner`; ``_ZERO_LIMIT`` livelocks end the call with
``ST_ERROR``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hypercalls.ops import (
    DOMID_IDLE,
    RUNSTATE_blocked,
    RUNSTATE_offline,
    RUNSTATE_runnable,
    RUNSTATE_running,
)
from hypercalls.trace import (
    TRC_SCHED_BLOCK,
    TRC_SCHED_CONTINUE_RUNNING,
    TRC_SCHED_SWITCH,
    TRC_SCHED_WAKE,
    TRC_SCHED_YIELD,
)
from pvsim.core import kernels
from pvsim.sched.hk import bvt, credit, credit2, null, rr, rtds
from pvsim.sched.hk.base import (
    pause_pre,
    pop,
    push,
    raise_softirq,
    runnable,
    set_runstate,
    trace,
    unpause_pre,
)
from pvsim.sched.hk.layout import (
    C_DECISION,
    C_INTERRUPT,
    C_NONE,
    C_SCHED,
    D_FP_CACHE_NS,
    D_FP_TLB_NS,
    D_SWITCH_NS,
    EV_BLOCKWAKE,
    EV_DECISION,
    EV_INTERRUPT,
    EV_SOFTIRQ,
    EV_STIMER,
    F_BLOCK_AFTER,
    F_BLOCK_GEN,
    F_BLOCKED,
    F_BURST_NS,
    F_BURST_PARTS,
    F_BUSY,
    F_CPU,
    F_CTX_IN,
    F_DOM,
    F_DOMID,
    F_DONE,
    F_EVER_RAN,
    F_EXTERNAL,
    F_FP_CD,
    F_FP_LINES,
    F_FP_PAGE_PS,
    F_FP_PAGES,
    F_FP_SEQ,
    F_IDLED,
    F_IDLES,
    F_IRQ_PENDING,
    F_IS_RUNNING,
    F_LAST_RUN_START,
    F_LOOP_END,
    F_MIGRATE_PENDING,
    F_MIGRATING,
    F_MIGRATIONS,
    F_PARTS,
    F_PAUSE,
    F_PC,
    F_PENDING,
    F_PROG,
    F_RAN_ON,
    F_RBPOS,
    F_REMAINING,
    F_T0,
    F_VCPU_ID,
    F_WAKE_AT,
    F_WAKE_NS,
    G_CONT,
    G_CONT_CPU,
    G_CONT_V,
    G_CONT_X,
    G_FP_CAP0,
    G_FP_ON,
    G_FP_PS0,
    G_FP_SEQ,
    G_FP_SWITCH_PAGES,
    G_FP_TAGGED,
    G_FP_TLB_ENTRIES,
    G_LIM_E,
    G_LIM_P,
    G_LIM_T,
    G_LN,
    G_MAXOPS,
    G_NDEMAND,
    G_NEED_V,
    G_NOW,
    G_NSCHED,
    G_NV,
    G_QN,
    G_RBN,
    G_REFILL,
    G_SCHED,
    G_SCHED_NS,
    G_STARTED,
    G_SWITCH_NS,
    G_TN,
    G_TRACE,
    G_WN,
    LB_DOM,
    LB_NS,
    MARGIN_Q,
    MARGIN_RB,
    MARGIN_T,
    P_CURR,
    P_FP_CACHE,
    P_FP_CD,
    P_FP_TLB,
    P_FP_UNDO_CD,
    P_FP_UNDO_SEQ,
    P_GEN,
    P_IDLE_NS,
    P_IDLE_SINCE,
    P_LAST_COST,
    P_LAST_ON,
    P_SGEN,
    P_SLICE_END,
    P_SOFTIRQ,
    P_SWITCHES,
    P_WORK_START,
    PR_BURST_COST,
    PR_BURST_PARTS,
    PR_IDLE_COST,
    PR_IDLE_MODE,
    PR_LAT,
    PR_NOPS,
    PR_OPS,
    PR_PPU,
    PR_SHAPE,
    Q_A,
    Q_B,
    Q_KIND,
    Q_SEQ,
    Q_T,
    ST_DONE,
    ST_DRAIN,
    ST_ERROR,
    ST_NEED_DEMAND,
    ST_NEED_PREEMPT,
    TM_ACTIVE,
    TM_ARG,
    TM_KIND,
    TM_WHEN,
    WB_NS,
    WB_V,
    views,
)

ZERO_LIMIT = 100_000
OK = -1  # "carry on" (a status is >= 0)
WANTS, NOT_RUNNABLE, NEED = 1, 0, 2
K_RR, K_CREDIT, K_CREDIT2, K_RTDS, K_NULL, K_BVT = 0, 1, 2, 3, 4, 5
KINDS = {"rr": K_RR, "credit": K_CREDIT, "credit2": K_CREDIT2, "rtds": K_RTDS, "null": K_NULL, "bvt": K_BVT}
# error codes (G_NEED_V when ST_ERROR)
E_KEPT_NOT_RUNNABLE, E_PICKED_BAD, E_LIVELOCK_SCHED, E_LIVELOCK_DEMAND, E_HEAP = 1, 2, 3, 4, 5
OP_CPU, OP_SLEEP, OP_PERIOD = 1, 2, 3  # guest_kernels.program
SHAPE_BURST = 1
IDLE_ON_WAKE, IDLE_BEFORE = 0, 1
FRAC_BITS = 10
ONE_NS = 1 << FRAC_BITS


# ============================================================================== scheduler dispatch
# one branch per scheduler module (pvsim/sched/hk/<name>.py); a module not READY is never selected
@njit(cache=True)
def s_insert(A, v):
    k = A.G[G_SCHED]
    if k == K_RR:
        rr.insert(A, v)
    elif k == K_CREDIT:
        credit.insert(A, v)
    elif k == K_CREDIT2:
        credit2.insert(A, v)
    elif k == K_RTDS:
        rtds.insert(A, v)
    elif k == K_NULL:
        null.insert(A, v)
    elif k == K_BVT:
        bvt.insert(A, v)


@njit(cache=True)
def s_remove(A, v):
    k = A.G[G_SCHED]
    if k == K_RR:
        rr.remove(A, v)
    elif k == K_CREDIT:
        credit.remove(A, v)
    elif k == K_CREDIT2:
        credit2.remove(A, v)
    elif k == K_RTDS:
        rtds.remove(A, v)
    elif k == K_NULL:
        null.remove(A, v)
    elif k == K_BVT:
        bvt.remove(A, v)


@njit(cache=True)
def s_wake(A, v):
    k = A.G[G_SCHED]
    if k == K_RR:
        rr.wake(A, v)
    elif k == K_CREDIT:
        credit.wake(A, v)
    elif k == K_CREDIT2:
        credit2.wake(A, v)
    elif k == K_RTDS:
        rtds.wake(A, v)
    elif k == K_NULL:
        null.wake(A, v)
    elif k == K_BVT:
        bvt.wake(A, v)


@njit(cache=True)
def s_sleep(A, v):
    k = A.G[G_SCHED]
    if k == K_RR:
        rr.sleep(A, v)
    elif k == K_CREDIT:
        credit.sleep(A, v)
    elif k == K_CREDIT2:
        credit2.sleep(A, v)
    elif k == K_RTDS:
        rtds.sleep(A, v)
    elif k == K_NULL:
        null.sleep(A, v)
    elif k == K_BVT:
        bvt.sleep(A, v)


@njit(cache=True)
def s_yield(A, v):
    k = A.G[G_SCHED]
    if k == K_RR:
        rr.yield_(A, v)
    elif k == K_CREDIT:
        credit.yield_(A, v)
    elif k == K_CREDIT2:
        credit2.yield_(A, v)
    elif k == K_RTDS:
        rtds.yield_(A, v)
    elif k == K_NULL:
        null.yield_(A, v)
    elif k == K_BVT:
        bvt.yield_(A, v)


@njit(cache=True)
def s_context_saved(A, v):
    k = A.G[G_SCHED]
    if k == K_RR:
        rr.context_saved(A, v)
    elif k == K_CREDIT:
        credit.context_saved(A, v)
    elif k == K_CREDIT2:
        credit2.context_saved(A, v)
    elif k == K_RTDS:
        rtds.context_saved(A, v)
    elif k == K_NULL:
        null.context_saved(A, v)
    elif k == K_BVT:
        bvt.context_saved(A, v)


@njit(cache=True)
def s_timer(A, kind, arg, t):
    k = A.G[G_SCHED]
    if k == K_RR:
        rr.timer(A, kind, arg, t)
    elif k == K_CREDIT:
        credit.timer(A, kind, arg, t)
    elif k == K_CREDIT2:
        credit2.timer(A, kind, arg, t)
    elif k == K_RTDS:
        rtds.timer(A, kind, arg, t)
    elif k == K_NULL:
        null.timer(A, kind, arg, t)
    elif k == K_BVT:
        bvt.timer(A, kind, arg, t)


@njit(cache=True)
def s_start(A, t):
    k = A.G[G_SCHED]
    if k == K_RR:
        rr.start(A, t)
    elif k == K_CREDIT:
        credit.start(A, t)
    elif k == K_CREDIT2:
        credit2.start(A, t)
    elif k == K_RTDS:
        rtds.start(A, t)
    elif k == K_NULL:
        null.start(A, t)
    elif k == K_BVT:
        bvt.start(A, t)


@njit(cache=True)
def s_affinity_changed(A, v):
    k = A.G[G_SCHED]
    if k == K_RR:
        rr.affinity_changed(A, v)
    elif k == K_CREDIT:
        credit.affinity_changed(A, v)
    elif k == K_CREDIT2:
        credit2.affinity_changed(A, v)
    elif k == K_RTDS:
        rtds.affinity_changed(A, v)
    elif k == K_NULL:
        null.affinity_changed(A, v)
    elif k == K_BVT:
        bvt.affinity_changed(A, v)


@njit(cache=True)
def s_call(A, op, a, b):
    k = A.G[G_SCHED]
    if k == K_RR:
        return rr.call(A, op, a, b)
    elif k == K_CREDIT:
        return credit.call(A, op, a, b)
    elif k == K_CREDIT2:
        return credit2.call(A, op, a, b)
    elif k == K_RTDS:
        return rtds.call(A, op, a, b)
    elif k == K_NULL:
        return null.call(A, op, a, b)
    elif k == K_BVT:
        return bvt.call(A, op, a, b)
    return 0


@njit(cache=True)
def s_do_schedule(A, cpu, t, prev):
    k = A.G[G_SCHED]
    if k == K_RR:
        return rr.do_schedule(A, cpu, t, prev)
    elif k == K_CREDIT:
        return credit.do_schedule(A, cpu, t, prev)
    elif k == K_CREDIT2:
        return credit2.do_schedule(A, cpu, t, prev)
    elif k == K_RTDS:
        return rtds.do_schedule(A, cpu, t, prev)
    elif k == K_NULL:
        return null.do_schedule(A, cpu, t, prev)
    elif k == K_BVT:
        return bvt.do_schedule(A, cpu, t, prev)
    return (-1, -1)


@njit(cache=True)
def s_pick_cpu(A, v):
    k = A.G[G_SCHED]
    if k == K_RR:
        return rr.pick_cpu(A, v)
    elif k == K_CREDIT:
        return credit.pick_cpu(A, v)
    elif k == K_CREDIT2:
        return credit2.pick_cpu(A, v)
    elif k == K_RTDS:
        return rtds.pick_cpu(A, v)
    elif k == K_NULL:
        return null.pick_cpu(A, v)
    elif k == K_BVT:
        return bvt.pick_cpu(A, v)
    return A.V[F_CPU, v]


# ============================================================================== the programs
@njit(cache=True)
def _draw(A, v):
    """The next standard-exponential draw of vCPU ``v``'s stream (pre-drawn by Python)."""
    V = A.V
    G = A.G
    pos = V[F_RBPOS, v]
    x = A.RB[v].view(np.float64)[pos]
    V[F_RBPOS, v] = pos + 1
    if pos + 1 >= G[G_RBN] - MARGIN_RB:
        G[G_REFILL] = 1
    return x


@njit(cache=True)
def _unit_done(A, v, t):
    V = A.V
    PR = A.PR
    p = V[F_PROG, v]
    V[F_PARTS, v] += PR[p, PR_PPU]
    if PR[p, PR_LAT] and V[F_T0, v] >= 0:
        G = A.G
        k = G[G_LN]
        A.LB[LB_DOM, k] = V[F_DOM, v]
        A.LB[LB_NS, k] = t - V[F_T0, v]
        G[G_LN] = k + 1
    V[F_T0, v] = -1


@njit(cache=True)
def _flush(A, v):
    V = A.V
    run = V[F_PENDING, v] >> FRAC_BITS
    V[F_PENDING, v] -= run << FRAC_BITS
    V[F_BUSY, v] += run
    return run


@njit(cache=True)
def prog_next(A, v, t):
    """:meth:`guest_kernels.program.ProgramVcpu.next` in integers: (1, ns) for Run(ns), (2, ns) for
    Block(ns), (0, 0) when the loop never runs nor sleeps."""
    V = A.V
    PR = A.PR
    PC = A.PC
    G = A.G
    p = V[F_PROG, v]
    maxops = G[G_MAXOPS]
    if V[F_BURST_PARTS, v]:
        V[F_PARTS, v] += V[F_BURST_PARTS, v]
        V[F_BURST_PARTS, v] = 0
    if V[F_LOOP_END, v]:
        V[F_LOOP_END, v] = 0
        _unit_done(A, v, t)
    if PR[p, PR_SHAPE] == SHAPE_BURST:
        V[F_PENDING, v] += PR[p, PR_BURST_COST]
        PC[0, v] += PR[p, PR_BURST_PARTS]
        run = _flush(A, v)
        V[F_BURST_PARTS, v] = PR[p, PR_BURST_PARTS]
        V[F_BURST_NS, v] = run
        return 1, run
    n = PR[p, PR_NOPS]
    idle_cost = PR[p, PR_IDLE_COST]
    idle_mode = PR[p, PR_IDLE_MODE]
    for _ in range(4 * n + 4):
        if V[F_PC, v] == 0 and V[F_T0, v] < 0:
            V[F_T0, v] = t
        pc = V[F_PC, v]
        if pc == n:
            V[F_PC, v] = 0
            if V[F_PENDING, v] >= ONE_NS:
                V[F_LOOP_END, v] = 1
                return 1, _flush(A, v)
            _unit_done(A, v, t)
            continue
        op = PR[p, PR_OPS + 3 * pc]
        a = PR[p, PR_OPS + 3 * pc + 1]
        b = PR[p, PR_OPS + 3 * pc + 2]
        if op == OP_CPU:
            if b == 1:
                x = int(_draw(A, v) * a)
                if x < ONE_NS:
                    x = ONE_NS
                PC[maxops + pc, v] += x
                V[F_PENDING, v] += x
            else:
                V[F_PENDING, v] += a
            PC[pc, v] += 1
            V[F_PC, v] = pc + 1
            continue
        if V[F_IDLED, v]:
            wake = V[F_WAKE_AT, v]
        else:
            if V[F_PENDING, v] >= ONE_NS:
                return 1, _flush(A, v)
            if op == OP_SLEEP:
                if b == 1:
                    d = int(_draw(A, v) * a)
                    if d < 1:
                        d = 1
                    wake = t + d
                else:
                    wake = t + a
            else:
                if t > b:
                    k = -((-(t - b)) // a)
                    if k < 0:
                        k = 0
                    wake = b + k * a
                else:
                    wake = b
            if wake <= t:
                V[F_PC, v] = pc + 1
                if op == OP_PERIOD:
                    V[F_T0, v] = wake
                continue
            if idle_mode == IDLE_BEFORE and idle_cost:
                V[F_PENDING, v] += idle_cost
                V[F_IDLES, v] += 1
                if V[F_PENDING, v] >= ONE_NS:
                    V[F_IDLED, v] = 1
                    V[F_WAKE_AT, v] = wake
                    return 1, _flush(A, v)
        V[F_IDLED, v] = 0
        V[F_PC, v] = pc + 1
        if op == OP_PERIOD:
            V[F_T0, v] = wake
        if idle_mode == IDLE_ON_WAKE and idle_cost:
            V[F_PENDING, v] += idle_cost
            V[F_IDLES, v] += 1
        if wake <= t:
            continue
        return 2, wake - t
    return 0, 0


# ============================================================================== the dispatcher
@njit(cache=True)
def demand(A, v, t):
    """``_next_demand`` for a program vCPU (WANTS / NOT_RUNNABLE), or NEED for an external one."""
    V = A.V
    G = A.G
    if V[F_EXTERNAL, v]:
        G[G_NEED_V] = v
        G[G_CONT_V] = v
        return NEED
    kind, ns = prog_next(A, v, t)
    G[G_NDEMAND] += 1
    if kind == 1:
        V[F_REMAINING, v] = ns
        return WANTS
    if kind == 2:
        V[F_BLOCKED, v] = 1
        V[F_BLOCK_GEN, v] += 1
        push(A, t + ns, EV_BLOCKWAKE, v, V[F_BLOCK_GEN, v])
        trace(A, V[F_CPU, v], TRC_SCHED_BLOCK, 2, V[F_DOMID, v], V[F_VCPU_ID, v], 0, 0, 0)
        return NOT_RUNNABLE
    G[G_NEED_V] = E_LIVELOCK_DEMAND
    G[G_CONT_V] = v
    return -2


@njit(cache=True)
def _progress(A, cpu, v, t):
    P = A.P
    V = A.V
    ws = P[P_WORK_START, cpu]
    if t > ws:
        done = t - ws
        rem = V[F_REMAINING, v]
        V[F_REMAINING, v] = 0 if done >= rem else rem - done
        P[P_WORK_START, cpu] = t


@njit(cache=True)
def place_and_wake(A, v):
    V = A.V
    V[F_CPU, v] = s_pick_cpu(A, v)
    V[F_MIGRATING, v] = 1
    s_wake(A, v)
    V[F_MIGRATING, v] = 0


@njit(cache=True)
def _switch(A, cpu, prev, nxt, t):
    V = A.V
    P = A.P
    G = A.G
    if prev >= 0:
        V[F_IS_RUNNING, prev] = 0
        if runnable(A, prev):
            st = RUNSTATE_runnable
        elif V[F_BLOCKED, prev]:
            st = RUNSTATE_blocked
        else:
            st = RUNSTATE_offline
        set_runstate(A, prev, st, t)
        s_context_saved(A, prev)
        if V[F_DONE, prev]:
            s_remove(A, prev)
    else:
        P[P_IDLE_NS, cpu] += t - P[P_IDLE_SINCE, cpu]
    P[P_CURR, cpu] = nxt
    if nxt >= 0:
        if V[F_IS_RUNNING, nxt] or not runnable(A, nxt):
            G[G_NEED_V] = E_PICKED_BAD
            G[G_CONT_V] = nxt
            return False
        if V[F_RAN_ON, nxt] >= 0 and V[F_RAN_ON, nxt] != cpu:
            V[F_MIGRATIONS, nxt] += 1
        V[F_RAN_ON, nxt] = cpu
        V[F_CPU, nxt] = cpu
        V[F_IS_RUNNING, nxt] = 1
        V[F_EVER_RAN, nxt] = 1
        V[F_CTX_IN, nxt] += 1
        P[P_SWITCHES, cpu] += 1
        if V[F_WAKE_NS, nxt] >= 0:
            k = G[G_WN]
            A.WB[WB_V, k] = nxt
            A.WB[WB_NS, k] = t - V[F_WAKE_NS, nxt]
            G[G_WN] = k + 1
            V[F_WAKE_NS, nxt] = -1
        set_runstate(A, nxt, RUNSTATE_running, t)
        V[F_LAST_RUN_START, nxt] = t
        lazy = prev < 0 and P[P_LAST_ON, cpu] == nxt  # idle kept nxt's state loaded
        P[P_LAST_ON, cpu] = nxt
        cost = G[G_SCHED_NS] if lazy else G[G_SWITCH_NS]
        P[P_FP_CACHE, cpu] = 0
        P[P_FP_TLB, cpu] = 0
        P[P_FP_UNDO_CD, cpu] = -2  # no footprint charge to take back
        if not lazy and G[G_FP_ON] != 0:
            _footprint(A, cpu, nxt)
            cost += P[P_FP_CACHE, cpu] + P[P_FP_TLB, cpu]
            A.D[D_FP_CACHE_NS, V[F_DOM, nxt]] += P[P_FP_CACHE, cpu]
            A.D[D_FP_TLB_NS, V[F_DOM, nxt]] += P[P_FP_TLB, cpu]
        A.D[D_SWITCH_NS, V[F_DOM, nxt]] += cost
        P[P_LAST_COST, cpu] = cost
        P[P_WORK_START, cpu] = t + cost
    else:
        P[P_IDLE_SINCE, cpu] = t
    if G[G_TRACE] != 0:
        if prev >= 0:
            pd, pu = V[F_DOMID, prev], V[F_VCPU_ID, prev]
        else:
            pd, pu = DOMID_IDLE, cpu
        if nxt >= 0:
            nd, nu = V[F_DOMID, nxt], V[F_VCPU_ID, nxt]
        else:
            nd, nu = DOMID_IDLE, cpu
        trace(A, cpu, TRC_SCHED_SWITCH, 4, pd, pu, nd, nu, 0)
    if prev >= 0 and V[F_MIGRATE_PENDING, prev]:
        V[F_MIGRATE_PENDING, prev] = 0
        V[F_PAUSE, prev] -= 1
        if runnable(A, prev):
            set_runstate(A, prev, RUNSTATE_runnable, t)
            place_and_wake(A, prev)
    return True


@njit(cache=True)
def _lru_evicted(ws, others, cap):
    if cap <= 0:
        return 0
    w = ws if ws < cap else cap
    e = w + others - cap
    if e <= 0:
        return 0
    return w if e > w else e


@njit(cache=True)
def _footprint(A, cpu, nxt):
    """The cache and TLB refill of ``nxt`` switched in on ``cpu`` into ``P_FP_CACHE``/``P_FP_TLB`` (ns):
    the compiled form of :meth:`pvsim.sched.footprint.FootprintTracker.charge` (same integers)."""
    G = A.G
    V = A.V
    P = A.P
    c = P[P_FP_CD, cpu]
    mine = V[F_FP_SEQ, nxt]
    P[P_FP_UNDO_SEQ, cpu] = mine
    P[P_FP_UNDO_CD, cpu] = V[F_FP_CD, nxt]
    G[G_FP_SEQ] += 1
    V[F_FP_SEQ, nxt] = G[G_FP_SEQ]
    V[F_FP_CD, nxt] = c
    ws = V[F_FP_LINES, nxt]
    pg = V[F_FP_PAGES, nxt]
    if mine < 0 or (ws == 0 and pg == 0):
        return
    cold = P[P_FP_UNDO_CD, cpu] != c
    lines = 0
    pages = 0
    if not cold:
        for k in range(G[G_NV]):
            if k != nxt and V[F_FP_SEQ, k] > mine and V[F_FP_CD, k] == c:
                lines += V[F_FP_LINES, k]
                pages += V[F_FP_PAGES, k]
    cps = 0
    for lv in range(3):
        cap = G[G_FP_CAP0 + lv]
        if cap > 0:
            if cold:
                n = ws if ws < cap else cap
            else:
                n = _lru_evicted(ws, lines, cap)
            cps += n * G[G_FP_PS0 + lv]
    tps = 0
    p = pg - G[G_FP_SWITCH_PAGES]
    if p > 0:
        if G[G_FP_TAGGED] != 0 and not cold:
            p = _lru_evicted(p, pages, G[G_FP_TLB_ENTRIES])
        elif p > G[G_FP_TLB_ENTRIES]:
            p = G[G_FP_TLB_ENTRIES]
        tps = p * V[F_FP_PAGE_PS, nxt]
    P[P_FP_CACHE, cpu] = (cps + 500) // 1000
    P[P_FP_TLB, cpu] = (tps + 500) // 1000


@njit(cache=True)
def _refund(A, cpu, v, cost):
    d = A.V[F_DOM, v]
    A.D[D_SWITCH_NS, d] -= cost
    P = A.P
    if P[P_FP_UNDO_CD, cpu] != -2:  # a footprint was charged at this switch: take it back
        A.D[D_FP_CACHE_NS, d] -= P[P_FP_CACHE, cpu]
        A.D[D_FP_TLB_NS, d] -= P[P_FP_TLB, cpu]
        if P[P_FP_UNDO_SEQ, cpu] < 0:
            A.V[F_FP_SEQ, v] = -1
            A.V[F_FP_CD, v] = -1
        else:
            A.V[F_FP_SEQ, v] = P[P_FP_UNDO_SEQ, cpu]
            A.V[F_FP_CD, v] = P[P_FP_UNDO_CD, cpu]
        P[P_FP_CACHE, cpu] = 0
        P[P_FP_TLB, cpu] = 0
        P[P_FP_UNDO_CD, cpu] = -2


@njit(cache=True)
def arm(A, cpu, t):
    P = A.P
    V = A.V
    w = P[P_WORK_START, cpu] + V[F_REMAINING, P[P_CURR, cpu]]
    se = P[P_SLICE_END, cpu]
    if se >= 0 and se < w:
        w = se
    P[P_GEN, cpu] += 1
    push(A, w if w > t else t, EV_DECISION, cpu, P[P_GEN, cpu])


@njit(cache=True)
def _error(A, code, v):
    A.G[G_NEED_V] = code
    A.G[G_CONT_V] = v
    return ST_ERROR


@njit(cache=True)
def schedule_loop(A, cpu):
    G = A.G
    P = A.P
    V = A.V
    t = G[G_NOW]
    for _ in range(ZERO_LIMIT):
        prev = P[P_CURR, cpu]
        if prev >= 0:
            _progress(A, cpu, prev, t)
        nxt, slice_ns = s_do_schedule(A, cpu, t, prev)
        G[G_NSCHED] += 1
        if nxt != prev:
            if not _switch(A, cpu, prev, nxt, t):
                return ST_ERROR
        elif prev >= 0:
            if not runnable(A, prev):
                return _error(A, E_KEPT_NOT_RUNNABLE, prev)
            trace(A, cpu, TRC_SCHED_CONTINUE_RUNNING, 1, (V[F_DOMID, prev] << 16) | V[F_VCPU_ID, prev], 0, 0, 0, 0)
        if nxt < 0:
            P[P_SLICE_END, cpu] = -1
            P[P_GEN, cpu] += 1  # cancel the decision timer
            return OK
        P[P_SLICE_END, cpu] = -1 if slice_ns < 0 else t + (slice_ns if slice_ns > 1 else 1)
        if V[F_REMAINING, nxt] == 0:
            r = demand(A, nxt, t)
            if r == NEED:
                G[G_CONT] = C_SCHED
                G[G_CONT_CPU] = cpu
                G[G_CONT_X] = 1 if nxt != prev else 0
                return ST_NEED_DEMAND
            if r < 0:
                return ST_ERROR
            if r == NOT_RUNNABLE:
                if nxt != prev and P[P_LAST_COST, cpu]:
                    _refund(A, cpu, nxt, P[P_LAST_COST, cpu])
                continue
        arm(A, cpu, t)
        return OK
    return _error(A, E_LIVELOCK_SCHED, cpu)


@njit(cache=True)
def schedule(A, cpu):
    """``schedule()`` for one pCPU."""
    A.P[P_SOFTIRQ, cpu] = 0
    return schedule_loop(A, cpu)


@njit(cache=True)
def _decision_tail(A, cpu, t):
    se = A.P[P_SLICE_END, cpu]
    if se >= 0 and t >= se:
        return schedule(A, cpu)
    arm(A, cpu, t)
    return OK


@njit(cache=True)
def decision(A, cpu, g):
    P = A.P
    V = A.V
    G = A.G
    if P[P_GEN, cpu] != g:
        return OK  # superseded
    t = G[G_NOW]
    v = P[P_CURR, cpu]
    _progress(A, cpu, v, t)
    if V[F_REMAINING, v] == 0 and t >= P[P_WORK_START, cpu]:
        r = demand(A, v, t)
        if r == NEED:
            G[G_CONT] = C_DECISION
            G[G_CONT_CPU] = cpu
            return ST_NEED_DEMAND
        if r < 0:
            return ST_ERROR
        if r == NOT_RUNNABLE:
            return schedule(A, cpu)  # vcpu_block: SCHEDULE_SOFTIRQ, handled at once
    return _decision_tail(A, cpu, t)


@njit(cache=True)
def wake_from_block(A, v, gen):
    V = A.V
    if V[F_BLOCK_GEN, v] != gen or V[F_BLOCKED, v] == 0:
        return
    V[F_BLOCKED, v] = 0
    t = A.G[G_NOW]
    trace(A, V[F_CPU, v], TRC_SCHED_WAKE, 2, V[F_DOMID, v], V[F_VCPU_ID, v], 0, 0, 0)
    if runnable(A, v):
        set_runstate(A, v, RUNSTATE_runnable, t)
        V[F_WAKE_NS, v] = t
        s_wake(A, v)
    else:
        set_runstate(A, v, RUNSTATE_offline, t)


@njit(cache=True)
def _interrupt(A, v):
    """The zero-delay decision of an interrupt (``HostRunner._interrupt``) up to asking the behaviour
    to give its Run back."""
    V = A.V
    G = A.G
    V[F_IRQ_PENDING, v] = 0
    if V[F_BLOCK_AFTER, v] or V[F_BLOCKED, v]:
        return OK
    if V[F_IS_RUNNING, v] == 0:
        if runnable(A, v) and V[F_REMAINING, v] > 0:
            G[G_CONT] = C_INTERRUPT
            G[G_CONT_CPU] = -1
            G[G_CONT_V] = v
            return ST_NEED_PREEMPT
        return OK
    cpu = V[F_CPU, v]
    t = G[G_NOW]
    if t < A.P[P_WORK_START, cpu]:
        return OK
    _progress(A, cpu, v, t)
    if V[F_REMAINING, v] == 0:
        return OK
    G[G_CONT] = C_INTERRUPT
    G[G_CONT_CPU] = cpu
    G[G_CONT_V] = v
    return ST_NEED_PREEMPT


@njit(cache=True)
def _stimer(A, h, t):
    TM = A.TM
    TM[TM_WHEN, h] = -1
    if TM[TM_ACTIVE, h]:
        TM[TM_ACTIVE, h] = 0
        s_timer(A, TM[TM_KIND, h], TM[TM_ARG, h], t)


@njit(cache=True)
def _dispatch(A, kind, a, b):
    if kind == EV_DECISION:
        return decision(A, a, b)
    if kind == EV_SOFTIRQ:
        P = A.P
        if P[P_SOFTIRQ, a] and P[P_SGEN, a] == b:
            return schedule(A, a)
        return OK
    if kind == EV_BLOCKWAKE:
        wake_from_block(A, a, b)
        return OK
    if kind == EV_STIMER:
        _stimer(A, a, A.G[G_NOW])
        return OK
    if kind == EV_INTERRUPT:
        return _interrupt(A, a)
    return OK


@njit(cache=True)
def _loop(A):
    G = A.G
    Q = A.Q
    lt = G[G_LIM_T]
    lp = G[G_LIM_P]
    le = G[G_LIM_E]
    tcap = A.T.shape[1] - MARGIN_T
    lcap = A.LB.shape[1] - MARGIN_T
    wcap = A.WB.shape[1] - MARGIN_T
    qcap = Q.shape[1] - MARGIN_Q
    while G[G_QN] > 0:
        if G[G_TN] > tcap or G[G_LN] > lcap or G[G_WN] > wcap or G[G_QN] > qcap or G[G_REFILL]:
            return ST_DRAIN
        t = Q[Q_T, 0]
        if not (t < lt or (t == lt and (1 < lp or (1 == lp and Q[Q_SEQ, 0] < le)))):
            break
        i = pop(A)
        G[G_NOW] = t
        st = _dispatch(A, Q[Q_KIND, i], Q[Q_A, i], Q[Q_B, i])
        if st != OK:
            return st
    return ST_DONE


@njit(cache=True)
def _continue(A, r):
    """Carry on after the Python side answered: ``r`` is the demand's result (WANTS/NOT_RUNNABLE) for
    ``ST_NEED_DEMAND``, 1/0 (it gave the rest back or not) for ``ST_NEED_PREEMPT``."""
    G = A.G
    c = G[G_CONT]
    G[G_CONT] = C_NONE
    cpu = G[G_CONT_CPU]
    t = G[G_NOW]
    if c == C_SCHED:
        if r == WANTS:
            arm(A, cpu, t)
            return OK
        nxt = A.P[P_CURR, cpu]
        if G[G_CONT_X] and A.P[P_LAST_COST, cpu]:
            _refund(A, cpu, nxt, A.P[P_LAST_COST, cpu])
        return schedule_loop(A, cpu)
    if c == C_DECISION:
        if r == WANTS:
            return _decision_tail(A, cpu, t)
        return schedule(A, cpu)
    if c == C_INTERRUPT:
        v = G[G_CONT_V]
        if r == 0:
            return OK  # the behaviour keeps its Run
        A.V[F_REMAINING, v] = 0
        if cpu < 0:
            return OK  # a runnable vCPU: asked again when it is next dispatched
        d = demand(A, v, t)
        if d == NEED:
            G[G_CONT] = C_DECISION
            G[G_CONT_CPU] = cpu
            return ST_NEED_DEMAND
        if d < 0:
            return ST_ERROR
        if d == NOT_RUNNABLE:
            return schedule(A, cpu)
        return _decision_tail(A, cpu, t)
    return OK


# ============================================================================== entries from Python
@njit(cache=True)
def k_advance(M, lt, lp, le):
    """Run the host's events with keys below ``(lt, lp, le)``; a status (``ST_*``)."""
    A = views(M)
    G = A.G
    G[G_LIM_T] = lt
    G[G_LIM_P] = lp
    G[G_LIM_E] = le
    return _loop(A)


@njit(cache=True)
def k_resume(M, r):
    """Carry on after ``ST_NEED_*`` (``r``: the answer) or ``ST_DRAIN`` (``r`` ignored)."""
    A = views(M)
    st = _continue(A, r)
    if st != OK:
        return st
    return _loop(A)


@njit(cache=True)
def k_wake_from_block(M, v, gen):
    wake_from_block(views(M), v, gen)


@njit(cache=True)
def k_raise_softirq(M, cpu):
    raise_softirq(views(M), cpu)


@njit(cache=True)
def k_push_interrupt(M, v):
    A = views(M)
    A.V[F_IRQ_PENDING, v] = 1
    push(A, A.G[G_NOW], EV_INTERRUPT, v, 0)


@njit(cache=True)
def k_yield(M, v):
    A = views(M)
    V = A.V
    s_yield(A, v)
    trace(A, V[F_CPU, v], TRC_SCHED_YIELD, 2, V[F_DOMID, v], V[F_VCPU_ID, v], 0, 0, 0)
    if V[F_IS_RUNNING, v]:
        raise_softirq(A, V[F_CPU, v])


@njit(cache=True)
def k_pause(M, v):
    A = views(M)
    if pause_pre(A, v):
        s_sleep(A, v)


@njit(cache=True)
def k_unpause(M, v):
    A = views(M)
    if unpause_pre(A, v):
        s_wake(A, v)


@njit(cache=True)
def k_request_migrate(M, v):
    """``request_migrate``: the running case as ``base.request_migrate_running``; a runnable unit is
    put to sleep and placed and woken again; another is just re-placed."""
    A = views(M)
    V = A.V
    if V[F_IS_RUNNING, v]:
        if V[F_MIGRATE_PENDING, v] == 0:
            V[F_MIGRATE_PENDING, v] = 1
            V[F_PAUSE, v] += 1
            raise_softirq(A, V[F_CPU, v])
    elif runnable(A, v):
        s_sleep(A, v)
        place_and_wake(A, v)
    else:
        V[F_CPU, v] = s_pick_cpu(A, v)


@njit(cache=True)
def k_destroy(M, v):
    """``HostRunner.destroy_vcpu``."""
    A = views(M)
    V = A.V
    if V[F_DONE, v]:
        return
    was = runnable(A, v)
    V[F_DONE, v] = 1
    V[F_BLOCKED, v] = 0
    V[F_BLOCK_GEN, v] += 1
    if V[F_IS_RUNNING, v]:
        raise_softirq(A, V[F_CPU, v])
        return
    if was:
        s_sleep(A, v)
    set_runstate(A, v, RUNSTATE_offline, A.G[G_NOW])
    s_remove(A, v)


@njit(cache=True)
def k_affinity_changed(M, v):
    s_affinity_changed(views(M), v)


@njit(cache=True)
def k_start_sched(M, t):
    s_start(views(M), t)


@njit(cache=True)
def k_bring_online(M, v, wants):
    """``_bring_online`` after the demand (asked in Python for an external vCPU, here for a program)."""
    A = views(M)
    V = A.V
    G = A.G
    t = G[G_NOW]
    if wants < 0:  # a program: ask it here
        wants = demand(A, v, t)
        if wants < 0:
            return ST_ERROR
    V[F_PAUSE, v] += 1  # created paused, inserted, then unpaused
    s_insert(A, v)
    V[F_PAUSE, v] -= 1
    if wants == WANTS:
        set_runstate(A, v, RUNSTATE_runnable, t)
        s_wake(A, v)
    else:
        set_runstate(A, v, RUNSTATE_blocked if V[F_BLOCKED, v] else RUNSTATE_offline, t)
        if V[F_DONE, v]:
            s_remove(A, v)
    return ST_DONE


@njit(cache=True)
def k_call(M, op, a, b):
    """A scheduler operation requested from Python (``xl sched-*`` changes that need its logic)."""
    return s_call(views(M), op, a, b)


@njit(cache=True)
def k_start(M):
    A = views(M)
    A.G[G_STARTED] = 1


@njit(cache=True)
def k_noop(M):
    """Compile-and-load probe (the first call of each entry loads it from numba's cache)."""
    return views(M).G[G_NOW]


kernels.register_system("pvsim.sched.hk", reference="pvsim.sched.runner.HostRunner",
                        test="tests/sched/test_hk_equivalence.py")
