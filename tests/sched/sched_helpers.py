"""Shared helpers of the scheduler tests."""

from hypercalls.ops import DOMID_IDLE
from hypercalls.trace import TRC_SCHED_SWITCH

MS = 1_000_000


class SwitchLog:
    """(time_ns, cpu, next domid or None for idle) of every context switch."""

    def __init__(self, engine):
        self.log = []
        engine.subscribe(self)

    def __call__(self, rec):
        if rec.event == TRC_SCHED_SWITCH:
            nd = rec.words[2]
            self.log.append((rec.time_ns, rec.pcpu, None if nd == DOMID_IDLE else nd))


def assert_runstates_sum(runner):
    st = runner.stats()
    for v in st.vcpus:
        assert sum(v.runstate_ns) == v.elapsed_ns, (v.name, v.runstate_ns, v.elapsed_ns)
        assert min(v.runstate_ns) >= 0
    return st
