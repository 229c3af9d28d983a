"""``rtds``: Xen's real-time deferrable-server scheduler (``xen/common/sched/rt.c``).

Design note
-----------
Each unit has ``(period, budget, extratime)`` (default 10 ms / 4 ms / on, set in
``rt_alloc_udata``), a current deadline and a current budget. One global runqueue sorted by
(``priority_level``, ``cur_deadline``) (``compare_unit_priority``, EDF), a depleted queue, and a
replenishment queue served by one timer (``repl_timer_handler``). ``_burn`` (``burn_budget``)
charges the running unit; when its budget runs out it either gets ``priority_level + 1`` and a
fresh budget (extratime: it only competes with spare capacity) or waits depleted until its next
period. ``_update_deadline`` (``rt_update_deadline``) moves the deadline on by whole periods and
refills the budget (unused budget is lost). A blocked unit keeps its budget for the rest of its
period (deferrable server); on wake past its deadline it gets a fresh period. ``do_schedule``
(``rt_schedule``) runs the highest-priority unit the pCPU may run, for its remaining budget
(``next_time = cur_budget``); ``_tickle`` (``runq_tickle``) prefers an idle pCPU, else the pCPU
running the lowest-priority unit if the new one outranks it.

Deadline misses (not counted by Xen; added for analysis): at a replenishment, a unit that still
wanted the CPU (runnable or running) with budget left at priority level 0 missed its deadline.

Constants (rt.c): ``RTDS_DEFAULT_PERIOD`` 10 ms, ``RTDS_DEFAULT_BUDGET`` 4 ms, ``RTDS_MIN_PERIOD``
= ``RTDS_MIN_BUDGET`` = 10 us, extratime on by default.

The runqueue is struct-of-arrays (``keys`` = level, deadline, queue sequence; ``queued``;
``allowed``) and ``do_schedule`` picks with the compiled :func:`pvsim.sched.rtds_core.rt_pick`
(min ``(level, deadline, seq)`` among the queued units allowed on the pCPU), which is the
head-first scan of rt.c's sorted list.

Simplifications: the replenishment queue is a heap with lazy removal; tickling ignores soft affinity.
"""

from __future__ import annotations

import heapq

import numpy as np

from hypercalls.trace import TRC_RTDS_BUDGET_REPLENISH, TRC_RTDS_TICKLE
from pvsim.core.errors import ScenarioError
from pvsim.sched.ops import XEN_SCHEDULER_RTDS, Scheduler, register_scheduler
from pvsim.sched.params import sched_param_defaults
from pvsim.sched.rtds_core import rt_pick

US = 1_000


class _Rtu:
    __slots__ = ("period", "budget", "extratime", "cur_deadline", "cur_budget", "last_start",
                 "level", "queued", "depleted", "in_replq", "misses", "periods")

    def __init__(self, period, budget, extratime):
        self.period = period
        self.budget = budget
        self.extratime = extratime
        self.cur_deadline = 0
        self.cur_budget = 0
        self.last_start = 0
        self.level = 0
        self.queued = False
        self.depleted = False
        self.in_replq = 0  # token of the live replenishment-queue entry (0: none)
        self.misses = 0
        self.periods = 0

    def key(self):
        return (self.level, self.cur_deadline)


@register_scheduler("rtds")
class Rtds(Scheduler):
    sched_id = XEN_SCHEDULER_RTDS

    def attach(self, runner):
        super().attach(runner)
        cap = 16
        self.keys = np.zeros((3, cap), np.int64)  # level, deadline, queue sequence
        self.queued = np.zeros(cap, np.int64)
        self.allowed = np.ones((cap, self.n_pcpus), np.int64)
        self._pick_out = np.zeros(1, np.int64)
        self.seq = 0
        self.by_uid: dict[int, object] = {}
        self.depletedq: list = []
        self.replq: list = []  # heap of (cur_deadline, token, uid)
        self.repl_tok = 0
        self.repl_timer = None
        self.tickled: set[int] = set()

    def insert_unit(self, unit):
        p = {**sched_param_defaults("rtds", "vcpu"), **{k: v for k, v in unit.params.items()
                                                         if k in ("period_us", "budget_us", "extratime")}}
        if p["budget_us"] > p["period_us"]:
            raise ScenarioError(f"domains[{unit.dom.domid}].sched.budget_us", "must not exceed period_us")
        unit.priv = _Rtu(p["period_us"] * US, p["budget_us"] * US, p["extratime"])
        self._grow(unit.uid + 1)
        self.by_uid[unit.uid] = unit
        self.affinity_changed(unit)
        self._update_deadline(unit, self.runner.now)
        unit.cpu = self.pick_cpu(unit)

    def _grow(self, n):
        cap = self.keys.shape[1]
        if n <= cap:
            return
        new = max(n, 2 * cap)
        k = np.zeros((3, new), np.int64)
        k[:, :cap] = self.keys
        q = np.zeros(new, np.int64)
        q[:cap] = self.queued
        a = np.ones((new, self.n_pcpus), np.int64)
        a[:cap] = self.allowed
        self.keys, self.queued, self.allowed = k, q, a

    def affinity_changed(self, unit):
        row = self.allowed[unit.uid]
        if unit.hard is None:
            row[:] = 1
        else:
            row[:] = 0
            row[sorted(unit.hard)] = 1

    def _pick(self, cpu):
        """The highest-priority queued unit allowed on ``cpu`` (-1: anywhere), via the compiled core."""
        i = rt_pick(self.keys, self.queued, self.allowed, cpu, self._pick_out)
        return None if i < 0 else self.by_uid[i]

    def remove_unit(self, unit):
        self._dequeue(unit)
        self._replq_remove(unit)

    # ------------------------------------------------------------------ queues
    def _update_deadline(self, unit, now):
        """``rt_update_deadline``."""
        s = unit.priv
        if now >= s.cur_deadline:
            count = (now - s.cur_deadline) // s.period + 1 if s.cur_deadline else 1
            if s.cur_deadline == 0:
                s.cur_deadline = now + s.period
            else:
                s.cur_deadline += count * s.period
            s.periods += 1
        s.cur_budget = s.budget
        s.level = 0
        s.depleted = False

    def _enqueue(self, unit):
        """``runq_insert``: the runqueue (by level, deadline, then FIFO) or the depleted queue."""
        s = unit.priv
        if s.depleted:
            self.depletedq.append(unit)
        else:
            u = unit.uid
            self.keys[0, u] = s.level
            self.keys[1, u] = s.cur_deadline
            self.keys[2, u] = self.seq
            self.seq += 1
            self.queued[u] = 1
        s.queued = True

    def _dequeue(self, unit):
        s = unit.priv
        if s.queued:
            if s.depleted:
                self.depletedq.remove(unit)
            else:
                self.queued[unit.uid] = 0
            s.queued = False

    def _replq_insert(self, unit):
        """``replq_insert``: a heap of (deadline, token) with lazy removal (stale tokens are skipped)."""
        s = unit.priv
        self.repl_tok += 1
        s.in_replq = self.repl_tok
        heapq.heappush(self.replq, (s.cur_deadline, self.repl_tok, unit.uid))
        self._arm_repl()

    def _replq_remove(self, unit):
        unit.priv.in_replq = 0

    def _replq_top(self):
        q = self.replq
        while q and self.by_uid[q[0][2]].priv.in_replq != q[0][1]:
            heapq.heappop(q)
        return q[0] if q else None

    def _arm_repl(self):
        top = self._replq_top()
        when = None if top is None else top[0]
        if self.repl_timer is not None and self.repl_timer.active and self.repl_timer.when == when:
            return
        if self.repl_timer is not None:
            self.repl_timer.cancel()
            self.repl_timer = None
        if when is not None:
            r = self.runner
            self.repl_timer = r.timer(max(0, when - r.now), self._repl_handler)

    def _repl_handler(self, now):
        """``repl_timer_handler``: refill every unit whose deadline passed."""
        self.repl_timer = None
        moved = []
        while True:
            top = self._replq_top()
            if top is None or top[0] > now:
                break
            heapq.heappop(self.replq)
            u = self.by_uid[top[2]]
            s = u.priv
            s.in_replq = 0
            if s.level == 0 and s.cur_budget > 0 and (u.runnable or u.is_running):
                s.misses += 1
            was_queued = s.queued
            if was_queued:
                self._dequeue(u)
            self._update_deadline(u, now)
            self.runner._trace(u.cpu, TRC_RTDS_BUDGET_REPLENISH, u.dom.domid, u.vcpu_id)
            if was_queued:
                self._enqueue(u)
                moved.append(u)
            elif u.is_running:
                s.last_start = now
                moved.append(u)
            self.repl_tok += 1
            s.in_replq = self.repl_tok
            heapq.heappush(self.replq, (s.cur_deadline, self.repl_tok, u.uid))
        self._arm_repl()
        for u in moved:
            if u.priv.queued:
                self._tickle(u)
            elif u.is_running:
                head = self._pick(u.cpu)
                if head is not None and head.priv.key() < u.priv.key():
                    self.runner.raise_softirq(u.cpu)

    def _burn(self, unit, now):
        """``burn_budget``."""
        s = unit.priv
        delta = now - s.last_start
        s.last_start = now
        if delta <= 0:
            return
        s.cur_budget -= delta
        if s.cur_budget <= 0:
            if s.extratime:
                s.level += 1
                s.cur_budget = s.budget
            else:
                s.cur_budget = 0
                s.depleted = True

    # ------------------------------------------------------------------ hooks
    def sleep(self, unit):
        if self.runner.curr(unit.cpu) is unit:
            self.runner.raise_softirq(unit.cpu)
        else:
            self._dequeue(unit)
        self._replq_remove(unit)

    def wake(self, unit):
        """``rt_unit_wake``."""
        s = unit.priv
        if self.runner.curr(unit.cpu) is unit or s.queued:
            return
        now = self.runner.now
        if now >= s.cur_deadline:
            self._update_deadline(unit, now)
        self._enqueue(unit)
        self._replq_insert(unit)
        self._tickle(unit)

    def _tickle(self, new):
        """``runq_tickle``: an idle pCPU first, else the one running the lowest-priority unit."""
        r = self.runner
        ns = new.priv
        if not ns.queued or ns.depleted:
            return
        pcs = r._pcpus
        cpus = range(self.n_pcpus) if new.hard is None else sorted(new.hard)
        tickled = self.tickled
        latest, ll, ld = -1, -1, -1
        for c in cpus:
            if c in tickled:
                continue
            cur = pcs[c].curr
            if cur is None:
                latest = c
                break
            cs = cur.priv
            if cs.level > ll or (cs.level == ll and cs.cur_deadline > ld):
                latest, ll, ld = c, cs.level, cs.cur_deadline
        else:
            if latest < 0 or not (ns.level < ll or (ns.level == ll and ns.cur_deadline < ld)):
                return
        tickled.add(latest)
        r._trace(latest, TRC_RTDS_TICKLE, latest)
        r.raise_softirq(latest)

    def do_schedule(self, cpu, now, prev):
        """``rt_schedule``."""
        self.tickled.discard(cpu)
        if prev is not None:
            self._burn(prev, now)
        snext = self._pick(cpu)
        if prev is not None and prev.runnable and not prev.priv.depleted:
            if snext is None or prev.priv.key() <= snext.priv.key():
                snext = prev
        if snext is not prev:
            if prev is not None and prev.runnable:
                self._enqueue(prev)
            if snext is not None:
                self._dequeue(snext)
        if snext is None:
            return None, None
        snext.priv.last_start = now
        snext.cpu = cpu
        return snext, max(1, snext.priv.cur_budget)

    def adjust_units(self, units, params):
        """``rt_dom_cntl`` putvcpuinfo (``xl sched-rtds -d D -v V -p P -b B -e E``)."""
        for u in units:
            s = u.priv
            period = params.get("period_us", s.period // US) * US
            budget = params.get("budget_us", s.budget // US) * US
            if budget > period:
                raise ScenarioError(f"sched-rtds.d{u.dom.domid}.budget_us", "must not exceed period_us")
            s.period, s.budget = period, budget
            s.extratime = params.get("extratime", s.extratime)
            u.params.update(params)

    def adjust(self, dom, params):
        self.adjust_units(dom.units, params)

    def unit_info(self, unit):
        s = unit.priv
        return {"period_us": s.period // US, "budget_us": s.budget // US, "extratime": int(s.extratime),
                "deadline_misses": s.misses, "periods": s.periods}

    def dom_info(self, dom):
        u = dom.units[0]
        return self.unit_info(u) if u.priv is not None else {}

    def deadline_misses(self) -> dict:
        return {(u.dom.domid, u.vcpu_id): u.priv.misses for u in self.runner.units if u.priv is not None}
