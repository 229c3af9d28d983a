"""XenBus handshake and teardown through the simulated xenstore, on a built host."""

from io_helpers import build_io

from pvsim.io import evtchn as ev
from pvsim.io import xenstore as xsm

DISK = [{"name": "disk1", "steps": [{"sleep": {"ns": 10 ** 9}}, {"disk": {"op": "read", "bytes": 4096}}]}]


def test_handshake_states_and_teardown():
    system = build_io("disk1", "pv", workloads=DISK)
    host = system.hosts[0]
    g = system.domain("guest")
    dom0, guest = host.control.domain, g.domain
    blk = g.blk
    x = blk.xdev
    assert [s for side, s in x.history] == [
        "Initialising", "Initialising", "InitWait", "Initialised", "Connected", "Connected"]
    states = [v for p, v in host.xs.log if p == f"/local/domain/0/backend/vbd/{guest.domid}/0/state"]
    assert states == ["1", "2", "4"]  # the backend went Initialising, InitWait, Connected
    assert x.state("front") == x.state("back") == xsm.XenbusStateConnected
    assert int(host.xs.read(f"{x.fpath}/event-channel")) == x.front_port
    assert host.xs.read(f"{x.fpath}/ring-ref") is not None
    assert host.xs.directory(f"/local/domain/0/backend/vbd/{guest.domid}") == ["0"]
    # the backend holds a mapping of the ring page and an interdomain port
    assert len(dom0.grant_table.maptrack) == 1
    assert ev.evtchn_for(dom0).channels[x.back_port].state == 2
    x.close("test")
    assert x.state("front") == x.state("back") == xsm.XenbusStateClosed
    assert len(dom0.grant_table.maptrack) == 0
    assert ev.evtchn_for(guest).channels[x.front_port].state == 1  # back to unbound
    assert [s for side, s in x.history][-4:] == ["Closing", "Closing", "Closed", "Closed"]


def test_multipage_ring_publishes_order_and_refs():
    system = build_io("disk1", "pv", workloads=DISK, options={"ring_pages": 4})
    blk = system.domain("guest").blk
    xs = system.hosts[0].xs
    assert blk.s.size == 128
    assert xs.read(f"{blk.xdev.fpath}/ring-page-order") == "2"
    assert all(xs.read(f"{blk.xdev.fpath}/ring-ref{i}") for i in range(4))
