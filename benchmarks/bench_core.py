"""Speed of the simulator on the demo scenarios: simulated seconds per wall second, and SimPy events per
simulated second, showing that events scale with decisions (bursts, waits, slices, ticks), not with
guest operations.

Run: ``make bench`` or ``.venv/bin/python -m pytest -m benchmark benchmarks/bench_core.py -s``.
"""

import time
from pathlib import Path

import pytest

from pvsim.compare import single_scenario
from pvsim.scenario import Scenario
from pvsim.system import build

ROOT = Path(__file__).resolve().parents[1]


def measure(sc):
    system = build(sc)
    t0 = time.perf_counter()
    res = system.run()
    wall = time.perf_counter() - t0
    sim_s = system.engine.now_ns / 1e9
    events = system.engine.events_scheduled
    guest_ops = sum(r["units"] for r in res.rows)
    return sim_s, wall, events, guest_ops


@pytest.mark.benchmark
def test_demo_scenarios_speed():
    cases = [("consolidation.toml", Scenario.from_toml(ROOT / "examples" / "consolidation.toml"))]
    for w in ("cpu-int", "kernel-build", "forkwait", "oltp", "web"):
        for m in ("native", "pv", "hvm"):
            cases.append((f"{w}@{m}", single_scenario(w, m, "modern", duration_ms=2000.0)))
    print()
    print(f"{'scenario':28s} {'sim s':>7s} {'wall s':>7s} {'sim s/wall s':>12s} {'events/sim s':>12s} "
          f"{'units/sim s':>12s} {'events/unit':>11s}")
    for name, sc in cases:
        sim_s, wall, events, units = measure(sc)
        print(f"{name:28s} {sim_s:7.2f} {wall:7.3f} {sim_s / wall:12.1f} {events / sim_s:12.0f} "
              f"{units / sim_s:12.0f} {events / max(units, 1):11.3f}")
        # forkwait at ~8000 ops/s must not cost an event per op: bursts batch ~1 ms of work
        if name.startswith("forkwait"):
            assert events / max(units, 1) < 0.5
