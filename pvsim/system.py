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

Simplifications: all units of one workload cost the same CPU time (the mix is priced at its expected
value); device times are drawn per unit from an exponential distribution around the priced mean.
"""

from __future__ import annotations

import math
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
from pvsim.workloads import get as get_op

if TYPE_CHECKING:
    from pvsim.results import Results

DEFAULT_BURST_NS = 1_000_000  # about 1 ms of guest CPU work per dispatcher burst


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

    def __post_init__(self):
        ghz = self.profile.clock_ghz
        self.cpu_ns_per_unit = self.cost.cpu_cycles / ghz
        self.wait_ns_per_unit = self.cost.wait_cycles / ghz
        if self.cpu_ns_per_unit <= 0 and self.wait_ns_per_unit <= 0 and self.idle_ns_per_unit <= 0:
            raise ScenarioError("workload", f"{self.cost.op}: a unit of work takes no time")
        io_bound = self.wait_ns_per_unit > 0 or self.idle_ns_per_unit > 0
        per_burst = 1 if io_bound else max(1, int(self.burst_ns // max(self.cpu_ns_per_unit, 1e-9)))
        self.units_per_burst = per_burst
        self._state = "run"

    def next(self, now_ns: int):
        from pvsim.sched import Block, Done, Run

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
            if self.wait_ns_per_unit > 0 or self.idle_ns_per_unit > 0:
                self._state = "wait"
            return Run(ns)
        # device wait (exponential around the priced mean) or a fixed idle period
        self._state = "run"
        mean = self.wait_ns_per_unit * self._pending_units_for_wait()
        wait = int(self.rng.exponential(mean)) if mean > 0 else 0
        return Block(wait + self.idle_ns_per_unit)

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
        self.domains: list[DomainRun] = []
        specs = list(scenario.domains)
        if any(MODES[d.mode].virtualized for d in specs) and not any(d.name == "Domain-0" for d in specs):
            specs.insert(0, DomainSpec("Domain-0", "pv", workload="idle", vcpus=1, memory_mib=512))
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
        op = get_op(spec.workload)
        ops_limit = self.scenario.ops if self.scenario.ops is not None else math.inf
        idle = int(op.extra.get("idle_ns_per_unit", 0))
        if spec.workload == "idle":
            ops_limit = math.inf
        affinity = set(parse_cpulist(spec.cpus, self.scenario.host.pcpus, "cpus"))
        dr = DomainRun(spec, dom, cost)
        for v in range(spec.vcpus):
            b = WorkloadBehaviour(cost, self.profile, self.engine.rng(f"workload/{spec.name}/{v}"),
                                  max_units=ops_limit, idle_ns_per_unit=idle)
            self.runner.add_vcpu(domid, v, b, weight=spec.weight, cap=spec.cap, affinity=affinity,
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
