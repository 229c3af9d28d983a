"""The null and bvt kernels beyond the equivalence scenarios: bvt's introspection (``unit_info``,
``dom_info``) read from the arena under the compiled dispatcher, and a bvt domain with its own
parameters (warp, ``mcu_advance``) added while the host runs (the module's ``load_unit``)."""

import pytest
from sched_helpers import MS

from pvsim.core.engine import Block, Engine, Run
from pvsim.sched import HostRunner, make_scheduler
from pvsim.sched.hk.runner import CompiledRunner, has_kernel

pytestmark = pytest.mark.skipif(not has_kernel("bvt"), reason="bvt kernel not ready")


class Loop:
    def __init__(self, run_ns, block_ns):
        self.run_ns, self.block_ns, self.k = run_ns, block_ns, 0

    def next(self, now):
        self.k += 1
        return Run(self.run_ns) if self.k % 2 else Block(self.block_ns)


def _scenario(kind):
    e = Engine(seed=0)
    log = []
    e.subscribe(lambda r: log.append((r.time_ns, r.pcpu, r.event, r.words)))
    s = make_scheduler("bvt", {"ctx_allow_us": 2000})
    r = HostRunner(e, s, 2) if kind == "python" else CompiledRunner(e, s, 2, switch_costs=(0, 0))
    for d in range(3):
        r.add_vcpu(d + 1, 0, Loop((3 + d) * MS, (1 + d) * MS), weight=256 * (d + 1),
                   params={"warp_us": 4000, "warpl_ms": 5, "warpu_ms": 3} if d == 0 else None)
    r.start()
    e.run(30 * MS)
    r.add_vcpu(9, 0, Loop(MS // 2, MS), params={"warp_us": 8000, "warpl_ms": 2, "warpu_ms": 1, "mcu_advance": 3})
    r.add_vcpu(9, 1, Loop(4 * MS, MS // 3))
    e.run(60 * MS)
    r.adjust(2, weight=2048)
    r.adjust(9, warp_us=0)
    e.run(90 * MS)
    r.sync()
    info = [(s.unit_info(u), s.dom_info(u.dom)) for u in r.units]
    return log, info


def test_bvt_domain_added_at_run_time_with_its_parameters_and_unit_info():
    la, ia = _scenario("python")
    lb, ib = _scenario("compiled")
    assert len(la) > 100
    assert la == lb
    assert ia == ib
    assert any(i["warping"] for i, _d in ia) or any(d["warp_us"] for _i, d in ia)
