"""XenBus handshake and teardown through the simulated xenstore."""

from pvsim.io import evtchn as ev
from pvsim.io import xenstore as xsm
from pvsim.io.devices import Disk
from pvsim.io.paths import RingBlk
from pvsim.io.system import IOSystem
from pvsim.profile import load_profile


def test_handshake_states_and_teardown():
    sys = IOSystem("pv", load_profile("modern"), seed=1)
    seen = []
    sys.xs.watch("/local/domain/0/backend/vbd/1/0/state", lambda path: seen.append(sys.xs.read(path)))
    blk = RingBlk(sys, Disk(sys.engine, sys.pricer, sys.engine.rng("d")), "xen")
    x = blk.xdev
    assert [s for side, s in x.history] == [
        "Initialising", "Initialising", "InitWait", "Initialised", "Connected", "Connected"]
    assert seen == ["1", "2", "4"]  # the watch saw Initialising, InitWait, Connected
    assert x.state("front") == x.state("back") == xsm.XenbusStateConnected
    assert int(sys.xs.read(f"{x.fpath}/event-channel")) == x.front_port
    assert sys.xs.read(f"{x.fpath}/ring-ref") is not None
    assert sys.xs.directory("/local/domain/0/backend/vbd/1") == ["0"]
    # the backend holds a mapping of the ring page and an interdomain port
    assert len(sys.dom0.grant_table.maptrack) == 1
    assert ev.evtchn_for(sys.dom0).channels[x.back_port].state == 2
    x.close("test")
    assert x.state("front") == x.state("back") == xsm.XenbusStateClosed
    assert len(sys.dom0.grant_table.maptrack) == 0
    assert ev.evtchn_for(sys.guest).channels[x.front_port].state == 1  # back to unbound
    assert [s for side, s in x.history][-4:] == ["Closing", "Closing", "Closed", "Closed"]


def test_multipage_ring_publishes_order_and_refs():
    sys = IOSystem("pv", load_profile("modern"), seed=1)
    blk = RingBlk(sys, Disk(sys.engine, sys.pricer, sys.engine.rng("d")), "xen", ring_pages=4)
    assert blk.s.size == 128
    assert sys.xs.read(f"{blk.xdev.fpath}/ring-page-order") == "2"
    assert all(sys.xs.read(f"{blk.xdev.fpath}/ring-ref{i}") for i in range(4))
