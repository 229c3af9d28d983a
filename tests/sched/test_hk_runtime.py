"""vCPUs added and destroyed while a host runs, under both dispatchers: identical traces and stats
(the compiled dispatcher grows its arena; a destroyed vCPU leaves the scheduler at once or when its
pCPU next reschedules)."""

import pytest
from sched_helpers import MS

from pvsim.core.engine import Block, Engine, Run
from pvsim.sched import HostRunner, make_scheduler
from pvsim.sched.hk.runner import CompiledRunner, has_kernel
from pvsim.sched.ops import SCHEDULER_NAMES


class Loop:
    """Run ``run_ns`` then block ``block_ns``, forever (an external behaviour: plain Python)."""

    def __init__(self, run_ns, block_ns):
        self.run_ns, self.block_ns, self.k = run_ns, block_ns, 0

    def next(self, now):
        self.k += 1
        return Run(self.run_ns) if self.k % 2 else Block(self.block_ns)


def _host(kind, sched):
    e = Engine(seed=0)
    log = []
    e.subscribe(lambda r: log.append((r.time_ns, r.pcpu, r.event, r.words)))
    s = make_scheduler(sched)
    r = HostRunner(e, s, 2) if kind == "python" else CompiledRunner(e, s, 2, switch_costs=(0, 0))
    return e, r, log


def _scenario(kind, sched):
    e, r, log = _host(kind, sched)
    units = [r.add_vcpu(d + 1, 0, Loop((3 + d) * MS, (2 + d) * MS)) for d in range(3)]
    r.start()
    e.run(40 * MS)
    late = r.add_vcpu(9, 0, Loop(MS, MS))  # a domain created at run time
    r.add_vcpu(9, 1, Loop(2 * MS, MS))
    e.run(70 * MS)
    r.destroy_vcpu(units[0])  # a domain destroyed at run time (running or not)
    r.destroy_vcpu(late)
    e.run(120 * MS)
    st = r.stats()
    return log, [(v.name, v.runstate_ns, v.context_switches, v.state) for v in st.vcpus]


@pytest.mark.parametrize("sched", [s for s in SCHEDULER_NAMES if has_kernel(s)])
def test_vcpus_added_and_destroyed_at_run_time(sched):
    la, sa = _scenario("python", sched)
    lb, sb = _scenario("compiled", sched)
    assert la == lb
    assert sa == sb
    names = {n: st for n, _rs, _c, st in sa}
    assert names["d1.0"] == "-" and names["d9.0"] == "-" and names["d9.1"] != "-"
