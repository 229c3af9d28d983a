"""Dom0's share of guest I/O runs on Domain-0's vCPUs: blkback and netback are threads of Domain-0's
OS, scheduled under Domain-0's weight and cap, and their work is also charged to the guest served."""

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


def test_backend_work_runs_on_domain0_and_is_charged_to_the_guest_served():
    rows, system = _rows(_scenario())
    d0, db = rows["Domain-0"], rows["db"]
    assert "dom0.backend" not in db["breakdown_ns"]  # not on the guest's vCPU
    assert db["dom0_breakdown_ns"]["dom0.backend"] > 0 and db["dom0_breakdown_ns"]["io.grant"] > 0
    assert d0["breakdown_ns"]["dom0.backend"] > 0 and d0["breakdown_ns"]["io.grant"] > 0
    for r in rows.values():
        assert sum(r["breakdown_ns"].values()) == r["elapsed_ns"]
    # conservation: Domain-0 did blkback's work for db alone, so its row and db's account agree
    assert d0["breakdown_ns"]["dom0.backend"] == pytest.approx(db["dom0_breakdown_ns"]["dom0.backend"], rel=0.02)
    assert db["dom0_ns_per_request"] > 0


def test_a_starved_dom0_slows_its_guests_io():
    """Domain-0 capped at 1 % of a pCPU cannot run blkback for an 8-thread oltp beside a CPU hog."""
    spin = ({"name": "spin", "mode": "pv", "workload": "cpu-int", "vcpus": 1, "memory_mib": 512},)
    free, _ = _rows(_scenario(extra=spin, pcpus=2))
    capped, _ = _rows(_scenario(dom0={"cap": 1}, extra=spin, pcpus=2))
    assert capped["db"]["value"] < 0.8 * free["db"]["value"]
    assert capped["db"]["latency_us"]["mean"] > free["db"]["latency_us"]["mean"]


def test_a_guest_cap_does_not_cover_the_backend_work_done_for_it():
    rows, _ = _rows(_scenario(guest={"cap": 20}, pcpus=2))
    assert rows["db"]["cpu_share"] <= 0.2 + 0.02
    assert rows["Domain-0"]["breakdown_ns"]["dom0.backend"] > 0


def test_a_busy_domain0_still_serves_its_guests():
    """Domain-0 running a CPU-bound workload of its own: its OS round-robins between that and
    blkback, so the guest's 40 transactions all complete."""
    rows, system = _rows(_scenario(dom0={"workload": "cpu-int"}, run={"ops": 40}))
    db = system.domain("db")
    assert db.finished_ns is not None and db.os.units == 40 and rows["db"]["units"] == 40
    assert rows["Domain-0"]["breakdown_ns"]["user"] > 0  # its own work ran too


def test_native_and_containers_have_no_dom0():
    sc = Scenario.from_dict({"seed": 1, "host": {"pcpus": 1, "memory_mib": 4096, "profile": "modern"},
                             "run": {"duration_ms": 100},
                             "domains": [{"name": "n", "mode": "native", "workload": "oltp"}]})
    system = build(sc)
    row = system.run().rows[0]
    assert system.hosts[0].control is None and len(system.domains) == 1
    assert "dom0_breakdown_ns" not in row or not row["dom0_breakdown_ns"]


def test_switches_refunded_and_units_exact():
    """A vCPU switched in that blocks at once (two Domain-0 vCPUs racing for one wake-up) is refunded
    the switch it never spent; an ops-limited guest's row counts exactly its completed units."""
    rows, system = _rows(_scenario(dom0={"vcpus": 2}, guest={"vcpus": 4}, pcpus=2, run={"ops": 200}))
    assert rows["db"]["units"] == 200
    assert all(v >= 0 for v in system.hosts[0].switch_ns.values())
