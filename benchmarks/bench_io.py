"""I/O benchmarks: the compare table (``python benchmarks/bench_io.py [profile] [ms]``) and a
simulator-speed benchmark (``pytest benchmarks/bench_io.py -m benchmark``).

The table prints, per workload and mode, the metric, the latency percentiles, notifications per
request, exits per request, dom0 ns per request, and the share of the breakdown in the I/O causes
(device emulation, ring, event channel, grant, dom0 time).
"""

from __future__ import annotations

import sys
import time

import pytest
from pvsim.io.workloads import IO_WORKLOADS, run_io_workload

from pvsim.core.profile import load_profile

MODES = ("native", "container", "pv", "bt", "hvm", "pvhvm", "pvh", "kvm-virtio")


def share(bd: dict, prefix: str) -> float:
    return sum(v for k, v in bd.items() if k.startswith(prefix)) / max(1.0, sum(bd.values()))


def table(profile: str = "modern", ms: int = 200, modes=MODES, workloads=IO_WORKLOADS, seed: int = 1):
    p = load_profile(profile)
    rows = []
    for w in workloads:
        for m in modes:
            if m in ("hvm", "pvhvm", "pvh", "kvm-virtio", "hvm-shadow") and not p.has("hvm.vmexit_cycles"):
                continue
            rows.append(run_io_workload(w, m, p, seed=seed, duration_ns=ms * 1_000_000))
    return rows


def fmt(rows) -> str:
    head = (f"{'workload':11s} {'mode':10s} {'metric':12s} {'value':>10s} {'vs nat':>6s} {'p50us':>8s} {'p99us':>8s} "
            f"{'ntf/req':>7s} {'exit/req':>8s} {'dom0ns/req':>10s} {'emul%':>6s} {'ring%':>6s} {'evtch%':>6s} "
            f"{'grant%':>6s} {'dom0%':>6s} {'idle%':>6s}")
    out = [head, "-" * len(head)]
    base = {}
    for r in rows:
        if r["mode"] == "native":
            base[r["workload"]] = r["value"]
        bd = r["breakdown_ns"]
        npr = r["notifications_per_request"]
        out.append(
            f"{r['workload']:11s} {r['mode']:10s} {r['metric']:12s} {r['value']:10.1f} "
            f"{r['value'] / base.get(r['workload'], r['value']):6.2f} {r['latency_us']['p50']:8.1f} "
            f"{r['latency_us']['p99']:8.1f} {('%.3f' % npr) if npr is not None else '-':>7s} "
            f"{r['exits_per_request']:8.2f} {r['dom0_ns_per_request']:10.0f} "
            f"{100 * share(bd, 'device.'):6.1f} {100 * share(bd, 'io.ring'):6.1f} {100 * share(bd, 'io.evtchn'):6.1f} "
            f"{100 * share(bd, 'io.grant'):6.1f} {100 * share(bd, 'dom0.'):6.1f} {100 * bd.get('idle', 0) / r['elapsed_ns']:6.1f}")
    return "\n".join(out)


@pytest.mark.benchmark
def test_bench_io_speed():
    """Simulated seconds per wall second for a PV ttcp and fio run (reported, loosely bounded)."""
    p = load_profile("modern")
    for w in ("ttcp-1500", "fio-rand4k"):
        t = time.perf_counter()
        r = run_io_workload(w, "pv", p, seed=1, duration_ns=100_000_000)
        wall = time.perf_counter() - t
        print(f"{w}: {r['requests']} requests in 0.1 s simulated, {wall:.2f} s wall "
              f"({r['requests'] / wall:.0f} requests/s)")
        assert wall < 60


if __name__ == "__main__":
    prof = sys.argv[1] if len(sys.argv) > 1 else "modern"
    ms = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    t0 = time.perf_counter()
    print(fmt(table(prof, ms)))
    print(f"\n[{prof}, {ms} ms simulated per row, {time.perf_counter() - t0:.0f} s wall]")
