"""``credit``: Xen's credit1 scheduler (``xen/common/sched/credit.c``).

Design note
-----------
Follows credit.c function by function:

* ``_tick`` = ``csched_tick`` every ``tick_period`` (tslice / ``CSCHED_TICKS_PER_TSLICE`` = 10 ms)
  per pCPU: ``_unit_acct`` (= ``csched_unit_acct``: BOOST -> UNDER, ``burn_credits``, join the
  active list, or re-run placement and flag ``_VPF_migrating``), then ``_runq_sort``.
* ``_acct`` = ``csched_acct`` every tslice (30 ms) on the master: the compiled core
  :func:`pvsim.sched.credit_core.csched_acct` over struct-of-arrays state (or its reference).
* ``wake`` = ``csched_unit_wake`` (BOOST unless migrating or parked) + ``_tickle`` =
  ``__runq_tickle`` (idlers, soft then hard affinity, ``tickle_one_idle_cpu`` round robin,
  kicking ``cur`` away); ``sleep`` = ``csched_unit_sleep``; ``yield_`` sets ``YIELD``.
* ``do_schedule`` = ``csched_schedule``: burn, the ``ratelimit`` rule (``CSCHED_MIN_TIMER``),
  requeue, take the head, ``csched_load_balance`` / ``csched_runq_steal`` when the head is OVER
  or idle (the OVER case ratelimited by ``load_balance_ratelimit_us``), idlers mask, stop/restart
  the tick around idle.
* ``pick_cpu`` = ``_csched_cpu_pick`` on a flat topology (every pCPU its own core): prefer the
  current pCPU if idle, else an idle pCPU in the affinity (soft first), else stay.
* Caps by parking: the accounting pass parks (``sched_unit_pause_nosync``) and unparks.
* ``charging = "sampled"`` gives the pre-2009 rule (before ``78c9b2a64b``): each tick debits a
  whole ``credits_per_tslice / ticks_per_tslice`` (100) from whoever is running, nothing at
  deschedule.
* Trace: Xen's ``TRC_CSCHED_*`` records, plus two of pvsim's own that carry the credit Xen's do not
  (``PVSIM_TRC_CSCHED_ACCT_CREDIT`` per vCPU an accounting pass credits, ``_BURN_CREDIT`` per
  ``burn_credits`` that burns; docs/interfaces.md), for the Perfetto credit counter.

Constants (credit.c): ``CSCHED_DEFAULT_WEIGHT`` 256, ``CSCHED_TICKS_PER_TSLICE`` 3,
``CSCHED_DEFAULT_TSLICE_MS`` 30, ``CSCHED_CREDITS_PER_MSEC`` 10, ``CSCHED_MIN_TIMER`` =
``XEN_SYSCTL_SCHED_RATELIMIT_MIN`` 100 us; priorities BOOST 0, UNDER -1, OVER -2, IDLE -64.

Simplifications: no SMT/NUMA topology (one node, one thread per core); trylock never fails;
no tasklets; the idle unit is not on the runqueue (an empty runqueue means "idle at the head").
"""

from __future__ import annotations

import gc
import time

import numpy as np

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
from pvsim.sched.credit_core import (
    CSCHED_PRI_IDLE,
    CSCHED_PRI_TS_BOOST,
    CSCHED_PRI_TS_OVER,
    CSCHED_PRI_TS_UNDER,
    FLAG_ACTIVE,
    FLAG_PARKED,
    N_SCALARS,
    csched_acct,
    out_size,
)
from pvsim.sched.ops import XEN_SCHEDULER_CREDIT, Scheduler, register_scheduler

CSCHED_DEFAULT_WEIGHT = 256
CSCHED_TICKS_PER_TSLICE = 3
CSCHED_DEFAULT_TSLICE_MS = 30
CSCHED_CREDITS_PER_MSEC = 10
CSCHED_MIN_TIMER_NS = 100_000  # XEN_SYSCTL_SCHED_RATELIMIT_MIN us
MS = 1_000_000
US = 1_000

FLAG_YIELD = 4
FLAG_MIGRATING = 8


class _Pcpu:
    __slots__ = ("runq", "runq_sort_last", "last_lb", "last_tickle")

    def __init__(self):
        self.runq: list = []
        self.runq_sort_last = 0
        self.last_lb = -(10 ** 18)
        self.last_tickle = 0


@register_scheduler("credit")
class Credit(Scheduler):
    sched_id = XEN_SCHEDULER_CREDIT

    def __init__(self, params=None, *, reference_core: bool = False):
        super().__init__(params)
        self.reference_core = reference_core
        self.acct_hooks: list = []  # test/metrics hooks: fn(sched, info) after each accounting pass
        self.core_time_s = 0.0  # wall time spent in the accounting core
        self.core_calls = 0
        # shadow_reference: also run the plain-Python reference on the same inputs at every
        # accounting pass, check it agrees, and time it (benchmarks: speed-up in the same run)
        self.shadow_reference = False
        self.ref_time_s = 0.0
        self.core_samples: list[tuple[float, float]] = []  # (kernel s, reference s) per pass

    # ------------------------------------------------------------------ set-up
    def attach(self, runner):
        super().attach(runner)
        self.pc = [_Pcpu() for _ in range(self.n_pcpus)]
        self.idlers: set[int] = set(range(self.n_pcpus))
        self._set_tslice(self.params["tslice_ms"])
        self.ratelimit = self.params["ratelimit_us"] * US
        self.migr_delay = self.params["vcpu_migr_delay_us"] * US
        self.lb_ratelimit = self.params["load_balance_ratelimit_us"] * US
        self.sampled = self.params["charging"] == "sampled"
        self.credit_balance = 0
        self.weight = 0  # sum of weight x active vCPUs (prv->weight)
        self.runq_sort = 0
        self.balance_bias = 0
        self.active_doms: list[int] = []  # indices into dom arrays, in active-list order
        self.doms: list = []
        cap = 16
        # struct-of-arrays unit state shared with the compiled core: rows credit, pri, flags, dom
        self.ustate = np.zeros((4, cap), np.int64)
        self._bind_rows()
        self.pri[:] = CSCHED_PRI_TS_UNDER
        self.residual = [0] * cap
        self.start_time = [0] * cap
        self.last_sched = [0] * cap
        self.on_runq = [False] * cap
        self.units: list = []
        # credit ledger (for the conservation property): issued - burned + clamp - halving
        self.ledger = {"issued": 0, "burned": 0, "clamp_added": 0, "halving_removed": 0}
        # wake-to-run latency (ns) by the priority the unit had when it woke (UNDER -> boosted)
        self.wake_pri = [None] * cap
        self.wake_latency_by_pri: dict[int, list[int]] = {CSCHED_PRI_TS_BOOST: [], CSCHED_PRI_TS_UNDER: [],
                                                          CSCHED_PRI_TS_OVER: []}

    def _set_tslice(self, ms):
        """``__csched_set_tslice``."""
        self.tslice = ms * MS
        self.ticks_per_tslice = CSCHED_TICKS_PER_TSLICE if ms >= CSCHED_TICKS_PER_TSLICE else 1
        self.tick_period = ms * 1000 // self.ticks_per_tslice * US
        self.credits_per_tslice = CSCHED_CREDITS_PER_MSEC * ms
        self.prv_credit = self.credits_per_tslice * self.n_pcpus

    def alloc_domdata(self, dom):
        dom.priv = len(self.doms)
        self.doms.append(dom)
        dom.params.setdefault("active_unit_count", 0)

    def _bind_rows(self):
        self.credit = self.ustate[0]
        self.pri = self.ustate[1]
        self.flags = self.ustate[2]
        self.udom = self.ustate[3]

    def _grow(self, n):
        cap = self.ustate.shape[1]
        if n <= cap:
            return
        new = max(n, 2 * cap)
        u = np.zeros((4, new), np.int64)
        u[:, :cap] = self.ustate
        u[1, cap:] = CSCHED_PRI_TS_UNDER
        self.ustate = u
        self._bind_rows()
        for name, fill in (("residual", 0), ("start_time", 0), ("last_sched", 0), ("on_runq", False),
                           ("wake_pri", None)):
            getattr(self, name).extend([fill] * (new - cap))

    def start(self, now):
        self._arm_ticker(now)
        self.runner.timer(self.tslice, self._acct_timer)

    def _arm_ticker(self, now):
        """One timer for every pCPU's ``ticker``: Xen stops a pCPU's tick while it idles and restarts it
        aligned on the tick period (``now - now % tick_period``), so all running pCPUs tick at the same
        instants; one event then serves them all."""
        tp = self.tick_period
        if getattr(self, "_ticker", None) is not None:
            self._ticker.cancel()
        self._ticker = self.runner.timer(tp - now % tp, self._global_tick)

    def _global_tick(self, now):
        r = self.runner
        for cpu in range(self.n_pcpus):
            if r.curr(cpu) is not None:  # the tick of an idle pCPU is stopped
                self._tick(cpu, now)
        self._ticker = None
        self._arm_ticker(now)

    # ------------------------------------------------------------------ helpers
    def _pri(self, unit):
        return CSCHED_PRI_IDLE if unit is None else int(self.pri[unit.uid])

    def _runq_insert(self, unit):
        """``__runq_insert``: after every element of >= priority; YIELD goes one further."""
        u = unit.uid
        rq = self.pc[unit.cpu].runq
        p = self.pri[u]
        pri = self.pri
        i = 0
        n = len(rq)
        while i < n and p <= pri[rq[i].uid]:
            i += 1
        if self.flags[u] & FLAG_YIELD and i < n:
            i += 1
        rq.insert(i, unit)
        self.on_runq[u] = True

    def _runq_remove(self, unit):
        self.pc[unit.cpu].runq.remove(unit)
        self.on_runq[unit.uid] = False

    def _nr_runnable(self, cpu):
        return len(self.pc[cpu].runq) + (self.runner.curr(cpu) is not None)

    def _burn(self, unit, now):
        """``burn_credits``: exact ns charging with a sub-credit residual."""
        if self.sampled:
            return
        u = unit.uid
        delta = now - self.start_time[u]
        if delta <= 0:
            return
        val = delta * CSCHED_CREDITS_PER_MSEC + self.residual[u]
        credits, self.residual[u] = divmod(val, MS)
        self.credit[u] -= credits
        self.ledger["burned"] += credits
        self.start_time[u] += credits * MS // CSCHED_CREDITS_PER_MSEC
        if credits and self.runner.engine._subscribers:  # pvsim's record: the credit after the burn
            self.runner._trace(unit.cpu, PVSIM_TRC_CSCHED_BURN_CREDIT, unit.dom.domid, unit.vcpu_id,
                               int(self.credit[u]), int(credits))

    # ------------------------------------------------------------------ placement
    def pick_cpu(self, unit, commit: bool = True):
        """``_csched_cpu_pick`` (flat topology) + ``csched_res_pick`` setting MIGRATING.

        Per affinity step (soft, then hard): start from the unit's pCPU (or the next allowed one);
        keep it if it is idle (or the unit is alone there), else take the first idle allowed pCPU in
        cyclic order; stop at the first step that found an idle pCPU."""
        cpu = unit.cpu
        n = self.n_pcpus
        idlers = self.idlers
        best = cpu
        for step in (0, 1):
            if step == 0:
                if unit.soft is None:
                    continue
                mask = unit.soft if unit.hard is None else (unit.soft & unit.hard)
                if not mask:
                    continue
            else:
                mask = unit.hard
            if mask is None or cpu in mask:
                c0 = cpu
            else:
                c0 = min(mask, key=lambda c: (c - cpu) % n)
            idle = c0 in idlers or (c0 == unit.cpu and not self.pc[c0].runq and
                                    self.runner.curr(c0) in (None, unit))
            if not idle and idlers:
                cand = idlers if mask is None else idlers & mask
                if cand:
                    c0 = min(cand, key=lambda c: (c - c0) % n)
                    idle = True
            best = c0
            if idle:
                break
        if commit:
            self.flags[unit.uid] |= FLAG_MIGRATING
        return best

    # ------------------------------------------------------------------ unit hooks
    def insert_unit(self, unit):
        self._grow(unit.uid + 1)
        while len(self.units) <= unit.uid:
            self.units.append(None)
        self.units[unit.uid] = unit
        u = unit.uid
        self.credit[u] = 0
        self.pri[u] = CSCHED_PRI_TS_UNDER
        self.flags[u] = 0
        self.udom[u] = unit.dom.priv
        unit.cpu = self.pick_cpu(unit)
        if unit.runnable and not unit.is_running and not self.on_runq[u]:
            self._runq_insert(unit)

    def remove_unit(self, unit):
        u = unit.uid
        if self.on_runq[u]:
            self._runq_remove(unit)
        if self.flags[u] & FLAG_PARKED:
            self.flags[u] &= ~FLAG_PARKED
            self.runner.unpause(unit)
        if self.flags[u] & FLAG_ACTIVE:
            self._acct_stop(unit)

    def sleep(self, unit):
        if self.runner.curr(unit.cpu) is unit:
            self.runner.raise_softirq(unit.cpu)
        elif self.on_runq[unit.uid]:
            self._runq_remove(unit)

    def wake(self, unit):
        u = unit.uid
        if self.runner.curr(unit.cpu) is unit or self.on_runq[u]:
            return
        migrating = bool(self.flags[u] & FLAG_MIGRATING) or unit.migrating
        self.wake_pri[u] = int(self.pri[u]) if unit.wake_ns is not None else None
        self.flags[u] &= ~FLAG_MIGRATING
        if not migrating and self.pri[u] == CSCHED_PRI_TS_UNDER and not self.flags[u] & FLAG_PARKED:
            self.pri[u] = CSCHED_PRI_TS_BOOST
            self.runner._trace(unit.cpu, TRC_CSCHED_BOOST_START, unit.dom.domid, unit.vcpu_id)
        self._runq_insert(unit)
        self._tickle(unit)

    def yield_(self, unit):
        self.flags[unit.uid] |= FLAG_YIELD
        if unit.is_running:
            self.runner.raise_softirq(unit.cpu)

    def _tickle(self, new):
        """``__runq_tickle``."""
        r = self.runner
        cpu = new.cpu
        cur = r.curr(cpu)
        cur_pri = self._pri(cur)
        new_pri = int(self.pri[new.uid])
        idlers = self.idlers
        mask: list[int] = []
        if new.hard is not None and len(new.hard) == 1 and cpu in idlers:
            mask = [cpu]  # exclusive pinning fast path
        elif cur_pri == CSCHED_PRI_IDLE or (not idlers and new_pri > cur_pri):
            mask = [cpu]
        elif idlers:
            for step in ("soft", "hard"):
                if step == "soft":
                    if new.soft is None:
                        continue
                    aff = new.soft if new.hard is None else new.soft & new.hard
                else:
                    aff = new.hard
                cand = sorted(idlers if aff is None else idlers & aff)
                if not cand and step == "soft":
                    continue
                if not cand and new_pri > cur_pri:
                    if new.hard is None or new.hard & idlers:
                        r.request_migrate(cur)  # _VPF_migrating on cur: it moves to an idler
                    mask = [cpu]
                elif cand:
                    if self.params["tickle_one_idle"]:
                        last = self.pc[cpu].last_tickle
                        nxt = next((c for c in cand if c > last), cand[0])
                        self.pc[cpu].last_tickle = nxt
                        mask = [nxt]
                    else:
                        mask = cand
                if mask:
                    break
        for c in mask:
            r._trace(c, TRC_CSCHED_TICKLE, c)
            idlers.discard(c)
            r.raise_softirq(c)

    # ------------------------------------------------------------------ ticks and accounting
    def _tick(self, cpu, now):
        """``csched_tick`` for one running pCPU."""
        cur = self.runner.curr(cpu)
        if cur is not None:
            self._unit_acct(cur, cpu, now)
        self._runq_sort(cpu)

    def _unit_acct(self, unit, cpu, now):
        """``csched_unit_acct``."""
        u = unit.uid
        if self.pri[u] == CSCHED_PRI_TS_BOOST:
            self.pri[u] = CSCHED_PRI_TS_UNDER
            self.runner._trace(cpu, TRC_CSCHED_BOOST_END, unit.dom.domid, unit.vcpu_id)
        if self.sampled:
            per_tick = self.credits_per_tslice // self.ticks_per_tslice
            self.credit[u] -= per_tick
            self.ledger["burned"] += per_tick
            if per_tick and self.runner.engine._subscribers:  # the tick's debit is this mode's burn
                self.runner._trace(cpu, PVSIM_TRC_CSCHED_BURN_CREDIT, unit.dom.domid, unit.vcpu_id,
                                   int(self.credit[u]), int(per_tick))
        else:
            self._burn(unit, now)
        if not self.flags[u] & FLAG_ACTIVE:
            self._acct_start(unit)
        elif self.n_pcpus > 1:
            new_cpu = self.pick_cpu(unit, commit=False)
            if new_cpu != cpu:
                self.runner.request_migrate(unit)

    def _acct_start(self, unit):
        dom = unit.dom
        self.flags[unit.uid] |= FLAG_ACTIVE
        dom.params["active_unit_count"] += 1
        self.weight += dom.weight
        if dom.priv not in self.active_doms:
            self.active_doms.insert(0, dom.priv)
        self.runner._trace(unit.cpu, TRC_CSCHED_ACCOUNT_START, dom.domid, unit.vcpu_id,
                           dom.params["active_unit_count"])

    def _acct_stop(self, unit):
        dom = unit.dom
        self.flags[unit.uid] &= ~FLAG_ACTIVE
        dom.params["active_unit_count"] -= 1
        self.weight -= dom.weight
        if dom.params["active_unit_count"] == 0 and dom.priv in self.active_doms:
            self.active_doms.remove(dom.priv)

    def _runq_sort(self, cpu):
        """``csched_runq_sort``: move every UNDER/BOOST ahead of the OVERs, keeping order."""
        spc = self.pc[cpu]
        if spc.runq_sort_last == self.runq_sort:
            return
        spc.runq_sort_last = self.runq_sort
        pri = self.pri
        rq = spc.runq
        spc.runq = [x for x in rq if pri[x.uid] >= CSCHED_PRI_TS_UNDER] + \
                   [x for x in rq if pri[x.uid] < CSCHED_PRI_TS_UNDER]

    def _acct_timer(self, now):
        self._acct(now)
        self.runner.timer(self.tslice, self._acct_timer)

    def _acct(self, now):
        """``csched_acct`` through the compiled core."""
        n = len(self.units)
        nd = len(self.doms)
        if n == 0:
            return
        doms = self.doms
        dstate = np.array([[d.weight for d in doms], [d.cap for d in doms],
                           [d.params["active_unit_count"] for d in doms]], dtype=np.int64).reshape(3, nd)
        order = np.full(nd, -1, np.int64)
        order[:len(self.active_doms)] = self.active_doms
        params = np.array([len(self.active_doms), self.credits_per_tslice, self.prv_credit,
                           self.credit_balance, self.weight], dtype=np.int64)
        ustate = self.ustate[:, :n] if n < self.ustate.shape[1] else self.ustate
        if not ustate.flags.c_contiguous:
            ustate = np.ascontiguousarray(ustate)
        old_flags = self.flags[:n].copy()
        listed = set(self.active_doms)  # the domains csched_acct walks (credit1 credits only their units)
        walked = self.weight != 0
        balance_before = self.credit_balance
        before = int(self.credit[:n].sum())
        size = out_size(n, nd)
        if getattr(self, "_out", None) is None or self._out.shape[0] != size:
            self._out = np.empty(size, np.int64)  # reused: the core writes every element
        out = self._out
        gc_was = gc.isenabled()
        gc.disable()  # keep a cyclic-GC pass of the rest of the simulation out of the core's timing
        ref = None
        # shadow_reference: the other implementation on the same inputs, timed; the order alternates so
        # that neither always runs with the caches the other warmed up
        shadow_first = self.shadow_reference and self.core_calls % 2 == 1
        if shadow_first:
            ref, dr = self._shadow(ustate, dstate, order, params, n, nd)
        t0 = time.perf_counter()
        csched_acct(ustate, dstate, order, params, out, reference=self.reference_core)
        dt = time.perf_counter() - t0
        self.core_time_s += dt
        self.core_calls += 1
        if self.shadow_reference:
            if not shadow_first:
                ref, dr = self._shadow(ustate, dstate, order, params, n, nd)
            self.ref_time_s += dr
            self.core_samples.append((dt, dr))
            if not np.array_equal(ref, out):
                raise AssertionError("csched_acct: compiled core and reference disagree")
        if gc_was:
            gc.enable()
        self.credit[:n] = out[0:n]
        self.pri[:n] = out[n:2 * n]
        self.flags[:n] = out[2 * n:3 * n]
        for d, dom in enumerate(self.doms):
            dom.params["active_unit_count"] = int(out[3 * n + d])
        base = 3 * n + nd
        s = out[base + nd: base + nd + N_SCALARS]
        k = int(s[5])
        self.active_doms = [int(x) for x in out[base:base + k]]
        self.credit_balance = int(s[0])
        self.weight = int(s[1])
        if walked and self.runner.engine._subscribers:
            # pvsim's record per vCPU the pass credited (ascending units): its credit and priority after it
            for u in range(n):
                if old_flags[u] & FLAG_ACTIVE and int(self.udom[u]) in listed:
                    unit = self.units[u]
                    self.runner._trace(unit.cpu, PVSIM_TRC_CSCHED_ACCT_CREDIT, unit.dom.domid, unit.vcpu_id,
                                       int(self.credit[u]), int(self.pri[u]))
        info = {"now": now, "issued": int(s[2]), "clamp_added": int(s[3]), "halving_removed": int(s[4]),
                "parks": int(s[6]), "unparks": int(s[7]), "credit_before": before,
                "credit_after": int(self.credit[:n].sum()), "credit_total": self.prv_credit,
                "balance_before": balance_before}
        for key in ("issued", "clamp_added", "halving_removed"):
            self.ledger[key] += info[key]
        if s[6] or s[7]:
            changed = np.nonzero((old_flags ^ self.flags[:n]) & FLAG_PARKED)[0]
            for u in changed:
                unit = self.units[u]
                if self.flags[u] & FLAG_PARKED:
                    self.runner.pause(unit)
                else:
                    # unpause while still flagged PARKED so the wake is not boosted
                    self.flags[u] |= FLAG_PARKED
                    self.runner.unpause(unit)
                    self.flags[u] &= ~FLAG_PARKED
        self.runq_sort += 1
        for h in self.acct_hooks:
            h(self, info)

    def _shadow(self, ustate, dstate, order, params, n, nd):
        buf = np.empty(out_size(n, nd), np.int64)
        t1 = time.perf_counter()
        csched_acct(ustate, dstate, order, params, buf, reference=not self.reference_core)
        return buf, time.perf_counter() - t1

    def credit_sum(self) -> int:
        return int(self.credit[:len(self.units)].sum())

    # ------------------------------------------------------------------ schedule
    def do_schedule(self, cpu, now, prev):
        """``csched_schedule``."""
        r = self.runner
        spc = self.pc[cpu]
        if prev is not None:
            u = prev.uid
            runtime = now - prev.last_run_start
            self._burn(prev, now)
            self.start_time[u] -= now
            self.last_sched[u] = now
            if (self.ratelimit and not self.flags[u] & FLAG_YIELD and prev.runnable
                    and runtime < self.ratelimit):
                self.start_time[u] += now
                tslice = self.ratelimit - runtime
                if runtime < CSCHED_MIN_TIMER_NS:
                    tslice = CSCHED_MIN_TIMER_NS
                r._trace(cpu, TRC_CSCHED_RATELIMIT, (prev.vcpu_id << 16) | prev.dom.domid, runtime)
                return prev, tslice
            if prev.runnable:
                self._runq_insert(prev)
            self.flags[u] &= ~FLAG_YIELD
        tslice = self.tslice
        rq = spc.runq
        pri = self.pri
        snext = rq[0] if rq else None
        snext_pri = CSCHED_PRI_IDLE if snext is None else int(pri[snext.uid])
        if snext_pri > CSCHED_PRI_TS_OVER:
            rq.pop(0)
            self.on_runq[snext.uid] = False
        elif snext is None or now - spc.last_lb > self.lb_ratelimit:
            spc.last_lb = now
            stolen = self._load_balance(cpu, snext_pri) if self.n_pcpus > 1 else None
            if stolen is not None:
                snext = stolen
            elif snext is not None:
                rq.pop(0)
                self.on_runq[snext.uid] = False
        else:
            rq.pop(0)
            self.on_runq[snext.uid] = False
        if snext is None:
            self.idlers.add(cpu)
        else:
            self.idlers.discard(cpu)
            self.start_time[snext.uid] += now
            snext.cpu = cpu
            wp = self.wake_pri[snext.uid]
            if wp is not None and snext.wake_ns is not None:
                self.wake_latency_by_pri[wp].append(now - snext.wake_ns)
                self.wake_pri[snext.uid] = None
        # (the tick stops while idle and restarts aligned: see _arm_ticker / _global_tick)
        return snext, (None if snext is None else tslice)

    def _load_balance(self, cpu, pri):
        """``csched_load_balance`` + ``csched_runq_steal`` (one node)."""
        r = self.runner
        n = self.n_pcpus
        idlers = self.idlers
        first = self.balance_bias % n
        for step in ("soft", "hard"):
            for k in range(n):
                peer = (first + k) % n
                if peer == cpu or peer in idlers:
                    continue
                if self._nr_runnable(peer) <= 1:
                    continue
                if r.curr(peer) is None:
                    continue
                for speer in self.pc[peer].runq:
                    sp = int(self.pri[speer.uid])
                    if sp <= pri:
                        break
                    if step == "soft" and speer.soft is None:
                        continue
                    aff = speer.hard if step == "hard" else (
                        speer.soft if speer.hard is None else speer.soft & speer.hard)
                    hot = self.migr_delay and (r.now - self.last_sched[speer.uid]) < self.migr_delay
                    if not hot and (aff is None or cpu in aff):
                        self._runq_remove(speer)
                        speer.cpu = cpu
                        r._trace(cpu, TRC_CSCHED_STOLEN_UNIT, peer, speer.dom.domid, speer.vcpu_id)
                        self.balance_bias = peer
                        return speer
        return None

    # ------------------------------------------------------------------ control
    def adjust(self, dom, params):
        """``csched_dom_cntl`` putinfo."""
        if "weight" in params:
            ac = dom.params["active_unit_count"]
            if dom.priv in self.active_doms:
                self.weight += (params["weight"] - dom.weight) * ac
            dom.weight = params["weight"]
        if "cap" in params:
            dom.cap = params["cap"]

    def adjust_global(self, params):
        """``csched_sys_cntl`` putinfo."""
        super().adjust_global(params)
        if self.params["ratelimit_us"] > self.params["tslice_ms"] * 1000:
            raise ScenarioError("sched-credit.ratelimit_us", "must not exceed tslice_ms")
        self._set_tslice(self.params["tslice_ms"])
        self.ratelimit = self.params["ratelimit_us"] * US
        self.migr_delay = self.params["vcpu_migr_delay_us"] * US
        self.lb_ratelimit = self.params["load_balance_ratelimit_us"] * US
        if self.runner.started:
            self._arm_ticker(self.runner.now)

    def unit_info(self, unit):
        u = unit.uid
        return {"credit": int(self.credit[u]), "pri": int(self.pri[u]),
                "active": bool(self.flags[u] & FLAG_ACTIVE), "parked": bool(self.flags[u] & FLAG_PARKED)}

    def global_info(self):
        return {"tslice_ms": self.tslice // MS, "ratelimit_us": self.ratelimit // US,
                "migration_delay_us": self.migr_delay // US}
