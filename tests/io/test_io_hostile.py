"""A hostile frontend is detected, its device closed, and another domain's I/O carries on."""

import pytest

from hypercalls import ops
from hypercalls.args import EvtchnSend
from hypercalls.table import HYPERVISOR_event_channel_op
from pvsim.io import xenstore as xsm
from pvsim.io.ring import u32
from pvsim.scenario import Scenario
from pvsim.system import build

WORKLOADS = [
    {"name": "victim", "metric": "iops", "threads": 1,
     "steps": [{"disk": {"op": "read", "bytes": 4096, "pattern": "sequential", "span_bytes": 1 << 30}}]},
    # the attacker's own workload never issues I/O: the test writes its ring by hand
    {"name": "attacker", "threads": 1, "steps": [{"sleep": {"ns": 10 ** 12}}, {"disk": {"op": "read", "bytes": 4096}}]},
]


def setup():
    sc = Scenario.from_dict({
        "seed": 3, "host": {"pcpus": 3, "memory_mib": 8192, "profile": "modern"}, "run": {"duration_ms": 20},
        "workloads": WORKLOADS,
        "domains": [{"name": "victim", "mode": "pv", "workload": "victim"},
                    {"name": "hostile", "mode": "pv", "workload": "attacker"}]})
    system = build(sc)
    return system, system.domain("victim"), system.domain("hostile")


def attack(kind, hostile):
    blk = hostile.blk
    f, s = blk.f, blk.s
    if kind == "bogus_prod":
        s.req_prod = u32(s.req_prod + 10_000)
    else:
        rid = 7
        req = {"id": rid, "operation": 0, "indirect_op": 0, "nr_segments": 1, "sector_number": 0,
               "grefs": [blk.fgt.grant_access(0, 0x99)], "nbytes": 4096}
        if kind == "ungranted":
            req["grefs"] = [4000]  # never granted
        elif kind == "too_many_segments":
            req["nr_segments"] = 40
            req["grefs"] = [blk.fgt.grant_access(0, 0x100 + i) for i in range(40)]
        f.put_request(req)
        if kind == "duplicate_id":
            f.put_request(dict(req))
        f.push_requests()
    # kick the backend
    hostile.os.boot.hypercall(HYPERVISOR_event_channel_op, ops.EVTCHNOP_send, EvtchnSend(blk.front_port))


@pytest.mark.parametrize("kind", ["bogus_prod", "ungranted", "too_many_segments", "duplicate_id"])
def test_hostile_frontend_is_closed_and_victim_continues(kind):
    system, victim, hostile = setup()
    system.advance(5_000_000)
    before = victim.os.units
    assert before > 0
    attack(kind, hostile)
    system.advance(6_000_000)
    hb = hostile.blk
    assert hb.closed and hb.error, kind
    assert hb.xdev.state("back") == xsm.XenbusStateClosed
    assert system.hosts[0].xs.read(f"{hb.xdev.bpath}/error")
    at6 = victim.os.units
    system.advance(15_000_000)
    assert victim.os.units - at6 > 10  # the victim's I/O carries on
    assert victim.blk.error is None and victim.blk.front_error is None
    assert victim.blk.xdev.state("back") == xsm.XenbusStateConnected


def test_frontend_rejects_a_response_id_it_never_issued():
    system, victim, hostile = setup()
    system.advance(2_000_000)
    b = victim.blk.b  # a hostile *backend* writes a response nobody asked for
    b.put_response({"id": 123456, "operation": 0, "status": 0})
    b.push_responses_and_check_notify()
    victim.blk.front_event()
    assert victim.blk.front_error and "never issued" in victim.blk.front_error
