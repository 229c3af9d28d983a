"""Cache and TLB footprints of a switch (pvsim.sched.footprint) against hand calculations from the
profiles' [cache], [mmu] and [native] values, and in a run: its own breakdown causes, the same under
the Python and the compiled dispatcher."""

import json
from types import SimpleNamespace

import pytest
from sched_helpers import MS

from pvsim.core.engine import Engine
from pvsim.core.meter import Meter
from pvsim.core.profile import load_profile
from pvsim.scenario import Scenario
from pvsim.sched import HostRunner, make_scheduler
from pvsim.sched.costs import switch_cost_from_profile
from pvsim.sched.footprint import FootprintTracker, cache_model, footprint_of, lru_evicted
from pvsim.sched.workloads import CpuHog
from pvsim.system import build


def _unit(uid, domid):
    return SimpleNamespace(uid=uid, domid=domid)


def test_every_profile_has_the_cache_section_with_sources():
    for name in ("xeon-2003", "p4-2006", "modern"):
        p = load_profile(name)
        for k in ("line_bytes", "l1d_bytes", "l2_bytes", "l3_bytes", "l1d_refill_cycles", "l2_refill_cycles",
                  "l3_refill_cycles", "refill_mlp_count"):
            assert p.has(f"cache.{k}") and p.constants[f"cache.{k}"].source
    x = load_profile("xeon-2003")
    assert x.value("cache.l2_bytes") == 512 * 1024 and x.value("cache.l1d_bytes") == 8 * 1024
    p4 = load_profile("p4-2006")
    assert p4.value("cache.l2_bytes") == 2 * 1024 * 1024 and p4.value("cache.l1d_bytes") == 16 * 1024


def test_lru_stack_distance():
    assert lru_evicted(100, 0, 1000) == 0
    assert lru_evicted(100, 900, 1000) == 0  # fits exactly
    assert lru_evicted(100, 950, 1000) == 50
    assert lru_evicted(100, 5000, 1000) == 100
    assert lru_evicted(5000, 10, 1000) == 10  # a set larger than the cache loses what others brought
    assert lru_evicted(5, 5, 0) == 0  # no such level


def test_xeon_refill_by_hand():
    """A (4 MiB, 1536 pages) and B (256 KiB, 128 pages) alternate on one pCPU of xeon-2003."""
    prof = load_profile("xeon-2003")
    m = cache_model(prof)
    ghz = prof.clock_ghz
    mlp = prof.value("cache.refill_mlp_count")
    walk_ns = 4 * prof.value("native.walk_ref_cycles") / ghz  # a 1-D walk: 4 references
    t = FootprintTracker(m, 1)
    t.register(1, footprint_of(m, 4096, 1536, walk_ns))
    t.register(2, footprint_of(m, 256, 128, walk_ns))
    a, b = _unit(0, 1), _unit(1, 2)
    assert t.charge(a, 0) == (0, 0)  # never ran: its cold start is its own
    assert t.charge(b, 0) == (0, 0)
    # A returns after B brought 256 KiB = 4096 lines. L1D (128 lines): all of A's 128 gone; L2
    # (8192 lines): A's 8192 top lines pushed down by 4096 -> 4096 gone.
    line = prof.value("cache.line_bytes")
    l1 = int(prof.value("cache.l1d_bytes") // line)
    l2 = int(prof.value("cache.l2_bytes") // line)
    assert (l1, l2) == (128, 8192)
    ps1 = round(prof.value("cache.l1d_refill_cycles") / ghz * 1000 / mlp)
    ps2 = round(prof.value("cache.l2_refill_cycles") / ghz * 1000 / mlp)
    cache_a = (128 * ps1 + 4096 * ps2 + 500) // 1000
    # untagged TLB (mm.tlb_tagged_count = 0): flushed; A refills its pages less the 4 inside the
    # switch constant, at most the 64 entries, each a 4-reference walk
    entries = int(prof.value("mmu.tlb_4k_sets_count") * prof.value("mmu.tlb_4k_ways_count"))
    assert entries == 64 and not m.tlb_tagged
    tlb_a = (entries * round(walk_ns * 1000) + 500) // 1000
    assert t.charge(a, 0) == (cache_a, tlb_a)
    # about 0.28 ms: 4096 x 246 / 1.5 cycles of L2 refill at 2.4 GHz dominate
    assert cache_a == pytest.approx(4096 * 246 / 1.5 / 2.4 + 128 * 16 / 1.5 / 2.4, abs=2)
    # B returns after A's 4 MiB: all of B's 4096 lines gone from the L2, its 128 from L1D
    cache_b = (128 * ps1 + 4096 * ps2 + 500) // 1000
    assert t.charge(b, 0) == (cache_b, tlb_a)


def test_distinct_others_and_migration_and_undo():
    prof = load_profile("p4-2006")
    m = cache_model(prof)
    t = FootprintTracker(m, 2)
    for d, kib in ((1, 1024), (2, 512), (3, 768)):
        t.register(d, footprint_of(m, kib, 0, 0.0))
    a, b, c = _unit(0, 1), _unit(1, 2), _unit(2, 3)
    for u in (a, b, c, b):
        t.charge(u, 0)
    # A returns: B and C ran since (B twice: counted once), 512 + 768 KiB = 20480 lines above A's
    # 16384 in a 32768-line L2 -> 4096 gone; L1D 256 lines all gone
    ghz, mlp = prof.clock_ghz, prof.value("cache.refill_mlp_count")
    ps1 = round(prof.value("cache.l1d_refill_cycles") / ghz * 1000 / mlp)
    ps2 = round(prof.value("cache.l2_refill_cycles") / ghz * 1000 / mlp)
    assert t.charge(a, 0) == ((256 * ps1 + 4096 * ps2 + 500) // 1000, 0)
    # undo takes the charge back and restores A's record: the same charge again
    assert t.undo(0) == ((256 * ps1 + 4096 * ps2 + 500) // 1000, 0)
    assert t.charge(a, 0)[0] == (256 * ps1 + 4096 * ps2 + 500) // 1000
    # A moves to pCPU 1 (another cache domain): its whole set, at every level
    full = (256 * ps1 + 16384 * ps2 + 500) // 1000
    assert t.charge(a, 1) == (full, 0)
    # two pCPUs sharing one cache domain: no migration cost between them
    s = FootprintTracker(m, 2, cache_domains=[0, 0])
    s.register(1, footprint_of(m, 1024, 0, 0.0))
    s.charge(a, 0)
    assert s.charge(a, 1) == (0, 0)


def test_tagged_tlb_keeps_entries_until_others_push_them_out():
    prof = load_profile("modern")
    m = cache_model(prof)
    assert m.tlb_tagged and m.tlb_entries == 1536
    t = FootprintTracker(m, 1)
    t.register(1, footprint_of(m, 0, 1000, 1.0))
    t.register(2, footprint_of(m, 0, 400, 1.0))
    a, b = _unit(0, 1), _unit(1, 2)
    t.charge(a, 0)
    t.charge(b, 0)
    assert t.charge(a, 0) == (0, 0)  # 996 + 400 entries fit in 1536
    t.register(3, footprint_of(m, 0, 1500, 1.0))
    c = _unit(2, 3)
    t.charge(c, 0)
    # A's 996 pages (1000 - 4 in the switch constant) under C's 1500: 996 + 1500 - 1536 = 960 refilled
    assert t.charge(a, 0) == (0, 960)


def test_switch_cost_adds_the_footprint_and_meters_it():
    prof = load_profile("xeon-2003")
    m = cache_model(prof)
    t = FootprintTracker(m, 1)
    e = Engine()
    meter = Meter()
    cost = switch_cost_from_profile(prof, meter, tracker=t)
    r = HostRunner(e, make_scheduler("rr", {"tslice_ms": 10}), 1, switch_cost_ns=cost)
    for d in (1, 2):
        t.register(d, footprint_of(m, 512, 0, 0.0))
    r.add_vcpu(1, 0, CpuHog())
    r.add_vcpu(2, 0, CpuHog())
    r.start()
    e.run(100 * MS)
    # 10 switches, 8 of them returns; each return finds its 8192 lines under the other's 8192 in an
    # 8192-line L2: all gone
    ghz, mlp = prof.clock_ghz, prof.value("cache.refill_mlp_count")
    ps1 = round(prof.value("cache.l1d_refill_cycles") / ghz * 1000 / mlp)
    ps2 = round(prof.value("cache.l2_refill_cycles") / ghz * 1000 / mlp)
    per = (128 * ps1 + 8192 * ps2 + 500) // 1000
    assert meter.price(prof)["cache.refill"] == pytest.approx(8 * per * ghz)


def _scenario(dispatcher):
    return Scenario.from_dict({
        "name": "fp", "seed": 3,
        "host": {"pcpus": 1, "memory_mib": 4096, "profile": "xeon-2003"},
        "scheduler": {"name": "credit", "dispatcher": dispatcher},
        "run": {"duration_ms": 300},
        "domains": [{"name": f"g{i}", "mode": "pv", "workload": w, "vcpus": 1, "memory_mib": 512}
                    for i, w in enumerate(("kernel-build", "cpu-int", "oltp-mix"))],
    })


def test_footprint_is_its_own_cause_and_the_same_under_both_dispatchers():
    rows = {}
    for disp in ("python", "compiled"):
        res = build(_scenario(disp)).run()
        rows[disp] = [{k: r[k] for k in ("domain", "value", "breakdown_ns")} for r in res.rows]
    assert json.dumps(rows["python"], sort_keys=True) == json.dumps(rows["compiled"], sort_keys=True)
    bd = {r["domain"]: r["breakdown_ns"] for r in rows["python"]}
    assert all(bd[d].get("cache.refill", 0) > 0 for d in ("g0", "g1", "g2"))
    assert all(bd[d].get("tlb.refill_after_switch", 0) > 0 for d in ("g0", "g1"))
