"""rtds under the compiled dispatcher against the Python one, through the runner's own controls (the
scenario equivalence test drives the builder): pause and unpause (the scheduler's sleep and wake of
a queued, a depleted and a running unit), yield, a re-pin that migrates a running unit, ``xl
sched-rtds`` on one vCPU and on a domain, a vCPU added and one destroyed -- identical traces,
stats, xl view and deadline misses."""

import pytest
from sched_helpers import MS

from pvsim.core.engine import Block, Engine, Run
from pvsim.core.errors import ScenarioError
from pvsim.sched import HostRunner, make_scheduler
from pvsim.sched.hk.runner import CompiledRunner, has_kernel
from pvsim.sched.xl import xl_sched_rtds

pytestmark = pytest.mark.skipif(not has_kernel("rtds"), reason="no rtds kernel")


class Loop:
    def __init__(self, run_ns, block_ns):
        self.run_ns, self.block_ns, self.k = run_ns, block_ns, 0

    def next(self, now):
        self.k += 1
        return Run(self.run_ns) if self.k % 2 or not self.block_ns else Block(self.block_ns)


def _scenario(kind):
    e = Engine(seed=0)
    log = []
    e.subscribe(lambda r: log.append((r.time_ns, r.pcpu, r.event, r.words)))
    s = make_scheduler("rtds")
    r = HostRunner(e, s, 3) if kind == "python" else CompiledRunner(e, s, 3, switch_costs=(0, 0))
    us = []
    for d in range(6):
        p = {"period_us": 4000 + 1000 * d, "budget_us": 1000 + 300 * d, "extratime": d % 2 == 0}
        for v in range(2):
            us.append(r.add_vcpu(d + 1, v, Loop((1 + d) * MS, (d % 3) * MS), params=p,
                                 affinity={0, 1} if d == 2 else None))
    r.start()
    e.run(15 * MS)
    for u in us[:5]:  # running, queued or depleted, whichever they are now
        r.pause(u)
    e.run(22 * MS)
    for u in us[:5]:
        r.unpause(u)
    r.yield_(us[6])
    e.run(30 * MS)
    r.pin(4, None, hard={2})
    r.adjust(3, 1, budget_us=500, extratime=False)
    r.adjust(5, None, period_us=2000, budget_us=1500)
    e.run(45 * MS)
    late = r.add_vcpu(9, 0, Loop(2 * MS, MS), params={"period_us": 3000, "budget_us": 2000})
    e.run(60 * MS)
    r.destroy_vcpu(us[3])
    r.destroy_vcpu(late)
    e.run(90 * MS)
    st = r.stats()
    return (log, [(v.name, v.runstate_ns, v.context_switches, v.migrations, v.state) for v in st.vcpus],
            xl_sched_rtds(r), s.deadline_misses(), {d: s.dom_info(r.domains[d]) for d in r.domains})


def test_rtds_controls_give_the_same_trace_under_both_dispatchers():
    a = _scenario("python")
    b = _scenario("compiled")
    assert len(a[0]) > 500
    for i, (x, y) in enumerate(zip(a[0], b[0])):
        assert x == y, f"record {i}: python {x} != compiled {y}"
    assert a[1:] == b[1:]
    assert any(m for m in a[3].values())


def test_rtds_budget_above_period_is_refused_by_both():
    for kind in ("python", "compiled"):
        e = Engine(seed=0)
        s = make_scheduler("rtds")
        r = HostRunner(e, s, 1) if kind == "python" else CompiledRunner(e, s, 1)
        r.add_vcpu(1, 0, Loop(MS, MS), params={"budget_us": 20000})  # above the default period
        with pytest.raises(ScenarioError, match="budget_us"):
            r.start()
