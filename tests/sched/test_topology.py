"""Host cache topology and vCPU placement (issue 12 item 8): a tuned and an untuned KVM-style guest."""

import pathlib

import pytest

from pvsim.core.profile import load_profile
from pvsim.pricing import op_cost
from pvsim.scenario import DomainOptions, Scenario
from pvsim.sched.topology import HostTopology, placement
from pvsim.system import build

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "kvm-tuned-vs-untuned.toml"


def test_cache_domains_from_the_profile():
    t = HostTopology.from_profile(load_profile("modern"), 32)
    assert t.cores_per_llc == 16
    assert not t.crosses_cache_domain(0, 15) and t.crosses_cache_domain(15, 16)
    old = HostTopology.from_profile(load_profile("xeon-2003"), 2)
    assert old.crosses_cache_domain(0, 1)  # one core per package: every move crosses


def test_placement_probabilities_by_hand():
    t = HostTopology(32, 16)
    # 8 vCPUs pinned 1:1 to 12-19 (4 per LLC): told the topology, every wake-up stays in the LLC
    tuned = placement(t, range(12, 20), 8, pinned=True, guest_topology="host")
    assert tuned.wake == 0 and tuned.migrate == 0
    # same pinning, flat topology: the wakee is any of the 7 others, 4 of them in the other LLC
    flat = placement(t, range(12, 20), 8, pinned=True, guest_topology="flat")
    assert flat.wake == pytest.approx(4 / 7) and flat.migrate == 0
    # floating over all 32: two distinct random pCPUs differ in LLC with 1 - 2*16*15/(32*31);
    # the woken vCPU lands in the other LLC with 1 - 2*(1/2)^2 = 1/2 (exposed topology: stale)
    for topo in ("host", "flat"):
        f = placement(t, range(32), 8, pinned=False, guest_topology=topo)
        assert f.wake == pytest.approx(1 - 2 * 16 * 15 / (32 * 31)) and f.migrate == pytest.approx(0.5)
    # floating inside one LLC: nothing crosses
    assert placement(t, range(4), 4, pinned=False, guest_topology="flat") == placement(
        t, range(4), 4, pinned=True, guest_topology="host")


def test_llc_wakeup_cost_is_the_hand_calculation():
    """One llc_wakeup(16 lines, 256 working-set lines) with placement (w, m) costs
    w x (cross_llc_ipi + 16 x cross_llc_line) + m x 256 x cross_llc_line cycles (modern: 900, 270)."""
    prof = load_profile("modern")
    w, m = 1 - 2 * 16 * 15 / (32 * 31), 0.5
    c = op_cost("kvm-msgpass", "kvm-virtio", prof, DomainOptions(placement=(w, m)),
                catalogue=_catalogue())
    assert c.cycles["sched.cross_llc_wakeup"] == pytest.approx(w * (900 + 16 * 270))
    assert c.cycles["sched.llc_migration_refill"] == pytest.approx(m * 256 * 270)
    base = op_cost("kvm-msgpass", "kvm-virtio", prof, DomainOptions(), catalogue=_catalogue())
    assert "sched.cross_llc_wakeup" not in base.cycles and "sched.llc_migration_refill" not in base.cycles


def _catalogue():
    return Scenario.from_toml(EXAMPLE).catalogue


def test_tuned_guest_is_faster_by_the_hand_calculated_amount():
    """examples/kvm-tuned-vs-untuned.toml: both guests do the same unit (user 60000 cycles, a
    syscall, a wake-up); the untuned one pays w (900 + 16 x 270) + 0.5 x 256 x 270 cycles more per
    unit, w = 1 - 480/992. Both have the same CPU time (8 busy vCPUs each), so the throughput ratio
    is (unit + extra) / unit, the unit priced on a tuned guest."""
    res = build(Scenario.from_toml(EXAMPLE)).run()
    by = {r["domain"]: r for r in res.rows}
    prof = load_profile("modern")
    sc = Scenario.from_toml(EXAMPLE)
    unit = op_cost("kvm-msgpass", "kvm-virtio", prof, DomainOptions(), catalogue=sc.catalogue).total_cycles
    w = 1 - 2 * 16 * 15 / (32 * 31)
    extra = w * (900 + 16 * 270) + 0.5 * 256 * 270
    hand = (unit + extra) / unit
    ratio = by["tuned"]["value"] / by["untuned"]["value"]
    assert ratio == pytest.approx(hand, rel=0.02), (ratio, hand)
    assert "sched.llc_migration_refill" in by["untuned"]["breakdown_ns"]
    assert "sched.cross_llc_wakeup" not in by["tuned"]["breakdown_ns"]
