import pytest
from sched_helpers import SwitchLog

from pvsim.core.engine import Engine
from pvsim.sched import HostRunner, make_scheduler


@pytest.fixture
def host():
    def make(sched="rr", params=None, n=1, switch_cost_ns=None, seed=0, trace=False):
        e = Engine(seed=seed)
        log = SwitchLog(e) if trace else None
        r = HostRunner(e, make_scheduler(sched, params), n, switch_cost_ns=switch_cost_ns)
        return e, r, log

    return make
