"""A migration in a run costs CPU on the sending and receiving Domain-0's vCPUs: its per-batch work is a
kernel thread of Domain-0 (as the split-driver backends are), scheduled under Domain-0's weight and
cap, so a capped or busy Domain-0 slows the migration; ``pvsim migrate`` (no run) prices the same work
on an analytic server, and with an idle, uncapped Domain-0 the two agree."""

import pytest

from pvsim.migrate import live
from pvsim.migrate.save import batch_cost, clean_cost
from pvsim.scenario import Scenario
from pvsim.system import build

CAUSES = ("dom0.migrate.map", "dom0.migrate.normalise", "dom0.migrate.copy", "dom0.migrate.logdirty")


def _scenario(dom0=None, other=None, mib=128, duration=120, dispatcher=None, at_ms=10, migrate=True):
    sched = {"name": "credit", **({"dispatcher": dispatcher} if dispatcher else {})}
    domains = [{"name": "app", "host": "h1", "mode": "pv", "workload": "cpu-int", "memory_mib": mib}]
    if dom0 is not None:
        domains.append({"name": "Domain-0", "host": "h1", "mode": "pv", "workload": "idle", "memory_mib": 512,
                        **dom0})
    if other is not None:
        domains.append({"name": "other", "host": "h1", "mode": "pv", "workload": other, "memory_mib": 256})
    d = {"name": "dom0-mig", "seed": 5,
         "hosts": [{"name": "h1", "pcpus": 4, "memory_mib": 4096, "scheduler": sched},
                   {"name": "h2", "pcpus": 2, "memory_mib": 4096, "scheduler": sched}],
         "links": [{"between": ["h1", "h2"], "rate_mbps": 40000, "latency_us": 20}],
         "run": {"duration_ms": duration, "warmup_ms": 2}, "domains": domains}
    if migrate:
        d["migrations"] = [{"domain": "app", "to": "h2", "at_ms": at_ms}]
    return Scenario.from_dict(d)


def _run(sc):
    system = build(sc)
    res = system.run()
    mig = next(r for r in res.migration_rows if r["kind"] == "migration")
    return mig, res, system


def test_a_capped_domain0_lengthens_the_migration():
    # 512 MiB over 40 Gbit/s: ~110 ms of stream, several of credit's 30 ms accounting periods
    free, _, _ = _run(_scenario(mib=512, duration=300))
    capped, res, _ = _run(_scenario(mib=512, duration=300, dom0={"cap": 25}))
    assert free["state"] == capped["state"] == "done"
    assert capped["total_ms"] > 1.2 * free["total_ms"]
    d0 = next(r for r in res.rows if r["host"] == "h1" and r["domain"] == "Domain-0")
    assert d0["cpu_share"] <= 0.25 + 0.02  # the cap holds, the stream's work included


def test_a_domain0_busy_with_another_domains_io_lengthens_the_migration():
    quiet, _, _ = _run(_scenario(other="idle"))
    busy, res, _ = _run(_scenario(other="ttcp-1500"))
    d0 = next(r for r in res.rows if r["host"] == "h1" and r["domain"] == "Domain-0")
    assert d0["breakdown_ns"]["dom0.backend"] > 0 and d0["breakdown_ns"]["dom0.migrate.copy"] > 0  # one vCPU, both
    assert busy["state"] == quiet["state"] == "done"
    assert busy["total_ms"] > 1.03 * quiet["total_ms"]


@pytest.mark.parametrize("dispatcher", [None, "compiled"])
def test_domain0_cpu_on_both_hosts_is_in_the_rows_and_equals_the_work_submitted(dispatcher):
    mig, res, system = _run(_scenario(dispatcher=dispatcher))
    assert mig["state"] == "done" and mig["pages_lost"] == 0
    m = system.migrations[0].mig
    rows = {(r["host"], r["domain"]): r for r in res.rows}
    for host, cpu in (("h1", m.src), ("h2", m.dst)):
        assert cpu.done_ns == cpu.busy > 0  # everything submitted ran
        assert mig["dom0_ms"][host] == pytest.approx(cpu.busy / 1e6, rel=1e-12)
        ctl = next(h for h in system.hosts if h.name == host).control
        meters = [v.meter.ns for v in ctl.os.vcpus]
        ran = sum(ns.get(c, 0.0) for ns in meters for c in CAUSES)
        assert ran == pytest.approx(cpu.busy, rel=1e-12)
        bd = rows[(host, "Domain-0")]["breakdown_ns"]
        assert sum(bd.get(c, 0) for c in CAUSES) == pytest.approx(cpu.busy, rel=0.01)
    # the sender's work: one batch_cost per batch and one clean_cost per CLEAN; the receiver's: batches
    pages = sum(r["pages"] for r in res.migration_rows if r["kind"] == "round")
    per_page = batch_cost(1024, True)["dom0.migrate.copy"] / 1024
    assert rows[("h2", "Domain-0")]["breakdown_ns"]["dom0.migrate.copy"] == pytest.approx(pages * per_page, rel=0.01)
    assert "dom0.migrate.logdirty" not in rows[("h2", "Domain-0")]["breakdown_ns"]
    assert rows[("h1", "Domain-0")]["breakdown_ns"]["dom0.migrate.logdirty"] == pytest.approx(
        (mig["rounds"] - 1) * clean_cost(128 * 256)["dom0.migrate.logdirty"], rel=0.01)  # round 1 cleans for free


def test_an_idle_uncapped_domain0_agrees_with_the_analytic_server():
    sc = _scenario()
    inrun, _, _ = _run(sc)
    alone, _ = live.run(sc, live.parse_requests(list(sc.migrations)))
    a = alone[0]
    assert inrun["rounds"] == a["rounds"] and inrun["iterations"] == a["iterations"]
    assert inrun["total_ms"] == pytest.approx(a["total_ms"], rel=0.01)
    assert inrun["downtime_ms"] == pytest.approx(a["downtime_ms"], rel=0.02)
    for h in ("h1", "h2"):
        assert inrun["dom0_ms"][h] == pytest.approx(a["dom0_ms"][h], rel=0.02)


def test_a_migration_that_never_starts_leaves_domain0_untouched():
    """Domain-0's stream thread is spawned by the first work submitted: a migration scheduled after the
    run's end leaves the source host's rows exactly as a run without it."""
    plain = build(_scenario(migrate=False)).run()
    later = build(_scenario(at_ms=500)).run()
    pick = lambda res: [r for r in res.rows if r["host"] == "h1"]  # noqa: E731
    assert pick(later) == pick(plain)
    assert not any(c in r["breakdown_ns"] for r in plain.rows for c in CAUSES)
