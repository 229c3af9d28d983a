"""Dom0's share of guest I/O runs on Domain-0's vCPUs in scenario runs (pvsim.system.Dom0Service)."""

import pytest

from pvsim.scenario import Scenario
from pvsim.system import build


def _scenario(dom0=None, guest=None, extra=(), pcpus=1, run=None):
    d0 = {"name": "Domain-0", "mode": "pv", "workload": "idle", "vcpus": 1, "memory_mib": 512, **(dom0 or {})}
    g = {"name": "db", "mode": "pv", "workload": "oltp", "vcpus": 1, "memory_mib": 1024, **(guest or {})}
    return Scenario.from_dict({"seed": 7, "host": {"pcpus": pcpus, "memory_mib": 8192, "profile": "modern"},
                               "run": run or {"duration_ms": 400}, "domains": [d0, g, *extra]})


def _rows(sc):
    system = build(sc)
    res = system.run()
    return {r["domain"]: r for r in res.rows}, system


def test_backend_work_runs_on_domain0_and_the_guest_waits_for_it():
    rows, system = _rows(_scenario())
    d0, db = rows["Domain-0"], rows["db"]
    assert not any(k.startswith("dom0.") for k in db["breakdown_ns"])  # not on the guest's vCPU
    assert db["breakdown_ns"].get("idle.dom0_wait", 0) > 0
    assert d0["breakdown_ns"].get("dom0.io.grant", 0) > 0 and d0["breakdown_ns"].get("dom0.backend", 0) > 0
    for r in rows.values():
        assert abs(sum(r["breakdown_ns"].values()) - r["elapsed_ns"]) <= 1e-3 * r["elapsed_ns"]
    # conservation: what Domain-0 ran is what the guest's completed units posted (to one unit)
    per_unit = sum(v for k, v in build(_scenario()).domains[1].behaviours[0].dom0_ns_per_unit.items())
    served = sum(v for k, v in d0["breakdown_ns"].items() if k.startswith("dom0."))
    assert served == pytest.approx(db["units"] * per_unit, abs=2 * per_unit)


def test_a_starved_dom0_slows_its_guests_io():
    """Four oltp vCPUs need ~2.5 % of a pCPU of backend work; Domain-0 capped at 1 % cannot give it."""
    spin = ({"name": "spin", "mode": "pv", "workload": "cpu-int", "vcpus": 1, "memory_mib": 512},)
    free, _ = _rows(_scenario(guest={"vcpus": 4}, extra=spin, pcpus=2))
    capped, _ = _rows(_scenario(dom0={"cap": 1}, guest={"vcpus": 4}, extra=spin, pcpus=2))
    assert capped["db"]["value"] < 0.8 * free["db"]["value"]
    assert capped["db"]["breakdown_ns"]["idle.dom0_wait"] > free["db"]["breakdown_ns"].get("idle.dom0_wait", 0)


def test_a_guest_cap_does_not_cover_the_backend_work_done_for_it():
    rows, _ = _rows(_scenario(guest={"cap": 20}, pcpus=2))
    assert rows["db"]["cpu_share"] <= 0.2 + 0.02
    assert any(k.startswith("dom0.") for k in rows["Domain-0"]["breakdown_ns"])


def test_domain0_keeps_serving_after_its_own_workload_ends():
    rows, system = _rows(_scenario(dom0={"workload": "cpu-int"}, run={"ops": 40}))
    assert system.domains[0].behaviours[0].finished_ns is not None  # Domain-0's own 40 units are done
    db = system.domains[1].behaviours[0]
    assert db.finished_ns is not None and db.units_done == 40  # and its guest finished all of its own


def test_native_and_containers_have_no_dom0():
    sc = Scenario.from_dict({"seed": 1, "host": {"pcpus": 1, "memory_mib": 4096, "profile": "modern"},
                             "run": {"duration_ms": 100},
                             "domains": [{"name": "n", "mode": "native", "workload": "oltp"}]})
    system = build(sc)
    row = system.run().rows[0]
    assert system.dom0_service is None and "idle.dom0_wait" not in row["breakdown_ns"]


def test_units_by_cpu_time_match_completed_units():
    """A guest's units are counted from its CPU time less the switches it paid for; a vCPU switched
    in that blocks at once (two Domain-0 vCPUs racing for one posted request) is refunded the switch
    it never spent, so the two counts agree."""
    rows, system = _rows(_scenario(dom0={"vcpus": 2}, guest={"vcpus": 4}, pcpus=2))
    for dr in system.domains:  # Domain-0's own units (its ticks) too: its vCPUs race for posts
        done = sum(b.units_done for b in dr.behaviours)
        assert done > 10
        assert rows[dr.spec.name]["units"] == pytest.approx(done, abs=2 * len(dr.behaviours) + 0.5)
    assert all(v >= 0 for v in system.switch_ns.values())
