"""Scheduler speed: 64 pCPUs, 512 vCPUs (128 four-vCPU PV domains mixing CPU hogs, I/O-bound and
periodic vCPUs, four weights, some caps) for 60 simulated seconds, through the one builder
(Scenario -> build -> run), under credit, credit2, rtds, null and bvt.

Prints, per scheduler: wall time, simulated s per wall s, host decisions (scheduling passes plus
demands asked of the guest OSes) and SimPy events per wall s, and each as a ratio to the bare SimPy
timeout loop timed in the same run (``benchmarks/yardstick.py``). For credit, the compiled
accounting pass is also run beside its plain-Python reference on the same inputs at every pass
(their time excluded from the wall time) and the median speed-up is printed. No absolute speed is
asserted.

    make bench                       (every benchmark)
    .venv/bin/python benchmarks/bench_sched.py [--seconds 60] [--sched credit,credit2] [--dispatcher python]
    PVSIM_BENCH_SECONDS=10 make bench (shorter runs)
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import pytest
from yardstick import simpy_events_per_s

from pvsim.scenario import Scenario
from pvsim.sched.credit_core import csched_acct, random_case
from pvsim.system import build

SCHEDULERS = ("credit", "credit2", "rtds", "null", "bvt")
SECONDS = float(os.environ.get("PVSIM_BENCH_SECONDS", "60"))


def scenario(sched: str = "credit", seconds: float = SECONDS, seed: int = 1, n_pcpus: int = 64,
             n_doms: int = 128, vcpus: int = 4, dispatcher: str = "compiled") -> Scenario:
    doms = [{"name": "Domain-0", "mode": "pv", "workload": "idle", "vcpus": 1, "memory_mib": 512}]
    for d in range(n_doms):
        kind = d % 4
        dom = {"name": f"g{d}", "mode": "pv", "vcpus": vcpus, "memory_mib": 64}
        if kind == 0:
            dom.update(workload="sched.io-bound", params={"run_ns": 2_000_000, "block_ns": 8_000_000})
        elif kind == 1:
            dom.update(workload="sched.periodic", params={"period_ns": 20_000_000, "work_ns": 3_000_000})
        else:
            dom["workload"] = "sched.cpu-hog"
        if sched in ("credit", "credit2"):
            dom["weight"] = 128 * (1 + d % 4)
            if d % 16 == 3:
                dom["cap"] = 150
        elif sched == "bvt":
            dom["weight"] = 128 * (1 + d % 4)
        doms.append(dom)
    if sched == "null":  # the null scheduler needs a pCPU per vCPU: 4 vCPUs per pCPU do not fit
        doms = doms[: 1 + n_pcpus // vcpus - 1]
    return Scenario.from_dict({
        "name": f"bench-{sched}", "seed": seed,
        "host": {"pcpus": n_pcpus, "memory_mib": 65536, "profile": "modern"},
        "scheduler": {"name": sched, "dispatcher": dispatcher}, "run": {"duration_ms": seconds * 1000.0},
        "domains": doms})


def run(sched: str = "credit", seconds: float = SECONDS, seed: int = 1, dispatcher: str = "compiled") -> dict:
    csched_acct(*random_case(np.random.default_rng(0), 4))  # compile / load outside the timed run
    build(scenario(sched, 0.05, seed, n_doms=4, dispatcher=dispatcher)).run()  # load the dispatcher's kernels
    system = build(scenario(sched, seconds, seed, dispatcher=dispatcher))
    host = system.hosts[0]
    s = host.runner.sched
    dispatcher = type(host.runner).__name__
    shadow = sched == "credit" and dispatcher == "HostRunner"
    if shadow:
        s.shadow_reference = True
    t0 = time.perf_counter()
    system.run()
    wall = time.perf_counter() - t0
    if shadow:
        wall -= s.ref_time_s
    r = host.runner
    st = r.stats()
    y = simpy_events_per_s()
    ev = system.engine.events_scheduled
    out = {
        "scheduler": sched, "dispatcher": dispatcher, "pcpus": r.n_pcpus, "vcpus": len(r.units), "simulated_s": seconds,
        "wall_s": round(wall, 3), "sim_s_per_wall_s": round(seconds / wall, 3),
        "decisions": r.decisions, "decisions_per_wall_s": round(r.decisions / wall),
        "decisions_vs_bare_simpy": round(r.decisions / wall / y, 3),
        "simpy_events": ev, "events_per_wall_s": round(ev / wall),
        "events_vs_bare_simpy": round(ev / wall / y, 3), "bare_simpy_events_per_wall_s": round(y),
        "context_switches": st.context_switches, "migrations": st.migrations,
        "pcpu_utilisation": round(sum(v.cpu_ns for v in st.vcpus) / (r.n_pcpus * st.elapsed_ns), 4),
    }
    if shadow:
        out.update({
            "acct_passes": s.core_calls,
            "acct_kernel_vs_reference_median": round(float(np.median([rf / k for k, rf in s.core_samples])), 1),
            "acct_kernel_us_per_pass": round(1e6 * s.core_time_s / max(1, s.core_calls), 2),
            "acct_reference_us_per_pass": round(1e6 * s.ref_time_s / max(1, s.core_calls), 2),
        })
    return out


@pytest.mark.benchmark
@pytest.mark.parametrize("sched", SCHEDULERS)
def test_bench_sched(sched):
    res = run(sched)
    print("\n" + json.dumps(res, indent=2))
    assert res["vcpus"] >= 16 and res["decisions"] > 0


if __name__ == "__main__":
    secs = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else SECONDS
    names = sys.argv[sys.argv.index("--sched") + 1].split(",") if "--sched" in sys.argv else SCHEDULERS
    disp = sys.argv[sys.argv.index("--dispatcher") + 1] if "--dispatcher" in sys.argv else "compiled"
    for name in names:
        print(json.dumps(run(name, secs, dispatcher=disp), indent=2))
