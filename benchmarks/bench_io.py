"""I/O speed: split-driver requests per wall second, against the bare SimPy loop of the same run,
and the wall time of the README's I/O tour.

* ``fio-rand4k`` and ``ttcp-1500`` under PV (blkfront/blkback, netfront/netback, Domain-0's vCPUs):
  simulated requests per wall s, SimPy events and host decisions per request, and requests per bare
  SimPy event (the goal is one request per 8 bare-SimPy events, i.e. a ratio of 0.125);
* the I/O tour (``pvsim compare --workload ttcp-1500,netperf-rr,fio-rand4k,oltp --modes
  native,pv,bt,hvm,pvhvm,pvh,kvm-virtio --profile modern``), timed in-process.

A table of the I/O rows (metric, latency percentiles, notifications, exits, dom0 time) is printed by
``python benchmarks/bench_io.py table [profile]``. No absolute speed is asserted.
"""

from __future__ import annotations

import sys
import time

import pytest
from yardstick import simpy_events_per_s

from pvsim.compare import GUEST, compare, single_scenario
from pvsim.system import build

TOUR = (["ttcp-1500", "netperf-rr", "fio-rand4k", "oltp"],
        ["native", "pv", "bt", "hvm", "pvhvm", "pvh", "kvm-virtio"])


def request_speed(workload: str, mode: str = "pv", ms: float = 200.0) -> dict:
    build(single_scenario(workload, mode, "modern", duration_ms=100.0)).run()  # warm caches and compiled kernels
    system = build(single_scenario(workload, mode, "modern", duration_ms=ms))
    t0 = time.perf_counter()
    res = system.run()
    wall = time.perf_counter() - t0
    row = next(r for r in res.rows if r["domain"] == GUEST)
    req = row["requests"]
    y = simpy_events_per_s()
    ev = system.engine.events_scheduled
    dec = sum(h.runner.decisions for h in system.hosts)
    return {"workload": workload, "mode": mode, "simulated_ms": ms, "wall_s": round(wall, 3),
            "requests": req, "requests_per_wall_s": round(req / wall), "events_per_request": round(ev / req, 2),
            "decisions_per_request": round(dec / req, 2), "requests_per_bare_simpy_event": round(req / wall / y, 4),
            "bare_simpy_events_per_wall_s": round(y)}


def tour_wall_s() -> float:
    t0 = time.perf_counter()
    compare(*TOUR, "modern")
    return time.perf_counter() - t0


@pytest.mark.benchmark
@pytest.mark.parametrize("workload", ["fio-rand4k", "ttcp-1500"])
def test_bench_io_requests(workload):
    r = request_speed(workload)
    print(f"\n{r}")
    assert r["requests"] > 0


@pytest.mark.benchmark
def test_bench_io_tour():
    wall = tour_wall_s()
    print(f"\nI/O tour ({len(TOUR[0])} workloads x {len(TOUR[1])} modes): {wall:.1f} s wall "
          f"(bare SimPy {simpy_events_per_s():,.0f} events/wall s)")


def table(profile: str = "modern") -> str:
    rows = compare(*TOUR, profile)
    head = (f"{'workload':11s} {'mode':10s} {'value':>10s} {'vs nat':>6s} {'p50us':>8s} {'p99us':>8s} "
            f"{'ntf/req':>7s} {'exit/req':>8s} {'dom0ns/req':>10s}")
    out = [head, "-" * len(head)]
    for r in rows:
        lat = r.get("latency_us") or {}
        npr = r.get("notifications_per_request")
        out.append(f"{r['workload']:11s} {r['mode']:10s} {r['value']:10.1f} {r['relative_to_native'] or 0:6.2f} "
                   f"{lat.get('p50', 0):8.1f} {lat.get('p99', 0):8.1f} "
                   f"{('%.3f' % npr) if npr is not None else '-':>7s} {r.get('exits_per_request') or 0:8.2f} "
                   f"{r.get('dom0_ns_per_request') or 0:10.0f}")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "table":
        print(table(sys.argv[2] if len(sys.argv) > 2 else "modern"))
    else:
        for w in ("fio-rand4k", "ttcp-1500"):
            print(request_speed(w))
        print(f"I/O tour: {tour_wall_s():.1f} s wall")
