"""The compiled dispatcher (pvsim.sched.hk) against the Python one (pvsim.sched.runner with the
schedulers of pvsim.sched): on seeded scenarios -- programs and full guest OSes with I/O side by side,
weights, caps, pinning, wake-up boosts, the ratelimit, a timeline change -- both must give the same
decision trace (every trace record: who ran where from when, wakes, blocks, the schedulers' own
events) and the same rows, for every scheduler with a kernel. Also under NUMBA_DISABLE_JIT=1 (the
kernels then run as Python)."""

import json

import pytest

from hypercalls.trace import PVSIM_TRC_CSCHED_ACCT_CREDIT, PVSIM_TRC_CSCHED_BURN_CREDIT
from pvsim.scenario import Scenario
from pvsim.sched.hk.runner import has_kernel
from pvsim.sched.ops import SCHEDULER_NAMES
from pvsim.system import build

READY = [s for s in SCHEDULER_NAMES if has_kernel(s)]

WORKLOADS = ["sched.io-bound", "sched.periodic", "sched.cpu-hog", "cpu-int", "fio-rand4k", "kernel-build",
             "netperf-rr", "forkwait"]


def scenario(sched: str, dispatcher: str, seed: int, variant: int) -> Scenario:
    """Variant 0: 8 domains on 2 pCPUs; 1: pinning and soft affinity on 4 pCPUs, a timeline change of
    weight and cap (rtds: of period, budget, extratime, and a re-pin); 2: many small domains, caps,
    ratelimit (credit) or other global parameters (rtds: a short period); 3 (null and bvt):
    :func:`_scenario_extra`. rtds runs some domains without extratime."""
    if variant == 3:
        return Scenario.from_dict(_scenario_extra(sched, dispatcher, seed))
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
            if i % 3 == 2:  # no extratime: depleted until the next period
                d["sched"]["extratime"] = False
        doms.append(d)
    if sched == "null":  # one vCPU per pCPU at most (variant 2: the rest wait in the waitqueue)
        doms = doms[:pcpus - 1] if variant < 2 else doms
        for d in doms:
            d["vcpus"] = 1
    params = {}
    if sched == "credit" and variant == 2:
        params = {"ratelimit_us": 2000, "tslice_ms": 10}
    if sched == "rr" and variant == 2:
        params = {"tslice_ms": 5}
    if sched == "credit2" and variant == 1:  # two runqueues of two pCPUs: placement, load balancing
        params = {"runqueue": "core", "threads_per_core": 2, "migrate_resist_us": 200}
    if sched == "credit2" and variant == 2:  # runqueues {0, 1} and {2}
        params = {"runqueue": "all", "max_cpus_runqueue": 2, "ratelimit_us": 2000}
    data = {"name": f"eq-{sched}-{variant}", "seed": seed,
            "host": {"pcpus": pcpus, "memory_mib": 16384, "profile": "modern"},
            "scheduler": {"name": sched, "dispatcher": dispatcher, "params": params},
            "run": {"duration_ms": 240.0, "warmup_ms": 20.0}, "domains": doms}
    if variant == 1 and sched in ("credit", "credit2", "bvt"):
        data["timeline"] = [{"at_ms": 120.0, "domain": "g0", "weight": 1024}]
        if sched != "bvt":
            data["timeline"].append({"at_ms": 150.0, "domain": "g3", "cap": 0})
    if sched == "rtds" and variant == 1:  # xl sched-rtds -d: new period, budget, extratime; a re-pin
        data["timeline"] = [{"at_ms": 120.0, "domain": "g0", "period_us": 5000, "budget_us": 1500, "extratime": False},
                            {"at_ms": 150.0, "domain": "g3", "cpus": "1-3"},
                            {"at_ms": 170.0, "domain": "g2", "extratime": True, "budget_us": 6000}]
    if sched == "rtds" and variant == 2:
        data["timeline"] = [{"at_ms": 100.0, "domain": "g1", "budget_us": 500, "period_us": 2000}]
    if variant == 1 and sched == "rr":
        data["timeline"] = [{"at_ms": 120.0, "domain": "g0", "cpus": "3"}]
    if variant == 2 and sched == "null":  # g0 leaves its pCPU to the first waiter and waits itself
        data["timeline"] = [{"at_ms": 100.0, "domain": "g0", "cpus": "2"}]
    if sched == "credit":  # its own global parameters changed while it runs (csched_sys_cntl)
        if variant == 2:
            params["charging"] = "sampled"
        data.setdefault("timeline", []).append(
            [{"at_ms": 100.0, "tickle_one_idle": False, "vcpu_migr_delay_us": 300},
             {"at_ms": 100.0, "tslice_ms": 20, "ratelimit_us": 500, "load_balance_ratelimit_us": 3000},
             {"at_ms": 160.0, "ratelimit_us": 0, "tslice_ms": 5}][variant])
        data["timeline"].sort(key=lambda t: t["at_ms"])
    if sched == "credit2":
        tl = data.setdefault("timeline", [])
        if variant == 1:  # a cap set (its replenishment timer armed) and one raised
            tl += [{"at_ms": 90.0, "domain": "g4", "cap": 25}, {"at_ms": 200.0, "domain": "g3", "cap": 60}]
        if variant == 2:  # the global parameters changed while it runs
            tl += [{"at_ms": 100.0, "ratelimit_us": 500, "migrate_resist_us": 1500},
                   {"at_ms": 170.0, "domain": "g5", "cap": 20}]
    return Scenario.from_dict(data)


# variant 3: what the three variants above leave out of null and bvt
EXTRA = [s for s in ("null", "bvt") if s in READY]


def _scenario_extra(sched: str, dispatcher: str, seed: int) -> dict:
    """null: more vCPUs than pCPUs (the waitqueue), hard pinning at creation and by the timeline (a
    unit re-assigned, a waiter taking its pCPU, a pin back to every pCPU). bvt: warping domains (warp,
    warp limit and unwarp time; one whose warp limit runs out), explicit ``mcu_advance``, weights,
    pinning at creation and by the timeline (migrations of running and queued units), per-domain
    changes of warp and weight, and a change of the context-switch allowance."""
    doms = []
    for i in range(9):
        d = {"name": f"g{i}", "mode": ("pv", "hvm", "pvh")[i % 3], "workload": WORKLOADS[(i + seed) % len(WORKLOADS)],
             "vcpus": 1 + i % 2, "memory_mib": 256}
        if sched == "bvt":
            d["weight"] = 128 * (1 + (i * 5 + seed) % 4)
            if i % 3 == 0:
                d["sched"] = {"warp_us": 2000 + 1000 * i, "warpl_ms": 3 + 2 * i, "warpu_ms": 1 + i}
            elif i % 3 == 1:
                d["sched"] = {"mcu_advance": 3 + 4 * i}
        if i in (2, 5):
            d["cpus"] = "1" if i == 2 else "0,2"
        doms.append(d)
    if sched == "null":
        timeline = [{"at_ms": 60.0, "domain": "g0", "cpus": "1"}, {"at_ms": 110.0, "domain": "g1", "cpus": "0"},
                    {"at_ms": 150.0, "domain": "g2", "cpus": "0-2"}, {"at_ms": 190.0, "domain": "g0", "cpus": "2"}]
    else:
        timeline = [{"at_ms": 50.0, "ctx_allow_us": 1500}, {"at_ms": 80.0, "domain": "g3", "warp_us": 0},
                    {"at_ms": 100.0, "domain": "g1", "warp_us": 5000, "warpl_ms": 2, "warpu_ms": 4},
                    {"at_ms": 120.0, "domain": "g2", "cpus": "0-1"}, {"at_ms": 140.0, "domain": "g4", "weight": 2048},
                    {"at_ms": 160.0, "domain": "g0", "cpus": "2"}, {"at_ms": 180.0, "ctx_allow_us": 20000},
                    {"at_ms": 200.0, "domain": "g0", "cpus": "0-2"}, {"at_ms": 210.0, "domain": "g7", "mcu_advance": 1}]
    return {"name": f"eq-{sched}-3", "seed": seed,
            "host": {"pcpus": 3, "memory_mib": 16384, "profile": "modern"},
            "scheduler": {"name": sched, "dispatcher": dispatcher, "params": {"ctx_allow_us": 3000} if sched == "bvt"
                          else {}},
            "run": {"duration_ms": 240.0, "warmup_ms": 20.0}, "domains": doms, "timeline": timeline}


def _extra(sched, variant, system):
    """What the scenario file cannot say: soft affinity (credit: its soft-then-hard placement, tickle
    and stealing steps), set by ``xl vcpu-pin`` at a time of the run."""
    if sched == "credit" and variant == 1:
        r = system.hosts[0].runner
        g4, g5 = system.domain("g4").domid, system.domain("g5").domid
        r.at(90_000_000, lambda r: r.pin(g4, None, hard=None, soft={1, 2}))
        r.at(90_000_000, lambda r: r.pin(g5, None, hard={0, 1, 2}, soft={2, 3}))
        r.at(180_000_000, lambda r: r.pin(g5, None, hard={0, 1, 2}, soft={3}))


def _setup(sched: str, variant: int, system) -> None:
    """What a scenario cannot say, for credit2: soft affinity (``xl vcpu-pin DOM all HARD SOFT``, some
    moving the vCPUs to another runqueue) and ``SCHEDOP_yield`` of a CPU-bound vCPU every 7 ms."""
    if sched == "credit2" and variant in (1, 2):
        r = system.hosts[0].runner
        pins = ((("g4", 40, {1, 2, 3}, {1, 2}), ("g5", 60, {0, 1}, {1}), ("g1", 130, {0, 1}, {1})) if variant == 1
                else (("g4", 40, None, {0}), ("g5", 60, {2}, {2}), ("g1", 130, {2}, {2})))
        for name, at_ms, hard, soft in pins:
            domid = system.domain(name).domid
            r.at(at_ms * 1_000_000, lambda _r, d=domid, h=hard, s=soft: _r.pin(d, None, hard=h, soft=s))
        domid = system.domain("g1" if variant == 1 else "g0").domid
        for t_ms in range(30, 230, 7):
            r.at(t_ms * 1_000_000, lambda _r, d=domid: _r.yield_vcpu(d, 0))


def _run(sched, dispatcher, seed, variant):
    system = build(scenario(sched, dispatcher, seed, variant))
    _extra(sched, variant, system)
    _setup(sched, variant, system)
    recs = []
    system.engine.subscribe(lambda r: recs.append((r.time_ns, r.pcpu, r.event, r.words)))
    res = system.run()
    rows = [{k: r[k] for k in ("domain", "value", "units", "breakdown_ns", "counts")} for r in res.rows]
    return recs, rows, res.sched_rows, system


@pytest.mark.parametrize("sched", READY)
@pytest.mark.parametrize("seed,variant", [(1, 0), (2, 1), (3, 2)])
def test_compiled_dispatcher_gives_the_python_ones_trace_and_rows(sched, seed, variant):
    ra, rowa, sa, sysa = _run(sched, "python", seed, variant)
    rb, rowb, sb, sysb = _run(sched, "compiled", seed, variant)
    assert type(sysb.hosts[0].runner).__name__ == "CompiledRunner"
    assert len(ra) > 200
    if sched == "credit":  # credit1's own credit records (pvsim's: Xen's carry no credit) are compared too
        evs = {x[2] for x in ra}
        assert PVSIM_TRC_CSCHED_ACCT_CREDIT in evs and PVSIM_TRC_CSCHED_BURN_CREDIT in evs
    for i, (x, y) in enumerate(zip(ra, rb)):
        assert x == y, f"record {i}: python {x} != compiled {y}"
    assert len(ra) == len(rb)
    assert rowa == rowb
    if variant < 3 and sched != "null":  # real workloads share pCPUs: the switch footprints are charged
        # (pvsim.sched.footprint); under null each vCPU owns its pCPU, and a switch back from idle is lazy
        assert any(r["breakdown_ns"].get("cache.refill", 0) > 0 for r in rowa)
    assert json.dumps(sa, sort_keys=True) == json.dumps(sb, sort_keys=True)  # NaN == NaN here
    if sched == "credit2":  # the scheduler's own per-vCPU view, read from the arena under the compiled one
        ua, ub = (sorted((u.name, h.runner.sched.unit_info(u)) for h in s.hosts for u in h.runner.units)
                  for s in (sysa, sysb))
        assert ua == ub
        assert sysa.hosts[0].runner.sched.global_info() == sysb.hosts[0].runner.sched.global_info()


def test_the_compiled_dispatcher_is_the_default_where_a_kernel_exists():
    for s in READY:
        sc = scenario(s, "compiled", 1, 0)
        assert type(build(sc).hosts[0].runner).__name__ == "CompiledRunner"


@pytest.mark.parametrize("sched", EXTRA)
@pytest.mark.parametrize("seed", [4, 5])
def test_compiled_dispatcher_gives_the_python_ones_trace_and_rows_variant_3(sched, seed):
    test_compiled_dispatcher_gives_the_python_ones_trace_and_rows(sched, seed, 3)
