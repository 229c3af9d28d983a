"""A hostile frontend puts malformed requests on its ring: its device is closed through the xenbus
state machine, another domain's I/O completes and the run ends normally (issue 16)."""

from __future__ import annotations

import pytest

from hypercalls import errno as E
from hypercalls import ops
from hypercalls.args import EvtchnSend
from hypercalls.table import HYPERVISOR_event_channel_op
from pvsim.io import gnttab as gt
from pvsim.io import xenstore as xsm
from pvsim.scenario import Scenario
from pvsim.system import build

ATTACKER = {"name": "attacker", "threads": 1, "peer": "sink",
            "steps": [{"sleep": {"ns": 10 ** 12}}, {"disk": {"op": "read", "bytes": 4096}},
                      {"send": {"bytes": 1500}}]}


def setup(victim_workload="fio-rand4k", attacker=ATTACKER):
    wl = [attacker]
    sc = Scenario.from_dict({
        "seed": 3, "host": {"pcpus": 3, "memory_mib": 8192, "profile": "modern"}, "run": {"duration_ms": 8},
        "workloads": wl,
        "domains": [{"name": "victim", "mode": "pv", "workload": victim_workload},
                    {"name": "hostile", "mode": "pv", "workload": "attacker"}]})
    system = build(sc)
    return system, system.domain("victim"), system.domain("hostile")


def kick(hostile, port):
    hostile.os.boot.hypercall(HYPERVISOR_event_channel_op, ops.EVTCHNOP_send, EvtchnSend(port))


def good_blk(blk, rid=7):
    return {"id": rid, "operation": 0, "indirect_op": 0, "nr_segments": 1, "sector_number": 0,
            "grefs": [blk.fgt.grant_access(0, 0x99)], "nbytes": 4096}


def _without(key):
    def f(r):
        del r[key]
        return r
    return f


def _with(**kw):
    def f(r):
        r.update(kw)
        return r
    return f


BLK_ATTACKS = {
    "not_a_record": lambda r: "garbage",
    "a_list": lambda r: [1, 2, 3],
    "no_id": _without("id"),
    "no_nr_segments": _without("nr_segments"),
    "string_nr_segments": _with(nr_segments="1"),
    "string_nbytes": _with(nbytes="4096"),
    "grefs_none": _with(grefs=None),
    "list_id": _with(id=[1]),
    "operation_99": _with(operation=99),
    "sector_minus_1": _with(sector_number=-1),
    "sector_2_80": _with(sector_number=2 ** 80),
    "sector_past_the_disk": None,  # filled in from the disk's size
    "nbytes_2_40": _with(nbytes=2 ** 40),
    "zero_segments": _with(nr_segments=0, grefs=[]),
    "bool_id": _with(id=True, operation=True),
    "indirect_without_feature": _with(operation=6),
}


def at(system, t_ns, fn):
    """Run ``fn`` at simulated time ``t_ns`` inside the run."""
    def proc():
        yield system.engine.timeout_ns(t_ns)
        fn()
    system.engine.process(proc())


def run_with_attack(system, victim, hostile, dev, attack):
    """The whole run with ``attack`` at 2 ms: the hostile device is closed, the victim's I/O
    completes and the run ends normally."""
    seen = {}

    def before():
        seen["units"] = victim.os.units
        attack()

    def after():
        assert dev.closed and dev.error, dev.error
        assert dev.xdev.state("back") == xsm.XenbusStateClosed
        assert system.hosts[0].xs.read(f"{dev.xdev.bpath}/error")
        seen["closed_at"] = victim.os.units
        seen["error"] = dev.error

    at(system, 2_000_000, before)
    at(system, 3_000_000, after)
    res = system.run()  # the run ends normally
    assert "closed_at" in seen, "the check after the attack never ran"
    assert seen["units"] > 0
    assert victim.os.units - seen["closed_at"] > 10  # the victim's I/O carries on and completes
    for d in (victim.blk, victim.net):
        if d is not None and d.xdev is not None:
            assert d.error is None and d.front_error is None
            assert d.xdev.state("back") == xsm.XenbusStateConnected
    row = next(r for r in res.rows if r["domain"] == "victim")
    assert row["value"] > 0
    return res


@pytest.mark.parametrize("kind", sorted(BLK_ATTACKS))
def test_malformed_block_request_closes_only_the_hostile_device(kind):
    system, victim, hostile = setup()
    blk = hostile.blk

    def attack():
        req = good_blk(blk)
        if kind == "sector_past_the_disk":
            req["sector_number"] = blk.disk.capacity_sectors - 4  # 8 sectors from there cross the end
        else:
            req = BLK_ATTACKS[kind](req)
        blk.f.put_request(req)
        blk.f.push_requests()
        kick(hostile, blk.front_port)
    run_with_attack(system, victim, hostile, blk, attack)
    if kind == "operation_99":
        assert "with operation 99" in blk.error, blk.error


def test_duplicate_ids_in_one_batch_and_a_valid_request_first():
    system, victim, hostile = setup()
    blk = hostile.blk

    def attack():
        blk.f.put_request(good_blk(blk, 1))
        blk.f.put_request(good_blk(blk, 1))
        blk.f.push_requests()
        kick(hostile, blk.front_port)
    run_with_attack(system, victim, hostile, blk, attack)
    assert "already in flight" in blk.error


def test_grant_map_failing_with_efault_is_not_completed(monkeypatch):
    """blkback checks the hypercall's return code, not only each op's status."""
    system, victim, hostile = setup()
    blk = hostile.blk
    real = gt.grant_table_op
    bdom = blk.sys.bdom

    def faulty(hv, ld, cmd, uop, count):
        if ld is bdom and cmd == ops.GNTTABOP_map_grant_ref and any(m.dom == blk.gdom.domid for m in uop):
            return -E.EFAULT  # the statuses stay as the backend wrote them (GNTST_okay)
        return real(hv, ld, cmd, uop, count)

    monkeypatch.setattr(gt, "grant_table_op", faulty)

    def attack():
        blk.f.put_request(good_blk(blk))
        blk.f.push_requests()
        kick(hostile, blk.front_port)
    run_with_attack(system, victim, hostile, blk, attack)
    assert blk.error and "-14" in blk.error
    assert blk.f.has_unconsumed_responses() == 0  # nothing completed with status 0


NET_ATTACKS = {
    "tx_not_a_tuple": {"id": 1},
    "tx_short": (1, 2),
    "tx_string_size": (1, None, "1500", None),
    "tx_size_0": (1, None, 0, None),
    "tx_size_big": (1, None, 2 ** 40, None),
    "tx_list_id": ([1], None, 100, None),
    "tx_id_2_70": (2 ** 70, None, 100, None),
    "tx_gref_none": (1, "none", 100, None),
}


@pytest.mark.parametrize("kind", sorted(NET_ATTACKS))
def test_malformed_tx_request_closes_only_the_hostile_vif(kind):
    system, victim, hostile = setup("fio-rand4k")
    net = hostile.net

    def attack():
        req = NET_ATTACKS[kind]
        if isinstance(req, tuple) and len(req) == 4 and req[1] is None:
            req = (req[0], net.fgt.grant_access(0, 0x77, readonly=True), req[2], req[3])
        net.txf.put_request(req)
        net.txf.push_requests()
        kick(hostile, net.front_port)
    run_with_attack(system, victim, hostile, net, attack)
