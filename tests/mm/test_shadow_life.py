"""Shadow paging's life cycle (issue 12 item 1): each mechanism against a hand calculation from the
profile, on the counted path (guest_kernels.mmu.shadow) and the structural one (pvsim.mm.machine)."""

import math

import pytest

from pvsim.core.meter import Meter
from pvsim.core.profile import load_profile
from pvsim.pricing import _scratch_kernel, op_cost
from pvsim.scenario import DomainOptions
from pvsim.wiring import scratch_platform

P4 = load_profile("p4-2006")
X = load_profile("xeon-2003")


def v(prof, key):
    return prof.value(key)


def sw(prof):
    """One software-MMU operation: bt.sw_mmu_refs_count x native.mem_ref_cycles."""
    return v(prof, "bt.sw_mmu_refs_count") * v(prof, "native.mem_ref_cycles")


def counted(mode, prof):
    hv, k = _scratch_kernel(mode, prof, DomainOptions(mmu="counted"))
    return hv, k


def run(hv, prof, fn):
    m = Meter()
    with hv.metering(m):
        fn()
    return m.price(prof), m.counts


# ------------------------------------------------------------------ fork: copy-on-write marking
def test_wp_faults_hvm_shadow_first_fork_and_steady_state():
    hv, k = counted("hvm-shadow", P4)
    c, n = run(hv, P4, lambda: k.act("fork", 19, 7))
    one = (v(P4, "native.pte_write_cycles") + v(P4, "hvm.shadow_fault_cycles")
           + v(P4, "hvm.emulate_vmcs_reads_count") * v(P4, "hvm.vmcs_read_cycles"))
    assert n["mmu.shadow_wp_fault"] == 7  # the first fork rewrites every anon PTE of the parent
    assert c["mmu.shadow_wp_fault"] == pytest.approx(7 * one)
    # steady state: only the pages the parent made writable again since (two COW faults)
    k.act("context_switch", 3)
    k.act("exit", 7)
    k.act("context_switch", 4, 1)
    k.act("page_fault", "cow")
    k.act("page_fault", "cow")
    c, n = run(hv, P4, lambda: k.act("fork", 19, 7))
    assert n["mmu.shadow_wp_fault"] == 2
    assert c["mmu.shadow_wp_fault"] == pytest.approx(2 * one)
    # each is a #PF exit as well (exit + entry under exit.exception_nmi)
    assert n["exit.exception_nmi"] == 2


def test_wp_faults_bt_adaptive_callouts_vs_ws32_traps():
    hv, k = counted("bt", P4)  # ASPLOS'06 BT: adaptive translation into callouts
    c, n = run(hv, P4, lambda: k.act("fork", 19, 7))
    assert c["mmu.shadow_wp_fault"] == pytest.approx(7 * (v(P4, "native.pte_write_cycles") + sw(P4)))
    callout = v(P4, "bt.callout_count") * (v(P4, "native.branch_mispredict_cycles") + v(P4, "bt.tc_lookup_cycles"))
    assert c["trap.bt_callout"] == pytest.approx(7 * callout)
    hv, k = counted("bt", X)  # WS 3.2: write-protect traps
    c, n = run(hv, X, lambda: k.act("fork", 19, 7))
    assert c["mmu.shadow_wp_fault"] == pytest.approx(7 * (v(X, "native.pte_write_cycles") + v(X, "bt.shadow_fault_cycles")))


def test_linux24_fork_copies_every_page_linux26_only_anon():
    hv, k = counted("native", P4)
    c24, _ = run(hv, P4, lambda: k.act("fork", 19))
    hv, k = counted("native", P4)
    c26, _ = run(hv, P4, lambda: k.act("fork", 19, 7))
    w = v(P4, "native.pte_write_cycles")
    assert c24["kernel.pte_write"] == pytest.approx(2 * 19 * w)  # child copies + parent protection
    assert c26["kernel.pte_write"] == pytest.approx(2 * 7 * w)


# ------------------------------------------------------------------ switches: cache, rebuild, hidden faults
def _forked(mode, prof):
    hv, k = counted(mode, prof)
    k.act("fork", 19, 7)
    return hv, k


def test_child_first_run_rebuilds_and_hidden_faults_bt():
    hv, k = _forked("bt", P4)
    c, n = run(hv, P4, lambda: k.act("context_switch", 3))
    faults = math.ceil(3 / v(P4, "mmu.shadow_prefetch_count"))
    tables = k._tables_for(3)  # the leaf and the three levels above it
    assert n["mmu.shadow_cache_miss"] == 1
    assert n["mmu.hidden_fault"] == faults
    assert c["mmu.hidden_fault"] == pytest.approx(faults * (v(P4, "native.exception_cycles") + sw(P4)))
    # a translator keeps its shadow pages: relink each table + propagate the prefetched entries
    assert c["mmu.shadow_rebuild"] == pytest.approx((tables + 3 - faults) * sw(P4))
    # the parent's translations were emptied (one cached root): its shadowed tables evicted
    assert "mmu.shadow_evict" not in c or c["mmu.shadow_evict"] == pytest.approx(
        n["mmu.shadow_evict"] * v(P4, "mmu.unshadow_cycles"))


def test_bt_switch_back_misses_and_evicts_the_child():
    hv, k = _forked("bt", P4)
    k.act("context_switch", 3)  # the child's shadows: 4 table pages
    c, n = run(hv, P4, lambda: k.act("context_switch", 4, 1))
    assert n["mmu.shadow_cache_miss"] == 1  # mmu.bt_shadow_roots_count = 1
    assert n["mmu.shadow_evict"] == k._tables_for(3)
    assert c["mmu.shadow_evict"] == pytest.approx(k._tables_for(3) * v(P4, "mmu.unshadow_cycles"))
    assert n["mmu.hidden_fault"] == 1  # the parent's 4 pages: one fault and three prefetched


def test_xen_keeps_the_parent_shadows_and_allocates_the_child_ones():
    hv, k = _forked("hvm-shadow", P4)
    k.act("context_switch", 4, 1)  # warm: the parent's pages shadowed
    k.act("context_switch", 3)  # the child: a miss
    c, n = run(hv, P4, lambda: k.act("context_switch", 4, 1))
    assert n["mmu.shadow_cache_hit"] == 1
    assert n.get("mmu.hidden_fault", 0) == 0 and "mmu.shadow_evict" not in c
    hv, k = _forked("hvm-shadow", P4)
    c, n = run(hv, P4, lambda: k.act("context_switch", 3))
    tables = k._tables_for(3)
    faults = math.ceil(3 / v(P4, "mmu.shadow_prefetch_count"))
    assert c["mmu.shadow_rebuild"] == pytest.approx((tables + 3 - faults) * sw(P4)
                                                    + tables * v(P4, "mmu.shadow_alloc_cycles"))
    assert c["mmu.hidden_fault"] == pytest.approx(faults * v(P4, "hvm.shadow_fault_cycles"))


def test_tlb_misses_after_a_drop_are_hidden_faults_for_the_resident_pages():
    """After a miss, TLB misses of the running code hit pages without shadow entries: every
    resident page is re-shadowed once, not only the switch's working set."""
    hv, k = _forked("bt", P4)
    k.act("context_switch", 3)
    k.act("context_switch", 4, 1)  # parent: 19 resident pages, 4 re-shadowed by the refill
    c, n = run(hv, P4, lambda: k.act("tlb_walks", 1000))
    assert n["mmu.hidden_fault"] == math.ceil(15 / v(P4, "mmu.shadow_prefetch_count"))
    c, n = run(hv, P4, lambda: k.act("tlb_walks", 1000))
    assert n.get("mmu.hidden_fault", 0) == 0  # all shadowed now


def test_xen_pool_evicts_least_recently_loaded():
    hv, k = counted("hvm-shadow", P4)
    pool = k._pool_pages()
    assert pool == (v(P4, "mmu.shadow_pool_vcpu_pages_count")
                    + (hv.domains[1].tot_pages // 256) * v(P4, "mmu.shadow_pool_mib_pages_count"))
    big = 512 * (pool // 3)  # a process whose shadows need about a third of the pool
    for pid in (2, 3):
        k.act("context_switch", big, pid)
    assert k._sl.cache[-2:] == [2, 3]
    k.act("context_switch", 4, 2)  # 2 becomes the most recently loaded
    c, n = run(hv, P4, lambda: k.act("context_switch", big, 4))
    assert k._sl.cache[-1] == 4 and 3 not in k._sl.cache and 2 in k._sl.cache  # 3: loaded longest ago
    assert n["mmu.shadow_evict"] >= k._tables_for(big) - 1


# ------------------------------------------------------------------ exit: teardown
def test_exit_teardown_xen_early_unshadow_vs_translator_traces():
    hv, k = _forked("hvm-shadow", P4)
    k.act("context_switch", 3)  # the child's 4 tables shadowed
    c, n = run(hv, P4, lambda: k.act("exit", 11))
    leaves = k._tables_for(3) - 3
    mediated = 2 * leaves + 3  # two clearing stores to the L1, then one per upper-level link
    assert n["mmu.shadow_teardown"] == leaves
    assert c["mmu.shadow_teardown"] == pytest.approx(leaves * v(P4, "mmu.unshadow_cycles"))
    assert n["mmu.emulated_pte_write"] == mediated
    hv, k = _forked("bt", P4)
    k.act("context_switch", 3)
    c, n = run(hv, P4, lambda: k.act("exit", 11))
    assert n["mmu.emulated_pte_write"] == 11  # every clearing store into a traced table
    assert "mmu.shadow_teardown" not in c


# ------------------------------------------------------------------ structural path
def _plat(mode, prof=P4, **kw):
    return scratch_platform(mode, profile=prof, nr_pages=8192, **kw)


def test_structural_pool_from_profile():
    p = _plat("hvm-shadow")
    assert p.machine_mmu.pool_pages == (v(P4, "mmu.shadow_pool_vcpu_pages_count")
                                        + (8192 // 256) * v(P4, "mmu.shadow_pool_mib_pages_count"))
    assert p.machine_mmu.prefetch == v(P4, "mmu.shadow_prefetch_count")


def test_structural_fork_marking_is_shadow_wp_fault():
    p = _plat("hvm-shadow")
    g = p.mmu
    g._populate(g.current, 16)
    m = Meter()
    with p.hv.metering(m):
        g.fork(16)
    c = m.price(P4)
    assert m.counts["mmu.shadow_wp_fault"] == 16  # all 16 of the parent's PTEs were writable
    one = (v(P4, "native.pte_write_cycles") + v(P4, "hvm.shadow_fault_cycles")
           + v(P4, "hvm.emulate_vmcs_reads_count") * v(P4, "hvm.vmcs_read_cycles"))
    assert c["mmu.shadow_wp_fault"] == pytest.approx(16 * one)


def test_structural_bt_roots_cache_hits_when_large_enough():
    p = _plat("bt")
    g, sm = p.mmu, p.machine_mmu
    g.fork(16)
    for _ in range(2):
        g.context_switch()
        g.tlb_refill(4)
        g.context_switch(1)
        g.tlb_refill(4)
    m = Meter()
    with p.hv.metering(m):
        g.context_switch()
        g.tlb_refill(4)
    assert m.counts["mmu.shadow_cache_miss"] == 1 and m.counts["mmu.hidden_fault"] >= 1
    assert m.price(P4)["mmu.shadow_evict"] == pytest.approx(m.counts["mmu.shadow_empty"] * v(P4, "mmu.unshadow_cycles"))
    sm.bt_roots = 2  # a translator caching two roots: the ping-pong keeps both
    g.context_switch(1)
    g.tlb_refill(4)
    m = Meter()
    with p.hv.metering(m):
        g.context_switch()
        g.tlb_refill(4)
    assert m.counts["mmu.shadow_cache_hit"] == 1 and m.counts.get("mmu.hidden_fault", 0) == 0


def test_structural_xen_recycles_least_recently_loaded_top_level():
    p = _plat("hvm-shadow")
    g, sm = p.mmu, p.machine_mmu
    g.fork(8)
    g.context_switch()  # the child
    g.tlb_refill(4)
    child_root, parent_root = g.current.root, g.procs[1].root
    g.context_switch(1)  # the parent loaded last: the child's top-level is the oldest pinned
    assert sm._victim({sm.root}) == child_root
    sm.pin_lru = False  # FIFO: the parent's root shadow was created first
    g.context_switch()
    g.context_switch(1)
    assert sm.order.index(parent_root) > sm.order.index(child_root)  # no re-pin without LRU


def test_forkwait_breakdown_has_every_life_cycle_cause():
    for mmu in ("counted", "structural"):
        bt = op_cost("forkwait", "bt", P4, {"mmu": mmu}).cycles
        hs = op_cost("forkwait", "hvm-shadow", P4, {"mmu": mmu}).cycles
        for c in ("mmu.shadow_wp_fault", "mmu.hidden_fault", "mmu.shadow_rebuild"):
            assert c in hs, (mmu, c)
        for c in ("mmu.shadow_wp_fault", "mmu.hidden_fault", "mmu.shadow_rebuild", "mmu.shadow_evict"):
            assert c in bt, (mmu, c)
