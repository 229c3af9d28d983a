"""Building I/O scenarios for the tests: every run goes through Scenario -> build -> run."""

from pvsim.scenario import Scenario
from pvsim.system import build


def scenario_dict(workload, mode, *, ms=6, profile="modern", params=None, options=None, pcpus=2, dom0_weight=256,
                  neighbours=0, seed=1, disk=None, workloads=None, warmup=True):
    doms = []
    if mode in ("native", "container"):
        pass
    elif mode == "kvm-virtio":
        doms.append({"name": "host", "mode": "native", "workload": "idle", "memory_mib": 512, "weight": dom0_weight})
    else:
        doms.append({"name": "Domain-0", "mode": "pv", "workload": "idle", "memory_mib": 512, "weight": dom0_weight})
    g = {"name": "guest", "mode": mode, "workload": workload, "memory_mib": 1024}
    if params:
        g["params"] = dict(params)
    if options:
        g["options"] = dict(options)
    doms.append(g)
    for i in range(neighbours):
        doms.append({"name": f"nb{i}", "mode": mode, "workload": "sched.cpu-hog", "memory_mib": 256})
    host = {"pcpus": pcpus, "memory_mib": 16384, "profile": profile}
    if disk:
        host["disk"] = dict(disk)
    run = {"duration_ms": float(ms)}
    if warmup:
        run["warmup_ms"] = min(ms / 10, 50.0)
    d = {"name": f"{workload}@{mode}", "seed": seed, "host": host, "run": run, "domains": doms}
    if workloads:
        d["workloads"] = workloads
    return d


def run_io(workload, mode, **kw):
    """The guest's row of an I/O scenario."""
    res = build(Scenario.from_dict(scenario_dict(workload, mode, **kw))).run()
    return next(r for r in res.rows if r["domain"] == "guest")


def build_io(workload, mode, **kw):
    return build(Scenario.from_dict(scenario_dict(workload, mode, **kw)))
