"""A hostile frontend is detected, its device closed, and another domain's I/O carries on."""

import pytest

from pvsim.io import xenstore as xsm
from pvsim.io.devices import Disk
from pvsim.io.paths import RingBlk
from pvsim.io.ring import u32
from pvsim.io.system import IOSystem
from pvsim.profile import load_profile


def setup():
    p = load_profile("modern")
    sys = IOSystem("pv", p, seed=3, n_pcpus=3)
    disk = Disk(sys.engine, sys.pricer, sys.engine.rng("disk"))
    victim = RingBlk(sys, disk, "xen")
    hdom, hos = sys.add_guest(2, "hostile")
    hostile = RingBlk(sys, disk, "xen", gdom=hdom, gos=hos)
    done = []

    def victim_job():
        while True:
            box = []
            yield from victim.submit_gen(0, 8 * len(done), 4096, box)
            yield ("wait", box[0].ev)
            done.append(sys.engine.now_ns)

    sys.gos.spawn(victim_job())
    return sys, victim, hostile, hdom, hos, done


def attack(kind, hostile, hdom, hos):
    f, s = hostile.f, hostile.s
    if kind == "bogus_prod":
        s.req_prod = u32(s.req_prod + 10_000)
    else:
        rid = 7
        req = {"id": rid, "operation": 0, "indirect_op": 0, "nr_segments": 1, "sector_number": 0,
               "grefs": [hostile.fgt.grant_access(0, 0x99)], "nbytes": 4096}
        if kind == "ungranted":
            req["grefs"] = [4000]  # never granted
        elif kind == "too_many_segments":
            req["nr_segments"] = 40
            req["grefs"] = [hostile.fgt.grant_access(0, 0x100 + i) for i in range(40)]
        f.put_request(req)
        if kind == "duplicate_id":
            f.put_request(dict(req))
        f.push_requests()
    # kick the backend
    from hypercalls import args as A
    from hypercalls import ops as O
    hos.hypercall(32, O.EVTCHNOP_send, A.EvtchnSend(hostile.front_port))


@pytest.mark.parametrize("kind", ["bogus_prod", "ungranted", "too_many_segments", "duplicate_id"])
def test_hostile_frontend_is_closed_and_victim_continues(kind):
    sys, victim, hostile, hdom, hos, done = setup()
    sys.start()
    sys.run(5_000_000)
    before = len(done)
    assert before > 0
    attack(kind, hostile, hdom, hos)
    sys.run(6_000_000)
    assert hostile.closed and hostile.error, kind
    assert hostile.xdev.state("back") == xsm.XenbusStateClosed
    assert sys.xs.read(f"{hostile.xdev.bpath}/error")
    t_attack = 5_000_000
    sys.run(15_000_000)
    after = [t for t in done if t > 6_000_000]
    assert len(after) > 10  # the victim's I/O carries on
    assert victim.error is None and victim.front_error is None
    assert victim.xdev.state("back") == xsm.XenbusStateConnected
    assert t_attack < 6_000_000


def test_frontend_rejects_a_response_id_it_never_issued():
    sys, victim, hostile, hdom, hos, done = setup()
    sys.start()
    sys.run(2_000_000)
    b = victim.b  # a hostile *backend* writes a response nobody asked for
    b.put_response({"id": 123456, "operation": 0, "status": 0})
    b.push_responses_and_check_notify()
    victim.front_event()
    assert victim.front_error and "never issued" in victim.front_error
