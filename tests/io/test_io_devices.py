"""Physical devices: the disk service-time kernel against its reference, disk and NIC behaviour."""

import numpy as np

from pvsim.core import kernels
from pvsim.core.engine import Engine
from pvsim.core.meter import Pricer
from pvsim.core.profile import load_profile
from pvsim.io import devices as D


def test_disk_kernel_matches_reference():
    e = kernels.load_all()["disk_service_ns"]
    rng = np.random.default_rng(5)
    for case in e.cases(rng):
        ref = e.reference(*case[:5], np.empty(len(case[1])))
        ker = e.kernel(*case[:5], np.empty(len(case[1])))
        assert np.allclose(ref, ker)


def test_rotational_disk_average_and_sequential():
    p = load_profile("xeon-2003")
    eng = Engine(seed=1)
    disk = D.Disk(eng, Pricer(p), eng.rng("d"))
    assert disk.kind == "hdd"
    rng = np.random.default_rng(2)
    t = [disk.service_ns(0, int(rng.integers(0, disk.capacity_sectors - 8)), 4096) for _ in range(4000)]
    mean_ms = np.mean(t) / 1e6
    # average seek 4.9 ms + half a rotation 2.99 ms + transfer ~0.06 ms
    assert 7.2 < mean_ms < 8.7
    disk.head = 1000
    assert disk.service_ns(0, 1000, 4096) < 100_000  # sequential: transfer only


def test_ssd_parallelism_and_nic_serialisation():
    p = load_profile("modern")
    eng = Engine(seed=1)
    pr = Pricer(p)
    ssd = D.Disk(eng, pr, eng.rng("d"))
    assert ssd.kind == "ssd" and ssd.servers == 40  # 500k IOPS x 80 us
    done = []
    for i in range(80):
        ssd.submit(0, i * 8, 4096, lambda: done.append(eng.now_ns))
    eng.run(10_000_000)
    assert len(done) == 80 and max(done) < 3 * 80_000 + 10_000  # two waves of 40
    peer = D.Peer(eng, pr, "sink")
    nic = D.NIC(eng, pr, peer)
    t0 = eng.now_ns
    nic.transmit(1000, 1000 * 1500, None)
    eng.run(t0 + 10_000_000)
    wire = 1000 * (1500 + D.ETH_FRAMING_BYTES) * 8 / 25  # ns at 25 Gbit/s = 25 bit/ns
    assert peer.received_pkts == 1000
    assert abs(nic.wire_busy_ns - wire) < 1000
    assert nic.rx_pkts == 500  # delayed ACK: one per two segments
