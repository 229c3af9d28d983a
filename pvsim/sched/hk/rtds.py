"""``rtds`` compiled: :mod:`pvsim.sched.rtds` (``xen/common/sched/rt.c``) over the arena.

Design note
-----------
Step for step :class:`pvsim.sched.rtds.Rtds`: EDF within priority levels on one global runqueue, a
depleted "queue", a replenishment queue served by one scheduler timer, ``burn_budget``,
``rt_update_deadline``, ``runq_tickle``, ``rt_schedule``. Where the state lives:

* per vCPU (``SV``): the parameters (period, budget in ns, extratime), ``cur_deadline``,
  ``cur_budget``, ``last_start``, ``priority_level``, the ``queued`` and ``depleted`` flags, the
  replenishment token (``in_replq``; 0 = not in the replenishment queue), the deadline misses and
  periods (the xl view's counters), the runqueue key it was queued with (level, deadline, queue
  sequence), its position in the replenishment heap and the deadline of its entry there;
* the runqueue (``RQ`` row 0): an indexed binary min-heap of the queued, non-depleted units by
  ``(level, deadline, seq)`` (position in ``SV``). The Python scheduler keeps the keys unsorted and
  takes the minimum among the units allowed on the pCPU (:func:`pvsim.sched.rtds_core.rt_pick`);
  the keys are unique (the sequence is), so the root, when it may run on the pCPU, is the same unit,
  found in O(1) (queueing and dequeueing in O(log n)); otherwise (hard affinity) the heap is
  scanned for the least allowed key, as the Python scan does;
* the depleted queue is the ``depleted`` flag alone (the Python list is only appended to and
  removed from, never read in order);
* the replenishment queue (``RQ`` row 1): an indexed binary heap with one entry per unit, keyed
  ``(deadline, token)``. The Python heap removes lazily (stale tokens are skipped); its live
  entries are exactly this heap's, and both pop in ``(deadline, token)`` order (tokens are unique);
* ``RQ`` row 2: the units a replenishment moved (the handler's ``moved`` list);
* ``SX`` row 0: the ``tickled`` set of pCPUs (ascending iteration = ``sorted``).

The replenishment timer is one ``base.timer`` (handle and expiry in ``SG``), armed, cancelled and
re-armed at the same points as the Python ``_arm_repl`` (so the same SimPy event ids are drawn).
Cancelled timers keep their slot until their event pops, hence the generous ``timers`` size.

Under this dispatcher ``unit.priv`` is an :class:`ArenaRtu`, a view of the unit's ``SV`` column with
the attributes of :class:`pvsim.sched.rtds._Rtu`, so the Python scheduler's ``unit_info``,
``dom_info``, ``deadline_misses`` and ``adjust_units`` (``xl sched-rtds``) work unchanged on the arena.

Simplifications: those of :mod:`pvsim.sched.rtds` (tickling ignores soft affinity).
"""

from __future__ import annotations

from numba import njit

from hypercalls.trace import TRC_RTDS_BUDGET_REPLENISH, TRC_RTDS_TICKLE
from pvsim.core.errors import ScenarioError
from pvsim.sched.hk.base import (
    allowed,
    bit_clear,
    bit_set,
    hard_min,
    raise_softirq,
    runnable,
    timer_cancel,
    trace,
)
from pvsim.sched.hk.base import timer as arm_timer
from pvsim.sched.hk.layout import (
    F_CPU,
    F_DOMID,
    F_HARD_ALL,
    F_IS_RUNNING,
    F_VCPU_ID,
    G_NOW,
    G_NP,
    P_CURR,
    SG,
    SV,
    TM_ACTIVE,
)
from pvsim.sched.params import sched_param_defaults

READY = True
US = 1_000

# SV rows (per vCPU)
(R_PERIOD, R_BUDGET, R_EXTRA, R_DL, R_CB, R_LAST, R_LEVEL, R_QUEUED, R_DEPL, R_TOK, R_MISSES, R_PERIODS,
 R_KL, R_KD, R_KS, R_HPOS, R_HDL, R_QPOS) = range(18)
# SG (globals)
S_SEQ, S_TOKN, S_RQN, S_HN, S_TH, S_TWHEN = range(6)
RQ_RUN, RQ_HEAP, RQ_MOVED = 0, 1, 2
X_TICKLED = 0
T_REPL = 1  # timer kind

SIZES = {"sv": 18, "sp": 1, "sd": 1, "sg": 8, "rq_rows": 3, "sx": 1, "timers": 4096}


# ============================================================================== Python side
class ArenaRtu:
    """``unit.priv`` under the compiled dispatcher: the unit's ``SV`` column with the attributes of
    :class:`pvsim.sched.rtds._Rtu` (read and written in the arena of the runner as it is now)."""

    __slots__ = ("runner", "v")

    def __init__(self, runner, v):
        self.runner, self.v = runner, v

    def _get(self, f):
        return int(self.runner.arena.region(SV)[f, self.v])

    def _set(self, f, x):
        self.runner.arena.region(SV)[f, self.v] = int(x)

    def key(self):
        return (self.level, self.cur_deadline)


def _field(f, kind=int, writable=False):
    def get(self):
        return kind(self._get(f))

    def put(self, x):
        self._set(f, x)

    return property(get, put if writable else None)


for _name, _f, _kind, _w in (("period", R_PERIOD, int, True), ("budget", R_BUDGET, int, True),
                             ("extratime", R_EXTRA, bool, True), ("cur_deadline", R_DL, int, False),
                             ("cur_budget", R_CB, int, False), ("last_start", R_LAST, int, False),
                             ("level", R_LEVEL, int, False), ("queued", R_QUEUED, bool, False),
                             ("depleted", R_DEPL, bool, False), ("in_replq", R_TOK, int, False),
                             ("misses", R_MISSES, int, False), ("periods", R_PERIODS, int, False)):
    setattr(ArenaRtu, _name, _field(_f, _kind, _w))


def init(arena, sched) -> None:
    """Globals: nothing queued, no timer (the units' columns are written by :func:`load_unit`)."""
    g = arena.region(SG)[0]
    g[S_SEQ] = g[S_TOKN] = g[S_RQN] = g[S_HN] = 0
    g[S_TH] = -1
    g[S_TWHEN] = -1


def load_unit(runner, unit) -> None:
    """The unit's parameters (``rt_alloc_udata`` with the domain's ``sched`` table), as the Python
    ``insert_unit`` takes them; ``unit.priv`` becomes its :class:`ArenaRtu`."""
    p = {**sched_param_defaults("rtds", "vcpu"), **{k: v for k, v in unit.params.items()
                                                     if k in ("period_us", "budget_us", "extratime")}}
    if p["budget_us"] > p["period_us"]:
        raise ScenarioError(f"domains[{unit.dom.domid}].sched.budget_us", "must not exceed period_us")
    col = runner.arena.region(SV)[:, unit.uid]
    col[:] = 0
    col[R_PERIOD] = p["period_us"] * US
    col[R_BUDGET] = p["budget_us"] * US
    col[R_EXTRA] = int(bool(p["extratime"]))
    col[R_HPOS] = -1
    col[R_QPOS] = -1
    unit.priv = ArenaRtu(runner, unit.uid)


def adjust_units(runner, units, params: dict) -> None:
    """``xl sched-rtds -d D [-v V] -p -b -e``: the Python scheduler's ``adjust_units`` on the units'
    :class:`ArenaRtu` (it writes the arena; nothing is re-armed, as in the Python scheduler)."""
    runner.sched.adjust_units(units, params)


def adjust(runner, dom, params: dict) -> None:
    runner.sched.adjust(dom, params)


def adjust_global(runner, params: dict) -> None:
    """rtds has no pool-wide parameters (validation only, as in the Python scheduler)."""
    runner.sched.adjust_global(params)


# ============================================================================== the runqueue
@njit(cache=True)
def _rq_less(SV, a, b):
    """Stored key of ``a`` < stored key of ``b``: (level, deadline, seq)."""
    la = SV[R_KL, a]
    lb = SV[R_KL, b]
    if la != lb:
        return la < lb
    da = SV[R_KD, a]
    db = SV[R_KD, b]
    if da != db:
        return da < db
    return SV[R_KS, a] < SV[R_KS, b]


@njit(cache=True)
def _q_up(A, i):
    SV = A.SV
    q = A.RQ[RQ_RUN]
    v = q[i]
    while i > 0:
        p = (i - 1) >> 1
        u = q[p]
        if _rq_less(SV, v, u):
            q[i] = u
            SV[R_QPOS, u] = i
            i = p
        else:
            break
    q[i] = v
    SV[R_QPOS, v] = i


@njit(cache=True)
def _q_down(A, i):
    SV = A.SV
    q = A.RQ[RQ_RUN]
    n = A.SG[S_RQN]
    v = q[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _rq_less(SV, q[c + 1], q[c]):
            c += 1
        u = q[c]
        if _rq_less(SV, u, v):
            q[i] = u
            SV[R_QPOS, u] = i
            i = c
        else:
            break
    q[i] = v
    SV[R_QPOS, v] = i


@njit(cache=True)
def _rq_insert(A, v):
    SG = A.SG
    n = SG[S_RQN]
    A.RQ[RQ_RUN, n] = v
    SG[S_RQN] = n + 1
    _q_up(A, n)


@njit(cache=True)
def _rq_remove(A, v):
    SV = A.SV
    SG = A.SG
    i = SV[R_QPOS, v]
    if i < 0:
        return
    SV[R_QPOS, v] = -1
    n = SG[S_RQN] - 1
    SG[S_RQN] = n
    if i == n:
        return
    q = A.RQ[RQ_RUN]
    x = q[n]
    q[i] = x
    SV[R_QPOS, x] = i
    _q_up(A, i)
    if SV[R_QPOS, x] == i:
        _q_down(A, i)


@njit(cache=True)
def _pick(A, cpu):
    """``_pick``: the highest-priority queued unit allowed on ``cpu``, or -1 (the heap's root when it
    may run there, else the least key among the allowed ones, as the Python scan)."""
    n = A.SG[S_RQN]
    if n == 0:
        return -1
    q = A.RQ[RQ_RUN]
    V = A.V
    HARD = A.HARD
    w = cpu >> 6
    b = cpu & 63
    u = q[0]
    if V[F_HARD_ALL, u] or (HARD[u, w] >> b) & 1 == 1:
        return u
    SV = A.SV
    best = -1
    for i in range(1, n):
        u = q[i]
        if V[F_HARD_ALL, u] or (HARD[u, w] >> b) & 1 == 1:
            if best < 0 or _rq_less(SV, u, best):
                best = u
    return best


# ============================================================================== the replenishment heap
@njit(cache=True)
def _h_less(SV, a, b):
    da = SV[R_HDL, a]
    db = SV[R_HDL, b]
    return da < db or (da == db and SV[R_TOK, a] < SV[R_TOK, b])


@njit(cache=True)
def _h_up(A, i):
    SV = A.SV
    h = A.RQ[RQ_HEAP]
    v = h[i]
    while i > 0:
        p = (i - 1) >> 1
        u = h[p]
        if _h_less(SV, v, u):
            h[i] = u
            SV[R_HPOS, u] = i
            i = p
        else:
            break
    h[i] = v
    SV[R_HPOS, v] = i


@njit(cache=True)
def _h_down(A, i):
    SV = A.SV
    h = A.RQ[RQ_HEAP]
    n = A.SG[S_HN]
    v = h[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _h_less(SV, h[c + 1], h[c]):
            c += 1
        u = h[c]
        if _h_less(SV, u, v):
            h[i] = u
            SV[R_HPOS, u] = i
            i = c
        else:
            break
    h[i] = v
    SV[R_HPOS, v] = i


@njit(cache=True)
def _h_remove(A, v):
    SV = A.SV
    SG = A.SG
    i = SV[R_HPOS, v]
    if i < 0:
        return
    SV[R_HPOS, v] = -1
    n = SG[S_HN] - 1
    SG[S_HN] = n
    if i == n:
        return
    h = A.RQ[RQ_HEAP]
    x = h[n]
    h[i] = x
    SV[R_HPOS, x] = i
    _h_up(A, i)
    if SV[R_HPOS, x] == i:
        _h_down(A, i)


@njit(cache=True)
def _h_push(A, v):
    """A new live entry ``(cur_deadline, next token)`` for ``v`` (its old entry, if any, is dropped:
    the Python heap's stale entry)."""
    SV = A.SV
    SG = A.SG
    if SV[R_HPOS, v] >= 0:
        _h_remove(A, v)
    SG[S_TOKN] += 1
    SV[R_TOK, v] = SG[S_TOKN]
    SV[R_HDL, v] = SV[R_DL, v]
    n = SG[S_HN]
    A.RQ[RQ_HEAP, n] = v
    SG[S_HN] = n + 1
    _h_up(A, n)


@njit(cache=True)
def _replq_remove(A, v):
    """``_replq_remove``: ``in_replq = 0`` (and the entry leaves the heap)."""
    A.SV[R_TOK, v] = 0
    _h_remove(A, v)


@njit(cache=True)
def _replq_top(A):
    if A.SG[S_HN] == 0:
        return -1
    return A.RQ[RQ_HEAP, 0]


@njit(cache=True)
def _arm_repl(A):
    SG = A.SG
    top = _replq_top(A)
    when = -1 if top < 0 else A.SV[R_HDL, top]
    th = SG[S_TH]
    if th >= 0 and A.TM[TM_ACTIVE, th] and top >= 0 and SG[S_TWHEN] == when:
        return
    if th >= 0:
        timer_cancel(A, th)
        SG[S_TH] = -1
    if top >= 0:
        now = A.G[G_NOW]
        d = when - now
        if d < 0:
            d = 0
        SG[S_TH] = arm_timer(A, d, T_REPL, 0)
        SG[S_TWHEN] = now + d  # Timer.when


@njit(cache=True)
def _replq_insert(A, v):
    _h_push(A, v)
    _arm_repl(A)


# ============================================================================== budget and queues
@njit(cache=True)
def _update_deadline(A, v, now):
    """``rt_update_deadline``."""
    SV = A.SV
    dl = SV[R_DL, v]
    if now >= dl:
        if dl == 0:
            SV[R_DL, v] = now + SV[R_PERIOD, v]
        else:
            p = SV[R_PERIOD, v]
            SV[R_DL, v] = dl + ((now - dl) // p + 1) * p
        SV[R_PERIODS, v] += 1
    SV[R_CB, v] = SV[R_BUDGET, v]
    SV[R_LEVEL, v] = 0
    SV[R_DEPL, v] = 0


@njit(cache=True)
def _enqueue(A, v):
    """``runq_insert``."""
    SV = A.SV
    if SV[R_DEPL, v] == 0:
        SG = A.SG
        SV[R_KL, v] = SV[R_LEVEL, v]
        SV[R_KD, v] = SV[R_DL, v]
        SV[R_KS, v] = SG[S_SEQ]
        SG[S_SEQ] += 1
        _rq_insert(A, v)
    SV[R_QUEUED, v] = 1


@njit(cache=True)
def _dequeue(A, v):
    SV = A.SV
    if SV[R_QUEUED, v]:
        if SV[R_DEPL, v] == 0:
            _rq_remove(A, v)
        SV[R_QUEUED, v] = 0


@njit(cache=True)
def _burn(A, v, now):
    """``burn_budget``."""
    SV = A.SV
    delta = now - SV[R_LAST, v]
    SV[R_LAST, v] = now
    if delta <= 0:
        return
    SV[R_CB, v] -= delta
    if SV[R_CB, v] <= 0:
        if SV[R_EXTRA, v]:
            SV[R_LEVEL, v] += 1
            SV[R_CB, v] = SV[R_BUDGET, v]
        else:
            SV[R_CB, v] = 0
            SV[R_DEPL, v] = 1


@njit(cache=True)
def _key_lt(SV, a, b):
    """``a.key() < b.key()`` on the current (level, deadline)."""
    la = SV[R_LEVEL, a]
    lb = SV[R_LEVEL, b]
    return la < lb or (la == lb and SV[R_DL, a] < SV[R_DL, b])


@njit(cache=True)
def _tickle(A, v):
    """``runq_tickle``: an idle pCPU first, else the one running the lowest-priority unit."""
    SV = A.SV
    if SV[R_QUEUED, v] == 0 or SV[R_DEPL, v]:
        return
    V = A.V
    tick = A.SX[X_TICKLED]
    tick_any = False
    for w in range(tick.shape[0]):
        if tick[w] != 0:
            tick_any = True
            break
    hard_all = V[F_HARD_ALL, v]
    hrow = A.HARD[v]
    curr = A.P[P_CURR]
    lv = SV[R_LEVEL]
    dl = SV[R_DL]
    latest = -1
    ll = -1
    ld = -1
    idle = False
    for c in range(A.G[G_NP]):  # range(n) or sorted(hard): ascending
        if not hard_all and (hrow[c >> 6] >> (c & 63)) & 1 == 0:
            continue
        if tick_any and (tick[c >> 6] >> (c & 63)) & 1 == 1:
            continue
        cur = curr[c]
        if cur < 0:
            latest = c
            idle = True
            break
        cl = lv[cur]
        if cl > ll or (cl == ll and dl[cur] > ld):
            latest = c
            ll = cl
            ld = dl[cur]
    if not idle:
        nl = SV[R_LEVEL, v]
        if latest < 0 or not (nl < ll or (nl == ll and SV[R_DL, v] < ld)):
            return
    bit_set(tick, latest)
    trace(A, latest, TRC_RTDS_TICKLE, 1, latest, 0, 0, 0, 0)
    raise_softirq(A, latest)


@njit(cache=True)
def _repl_handler(A, now):
    """``repl_timer_handler``: refill every unit whose deadline passed."""
    SV = A.SV
    SG = A.SG
    V = A.V
    SG[S_TH] = -1
    moved = A.RQ[RQ_MOVED]
    nm = 0
    while True:
        u = _replq_top(A)
        if u < 0 or SV[R_HDL, u] > now:
            break
        _h_remove(A, u)
        SV[R_TOK, u] = 0
        if SV[R_LEVEL, u] == 0 and SV[R_CB, u] > 0 and (runnable(A, u) or V[F_IS_RUNNING, u]):
            SV[R_MISSES, u] += 1
        was_queued = SV[R_QUEUED, u]
        if was_queued:
            _dequeue(A, u)
        _update_deadline(A, u, now)
        trace(A, V[F_CPU, u], TRC_RTDS_BUDGET_REPLENISH, 2, V[F_DOMID, u], V[F_VCPU_ID, u], 0, 0, 0)
        if was_queued:
            _enqueue(A, u)
            moved[nm] = u
            nm += 1
        elif V[F_IS_RUNNING, u]:
            SV[R_LAST, u] = now
            moved[nm] = u
            nm += 1
        _h_push(A, u)
    _arm_repl(A)
    for i in range(nm):
        u = moved[i]
        if SV[R_QUEUED, u]:
            _tickle(A, u)
        elif V[F_IS_RUNNING, u]:
            cpu = V[F_CPU, u]
            head = _pick(A, cpu)
            if head >= 0 and _key_lt(SV, head, u):
                raise_softirq(A, cpu)


# ============================================================================== the ops
@njit(cache=True)
def pick_cpu(A, v):
    """The default placement: where it was if allowed, else its lowest allowed pCPU."""
    c = A.V[F_CPU, v]
    if allowed(A, v, c):
        return c
    return hard_min(A, v)


@njit(cache=True)
def insert(A, v):
    """``insert_unit`` (the parameters are in the arena already: :func:`load_unit`)."""
    _update_deadline(A, v, A.G[G_NOW])
    A.V[F_CPU, v] = pick_cpu(A, v)


@njit(cache=True)
def remove(A, v):
    _dequeue(A, v)
    _replq_remove(A, v)


@njit(cache=True)
def wake(A, v):
    """``rt_unit_wake``."""
    V = A.V
    SV = A.SV
    if A.P[P_CURR, V[F_CPU, v]] == v or SV[R_QUEUED, v]:
        return
    now = A.G[G_NOW]
    if now >= SV[R_DL, v]:
        _update_deadline(A, v, now)
    _enqueue(A, v)
    _replq_insert(A, v)
    _tickle(A, v)


@njit(cache=True)
def sleep(A, v):
    V = A.V
    c = V[F_CPU, v]
    if A.P[P_CURR, c] == v:
        raise_softirq(A, c)
    else:
        _dequeue(A, v)
    _replq_remove(A, v)


@njit(cache=True)
def yield_(A, v):
    pass


@njit(cache=True)
def context_saved(A, v):
    pass


@njit(cache=True)
def timer(A, kind, arg, now):
    if kind == T_REPL:
        _repl_handler(A, now)


@njit(cache=True)
def start(A, now):
    pass


@njit(cache=True)
def affinity_changed(A, v):
    """Nothing to copy: the kernels read the hard-affinity bitmap itself."""
    pass


@njit(cache=True)
def call(A, op, a, b):
    """Python-requested operations: none (``xl sched-rtds`` writes the parameters directly)."""
    return 0


@njit(cache=True)
def do_schedule(A, cpu, now, prev):
    """``rt_schedule``."""
    SV = A.SV
    bit_clear(A.SX[X_TICKLED], cpu)
    if prev >= 0:
        _burn(A, prev, now)
    snext = _pick(A, cpu)
    if prev >= 0 and runnable(A, prev) and SV[R_DEPL, prev] == 0:
        if snext < 0 or not _key_lt(SV, snext, prev):  # prev.key() <= snext.key()
            snext = prev
    if snext != prev:
        if prev >= 0 and runnable(A, prev):
            _enqueue(A, prev)
        if snext >= 0:
            _dequeue(A, snext)
    if snext < 0:
        return -1, -1
    SV[R_LAST, snext] = now
    A.V[F_CPU, snext] = cpu
    cb = SV[R_CB, snext]
    return snext, cb if cb > 1 else 1
