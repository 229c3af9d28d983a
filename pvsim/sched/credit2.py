"""``credit2``: Xen's default scheduler (``xen/common/sched/credit2.c``).

Design note
-----------
Credit is time in ns. ``_burn`` (``burn_credits``) charges ``delta * max_weight / weight``
(``t2c``), so the heaviest vCPU of a runqueue burns one credit per ns and lighter ones faster;
credit is floored at ``CSCHED2_CREDIT_MIN``. ``_reset`` (``reset_credit``) runs from
``do_schedule`` when the chosen unit has no credit left (``<= CSCHED2_CREDIT_RESET``): every unit of
the runqueue gets ``m x CSCHED2_CREDIT_INIT`` (m > 1 if the chosen one is deeper in debt than one
INIT) clipped to ``CREDIT_INIT + CARRYOVER_MAX``; a load balance follows. ``_candidate``
(``runq_candidate``): the ratelimit keeps the current unit; otherwise the highest-credit queued
unit allowed here, skipping units tickled for another pCPU and units from another pCPU that do
not beat the current one by ``CSCHED2_MIGRATE_RESIST``; a unit that changes pCPU gets
``CSCHED2_MIGRATE_COMPENSATION``. ``_runtime`` (``csched2_runtime``): until its credit would
fall to that of the next queued unit, within ``[max(MIN_TIMER, ratelimit left), MAX_TIMER]``
and the cap budget. ``wake`` inserts by credit (no boost) and ``_tickle`` (``runq_tickle``) wakes
an idle pCPU of the runqueue (soft affinity first) or preempts the pCPU whose current unit has
the lowest credit, if the new one beats it (minus MIGRATE_RESIST when remote). Runqueues are
built per ``credit2_runqueue`` (``cpu``, ``core``, ``socket`` (default), ``node``, ``all``) with at
most ``sched_credit2_max_cpus_runqueue`` (16) pCPUs. Caps: a per-domain budget of ``cap% x
CSCHED2_BDGT_REPL_PERIOD`` (10 ms) refilled by a per-domain timer; a unit grabs budget when it is
picked, burns it while running, returns what it did not use; without budget it is parked
(paused) until the refill.

Constants (credit2.c): ``CSCHED2_DEFAULT_WEIGHT`` 256, ``CSCHED2_CREDIT_INIT`` 10 ms,
``CSCHED2_CREDIT_MIN`` -10 ms (floor, as read for ``xen.md`` section 6.3), ``CSCHED2_CARRYOVER_MAX`` =
``CSCHED2_MIN_TIMER`` 500 us, ``CSCHED2_MAX_TIMER`` 10 ms, ``CSCHED2_CREDIT_RESET`` 0,
``CSCHED2_MIGRATE_RESIST`` 500 us, ``CSCHED2_MIGRATE_COMPENSATION`` 50 us,
``CSCHED2_BDGT_REPL_PERIOD`` 10 ms.

Simplifications: the load balancer compares instantaneous runqueue loads (runnable units)
instead of the 2^30 ns decaying average and moves at most one queued unit per reset; one NUMA
node; no SMT-aware placement.
"""

from __future__ import annotations

from hypercalls.trace import (
    TRC_CSCHED2_CREDIT_BURN,
    TRC_CSCHED2_CREDIT_RESET,
    TRC_CSCHED2_LOAD_BALANCE,
    TRC_CSCHED2_TICKLE,
)
from pvsim.sched.ops import XEN_SCHEDULER_CREDIT2, Scheduler, register_scheduler

US = 1_000
MS = 1_000_000
CSCHED2_CREDIT_INIT = 10 * MS
CSCHED2_CREDIT_MIN = -CSCHED2_CREDIT_INIT
CSCHED2_MIN_TIMER = 500 * US
CSCHED2_CARRYOVER_MAX = CSCHED2_MIN_TIMER
CSCHED2_MAX_TIMER = CSCHED2_CREDIT_INIT
CSCHED2_CREDIT_RESET = 0
CSCHED2_MIGRATE_COMPENSATION = 50 * US
CSCHED2_BDGT_REPL_PERIOD = 10 * MS


class _Svc:
    __slots__ = ("credit", "start_time", "rqd", "tickled_cpu", "budget", "parked", "on_runq", "yielding")

    def __init__(self):
        self.credit = CSCHED2_CREDIT_INIT
        self.start_time = 0
        self.rqd = None
        self.tickled_cpu = -1
        self.budget = 0
        self.parked = False
        self.on_runq = False
        self.yielding = False


class _Rqd:
    __slots__ = ("id", "cpus", "runq", "svc", "idle", "tickled", "max_weight")

    def __init__(self, rid, cpus):
        self.id = rid
        self.cpus = cpus
        self.runq: list = []  # queued units, highest credit first
        self.svc: list = []  # every unit assigned to this runqueue
        self.idle: set[int] = set(cpus)
        self.tickled: set[int] = set()
        self.max_weight = 1


class _Sdom:
    __slots__ = ("budget", "tot_budget", "timer", "parked")

    def __init__(self):
        self.budget = 0
        self.tot_budget = 0
        self.timer = None
        self.parked: list = []


@register_scheduler("credit2")
class Credit2(Scheduler):
    sched_id = XEN_SCHEDULER_CREDIT2

    def attach(self, runner):
        super().attach(runner)
        p = self.params
        self.ratelimit = p["ratelimit_us"] * US
        self.migrate_resist = p["migrate_resist_us"] * US
        n = self.n_pcpus
        cps = p["cpus_per_socket"] or n
        tpc = p["threads_per_core"]
        key = {"cpu": lambda c: c, "core": lambda c: c // tpc, "socket": lambda c: c // cps,
               "node": lambda c: 0, "all": lambda c: 0}[p["runqueue"]]
        groups: dict[int, list[int]] = {}
        for c in range(n):
            groups.setdefault(key(c), []).append(c)
        self.rqds: list[_Rqd] = []
        self.cpu_rqd: list[_Rqd] = [None] * n
        mx = p["max_cpus_runqueue"]
        for cpus in groups.values():
            for i in range(0, len(cpus), mx):
                rq = _Rqd(len(self.rqds), frozenset(cpus[i:i + mx]))
                self.rqds.append(rq)
                for c in rq.cpus:
                    self.cpu_rqd[c] = rq

    def alloc_domdata(self, dom):
        dom.priv = _Sdom()

    def start(self, now):
        for dom in self.runner.domains.values():
            self._cap_setup(dom, now)

    # ------------------------------------------------------------------ helpers
    def _update_max_weight(self, rqd):
        rqd.max_weight = max([u.dom.weight for u in rqd.svc], default=1)

    def _assign(self, unit, rqd):
        s = unit.priv
        if s.rqd is rqd:
            return
        if s.rqd is not None:
            s.rqd.svc.remove(unit)
            self._update_max_weight(s.rqd)
        s.rqd = rqd
        rqd.svc.append(unit)
        self._update_max_weight(rqd)

    def _burn(self, unit, now):
        """``burn_credits``."""
        s = unit.priv
        delta = now - s.start_time
        if delta <= 0:
            return
        rqd = s.rqd
        s.credit -= delta * rqd.max_weight // unit.dom.weight
        if s.credit < CSCHED2_CREDIT_MIN:
            s.credit = CSCHED2_CREDIT_MIN
        if unit.dom.cap:
            s.budget -= delta
        s.start_time = now
        r = self.runner
        if r.engine._subscribers:  # TRC_CSCHED2_CREDIT_BURN, as burn_credits() writes it
            r._trace(unit.cpu, TRC_CSCHED2_CREDIT_BURN, (unit.dom.domid << 16) | unit.vcpu_id, s.credit,
                     s.budget if unit.dom.cap else -(1 << 31), delta)

    def _runq_insert(self, unit):
        s = unit.priv
        rq = s.rqd.runq
        i = 0
        while i < len(rq) and rq[i].priv.credit >= s.credit:
            i += 1
        rq.insert(i, unit)
        s.on_runq = True

    def _runq_remove(self, unit):
        s = unit.priv
        s.rqd.runq.remove(unit)
        s.on_runq = False

    def pick_cpu(self, unit):
        """``csched2_res_pick``: the least loaded runqueue the unit may use, an idle pCPU in it if any."""
        best = None
        for rqd in self.rqds:
            cpus = rqd.cpus if unit.hard is None else rqd.cpus & unit.hard
            if not cpus:
                continue
            load = len(rqd.runq) + sum(1 for c in rqd.cpus if self.runner.curr(c) is not None)
            if unit.priv is not None and unit.priv.rqd is rqd:
                load -= 1  # do not count ourselves
            if best is None or load < best[0]:
                best = (load, rqd, cpus)
        _load, rqd, cpus = best
        if unit.cpu in cpus:
            return unit.cpu
        idle = sorted(cpus & rqd.idle)
        return idle[0] if idle else min(cpus)

    # ------------------------------------------------------------------ unit hooks
    def insert_unit(self, unit):
        unit.priv = _Svc()
        unit.cpu = self.pick_cpu(unit)
        self._assign(unit, self.cpu_rqd[unit.cpu])
        unit.priv.start_time = self.runner.now

    def remove_unit(self, unit):
        s = unit.priv
        if s.on_runq:
            self._runq_remove(unit)
        if s.rqd is not None:
            s.rqd.svc.remove(unit)
            self._update_max_weight(s.rqd)
            s.rqd = None

    def sleep(self, unit):
        if self.runner.curr(unit.cpu) is unit:
            self.runner.raise_softirq(unit.cpu)
        elif unit.priv.on_runq:
            self._runq_remove(unit)

    def wake(self, unit):
        s = unit.priv
        if self.runner.curr(unit.cpu) is unit or s.on_runq:
            return
        rqd = self.cpu_rqd[unit.cpu]
        if not unit.allowed(unit.cpu):
            unit.cpu = self.pick_cpu(unit)
            rqd = self.cpu_rqd[unit.cpu]
        self._assign(unit, rqd)
        self._runq_insert(unit)
        self._tickle(unit, self.runner.now)

    def yield_(self, unit):
        unit.priv.yielding = True
        if unit.is_running:
            self.runner.raise_softirq(unit.cpu)

    def affinity_changed(self, unit):
        pass

    def _tickle(self, new, now):
        """``runq_tickle``."""
        r = self.runner
        rqd = new.priv.rqd
        cpu = new.cpu
        allowed = rqd.cpus if new.hard is None else rqd.cpus & new.hard
        idle = (rqd.idle - rqd.tickled) & allowed
        if idle:
            if new.soft is not None and idle & new.soft:
                idle = idle & new.soft
            ipid = cpu if cpu in idle else min(idle)
        else:
            ipid, best = -1, 0
            for c in sorted(allowed - rqd.tickled):
                cur = r.curr(c)
                if cur is None:
                    continue
                self._burn(cur, now)
                score = new.priv.credit - cur.priv.credit
                if c != cpu:
                    score -= self.migrate_resist
                if score > best:
                    ipid, best = c, score
            if ipid < 0:
                return
        new.priv.tickled_cpu = ipid
        rqd.tickled.add(ipid)
        r._trace(ipid, TRC_CSCHED2_TICKLE, ipid)
        r.raise_softirq(ipid)

    # ------------------------------------------------------------------ caps
    def _cap_setup(self, dom, now):
        sd = dom.priv
        sd.tot_budget = dom.cap * CSCHED2_BDGT_REPL_PERIOD // 100
        if dom.cap and sd.timer is None:
            sd.budget = sd.tot_budget
            sd.timer = self.runner.timer(CSCHED2_BDGT_REPL_PERIOD, lambda t, d=dom: self._replenish(d, t))
        elif not dom.cap and sd.timer is not None:
            sd.timer.cancel()
            sd.timer = None
            self._unpark_all(dom)

    def _replenish(self, dom, now):
        """``replenish_domain_budget``: refill (debts are paid first) and unpark."""
        sd = dom.priv
        sd.budget = min(sd.budget + sd.tot_budget, sd.tot_budget)
        sd.timer = self.runner.timer(CSCHED2_BDGT_REPL_PERIOD, lambda t, d=dom: self._replenish(d, t))
        if sd.budget > 0:
            self._unpark_all(dom)

    def _unpark_all(self, dom):
        sd = dom.priv
        parked, sd.parked = sd.parked, []
        for u in parked:
            u.priv.parked = False
            self.runner.unpause(u)

    def _grab_budget(self, unit):
        """``unit_grab_budget``: take a share of the domain's pool."""
        sd = unit.dom.priv
        s = unit.priv
        if s.budget > 0:
            return True
        if sd.budget <= 0:
            return False
        quota = max(1, sd.tot_budget // max(1, len(unit.dom.units)))
        take = min(sd.budget, max(quota, CSCHED2_MIN_TIMER))
        sd.budget -= take
        s.budget += take
        return s.budget > 0

    def _return_budget(self, unit):
        s = unit.priv
        sd = unit.dom.priv
        if s.budget > 0:
            sd.budget += s.budget
        elif s.budget < 0:
            sd.budget += s.budget  # overrun becomes the domain's debt
        s.budget = 0

    def _park(self, unit):
        s = unit.priv
        if not s.parked:
            s.parked = True
            unit.dom.priv.parked.append(unit)
            self.runner.pause(unit)

    # ------------------------------------------------------------------ schedule
    def _reset(self, rqd, snext, now):
        """``reset_credit``."""
        m = 1
        if snext is not None and snext.priv.credit < -CSCHED2_CREDIT_INIT:
            m += (-snext.priv.credit) // CSCHED2_CREDIT_INIT
        r = self.runner
        for u in rqd.svc:
            s = u.priv
            if u.is_running and u is not snext:
                self._burn(u, now)
            s.credit += m * CSCHED2_CREDIT_INIT
            if s.credit > CSCHED2_CREDIT_INIT + CSCHED2_CARRYOVER_MAX:
                s.credit = CSCHED2_CREDIT_INIT + CSCHED2_CARRYOVER_MAX
            s.start_time = now
        rqd.runq.sort(key=lambda u: -u.priv.credit)
        r._trace(next(iter(rqd.cpus)), TRC_CSCHED2_CREDIT_RESET, rqd.id, m)
        self._balance_load(rqd)

    def _balance_load(self, rqd):
        """Simplified ``balance_load``: pull one queued unit from a runqueue busier by > 1 unit."""
        if len(self.rqds) < 2:
            return
        r = self.runner

        def load(q):
            return len(q.runq) + sum(1 for c in q.cpus if r.curr(c) is not None)

        mine = load(rqd)
        busiest = max((q for q in self.rqds if q is not rqd), key=load)
        if load(busiest) - mine <= 1:
            return
        for u in list(busiest.runq):
            cpus = rqd.cpus if u.hard is None else rqd.cpus & u.hard
            if cpus:
                self._runq_remove(u)
                self._assign(u, rqd)
                u.cpu = min(cpus)
                self._runq_insert(u)
                r._trace(u.cpu, TRC_CSCHED2_LOAD_BALANCE, busiest.id, rqd.id)
                self._tickle(u, r.now)
                return

    def _candidate(self, rqd, scurr, cpu, now):
        """``runq_candidate`` -> (unit or None, ratelimited?)."""
        yielding = scurr is not None and scurr.priv.yielding
        if (scurr is not None and not yielding and self.ratelimit and scurr.runnable
                and now - scurr.last_run_start < self.ratelimit):
            return scurr, True
        snext = scurr if (scurr is not None and scurr.runnable) else None
        for u in list(rqd.runq):
            s = u.priv
            # tickled for another pCPU that has not rescheduled yet: leave it to that one
            if s.tickled_cpu != -1 and s.tickled_cpu != cpu and s.tickled_cpu in rqd.tickled:
                continue
            if not u.allowed(cpu):
                continue
            base = snext.priv.credit if snext is not None and not yielding else -(10 ** 18)
            if u.cpu != cpu and base + self.migrate_resist > s.credit and snext is not None:
                continue
            if u.dom.cap and not self._grab_budget(u):
                self._runq_remove(u)
                self._park(u)
                continue
            if snext is None or yielding or s.credit > snext.priv.credit:
                snext = u
            break
        return snext, False

    def _runtime(self, rqd, snext, now, ratelimited):
        """``csched2_runtime``."""
        s = snext.priv
        rt_credit = s.credit
        for u in rqd.runq:
            if u is not snext:
                if u.priv.credit > 0:
                    rt_credit -= u.priv.credit
                break
        if rt_credit <= 0:
            time = CSCHED2_MIN_TIMER
        else:
            time = rt_credit * snext.dom.weight // max(1, rqd.max_weight)
        lo = CSCHED2_MIN_TIMER
        if self.ratelimit:
            left = self.ratelimit - (now - snext.last_run_start) if ratelimited else self.ratelimit
            lo = max(lo, left)
        time = min(max(time, lo), CSCHED2_MAX_TIMER)
        if snext.dom.cap:
            time = min(time, max(1, s.budget))
        return time

    def do_schedule(self, cpu, now, prev):
        """``csched2_schedule``."""
        rqd = self.cpu_rqd[cpu]
        if prev is not None:
            self._burn(prev, now)
            if prev.dom.cap and prev.priv.budget <= 0 and prev.runnable:
                self._return_budget(prev)
                self._park(prev)
        rqd.tickled.discard(cpu)
        snext, ratelimited = self._candidate(rqd, prev, cpu, now)
        if snext is not None and not ratelimited and snext.priv.credit <= CSCHED2_CREDIT_RESET:
            self._reset(rqd, snext, now)
            snext, ratelimited = self._candidate(rqd, prev, cpu, now)
        if prev is not None and prev.priv.yielding:
            prev.priv.yielding = False
        if snext is not prev:
            if prev is not None:
                if prev.dom.cap:
                    self._return_budget(prev)
                if prev.runnable and prev.priv.rqd is rqd:
                    self._runq_insert(prev)
                elif prev.runnable:
                    self._runq_insert(prev)
            if snext is not None:
                self._runq_remove(snext)
                if snext.cpu != cpu:
                    snext.priv.credit += CSCHED2_MIGRATE_COMPENSATION
                    snext.cpu = cpu
        if snext is None:
            rqd.idle.add(cpu)
            return None, None
        rqd.idle.discard(cpu)
        s = snext.priv
        s.start_time = now
        s.tickled_cpu = -1
        if snext.dom.cap and s.budget <= 0:
            self._grab_budget(snext)
        return snext, self._runtime(rqd, snext, now, ratelimited)

    # ------------------------------------------------------------------ control
    def adjust(self, dom, params):
        """``csched2_dom_cntl`` putinfo."""
        if "weight" in params:
            dom.weight = params["weight"]
            for rqd in self.rqds:
                self._update_max_weight(rqd)
        if "cap" in params:
            dom.cap = params["cap"]
            if self.runner.started:
                self._cap_setup(dom, self.runner.now)

    def adjust_global(self, params):
        super().adjust_global(params)
        self.ratelimit = self.params["ratelimit_us"] * US
        self.migrate_resist = self.params["migrate_resist_us"] * US

    def unit_info(self, unit):
        r = self.runner
        if getattr(r, "arena", None) is not None:  # the compiled dispatcher: the state is in its arena
            return r.kmod.unit_info(r, unit)
        s = unit.priv
        return {"credit": s.credit, "runqueue": s.rqd.id if s.rqd else -1, "budget": s.budget,
                "parked": s.parked}

    def global_info(self):
        return {"ratelimit_us": self.ratelimit // US, "runqueues": len(self.rqds)}
