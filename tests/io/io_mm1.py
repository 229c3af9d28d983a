"""M/M/1 harness: Poisson arrivals into blkfront, blkback in dom0 in front of an exponential server."""

from pvsim.io.devices import Disk
from pvsim.io.paths import RingBlk
from pvsim.io.system import IOSystem


def run_mm1(profile, lam_per_s: float, mean_service_ns: float, n_arrivals: int, seed: int = 7, ring_pages: int = 4):
    sys = IOSystem("pv", profile, seed=seed)
    disk = Disk(sys.engine, sys.pricer, sys.engine.rng("mm1/disk"), "exp", mean_service_ns)
    blk = RingBlk(sys, disk, "xen", ring_pages=ring_pages)
    rng = sys.engine.rng("mm1/arrivals")
    g = sys.gos
    resp: list[int] = []

    def one(t0):
        box = []
        yield from blk.submit_gen(0, 0, 4096, box)
        yield ("wait", box[0].ev)
        resp.append(sys.engine.now_ns - t0)

    def arrivals():
        for _ in range(n_arrivals):
            yield ("wait", sys.engine.timeout_ns(int(rng.exponential(1e9 / lam_per_s))))
            g.spawn(one(sys.engine.now_ns))

    g.spawn(arrivals())
    sys.start()
    horizon = int(n_arrivals / lam_per_s * 1e9 * 1.2) + 100_000_000
    sys.run(horizon)
    return resp, blk, sys
