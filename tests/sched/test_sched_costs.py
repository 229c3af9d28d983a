"""vCPU context-switch cost priced from the profile's [sched] fragment and reported to a Meter."""

import pytest
from sched_helpers import MS, assert_runstates_sum

from pvsim.core.engine import Engine
from pvsim.core.meter import Meter
from pvsim.core.profile import load_profile
from pvsim.sched import Block, HostRunner, Run, make_scheduler
from pvsim.sched.costs import switch_cost_from_profile
from pvsim.sched.workloads import CpuHog


@pytest.mark.parametrize("name", ["xeon-2003", "p4-2006", "modern"])
def test_every_bundled_profile_has_the_sched_keys(name):
    p = load_profile(name)
    assert p.cycles("sched.vcpu_switch_cycles") > 0 and p.cycles("sched.schedule_cycles") > 0
    # calibrated at most on the lmbench row its derivation starts from (docs/calibration.md), never on a
    # scheduler case: the share checks run without switch costs
    assert p.calibrations().get("sched.vcpu_switch_cycles") in (None, "lmbench.ctx_2p_0k:pv32")
    assert "sched.schedule_cycles" not in p.calibrations()


def test_switches_are_priced_and_metered():
    prof = load_profile("modern")
    meter = Meter()
    e = Engine()
    r = HostRunner(e, make_scheduler("rr", {"tslice_ms": 10}), 1, switch_cost_ns=switch_cost_from_profile(prof, meter))
    r.add_vcpu(1, 0, CpuHog())
    r.add_vcpu(2, 0, CpuHog())
    r.start()
    e.run(100 * MS)
    st = assert_runstates_sum(r)
    n = st.context_switches
    assert n == 10
    assert meter.work[("sched.context_switch", "sched.vcpu_switch_cycles")] == n
    priced = meter.price(prof)["sched.context_switch"]
    assert priced == pytest.approx(n * prof.cycles("sched.vcpu_switch_cycles"))
    # the switch time is running time of the incoming vCPU, not work done: 100 ms of CPU, less work
    assert st.vcpu(1).cpu_ns + st.vcpu(2).cpu_ns == 100 * MS


class _Sleeper:
    def __init__(self):
        self.i = 0

    def next(self, now):
        self.i += 1
        return Run(MS) if self.i % 2 else Block(MS)


def test_switch_back_after_idle_is_lazy():
    prof = load_profile("modern")
    meter = Meter()
    e = Engine()
    r = HostRunner(e, make_scheduler("rr"), 1, switch_cost_ns=switch_cost_from_profile(prof, meter))
    r.add_vcpu(1, 0, _Sleeper())
    r.start()
    e.run(20 * MS)
    # only the first dispatch loads the vCPU's state; after idle it is still loaded (lazy switch)
    assert meter.work[("sched.context_switch", "sched.vcpu_switch_cycles")] == 1
    assert meter.work[("sched.schedule", "sched.schedule_cycles")] >= 5
