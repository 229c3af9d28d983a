"""The pCPU dispatcher: Xen's generic scheduling core (``xen/common/sched/core.c``) over SimPy.

Design note
-----------
:class:`HostRunner` plays ``core.c``: it owns the pCPUs, the units' runstates and their time
accounting (``vcpu_runstate_change``), and calls the scheduler's hooks (:mod:`pvsim.sched.ops`).
Per pCPU it keeps one *decision timer* (the earlier of the slice end, ``s_timer``, and the end of
the current ``Run`` demand) and a ``SCHEDULE_SOFTIRQ`` flag: ``raise_softirq(cpu)`` queues one
zero-delay event that runs ``schedule()`` for that pCPU (raises coalesce, like the softirq bit).
So a SimPy event happens only at a decision: slice end, a Run finishing, a wake-up, a block, a
tick or accounting timer of the scheduler, or a timeline entry (:meth:`HostRunner.at`).

``schedule(cpu)``: account the progress of the running unit, ask ``do_schedule(cpu, now, prev)``
for the next unit and slice, context-switch if it changed (runstates, context-switch and
migration counters, wake-to-run latency, ``TRC_SCHED_SWITCH`` trace record), and arm the
decision timer. A unit's ``Run(ns)`` is preemptible: the remainder is kept. A unit coming back
from a block asks its behaviour for its next demand when it is dispatched. A context-switch
cost (``switch_cost_ns(prev, next)``, e.g. priced from the ``sched`` profile section) delays the
start of the next unit's work and is counted as its running time, as Xen counts the switch in
the incoming vCPU's runstate.

Simplifications: one pool; no tasklets; migrations are immediate (``vcpu_migrate`` without the
lock dance); the idle unit is ``None``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hypercalls.ops import (
    DOMID_FIRST_RESERVED,
    DOMID_IDLE,
    RUNSTATE_blocked,
    RUNSTATE_offline,
    RUNSTATE_runnable,
    RUNSTATE_running,
)
from hypercalls.trace import (
    TRC_SCHED_ADJDOM,
    TRC_SCHED_BLOCK,
    TRC_SCHED_CONTINUE_RUNNING,
    TRC_SCHED_RUNSTATE_CHANGE,
    TRC_SCHED_SWITCH,
    TRC_SCHED_WAKE,
    TRC_SCHED_YIELD,
)
from pvsim.core.engine import Block, Done, Run, Wait
from pvsim.core.errors import ScenarioError
from pvsim.hypervisor.domain import VCPU, Domain
from pvsim.sched.metrics import RunStats, VcpuStats
from pvsim.sched.params import validate_sched_params

_ZERO_LIMIT = 100_000  # consecutive zero-time demands before we call it a livelock
# an interrupt cuts a Run short only when more than this is left of it: a shorter Run ends before the
# handler would gain much, and the decision is not worth a SimPy event (the handler waits for it)
INTERRUPT_MIN_NS = 100_000


class Timer:
    """A one-shot timer handle (``struct timer``); ``cancel()`` is ``stop_timer``."""

    __slots__ = ("active", "when")

    def __init__(self, when: int):
        self.active = True
        self.when = when

    def cancel(self) -> None:
        self.active = False


class _Decision:
    """The callback of a pCPU's decision timer (a bound call without a closure per arm)."""

    __slots__ = ("runner", "pc", "g")

    def __init__(self, runner, pc, g):
        self.runner, self.pc, self.g = runner, pc, g

    def __call__(self, _ev) -> None:
        self.runner._decision(self.pc, self.g)


class _PCPU:
    __slots__ = ("cpu", "curr", "gen", "slice_end", "work_start", "softirq", "sgen",
                 "idle_ns", "idle_since", "switches", "last_cost")

    def __init__(self, cpu: int):
        self.cpu = cpu
        self.curr: VCPU | None = None
        self.gen = 0
        self.slice_end: int | None = None
        self.work_start = 0
        self.softirq = False
        self.sgen = 0
        self.idle_ns = 0
        self.idle_since = 0
        self.switches = 0
        self.last_cost = 0


class HostRunner:
    """Runs vCPU behaviours on ``n_pcpus`` pCPUs under ``scheduler``.

    ``runner = HostRunner(engine, make_scheduler("credit"), n_pcpus=4)``; ``runner.add_vcpu(...)``;
    ``runner.start()``; ``engine.run(until_ns)``; ``runner.stats()``.
    """

    #: added to the pCPU number of every trace record: a traced run of several hosts gives each its
    #: own range of pCPU numbers on the one bus (set by ``pvsim.trace.session``; 0 otherwise)
    trace_base: int = 0

    def __init__(self, engine, scheduler, n_pcpus: int,
                 switch_cost_ns: Callable | None = None):
        if isinstance(n_pcpus, bool) or not isinstance(n_pcpus, int) or not 1 <= n_pcpus <= 4096:
            raise ScenarioError("host.pcpus", f"must be 1..4096, got {n_pcpus!r}")
        self.engine = engine
        self.env = engine.env
        self.sched = scheduler
        self.n_pcpus = n_pcpus
        self.switch_cost_ns = switch_cost_ns
        # called with (unit, cost) when a unit switched in blocks before any time passes: the
        # switch cost it was charged was never spent (the pCPU schedules again at the same instant)
        self.switch_refund: Callable | None = None
        self.units: list[VCPU] = []
        self.domains: dict[int, Domain] = {}
        self._pcpus = [_PCPU(c) for c in range(n_pcpus)]
        self.started = False
        self.t0 = self.now
        self._vcpu_timers: dict = {}
        self.n_schedule = 0  # schedule() passes (do_schedule calls)
        self.n_demands = 0  # behaviour.next() calls
        scheduler.attach(self)

    @property
    def decisions(self) -> int:
        """Host decisions so far: scheduling passes plus demands asked of behaviours."""
        return self.n_schedule + self.n_demands

    # ------------------------------------------------------------------ services for schedulers
    @property
    def now(self) -> int:
        return int(self.env.now)

    def curr(self, cpu: int) -> VCPU | None:
        """The unit running on ``cpu`` (``curr_on_cpu``), ``None`` when idle."""
        return self._pcpus[cpu].curr

    def timer(self, delay_ns: int, fn: Callable[[int], None]) -> Timer:
        """Call ``fn(now)`` after ``delay_ns`` unless cancelled (``set_timer``)."""
        delay_ns = int(delay_ns)
        t = Timer(self.now + delay_ns)
        ev = self.engine.timeout_ns(delay_ns)

        def fire(_ev, t=t, fn=fn):
            if t.active:
                t.active = False
                fn(self.now)

        ev.callbacks.append(fire)
        return t

    def raise_softirq(self, cpu: int) -> None:
        """``cpu_raise_softirq(cpu, SCHEDULE_SOFTIRQ)``: reschedule ``cpu`` at the current time."""
        pc = self._pcpus[cpu]
        if pc.softirq or not self.started:
            return
        pc.softirq = True
        pc.sgen += 1
        g = pc.sgen
        ev = self.engine.timeout_ns(0)
        ev.callbacks.append(lambda _ev: self._softirq(cpu, g))

    def pause(self, unit: VCPU) -> None:
        """``sched_unit_pause_nosync`` (credit parking): the unit stops being runnable."""
        was = unit.runnable
        unit.pause_count += 1
        if was:
            if not unit.is_running:
                self._set_runstate(unit, RUNSTATE_offline, self.now)
            self.sched.sleep(unit)

    def unpause(self, unit: VCPU) -> None:
        """``sched_unit_unpause``: runnable again once nothing else holds it."""
        if unit.pause_count <= 0:
            return
        unit.pause_count -= 1
        if unit.runnable and not unit.is_running:
            self._set_runstate(unit, RUNSTATE_runnable, self.now)
            self.sched.wake(unit)

    def request_migrate(self, unit: VCPU) -> None:
        """``_VPF_migrating`` on a running unit: take it off its pCPU and re-place it."""
        if unit.is_running:
            if not unit.migrate_pending:
                unit.migrate_pending = True
                unit.pause_count += 1
                self.raise_softirq(unit.cpu)
        elif unit.runnable:
            self.sched.sleep(unit)
            self._place_and_wake(unit)
        else:
            unit.cpu = self.sched.pick_cpu(unit)

    def _place_and_wake(self, unit: VCPU) -> None:
        unit.cpu = self.sched.pick_cpu(unit)
        unit.migrating = True
        self.sched.wake(unit)
        unit.migrating = False

    # ------------------------------------------------------------------ building
    def add_vcpu(self, domid: int, vcpu_id: int, behaviour, *, weight: int = 256, cap: int = 0,
                 affinity: set[int] | None = None, name: str = "", params: dict | None = None,
                 soft_affinity: set[int] | None = None, vcpu: VCPU | None = None) -> VCPU:
        """Add one vCPU of domain ``domid``: the hypervisor's ``vcpu`` when given (the builder's), else a
        new one; weight and cap are the domain's (first vCPU sets them)."""
        where = f"domains[{domid}]"
        if isinstance(domid, bool) or not isinstance(domid, int) or not 0 <= domid < DOMID_FIRST_RESERVED:
            raise ScenarioError("domains.domid", f"must be 0..32751, got {domid!r}")
        if isinstance(vcpu_id, bool) or not isinstance(vcpu_id, int) or not 0 <= vcpu_id < 4096:
            raise ScenarioError(f"{where}.vcpus", f"vcpu id must be 0..4095, got {vcpu_id!r}")
        if not callable(getattr(behaviour, "next", None)):
            raise ScenarioError(f"{where}.vcpus[{vcpu_id}].behaviour", "must have a next(now_ns) method")
        dp = validate_sched_params(self.sched.name, {"weight": weight, "cap": cap}, where,
                                   scope="domain", n_pcpus=self.n_pcpus, defaults=False)
        hard = self._cpuset(affinity, f"{where}.vcpus[{vcpu_id}].cpus")
        soft = self._cpuset(soft_affinity, f"{where}.vcpus[{vcpu_id}].cpus_soft")
        extra = validate_sched_params(self.sched.name, params or {}, f"{where}.sched", scope="any",
                                      n_pcpus=self.n_pcpus, defaults=False)
        dom = self.domains.get(domid)
        if dom is None:
            if vcpu is not None:
                dom = vcpu.domain
            else:
                dom = Domain(domid, name.split(".")[0] if name else f"d{domid}", "", "none", nr_vcpus=0)
            dom.weight, dom.cap = dp["weight"], dp["cap"]
            self.domains[domid] = dom
            dom.params.update({k: v for k, v in extra.items() if k not in ("weight", "cap")})
            self.sched.alloc_domdata(dom)
        elif any(u.vcpu_id == vcpu_id for u in dom.units):
            raise ScenarioError(f"{where}.vcpus", f"vcpu {vcpu_id} added twice")
        elif (dp["weight"], dp["cap"]) != (dom.weight, dom.cap) and (dp["weight"], dp["cap"]) != (256, 0):
            raise ScenarioError(f"{where}.cpu_weight", "weight and cap are per domain: all vCPUs must agree")
        if vcpu is None:
            vcpu = VCPU(vcpu_id, dom)
            dom.vcpus.append(vcpu)
        elif vcpu.domain is not dom:
            raise ScenarioError(f"{where}.vcpus", f"vcpu {vcpu!r} belongs to another domain")
        unit = vcpu
        now = self.now
        unit.uid = len(self.units)
        unit.behaviour = behaviour
        unit.name = name or f"{dom.name}.{vcpu_id}"
        unit.hard, unit.soft, unit.params = hard, soft, extra
        unit.runstate = RUNSTATE_offline  # until start() brings it online
        unit.state_entry = unit.created_ns = unit.runnable_since = unit.last_run_start = now
        unit.cpu = min(hard) if hard is not None else (len(self.units) % self.n_pcpus)
        self.units.append(unit)
        dom.units.append(unit)
        if self.started:
            self._bring_online(unit, self.now)
        return unit

    def _cpuset(self, cpus, fp):
        if cpus is None:
            return None
        try:
            s = frozenset(int(c) for c in cpus)
        except (TypeError, ValueError):
            raise ScenarioError(fp, f"must be a set of pCPU numbers, got {cpus!r}") from None
        if not s:
            raise ScenarioError(fp, "must not be empty")
        bad = [c for c in s if not 0 <= c < self.n_pcpus]
        if bad:
            raise ScenarioError(fp, f"pCPUs must be 0..{self.n_pcpus - 1}, got {sorted(bad)}")
        return None if len(s) == self.n_pcpus else s

    def start(self) -> None:
        """Bring every vCPU online (insert + wake) and start the scheduler's timers."""
        if self.started:
            raise RuntimeError("HostRunner.start() called twice")
        self.started = True
        now = self.now
        self.t0 = now
        for pc in self._pcpus:
            pc.idle_since = now
        self.sched.start(now)
        for u in list(self.units):
            self._bring_online(u, now)
        for c in range(self.n_pcpus):
            self.raise_softirq(c)

    def _bring_online(self, unit: VCPU, now: int) -> None:
        wants_cpu = self._next_demand(unit, now)
        unit.pause_count += 1  # created paused (as Xen's vCPUs are), inserted, then unpaused
        self.sched.insert_unit(unit)
        unit.pause_count -= 1
        if wants_cpu:
            self._set_runstate(unit, RUNSTATE_runnable, now)
            self.sched.wake(unit)
        else:
            self._set_runstate(unit, RUNSTATE_blocked if unit.blocked else RUNSTATE_offline, now)
            if unit.done:
                self.sched.remove_unit(unit)

    # ------------------------------------------------------------------ control
    def adjust(self, domid: int, vcpu: int | None = None, **params) -> None:
        """``xl sched-<name> -d DOM -w W -c C`` (or ``-p/-b/-e`` for rtds, ``-v VCPU``) now."""
        dom = self._dom(domid)
        scope = "vcpu" if self.sched.name == "rtds" else "domain"
        p = validate_sched_params(self.sched.name, params, f"sched-{self.sched.name}.d{domid}", scope=scope,
                                  n_pcpus=self.n_pcpus, defaults=False)
        if scope == "vcpu":
            units = dom.units if vcpu is None else [self._unit(domid, vcpu)]
            self.sched.adjust_units(units, p)
        else:
            self.sched.adjust(dom, p)
        self._trace(0, TRC_SCHED_ADJDOM, domid)

    def adjust_global(self, **params) -> None:
        """``xl sched-<name> -s ...``: pool-wide parameters (tslice, ratelimit, ...)."""
        self.sched.adjust_global(params)

    def pin(self, domid: int, vcpu: int | None, hard: set[int] | None = None, soft: set[int] | None = None,
            ) -> None:
        """``xl vcpu-pin DOM VCPU|all HARD SOFT`` (``None`` = all pCPUs / no soft affinity)."""
        units = self._dom(domid).units if vcpu is None else [self._unit(domid, vcpu)]
        for u in units:
            u.hard = self._cpuset(hard, f"vcpu-pin.d{domid}.hard")
            u.soft = self._cpuset(soft, f"vcpu-pin.d{domid}.soft")
            self.sched.affinity_changed(u)
            if not u.allowed(u.cpu):
                self.request_migrate(u)

    def yield_vcpu(self, domid: int, vcpu: int) -> None:
        """``SCHEDOP_yield`` by a vCPU: the scheduler's ``yield`` hook (it reschedules if running)."""
        self.yield_(self._unit(domid, vcpu))

    # ------------------------------------------------------------------ the hypervisor's scheduling port
    # (pvsim.hypervisor.hypervisor.SchedPort): what SCHEDOP_*, set_timer_op and VCPUOP_* do to a vCPU
    def block(self, vcpu: VCPU) -> None:
        """``vcpu_block``: the vCPU is descheduled when its current decision ends and stays blocked
        until :meth:`wake_vcpu` (an event delivered to it)."""
        vcpu.block_requested = True

    def poll(self, vcpu: VCPU, ports, deadline_ns) -> None:
        """``do_poll``: blocked like :meth:`block`, and woken at ``deadline_ns`` if nothing came."""
        vcpu.block_requested = True
        if deadline_ns:
            gen = vcpu.block_gen + 1
            self.timer(max(0, int(deadline_ns) - self.now), lambda _now, v=vcpu, g=gen: self._wake_from_block(v, g))

    def yield_(self, vcpu: VCPU) -> None:
        """``vcpu_yield``: the scheduler's yield hook, then a reschedule of its pCPU."""
        self.sched.yield_(vcpu)
        self._trace(vcpu.cpu, TRC_SCHED_YIELD, vcpu.domid, vcpu.vcpu_id)
        if vcpu.is_running:
            self.raise_softirq(vcpu.cpu)

    def set_timer(self, vcpu: VCPU, deadline_ns, fire) -> None:
        """The vCPU's one-shot timer (``v->singleshot_timer``): ``fire()`` at ``deadline_ns``."""
        old = self._vcpu_timers.pop(vcpu, None)
        if old is not None:
            old.cancel()
        if deadline_ns is not None:
            self._vcpu_timers[vcpu] = self.timer(max(0, int(deadline_ns) - self.now), lambda _now: fire())

    def vcpu_down(self, vcpu: VCPU) -> None:
        self.pause(vcpu)

    def vcpu_up(self, vcpu: VCPU) -> None:
        self.unpause(vcpu)

    def wake_vcpu(self, vcpu: VCPU) -> None:
        """``vcpu_unblock`` (an event delivered to a blocked vCPU): runnable again."""
        if vcpu.blocked:
            self._wake_from_block(vcpu, vcpu.block_gen)

    def interrupt(self, vcpu: VCPU) -> None:
        """An interrupt for ``vcpu`` while it has guest work in flight: the rest of its ``Run`` goes
        back to its behaviour (``behaviour.preempt(ns)``, which keeps it to resume after the
        handler) and the behaviour is asked for its next demand -- at once for a runnable vCPU, in a
        zero-delay decision for a running one (the interrupted behaviour may be the caller's
        caller). Runs with at most :data:`INTERRUPT_MIN_NS` left, a Run ending in a blocking
        hypercall, and a behaviour without ``preempt`` are left alone."""
        if vcpu.irq_pending or vcpu.block_after or vcpu.blocked or vcpu.done or not self.started:
            return
        polling = getattr(vcpu.behaviour, "polling", False)  # a halt poll ends at any wake-up
        if vcpu.is_running:
            if self.remaining_now(vcpu) <= INTERRUPT_MIN_NS and not polling:
                return
            vcpu.irq_pending = True
            ev = self.engine.after(0)
            ev.callbacks.append(lambda _ev, v=vcpu: self._interrupt(v))
        elif (vcpu.remaining > INTERRUPT_MIN_NS or polling) and vcpu.runnable:
            self._take_back(vcpu)  # asked for its next demand when it is next dispatched

    @staticmethod
    def _take_back(vcpu: VCPU) -> bool:
        """Give the rest of the vCPU's Run back to its behaviour; True if it took it."""
        pre = getattr(vcpu.behaviour, "preempt", None)
        if pre is None or not pre(vcpu.remaining):
            return False
        vcpu.remaining = 0
        return True

    def _interrupt(self, vcpu: VCPU) -> None:
        vcpu.irq_pending = False
        if vcpu.block_after or vcpu.blocked:
            return
        if not vcpu.is_running:
            if vcpu.runnable and vcpu.remaining > 0:
                self._take_back(vcpu)
            return
        pc = self._pcpus[vcpu.cpu]
        now = self.now
        if now < pc.work_start:
            return  # still paying its switch cost: the handler runs as soon as the Run starts
        self._progress(pc, vcpu, now)
        if vcpu.remaining == 0 or not self._take_back(vcpu):
            return  # the Run ends now anyway (its decision is due), or the behaviour keeps it
        if not self._next_demand(vcpu, now):
            self._schedule(pc.cpu)
            return
        se = pc.slice_end
        if se is not None and now >= se:
            self._schedule(pc.cpu)
            return
        self._arm(pc, now)

    def destroy_vcpu(self, unit: VCPU) -> None:
        """``sched_destroy_vcpu`` (the domain is destroyed or has left the host): the vCPU goes offline
        for good and leaves the scheduler -- at once if it is not running, when its pCPU reschedules if
        it is (a wake-up still pending for it finds it gone)."""
        if unit.done:
            return
        was = unit.runnable
        unit.done = True
        unit.blocked = False
        unit.block_gen += 1
        if unit.is_running:
            self.raise_softirq(unit.cpu)
            return
        if was:
            self.sched.sleep(unit)
        self._set_runstate(unit, RUNSTATE_offline, self.now)
        self.sched.remove_unit(unit)

    def at(self, time_ns: int, fn: Callable) -> Timer:
        """Scenario timeline: call ``fn(runner)`` at simulated time ``time_ns`` (absolute)."""
        if isinstance(time_ns, bool) or not isinstance(time_ns, (int, np.integer)) or time_ns < self.now:
            raise ScenarioError("timeline.at_ns", f"must be an integer ns >= now ({self.now}), got {time_ns!r}")
        return self.timer(int(time_ns) - self.now, lambda _now: fn(self))

    def _dom(self, domid):
        if domid not in self.domains:
            raise ScenarioError("domain", f"no domain with id {domid!r}; have {sorted(self.domains)}")
        return self.domains[domid]

    def _unit(self, domid, vcpu):
        for u in self._dom(domid).units:
            if u.vcpu_id == vcpu:
                return u
        raise ScenarioError("vcpu", f"domain {domid} has no vcpu {vcpu!r}")

    # ------------------------------------------------------------------ the core
    def _set_runstate(self, unit: VCPU, new: int, now: int) -> None:
        old = unit.runstate
        if old == new:
            return
        unit.runstate_time_ns[old] += now - unit.state_entry
        unit.state_entry = now
        unit.runstate = new
        if new == RUNSTATE_runnable:
            unit.runnable_since = now
        if self.engine._subscribers:
            self.engine.trace(self.trace_base + unit.cpu, TRC_SCHED_RUNSTATE_CHANGE | (old << 8) | (new << 4),
                              (unit.dom.domid << 16) | unit.vcpu_id)

    def _trace(self, cpu, ev, *words):
        if self.engine._subscribers:
            self.engine.trace(self.trace_base + cpu, ev, *words)

    def _next_demand(self, unit: VCPU, now: int) -> bool:
        """Ask the behaviour until it wants the CPU (True) or blocks / goes offline (False)."""
        for _ in range(_ZERO_LIMIT):
            if unit.block_after:
                # the Run that made the blocking hypercall is over: vcpu_block takes effect, and the
                # behaviour is asked again only once an event wakes the vCPU (wake_vcpu)
                unit.block_after = False
                unit.blocked = True
                unit.block_gen += 1
                self._trace(unit.cpu, TRC_SCHED_BLOCK, unit.dom.domid, unit.vcpu_id)
                return False
            d = unit.behaviour.next(now)
            self.n_demands += 1
            t = type(d)
            if t is Run and not unit.block_requested and d.ns > 0:  # the common case
                unit.remaining = d.ns
                return True
            if unit.block_requested:
                # the behaviour made a blocking hypercall (SCHEDOP_block/poll) while deciding: a Run it
                # asks for is the work up to that hypercall, after which the vCPU blocks
                unit.block_requested = False
                if t is Run and d.ns > 0:
                    unit.block_after = True
            if t is Run:
                if d.ns > 0:
                    unit.remaining = int(d.ns)
                    return True
                if d.ns < 0:
                    raise ValueError(f"{unit!r}: Run({d.ns}) is negative")
                continue
            if t is Block:
                if d.ns < 0:
                    raise ValueError(f"{unit!r}: Block({d.ns}) is negative")
                if d.ns == 0:
                    continue
                unit.blocked = True
                unit.block_gen += 1
                g = unit.block_gen
                ev = self.engine.timeout_ns(int(d.ns))
                ev.callbacks.append(lambda _e, u=unit, g=g: self._wake_from_block(u, g))
                self._trace(unit.cpu, TRC_SCHED_BLOCK, unit.dom.domid, unit.vcpu_id)
                return False
            if t is Wait:
                ev = d.event
                if ev.callbacks is None:  # already fired and processed: events pending, no block
                    continue
                unit.blocked = True
                unit.block_gen += 1
                g = unit.block_gen
                ev.callbacks.append(lambda _e, u=unit, g=g: self._wake_from_block(u, g))
                self._trace(unit.cpu, TRC_SCHED_BLOCK, unit.dom.domid, unit.vcpu_id)
                return False
            if t is Done:
                unit.done = True
                return False
            raise TypeError(f"{unit!r}: behaviour returned {d!r}, not Run/Block/Wait/Done")
        raise RuntimeError(f"{unit!r}: {_ZERO_LIMIT} zero-time demands in a row (livelock)")

    def _wake_from_block(self, unit: VCPU, gen: int) -> None:
        if unit.block_gen != gen or not unit.blocked:
            return
        unit.blocked = False
        now = self.now
        self._trace(unit.cpu, TRC_SCHED_WAKE, unit.dom.domid, unit.vcpu_id)
        if unit.runnable:
            self._set_runstate(unit, RUNSTATE_runnable, now)
            unit.wake_ns = now
            self.sched.wake(unit)
        else:
            self._set_runstate(unit, RUNSTATE_offline, now)

    def _softirq(self, cpu: int, g: int) -> None:
        pc = self._pcpus[cpu]
        if pc.softirq and pc.sgen == g:
            self._schedule(cpu)

    @staticmethod
    def _progress(pc: _PCPU, unit: VCPU, now: int) -> None:
        ws = pc.work_start
        if now > ws:
            done = now - ws
            unit.remaining = 0 if done >= unit.remaining else unit.remaining - done
            pc.work_start = now

    def _schedule(self, cpu: int) -> None:
        """``schedule()`` in core.c for one pCPU."""
        pc = self._pcpus[cpu]
        pc.softirq = False
        now = self.now
        for _ in range(_ZERO_LIMIT):
            prev = pc.curr
            if prev is not None:
                self._progress(pc, prev, now)
            nxt, slice_ns = self.sched.do_schedule(cpu, now, prev)
            self.n_schedule += 1
            if nxt is not prev:
                self._switch(pc, prev, nxt, now)
            elif prev is not None:
                if not prev.runnable:
                    raise RuntimeError(f"{self.sched.name}: do_schedule kept non-runnable {prev!r} on cpu {cpu}")
                self._trace(cpu, TRC_SCHED_CONTINUE_RUNNING, (prev.dom.domid << 16) | prev.vcpu_id)
            if nxt is None:
                pc.slice_end = None
                pc.gen += 1  # cancel the decision timer
                return
            pc.slice_end = None if slice_ns is None or slice_ns < 0 else now + max(1, int(slice_ns))
            if nxt.remaining == 0 and not self._next_demand(nxt, now):
                if nxt is not prev and self.switch_refund is not None and pc.last_cost:
                    self.switch_refund(nxt, pc.last_cost)
                continue  # blocked / done as soon as it ran: schedule again
            self._arm(pc, now)
            return
        raise RuntimeError(f"cpu {cpu}: scheduling livelock at {now} ns")

    def _switch(self, pc: _PCPU, prev: VCPU | None, nxt: VCPU | None, now: int) -> None:
        cpu = pc.cpu
        if prev is not None:
            prev.is_running = False
            if prev.runnable:
                st = RUNSTATE_runnable
            elif prev.blocked:
                st = RUNSTATE_blocked
            else:
                st = RUNSTATE_offline
            self._set_runstate(prev, st, now)
            self.sched.context_saved(prev)
            if prev.done:
                self.sched.remove_unit(prev)
        else:
            pc.idle_ns += now - pc.idle_since
        pc.curr = nxt
        if nxt is not None:
            if nxt.is_running or not nxt.runnable:
                raise RuntimeError(f"{self.sched.name}: picked {nxt!r} on cpu {cpu} but it is "
                                   f"{'running elsewhere' if nxt.is_running else 'not runnable'}")
            if nxt.ran_on >= 0 and nxt.ran_on != cpu:
                nxt.migrations += 1
            nxt.ran_on = cpu
            nxt.cpu = cpu
            nxt.is_running = True
            nxt.ever_ran = True
            nxt.ctx_in += 1
            pc.switches += 1
            if nxt.wake_ns is not None:
                nxt.wake_lat.append(now - nxt.wake_ns)
                nxt.wake_ns = None
            self._set_runstate(nxt, RUNSTATE_running, now)
            nxt.last_run_start = now
            cost = int(self.switch_cost_ns(prev, nxt)) if self.switch_cost_ns is not None else 0
            pc.last_cost = cost
            pc.work_start = now + cost
        else:
            pc.idle_since = now
        if self.engine._subscribers:
            pd, pu = (prev.dom.domid, prev.vcpu_id) if prev is not None else (DOMID_IDLE, cpu)
            nd, nu = (nxt.dom.domid, nxt.vcpu_id) if nxt is not None else (DOMID_IDLE, cpu)
            self.engine.trace(self.trace_base + cpu, TRC_SCHED_SWITCH, pd, pu, nd, nu)
        if prev is not None and prev.migrate_pending:
            prev.migrate_pending = False
            prev.pause_count -= 1
            if prev.runnable:
                self._set_runstate(prev, RUNSTATE_runnable, now)
                self._place_and_wake(prev)

    def _arm(self, pc: _PCPU, now: int) -> None:
        t = pc.work_start + pc.curr.remaining
        se = pc.slice_end
        if se is not None and se < t:
            t = se
        pc.gen += 1
        ev = self.engine.after(t - now if t > now else 0)
        ev.callbacks.append(_Decision(self, pc, pc.gen))

    def _decision(self, pc: _PCPU, g: int) -> None:
        if pc.gen != g:
            return  # superseded
        now = int(self.env._now)
        unit = pc.curr
        ws = pc.work_start
        if now > ws:  # _progress
            done = now - ws
            rem = unit.remaining
            unit.remaining = 0 if done >= rem else rem - done
            pc.work_start = now
        if unit.remaining == 0 and now >= pc.work_start:
            if not self._next_demand(unit, now):
                self._schedule(pc.cpu)  # vcpu_block: raise SCHEDULE_SOFTIRQ, handled at once
                return
        se = pc.slice_end
        if se is not None and now >= se:
            self._schedule(pc.cpu)
            return
        self._arm(pc, now)

    # ------------------------------------------------------------------ results
    def sync(self) -> None:
        """The vCPU objects are this dispatcher's own state: nothing to bring up to date."""

    def runstate(self, vcpu: VCPU) -> int:
        return vcpu.runstate

    def runstate_ns(self, unit: VCPU, now: int | None = None) -> list[int]:
        """The unit's four runstate accumulators, including the state it is in now."""
        now = self.now if now is None else now
        rs = list(unit.runstate_time_ns)
        rs[unit.runstate] += now - unit.state_entry
        return rs

    def remaining_now(self, unit: VCPU) -> int:
        """ns left of the unit's current ``Run`` demand, counting the progress of a unit running now."""
        if unit.is_running:
            pc = self._pcpus[unit.cpu]
            return max(0, unit.remaining - max(0, self.now - pc.work_start))
        return unit.remaining

    def cpu_ns(self, unit: VCPU, now: int | None = None) -> int:
        return self.runstate_ns(unit, now)[RUNSTATE_running]

    def stats(self):
        """Per-vCPU runstate ns, CPU time, context switches, migrations, wake-latency samples."""
        now = self.now
        vs = []
        for u in self.units:
            rs = self.runstate_ns(u, now)
            vs.append(VcpuStats(
                domid=u.dom.domid, vcpu=u.vcpu_id, name=u.name, running_ns=rs[0], runnable_ns=rs[1],
                blocked_ns=rs[2], offline_ns=rs[3], cpu_ns=rs[0], elapsed_ns=now - u.created_ns,
                context_switches=u.ctx_in, migrations=u.migrations,
                wake_latency_ns=np.asarray(u.wake_lat, dtype=np.int64), cpu=u.cpu,
                state=("r" if u.is_running else "b" if u.blocked else "p" if u.pause_count else
                       "-" if u.done else "q")))
        idle = [pc.idle_ns + ((now - pc.idle_since) if pc.curr is None and self.started else 0)
                for pc in self._pcpus]
        return RunStats(now_ns=now, start_ns=self.t0, n_pcpus=self.n_pcpus, scheduler=self.sched.name,
                        vcpus=vs, pcpu_idle_ns=idle, pcpu_switches=[pc.switches for pc in self._pcpus],
                        domains={d.domid: (d.name, d.weight, d.cap, len(d.units)) for d in self.domains.values()})
