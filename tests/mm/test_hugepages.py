"""Large pages (issue 12 item 7): guest 2 MiB / 1 GiB pages per mode, host page size under HAP,
splintering under shadow paging, gups with fewer walks by the hand-calculated amount."""

import numpy as np
import pytest

from pvsim.core.errors import ScenarioError
from pvsim.core.meter import Meter
from pvsim.core.profile import load_profile
from pvsim.mm import x86 as C
from pvsim.mm.audit import audit
from pvsim.mm.frames import MachineMemory
from pvsim.mm.walk import O_MISSES, O_REFS
from pvsim.scenario import Scenario
from pvsim.system import build
from pvsim.wiring import scratch_platform

N = 65536  # gups updates measured
PAGES = 16384  # the 64 MiB gups table


def _gups(mode, level, profile="modern", nr_pages=40000, **opts):
    prof, m = load_profile(profile), Meter()
    p = scratch_platform(mode, prof, nr_pages=nr_pages, meter=m, **opts)
    vas = p.mmu.huge_region(PAGES, level)
    rng = np.random.default_rng(0)
    trace = vas[rng.integers(0, len(vas), N)] + (rng.integers(0, 512, N) << 3)
    warm = vas[rng.integers(0, len(vas), N)]
    p.mmu.access_trace(warm, np.ones(N, bool))  # steady state (the workload's set-up pass)
    m2 = Meter()
    with p.hv.metering(m2):
        out = p.mmu.access_trace(trace, np.ones(N, bool))
    return p, out, m2


def test_gups_2m_pages_walk_less_by_the_hand_calculation():
    """modern profile, native: the 16384 pages of the table map 128 to each of the 128 sets of the
    4 KiB TLB (12 ways), so a uniformly random access hits with probability 12/128 in the steady
    state: expected walks 65536 x (1 - 12/128) = 59392 (binomial sd 74). With 2 MiB pages the table
    is 32 leaves, which the 32-entry (8 x 4) 2 MiB TLB holds: 0 walks. Saved: 59392 walks, each a
    PWC-hit walk of 1 reference here (the PDE cache holds the L1's pointer) vs 0."""
    _, small, m4 = _gups("native", 1)
    _, big, m2 = _gups("native", 2)
    hand = N * (1 - 12 / 128)
    assert abs(small[O_MISSES] - hand) < 4 * np.sqrt(N * 12 / 128 * (1 - 12 / 128))
    assert big[O_MISSES] == 0 and big[O_REFS] == 0
    saved = m4.counts["mmu.walk_refs"] - m2.counts.get("mmu.walk_refs", 0)
    assert abs(saved - hand) < 4 * 74 + 1


def test_gups_under_hap_each_page_size_pair():
    """hvm on modern, guest x host page size: 4K/2M walks 2-D on every miss; 2M/2M and 1G/2M hold
    the table in the 2 MiB TLB (0 misses after set-up); 2M guest pages over 4 KiB host pages are
    splintered to 4 KiB entries: as many misses as 4K/4K, each a shorter 2-D walk (19 vs 24 cold)."""
    _, g4h2, _ = _gups("hvm", 1)
    _, g2h2, _ = _gups("hvm", 2)
    _, g2h4, _ = _gups("hvm", 2, host_page_size="4k")
    _, g4h4, _ = _gups("hvm", 1, host_page_size="4k")
    hand = N * (1 - 12 / 128)
    assert g2h2[O_MISSES] == 0
    for out in (g4h2, g2h4, g4h4):
        assert abs(out[O_MISSES] - hand) < 300
    assert g2h4[O_REFS] < g4h4[O_REFS]


@pytest.mark.parametrize("mode", ["hvm-shadow", "bt"])
def test_shadow_splinters_guest_superpages(mode):
    """Xen's shadow code maps a guest 2 MiB page with an fl1 shadow of 4 KiB entries: the TLB sees
    4 KiB pages, so gups misses as with 4 KiB guest pages; the fl1 shadows are counted, and each
    hidden fault fills the faulting entry and its prefetch window (32 entries)."""
    p, out, m = _gups(mode, 2)
    hand = N * (1 - 12 / 128)
    assert abs(out[O_MISSES] - hand) < 300
    assert p.machine_mmu.guest_page_level_max() == 2
    assert sum(1 for k in p.machine_mmu.shadow_of if k < 0) == PAGES // 512  # one fl1 per 2 MiB page
    assert audit(p.machine_mmu.hv.machine_mm) == []


def test_pv_and_old_processors_fall_back_to_4k():
    """PV: Xen refuses PSE in L2 entries (L2_DISALLOW_MASK), so the guest keeps 4 KiB pages; a
    NetBurst profile has no 1 GiB pages, so a 1 GiB request gets 2 MiB; each fallback is counted."""
    prof, m = load_profile("modern"), Meter()
    p = scratch_platform("pv", prof, nr_pages=40000, meter=m)
    with p.hv.metering(m):
        p.mmu.huge_region(1024, 2)
    assert p.mmu.page_level(2) == 1 and m.counts["mm.huge_fallback"] == 1
    p = scratch_platform("native", load_profile("xeon-2003"), nr_pages=40000)
    assert p.mmu.page_level(3) == 2 and p.mmu.page_level(2) == 2
    with pytest.raises(ValueError, match="1g"):
        scratch_platform("hvm", load_profile("p4-2006"), nr_pages=8192, host_page_size="1g")


def _scenario(mode, params=None, options=None, mib=4096, profile="modern"):
    d = {"name": "g", "mode": mode, "workload": "gups"}
    if params:
        d["params"] = params
    if options:
        d["options"] = options
    return Scenario.from_dict({"host": {"pcpus": 2, "memory_mib": 8192, "profile": profile},
                               "domains": [dict(d, memory_mib=mib)], "run": {"duration_ms": 40}})


def test_gups_page_size_option_in_a_scenario():
    small = build(_scenario("native")).run().rows[0]
    big = build(_scenario("native", {"page_size": "2m"})).run().rows[0]
    assert big["counts"].get("tlb.miss", 0) < 0.01 * small["counts"]["tlb.miss"]
    assert big["value"] > small["value"]


@pytest.mark.parametrize("params,options,field", [({"page_size": "3m"}, None, "page_size"),
                                                  (None, {"host_page_size": "2g"}, "host_page_size")])
def test_bad_page_size_names_the_field(params, options, field):
    with pytest.raises(ScenarioError, match=field):
        build(_scenario("hvm", params, options)).run()


class _No1G:
    """The modern profile on a processor with EPT but no 1 GiB pages (the first EPT parts)."""

    def __init__(self, prof):
        self._p = prof

    def __getattr__(self, k):
        return getattr(self._p, k)

    def value(self, key):
        return 2 if key == "mmu.max_page_level_count" else self._p.value(key)


def test_host_page_size_the_processor_lacks_is_refused():
    prof = _No1G(load_profile("modern"))
    with pytest.raises(ValueError, match="1g"):
        scratch_platform("hvm", prof, nr_pages=8192, host_page_size="1g")
    p = scratch_platform("hvm", prof, nr_pages=8192, host_page_size="2m")
    assert p.machine_mmu.host_leaf_level == 2 and p.mmu.page_level(3) == 2


def _p2m_leaves(p2m) -> dict:
    """Leaves of the p2m per level (3: 1 GiB PDPTE leaves, 2: 2 MiB, 1: 4 KiB)."""
    mm, found = p2m.mm, {}
    stack = [(p2m.radix.root, p2m.radix.levels)]
    while stack:
        t, lv = stack.pop()
        ents = mm.entries(t)
        for i in np.flatnonzero(ents & np.uint64(1)):
            e = int(ents[i])
            if lv == 1 or C.get_pte_flags(e) & C._PAGE_PSE:
                found[lv] = found.get(lv, 0) + 1
            else:
                stack.append((C.pte_mfn(e), lv - 1))
    return found


def test_1g_host_leaves_make_the_2d_walk_one_level_shorter():
    """Issue 12: with ``host_page_size = "1g"`` no 1 GiB leaf was ever installed, because every
    domain's memory started on a 2 MiB boundary only (machine frame 512: gfn 0 is 1 GiB-aligned,
    its mfn is not, so ``P2M.map_range`` fell back to 2 MiB leaves). A HAP domain with 1 GiB of
    frames now starts on a 1 GiB boundary: its first gigabyte is one PDPTE leaf. Hand calculation
    of a cold 2-D walk, (n + 1)(m + 1) - 1 references with n = 5 - guest leaf level and m = 5 - host
    leaf level: 4 KiB guest pages 5 x 4 - 1 = 19 over 2 MiB host leaves, 5 x 3 - 1 = 14 over 1 GiB;
    2 MiB guest pages 4 x 4 - 1 = 15 and 4 x 3 - 1 = 11."""
    prof = load_profile("modern")
    refs = {}
    for host in ("2m", "1g"):
        p = scratch_platform("hvm", prof, nr_pages=1 << 18, host_page_size=host)
        mm = p.machine_mmu
        leaves = _p2m_leaves(mm.p2m)
        if host == "1g":
            assert int(mm.dmm.p2m[0]) % (1 << 18) == 0 and leaves == {3: 1}
        else:
            assert int(mm.dmm.p2m[0]) == 512 and leaves == {2: 512}
        for level in (1, 2):
            vas = p.mmu.huge_region(512, level)
            assert p.mmu.page_level(level) == level
            refs[(level, host)] = mm.refs_per_miss(int(vas[0]))
    assert refs == {(1, "2m"): 19, (1, "1g"): 14, (2, "2m"): 15, (2, "1g"): 11}


def test_domains_without_1g_host_pages_keep_the_2mb_placement():
    """Less than 1 GiB of frames (no 1 GiB leaf could fit) or 2 MiB host pages: memory still
    starts at the first 2 MiB boundary (frame 512), as before, and the p2m has no 1 GiB leaf."""
    prof = load_profile("modern")
    for opts in ({"host_page_size": "1g"}, {}, {"host_page_size": "2m"}):
        p = scratch_platform("hvm", prof, nr_pages=40000, **opts)
        assert int(p.machine_mmu.dmm.p2m[0]) == 512
        assert 3 not in _p2m_leaves(p.machine_mmu.p2m)
    p = scratch_platform("native", prof, nr_pages=1 << 18)
    assert int(p.machine_mmu.dmm.p2m[0]) == 512  # no p2m of its own: nothing to align for


def test_a_scenario_domain_with_1g_host_pages_gets_a_pdpte_leaf():
    """gups (2 MiB guest pages) in a 4 GiB hvm domain with host_page_size 1g: the builder models
    the first aligned gigabyte (262,144 frames, not the 57,344 the table alone needs), and the p2m
    maps it with one 1 GiB leaf; with 2 MiB host pages the plan is unchanged."""
    for host, frames, leaves in (("1g", 1 << 18, {3: 1}), ("2m", None, None)):
        s = build(_scenario("hvm", {"page_size": "2m"}, {"host_page_size": host}))
        d = next(d for d in s.domains if d.domain.mm is not None)
        mm = d.os.mmu.p.machine_mmu
        if frames is None:
            assert len(mm.dmm.p2m) < 1 << 18 and int(mm.dmm.p2m[0]) % 512 == 0
            assert 3 not in _p2m_leaves(mm.p2m)
        else:
            assert len(mm.dmm.p2m) == frames and int(mm.dmm.p2m[0]) % frames == 0
            assert _p2m_leaves(mm.p2m) == leaves


def test_padding_in_one_step_equals_single_allocations():
    """``MachineMemory.pad_to`` leaves the frame table as the loop of single allocations it
    replaces (recycled frames first, then the never-used tail)."""
    a, b = MachineMemory(4096), MachineMemory(4096)
    for m in (a, b):
        got = [m.alloc_domheap_page(1) for _ in range(700)]
        for f in got[600:690:3]:
            m.free_domheap_page(1, f)
    n = a.pad_to(1024, 0x7FF2)
    k = 0
    while b._free_frames and b._free_frames.peek() % 1024:
        b.alloc_domheap_page(0x7FF2)
        k += 1
    assert n == k > 0 and a._free_frames.peek() == b._free_frames.peek() == 1024
    for f in ("owner", "count", "allocated", "type", "type_count", "pinned", "validated", "linear_count", "m2p"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
