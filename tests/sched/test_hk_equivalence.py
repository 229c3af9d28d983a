"""The compiled dispatcher (pvsim.sched.hk) against the Python one (pvsim.sched.runner with the
schedulers of pvsim.sched): on seeded scenarios -- programs and full guest OSes with I/O side by side,
weights, caps, pinning, wake-up boosts, the ratelimit, a timeline change -- both must give the same
decision trace (every trace record: who ran where from when, wakes, blocks, the schedulers' own
events) and the same rows, for every scheduler with a kernel. Also under NUMBA_DISABLE_JIT=1 (the
kernels then run as Python)."""

import json

import pytest

from pvsim.scenario import Scenario
from pvsim.sched.hk.runner import has_kernel
from pvsim.sched.ops import SCHEDULER_NAMES
from pvsim.system import build

READY = [s for s in SCHEDULER_NAMES if has_kernel(s)]

WORKLOADS = ["sched.io-bound", "sched.periodic", "sched.cpu-hog", "cpu-int", "fio-rand4k", "kernel-build",
             "netperf-rr", "forkwait"]


def scenario(sched: str, dispatcher: str, seed: int, variant: int) -> Scenario:
    """Variant 0: 8 domains on 2 pCPUs; 1: pinning and soft affinity on 4 pCPUs, a timeline change of
    weight and cap; 2: many small domains, caps, ratelimit (credit) or other global parameters."""
    pcpus = (2, 4, 3)[variant]
    n = (8, 7, 12)[variant]
    doms = []
    for i in range(n):
        d = {"name": f"g{i}", "mode": ("pv", "hvm", "pvh")[i % 3], "workload": WORKLOADS[(i + variant) % len(WORKLOADS)],
             "vcpus": 1 + (i % 2 if variant != 2 else 0), "memory_mib": 256}
        if sched in ("credit", "credit2", "bvt"):
            d["weight"] = 128 * (1 + (i * 7 + seed) % 4)
        if sched in ("credit", "credit2") and i % 4 == 3:
            d["cap"] = 30 + 10 * (i % 3)
        if variant == 1 and i in (1, 2):
            d["cpus"] = "0-1" if i == 1 else "2"
        if sched == "rtds":
            d["sched"] = {"period_us": 10_000 + 1000 * (i % 3), "budget_us": 2000 + 500 * (i % 4)}
        doms.append(d)
    if sched == "null":  # one vCPU per pCPU at most
        doms = doms[:pcpus - 1]
        for d in doms:
            d["vcpus"] = 1
    params = {}
    if sched == "credit" and variant == 2:
        params = {"ratelimit_us": 2000, "tslice_ms": 10}
    if sched == "rr" and variant == 2:
        params = {"tslice_ms": 5}
    data = {"name": f"eq-{sched}-{variant}", "seed": seed,
            "host": {"pcpus": pcpus, "memory_mib": 16384, "profile": "modern"},
            "scheduler": {"name": sched, "dispatcher": dispatcher, "params": params},
            "run": {"duration_ms": 240.0, "warmup_ms": 20.0}, "domains": doms}
    if variant == 1 and sched in ("credit", "credit2", "bvt"):
        data["timeline"] = [{"at_ms": 120.0, "domain": "g0", "weight": 1024}]
        if sched != "bvt":
            data["timeline"].append({"at_ms": 150.0, "domain": "g3", "cap": 0})
    if variant == 1 and sched == "rr":
        data["timeline"] = [{"at_ms": 120.0, "domain": "g0", "cpus": "3"}]
    return Scenario.from_dict(data)


def _run(sched, dispatcher, seed, variant):
    system = build(scenario(sched, dispatcher, seed, variant))
    recs = []
    system.engine.subscribe(lambda r: recs.append((r.time_ns, r.pcpu, r.event, r.words)))
    res = system.run()
    rows = [{k: r[k] for k in ("domain", "value", "units", "breakdown_ns", "counts")} for r in res.rows]
    return recs, rows, res.sched_rows, system


@pytest.mark.parametrize("sched", READY)
@pytest.mark.parametrize("seed,variant", [(1, 0), (2, 1), (3, 2)])
def test_compiled_dispatcher_gives_the_python_ones_trace_and_rows(sched, seed, variant):
    ra, rowa, sa, _ = _run(sched, "python", seed, variant)
    rb, rowb, sb, sysb = _run(sched, "compiled", seed, variant)
    assert type(sysb.hosts[0].runner).__name__ == "CompiledRunner"
    assert len(ra) > 200
    for i, (x, y) in enumerate(zip(ra, rb)):
        assert x == y, f"record {i}: python {x} != compiled {y}"
    assert len(ra) == len(rb)
    assert rowa == rowb
    assert json.dumps(sa, sort_keys=True) == json.dumps(sb, sort_keys=True)  # NaN == NaN here


def test_the_compiled_dispatcher_is_the_default_where_a_kernel_exists():
    for s in READY:
        sc = scenario(s, "compiled", 1, 0)
        assert type(build(sc).hosts[0].runner).__name__ == "CompiledRunner"
