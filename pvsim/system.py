"""Build and run: a :class:`~pvsim.scenario.Scenario` becomes a :class:`System`, which runs to :class:`Results`.

Design note
-----------
``build(scenario)`` loads the profile, creates the engine (integer-ns SimPy clock and the seeded RNG
streams), the hypervisor with its domains (a ``Domain-0`` is added when any domain is virtualized),
the scheduler by its Xen name and the pCPU dispatcher (:mod:`pvsim.sched`), and one
:class:`WorkloadBehaviour` per vCPU. Each behaviour's unit of work is priced once per (workload,
mode, profile) by running it through the mode's guest kernel (:mod:`pvsim.pricing`); the behaviour
then hands the dispatcher *bursts* of whole units (about ``burst_ns`` of CPU each) and blocks for
the unit's device time, so the number of SimPy events scales with decisions (bursts, I/O waits,
scheduler slices and ticks), never with guest operations.

Time breakdown: a vCPU's elapsed time is its runstate times (running + runnable + blocked + offline,
which the dispatcher keeps exactly). Running time is split across causes in the proportions of the
priced unit; blocked time is the unit's device wait (``idle.io_wait``) or plain ``idle``; runnable
time is ``sched.wait`` (steal). So every row's breakdown sums to its elapsed time by construction.

Dom0's share of I/O: a unit's ``dom0.*`` causes (blkback/netback, grant maps and copies, the
device model: priced by :mod:`pvsim.io.requests`) are not run on the guest's vCPU. After each burst
the guest posts that work to :class:`Dom0Service` and waits for it; ``Domain-0``'s vCPUs run posted
work in order, before their own workload, under Domain-0's weight and cap, so a starved dom0 slows
its guests' I/O and a guest's cap does not cover the backend work done for it (Cherkasova & Gardner,
USENIX ATC'05, measure dom0's CPU for guest I/O the same way). The guest's row shows the wait as
``idle.dom0_wait``; Domain-0's row shows the work under its ``dom0.*`` causes.

Simplifications: all units of one workload cost the same CPU time (the mix is priced at its expected
value); device times are drawn per unit from an exponential distribution around the priced mean;
posted dom0 work is one FIFO served by whichever Domain-0 vCPU is free (no per-device threads).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from guest_kernels.registry import MODES
from pvsim.engine import Engine
from pvsim.errors import ScenarioError
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.pricing import OpCost, op_cost
from pvsim.profile import Profile, load_profile
from pvsim.scenario import DomainSpec, Scenario, parse_cpulist
from pvsim.sched.demand import Block, Done, Run, Wait
from pvsim.workloads import get as get_op

if TYPE_CHECKING:
    from pvsim.results import Results

DEFAULT_BURST_NS = 1_000_000  # about 1 ms of guest CPU work per dispatcher burst


class Dom0Service:
    """Backend work that guests' I/O owes Domain-0, run by Domain-0's vCPUs in the order posted."""

    def __init__(self, engine):
        self.engine = engine
        self.queue: deque = deque()  # (ns, event, {cause: ns})
        self.served: Counter = Counter()  # cause -> ns of posted work started
        self.served_ns = 0
        self.waiters: list = []  # events of Domain-0 vCPUs waiting for work

    def post(self, ns: int, causes: dict):
        ev = self.engine.event()
        self.queue.append((max(0, int(ns)), ev, causes))
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            if not w.triggered:
                w.succeed()
        return ev

    def idle_wait(self, timer=None):
        """An event for an idle Domain-0 vCPU: fires on the next post, or when ``timer`` (the end
        of its own workload's block) fires."""
        ev = self.engine.event()
        if timer is not None:
            timer.callbacks.append(lambda _e, ev=ev: None if ev.triggered else ev.succeed())
        self.waiters = [w for w in self.waiters if not w.triggered]
        self.waiters.append(ev)
        return ev


class Dom0Behaviour:
    """A Domain-0 vCPU: posted backend work first, then its own workload (whose blocks end early
    when work is posted, and resume after it)."""

    def __init__(self, service: Dom0Service, inner):
        self.s = service
        self.inner = inner
        self.current = None
        self.inner_until: int | None = None
        self.timer = None  # fires when the own workload's block ends
        self.inner_done = False

    def next(self, now_ns: int):
        if self.current is not None:
            self.current[1].succeed()
            self.current = None
        if self.s.queue:
            ns, ev, causes = self.current = self.s.queue.popleft()
            self.s.served_ns += ns
            self.s.served.update(causes)
            if ns:
                return Run(ns)
            return self.next(now_ns)
        if self.inner_done:
            return Wait(self.s.idle_wait(None))
        if self.inner_until is not None and now_ns < self.inner_until:
            return Wait(self.s.idle_wait(self.timer))
        self.inner_until = None
        d = self.inner.next(now_ns)
        if isinstance(d, Block) and d.ns > 0:
            self.inner_until = now_ns + d.ns
            self.timer = self.s.engine.timeout_ns(d.ns)
            return Wait(self.s.idle_wait(self.timer))
        if isinstance(d, Done):
            self.inner_done = True  # its own work is over; it keeps serving its guests
            return Wait(self.s.idle_wait(None))
        return d


@dataclass
class WorkloadBehaviour:
    """A vCPU running units of one priced workload: bursts of CPU, then the units' device wait."""

    cost: OpCost
    profile: Profile
    rng: object
    max_units: float = math.inf
    burst_ns: int = DEFAULT_BURST_NS
    idle_ns_per_unit: int = 0
    units_done: float = 0.0
    _pending: float = 0.0  # units in the burst being run
    _carry_ns: float = 0.0  # sub-ns remainder carried between bursts (integer-ns clock)
    bursts: int = 0
    finished_ns: int | None = None
    dom0: Dom0Service | None = None  # where this unit's dom0 work is posted (None: no dom0 share)
    dom0_cycles: dict = field(default_factory=dict)  # dom0.* cause -> cycles per unit
    dom0_wait_ns: int = 0  # time spent waiting for posted dom0 work (completed waits)
    _dom0_since: int | None = None  # start of the wait in progress, if any

    def __post_init__(self):
        ghz = self.profile.clock_ghz
        self.cpu_ns_per_unit = self.cost.cpu_cycles / ghz
        self.wait_ns_per_unit = self.cost.wait_cycles / ghz
        if self.cpu_ns_per_unit <= 0 and self.wait_ns_per_unit <= 0 and self.idle_ns_per_unit <= 0:
            raise ScenarioError("workload", f"{self.cost.op}: a unit of work takes no time")
        self.io_bound = self.wait_ns_per_unit > 0 or self.idle_ns_per_unit > 0
        per_burst = 1 if self.io_bound else max(1, int(self.burst_ns // max(self.cpu_ns_per_unit, 1e-9)))
        self.units_per_burst = per_burst
        self.dom0_ns_per_unit = {c: v / ghz for c, v in self.dom0_cycles.items()}
        self._state = "run"

    def _post_dom0(self, now_ns: int):
        """Post the burst's dom0 work and wait for it, then for the device: one wait per burst
        (the request reaches the device only after the backend has handled it)."""
        n = self._pending_units_for_wait()
        causes = {c: v * n for c, v in self.dom0_ns_per_unit.items()}
        engine = self.dom0.engine
        device = self._device_wait_ns() if self.io_bound else 0
        done = engine.event()
        self._dom0_since = now_ns

        def served(_e, t0=now_ns):
            self.dom0_wait_ns += engine.now_ns - t0
            self._dom0_since = None
            if device > 0:
                engine.timeout_ns(device).callbacks.append(lambda _e: done.succeed())
            else:
                done.succeed()
        self.dom0.post(int(sum(causes.values())), causes).callbacks.append(served)
        self._state = "run"
        return Wait(done)

    def dom0_wait_until(self, now_ns: int) -> int:
        """Time spent waiting for Domain-0, including a wait still in progress at ``now_ns``."""
        since = self._dom0_since
        return self.dom0_wait_ns + (now_ns - since if since is not None else 0)

    def _device_wait_ns(self) -> int:
        """The burst's device time (exponential around the priced mean) plus any fixed idle period."""
        mean = self.wait_ns_per_unit * self._pending_units_for_wait()
        wait = int(self.rng.exponential(mean)) if mean > 0 else 0
        return wait + self.idle_ns_per_unit

    def next(self, now_ns: int):
        if self._state == "post":
            return self._post_dom0(now_ns)
        if self._state == "run":
            self.units_done += self._pending
            self._pending = 0.0
            left = self.max_units - self.units_done
            if left <= 0:
                self.finished_ns = now_ns
                return Done()
            n = min(self.units_per_burst, left)
            exact = n * self.cpu_ns_per_unit + self._carry_ns
            ns = int(exact)
            self._carry_ns = exact - ns
            self._pending = n
            self.bursts += 1
            if self.dom0 is not None and self.dom0_ns_per_unit:
                self._state = "post"
            elif self.io_bound:
                self._state = "wait"
            return Run(ns)
        # device wait (exponential around the priced mean) or a fixed idle period
        self._state = "run"
        return Block(self._device_wait_ns())

    def _pending_units_for_wait(self) -> float:
        return self._pending if self._pending else 1.0


@dataclass
class DomainRun:
    spec: DomainSpec
    domain: Domain
    cost: OpCost
    behaviours: list[WorkloadBehaviour] = field(default_factory=list)


class System:
    """A built scenario, ready to :meth:`run` once."""

    def __init__(self, scenario: Scenario):
        from pvsim.sched import HostRunner, make_scheduler

        scenario.validate()
        self.scenario = scenario
        self.profile = load_profile(scenario.host.profile, field_name="host.profile")
        self.engine = Engine(seed=scenario.seed)
        self.hv = Hypervisor(self.profile, self.engine)
        from collections import Counter

        from pvsim.sched.costs import switch_cost_from_profile

        self.switch_ns: Counter = Counter()  # per domain: pCPU time spent switching to its vCPUs
        base_cost = switch_cost_from_profile(self.profile)

        def switch_cost(prev, nxt):
            c = int(base_cost(prev, nxt))
            self.switch_ns[nxt.dom.domid] += c
            return c

        self.runner = HostRunner(self.engine, make_scheduler(scenario.scheduler, scenario.scheduler_params),
                                 scenario.host.pcpus, switch_cost_ns=switch_cost)

        def refund(unit, c):
            self.switch_ns[unit.dom.domid] -= c
        self.runner.switch_refund = refund
        self.domains: list[DomainRun] = []
        specs = list(scenario.domains)
        if any(MODES[d.mode].virtualized for d in specs) and not any(d.name == "Domain-0" for d in specs):
            specs.insert(0, DomainSpec("Domain-0", "pv", workload="idle", vcpus=1, memory_mib=512))
        self.dom0_service = Dom0Service(self.engine) if any(d.name == "Domain-0" for d in specs) else None
        for domid, spec in enumerate(specs):
            self._add_domain(domid, spec)
        for t in scenario.timeline:
            self._add_timeline(t)
        self._ran = False

    def _add_domain(self, domid: int, spec: DomainSpec) -> None:
        info = MODES[spec.mode]
        guest_type = info.guest_type if info.guest_type != "none" else "native"
        dom = self.hv.add_domain(Domain(domid, spec.name, spec.mode, guest_type, nr_vcpus=spec.vcpus,
                                        tot_pages=spec.memory_mib * 256, weight=spec.weight, cap=spec.cap,
                                        privileged=(domid == 0 and info.virtualized)))
        cost = op_cost(spec.workload, spec.mode, self.profile, spec.options or None)
        is_dom0 = spec.name == "Domain-0"
        dom0_cycles: dict = {}
        if self.dom0_service is not None and info.virtualized and not is_dom0:
            # the backend work of this domain's I/O runs on Domain-0, not on its own vCPUs
            dom0_cycles = {c: v for c, v in cost.cycles.items() if c.startswith("dom0.")}
            if dom0_cycles:
                cost = OpCost(cost.op, cost.mode, {c: v for c, v in cost.cycles.items() if c not in dom0_cycles},
                              cost.counts)
        op = get_op(spec.workload)
        ops_limit = self.scenario.ops if self.scenario.ops is not None else math.inf
        idle = int(op.extra.get("idle_ns_per_unit", 0))
        if spec.workload == "idle":
            ops_limit = math.inf
        affinity = set(parse_cpulist(spec.cpus, self.scenario.host.pcpus, "cpus"))
        dr = DomainRun(spec, dom, cost)
        for v in range(spec.vcpus):
            b = WorkloadBehaviour(cost, self.profile, self.engine.rng(f"workload/{spec.name}/{v}"),
                                  max_units=ops_limit, idle_ns_per_unit=idle,
                                  dom0=self.dom0_service if dom0_cycles else None, dom0_cycles=dom0_cycles)
            # Domain-0's vCPUs serve posted backend work around their own workload
            vcpu = Dom0Behaviour(self.dom0_service, b) if is_dom0 and self.dom0_service is not None else b
            self.runner.add_vcpu(domid, v, vcpu, weight=spec.weight, cap=spec.cap, affinity=affinity,
                                 name=f"{spec.name}.{v}", params=spec.sched_params or None)
            dr.behaviours.append(b)
        self.domains.append(dr)

    def _add_timeline(self, t) -> None:
        if not t.domain:
            self.runner.at(int(t.at_ms * 1_000_000), lambda now, p=dict(t.params): self.runner.adjust_global(**p))
            return
        domid = next(d.domain.domid for d in self.domains if d.spec.name == t.domain)
        params = dict(t.params)
        cpus = params.pop("cpus", None)

        def apply(now, domid=domid, params=params, cpus=cpus):
            if params:
                self.runner.adjust(domid, **params)
            if cpus is not None:
                self.runner.pin(domid, None, hard=set(parse_cpulist(cpus, self.scenario.host.pcpus, "cpus")))

        self.runner.at(int(t.at_ms * 1_000_000), apply)

    def run(self, progress=None) -> "Results":
        from pvsim.results import Results

        if self._ran:
            raise RuntimeError("a System runs once; build() again for another run")
        self._ran = True
        self.runner.start()
        if self.scenario.duration_ms is not None:
            until = int(self.scenario.duration_ms * 1_000_000)
            step = max(1, until // 50)
            t = 0
            while t < until:
                t = min(until, t + step)
                self.engine.run(until_ns=t)
                if progress:
                    progress(t / until)
        else:
            finite = [b for d in self.domains for b in d.behaviours if math.isfinite(b.max_units)]
            step = 10_000_000
            while any(b.finished_ns is None for b in finite):
                self.engine.run(until_ns=self.engine.now_ns + step)
                if progress:
                    done = sum(min(b.units_done, b.max_units) for b in finite)
                    progress(done / max(1.0, sum(b.max_units for b in finite)))
        return Results.from_system(self)


def build(scenario: Scenario) -> System:
    return System(scenario)
