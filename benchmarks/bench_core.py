"""Scenario speed: simulated seconds per wall second of the demo's scenario runs (the consolidation
example, a 16-domain consolidation mix, and each macro workload under native, PV and HVM), with
SimPy events and host decisions per simulated second and per unit of work, against the bare SimPy
loop timed in the same run. No absolute speed is asserted.

    make bench
    .venv/bin/python benchmarks/bench_core.py
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from yardstick import simpy_events_per_s

from pvsim.compare import single_scenario
from pvsim.scenario import Scenario
from pvsim.system import build

ROOT = Path(__file__).resolve().parents[1]


def consolidation16(seconds: float = 2.0) -> Scenario:
    """16 guests on 4 pCPUs: oltp, web, kernel-build and cpu-int under PV, PVH, HVM and PVHVM."""
    mix = ["oltp", "web", "kernel-build", "cpu-int"]
    modes = ["pv", "pvh", "hvm", "pvhvm"]
    doms = [{"name": "Domain-0", "mode": "pv", "workload": "idle", "vcpus": 2, "memory_mib": 1024, "weight": 512}]
    for i in range(16):
        doms.append({"name": f"{mix[i % 4]}-{i}", "mode": modes[(i // 4) % 4], "workload": mix[i % 4],
                     "vcpus": 1, "memory_mib": 512})
    return Scenario.from_dict({"name": "consolidation16", "seed": 7,
                               "host": {"pcpus": 4, "memory_mib": 16384, "profile": "modern"},
                               "scheduler": {"name": "credit"}, "run": {"duration_ms": seconds * 1000.0},
                               "domains": doms})


def cases():
    yield "consolidation.toml", lambda: Scenario.from_toml(ROOT / "examples" / "consolidation.toml")
    yield "consolidation16", consolidation16
    for w in ("cpu-int", "kernel-build", "forkwait", "oltp", "web"):
        for m in ("native", "pv", "hvm"):
            yield f"{w}@{m}", (lambda w=w, m=m: single_scenario(w, m, "modern", duration_ms=2000.0))


def measure(make) -> dict:
    system = build(make())
    t0 = time.perf_counter()
    res = system.run()
    wall = time.perf_counter() - t0
    sim_s = system.engine.now_ns / 1e9
    return {"sim_s": sim_s, "wall_s": wall, "events": system.engine.events_scheduled,
            "decisions": sum(h.runner.decisions for h in system.hosts),
            "units": sum(r["units"] for r in res.rows)}


def table() -> str:
    build(single_scenario("oltp", "pv", "modern", duration_ms=100.0)).run()  # load the compiled kernels (an accounting pass every 30 ms)
    y = simpy_events_per_s()
    out = [f"bare SimPy loop: {y:,.0f} events/wall s",
           f"{'scenario':20s} {'sim s/wall s':>12s} {'events/sim s':>12s} {'decisions/sim s':>15s} "
           f"{'events/unit':>11s} {'decisions/wall s vs bare SimPy':>30s}"]
    for name, make in cases():
        m = measure(make)
        out.append(f"{name:20s} {m['sim_s'] / m['wall_s']:12.2f} {m['events'] / m['sim_s']:12.0f} "
                   f"{m['decisions'] / m['sim_s']:15.0f} {m['events'] / max(m['units'], 1):11.3f} "
                   f"{m['decisions'] / m['wall_s'] / y:30.3f}")
    return "\n".join(out)


@pytest.mark.benchmark
def test_bench_core_scenarios():
    print("\n" + table())


if __name__ == "__main__":
    print(table())
