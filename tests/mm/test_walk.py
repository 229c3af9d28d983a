"""TLB + page-walk kernel: exact reference counts, kernel == reference, walk caches."""

import ast
import pathlib

import numpy as np
import pytest

from pvsim.core import kernels
from pvsim.core.engine import rng_for
from pvsim.core.meter import Meter
from pvsim.core.profile import load_profile
from pvsim.mm import workloads
from pvsim.mm.hap import build_translation_setup
from pvsim.mm.walk import (
    FAULT_GUEST,
    O_DIRTY_SET,
    O_FAULT_KIND,
    O_HITS,
    O_MISSES,
    O_REFS,
    O_STOP,
    TLB,
    translate,
    translate_ref,
)
from pvsim.wiring import scratch_platform

COLD = dict(sets=(0, 0, 0), ways=(0, 0, 0))


def _run(setup, vas, writes=None, tlb=None, ref=False):
    rows, slot, root, levels, two_d, h_root, h_levels = setup
    writes = np.zeros(len(vas), bool) if writes is None else writes
    fn = translate_ref if ref else translate
    return fn(rows, slot, vas, writes, tlb or TLB(**COLD), root=root, levels=levels, two_d=two_d,
              h_root=h_root, h_levels=h_levels)


@pytest.mark.parametrize("kind,gl,gleaf,hl,hleaf,refs", [
    ("1d", 4, 1, 4, 1, 4), ("1d", 5, 1, 4, 1, 5), ("1d", 4, 2, 4, 1, 3),
    ("2d", 4, 1, 4, 1, 24), ("2d", 4, 1, 4, 2, 19), ("2d", 4, 2, 4, 2, 15), ("2d", 5, 1, 5, 1, 35),
    ("2d", 4, 1, 4, 3, 14)])
def test_exact_reference_counts_per_miss(kind, gl, gleaf, hl, hleaf, refs):
    setup, vas = build_translation_setup(kind, guest_levels=gl, guest_leaf=gleaf, host_levels=hl,
                                         host_leaf=hleaf, npages=40, rng=rng_for(3, kind))
    out = _run(setup, vas)
    assert out[O_MISSES] == len(vas) and out[O_STOP] == len(vas)
    assert out[O_REFS] == refs * len(vas)
    assert (out == _run(setup, vas, ref=True)).all()


def test_registered_kernels_agree_with_references():
    reg = kernels.load_all()
    entry = reg["translate"]
    rng = rng_for(11, "walk-equivalence")
    n = 0
    for args in entry.cases(rng):
        ka = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
        ra = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
        entry.kernel(*ka)
        entry.reference(*ra)
        entry.compare(ka, ra)
        n += 1
    assert n >= 10


def test_tlb_hits_and_faults_stop_the_kernel():
    setup, vas = build_translation_setup("1d", npages=8, rng=rng_for(1, "t"))
    tlb = TLB()
    trace = np.concatenate([vas, vas, [(1 << 46)], vas])
    out = _run(setup, trace, tlb=tlb)
    assert out[O_STOP] == 16 and out[O_FAULT_KIND] == FAULT_GUEST
    assert out[O_MISSES] == 8 and out[O_HITS] == 8
    rows, slot, root, levels, two_d, h_root, h_levels = setup
    out2 = translate(rows, slot, trace, np.zeros(len(trace), bool), tlb, root=root, start=17)
    assert out2[O_STOP] == len(trace) and out2[O_HITS] == 8


def test_dirty_bits_set_once_per_page():
    setup, vas = build_translation_setup("1d", npages=8, rng=rng_for(2, "d"))
    out = _run(setup, np.concatenate([vas, vas]), writes=np.ones(16, bool), tlb=TLB())
    assert out[O_DIRTY_SET] == 8


def test_log_dirty_ept_violation_and_split():
    """HAP log-dirty: the first write to each page after CLEAN exits (EPT violation), splitting
    2 MiB p2m leaves; reads and second writes do not."""
    p = scratch_platform("hvm", profile=load_profile("modern"), nr_pages=4096)
    g, mach = p.mmu, p.machine_mmu
    vas = (np.arange(32, dtype=np.int64) << 12) + 0x400000
    g.access_trace(vas, np.ones(32, bool))  # demand-fault the pages in
    leaves = mach.p2m.enable_log_dirty()
    assert leaves >= 1
    mach.tlb.flush()
    m = Meter()
    with p.hv.metering(m):
        g.access_trace(vas, np.zeros(32, bool))  # reads: no exit
        assert m.counts.get("mmu.log_dirty_fault", 0) == 0
        g.access_trace(vas, np.ones(32, bool))
        g.access_trace(vas, np.ones(32, bool))  # second writes: no exit
    assert m.counts["mmu.log_dirty_fault"] >= 32
    dirty = mach.p2m.clean_dirty()
    assert len(dirty) >= 32
    m = Meter()
    with p.hv.metering(m):
        mach.tlb.flush()
        g.access_trace(vas[:8], np.ones(8, bool))
    assert m.counts["mmu.log_dirty_fault"] == 8


def test_hap_mmio_access_is_an_ept_violation():
    from pvsim.mm import x86 as C

    p = scratch_platform("hvm", profile=load_profile("modern"), nr_pages=4096)
    g, mach = p.mmu, p.machine_mmu
    va = 0x600000
    g.access_trace(np.array([va]), np.zeros(1, bool))
    slot = None
    t = mach.root
    for lv in (4, 3, 2):
        t = C.pte_mfn(mach.read(t, (va >> (12 + 9 * (lv - 1))) & 511))
    # point the guest PTE at a guest frame beyond RAM (an emulated device's MMIO page)
    mach.store(t, (va >> 12) & 511, C.make_pte(1 << 30, C._PAGE_PRESENT | C._PAGE_RW))
    mach.tlb.flush()
    m = Meter()
    with p.hv.metering(m):
        out = g.access_trace(np.array([va, va]), np.zeros(2, bool))
    assert m.counts["mmu.mmio_access"] == 2 and out[0] == 2
    assert slot is None


def test_page_walk_cache_gain_on_tlb_miss_bound_trace():
    """Paging-structure caches + nested TLB: a TLB-miss-bound 2-D trace spends 15-45 % less in walks."""
    setup, vas = build_translation_setup("2d", npages=4096, rng=rng_for(5, "pwc"))
    trace = workloads.gups_trace(rng_for(5, "gups"), vas, 20_000)
    base = _run(setup, trace, tlb=TLB(sets=(16, 8, 1), ways=(4, 4, 4)))
    # Intel-like paging-structure caches: 32 PDE, 4 PDPTE, 2 PML4E entries (guest dimension)
    cached = _run(setup, trace, tlb=TLB(sets=(16, 8, 1), ways=(4, 4, 4), pwc=(32, 4, 2, 0)))
    assert base[O_MISSES] > 0.9 * len(trace)
    gain = 1 - cached[O_REFS] / base[O_REFS]  # walk time = references x native.mem_ref_cycles
    assert 0.15 <= gain <= 0.45, gain
    # the nested TLB saves more on top of it
    both = _run(setup, trace, tlb=TLB(sets=(16, 8, 1), ways=(4, 4, 4), pwc=(32, 4, 2, 0), ntlb=16))
    assert both[O_REFS] < cached[O_REFS]


def test_every_njit_function_is_registered():
    """Fails if any @njit/@jit function anywhere in the source tree is not in pvsim.core.kernels."""
    root = pathlib.Path(__file__).resolve().parents[2]
    kernels.load_all()
    registered = kernels.kernel_names()
    systems = kernels.systems()
    for e in systems.values():  # a compiled system is checked as a whole by its equivalence test
        assert (root / e.test).is_file(), e
    missing = []
    for path in list((root / "pvsim").rglob("*.py")) + list((root / "guest_kernels").rglob("*.py")):
        mod = ".".join(path.relative_to(root).with_suffix("").parts)
        if any(mod == p or mod.startswith(p + ".") for p in systems):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for d in node.decorator_list:
                    name = d.func if isinstance(d, ast.Call) else d
                    name = getattr(name, "id", getattr(name, "attr", ""))
                    if name in ("njit", "jit", "vectorize", "guvectorize"):
                        if node.name not in registered:
                            missing.append(f"{path.relative_to(root)}:{node.name}")
    assert not missing, f"unregistered compiled functions: {missing}"


def test_l1_batch_kernel_agrees_with_reference():
    entry = kernels.load_all()["l1_batch"]
    n = 0
    for args in entry.cases(rng_for(12, "l1batch")):
        ka = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
        ra = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
        entry.kernel(*ka)
        entry.reference(*ra)
        entry.compare(ka, ra)
        n += 1
    assert n >= 10


def test_mmu_update_with_and_without_kernel_is_identical():
    """The hostile driver with the L1 batch kernel on and off: same return codes, same frame table."""
    from hostile import World

    worlds = [World(), World()]
    worlds[1].mm.use_kernels = False
    rng = [rng_for(9, "same"), rng_for(9, "same")]
    for _ in range(3000):
        calls = [w.random_call(r) for w, r in zip(worlds, rng)]
        assert calls[0] == calls[1]
        rcs = [w.do(c) for w, c in zip(worlds, calls)]
        assert rcs[0] == rcs[1], calls[0]
    a, b = worlds[0].mm, worlds[1].mm
    for name in ("owner", "count", "type", "type_count", "pinned", "validated", "m2p"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for f in range(a.nr_frames):
        assert a.read_entry(f, 0) == b.read_entry(f, 0)
        if a.has_contents(f) or b.has_contents(f):
            np.testing.assert_array_equal(a.entries(f), b.entries(f))


# ------------------------------------------------------------------ large pages (issue 12 item 7)
LEAF = {1: "4k", 2: "2m", 3: "1g"}


@pytest.mark.parametrize("gleaf", [1, 2, 3])
@pytest.mark.parametrize("hleaf", [1, 2, 3])
def test_2d_reference_counts_for_every_page_size_pair(gleaf, hleaf):
    """Cold 2-D miss on 4-level guest and host tables: n = 5 - gleaf guest references, each of the
    n guest table frames and the data address translated by m = 5 - hleaf host references:
    n + (n + 1) m = (n+1)(m+1) - 1. Hand values: 4K/4K 24, 2M/4K 19, 4K/2M 19, 2M/2M 15,
    1G/4K 14, 4K/1G 14, 1G/2M 11, 2M/1G 11, 1G/1G 8."""
    hand = {(1, 1): 24, (2, 1): 19, (1, 2): 19, (2, 2): 15, (3, 1): 14, (1, 3): 14, (3, 2): 11, (2, 3): 11,
            (3, 3): 8}
    n, m = 5 - gleaf, 5 - hleaf
    assert hand[(gleaf, hleaf)] == (n + 1) * (m + 1) - 1
    setup, vas = build_translation_setup("2d", guest_leaf=gleaf, host_leaf=hleaf, npages=24,
                                         rng=rng_for(7, f"pairs{gleaf}{hleaf}"))
    out = _run(setup, vas)
    assert out[O_MISSES] == len(vas) and out[O_REFS] == hand[(gleaf, hleaf)] * len(vas)
    assert (out == _run(setup, vas, ref=True)).all()
    rows, slot, root, levels, two_d, h_root, h_levels = setup
    # and with walk caches, kernel == reference (A/D bits included)
    r1, r2 = rows.copy(), rows.copy()
    tlbk = TLB(pwc=(4, 4, 4, 0), ntlb=8)
    ok = translate(r1, slot, vas, np.ones(len(vas), bool), tlbk, root=root, two_d=True, h_root=h_root)
    orf = translate_ref(r2, slot, vas, np.ones(len(vas), bool), TLB(pwc=(4, 4, 4, 0), ntlb=8), root=root,
                        two_d=True, h_root=h_root)
    assert (ok == orf).all() and (r1 == r2).all()


@pytest.mark.parametrize("gleaf,refs", [(1, 4), (2, 3), (3, 2)])
def test_1d_large_leaf_ends_the_walk(gleaf, refs):
    """Native 4-level: a 2 MiB leaf ends the walk at the PDE (3 references), 1 GiB at the PDPTE (2)."""
    setup, vas = build_translation_setup("1d", guest_leaf=gleaf, npages=30, rng=rng_for(8, f"1d{gleaf}"))
    out = _run(setup, vas)
    assert out[O_REFS] == refs * len(vas) and out[O_MISSES] == len(vas)


@pytest.mark.parametrize("gleaf", [1, 2, 3])
@pytest.mark.parametrize("hleaf", [1, 2, 3])
def test_2d_tlb_reach_is_the_smaller_page(gleaf, hleaf):
    """A 2-D translation is cached with min(guest, host) page size: the entries land in that TLB,
    and a second access elsewhere in the same min-size page hits while one beyond it misses."""
    setup, vas = build_translation_setup("2d", guest_leaf=gleaf, host_leaf=hleaf, npages=4,
                                         rng=rng_for(9, f"reach{gleaf}{hleaf}"))
    rows, slot, root, levels, two_d, h_root, h_levels = setup
    tlb = TLB(sets=(4, 2, 1), ways=(4, 4, 4))
    va = np.array([vas[0]], np.int64)
    translate(rows, slot, va, np.zeros(1, bool), tlb, root=root, two_d=True, h_root=h_root)
    sz = min(gleaf, hleaf) - 1
    assert [(tlb.tag[k] != -1).sum() for k in range(3)] == [1 if k == sz else 0 for k in range(3)]
    reach = 1 << (12 + 9 * sz)
    inside = np.array([vas[0] + reach - 4096 if reach <= 2 << 20 else vas[0] + 8192], np.int64)
    out = translate(rows, slot, inside, np.zeros(1, bool), tlb, root=root, two_d=True, h_root=h_root)
    assert out[O_HITS] == 1
    if gleaf > sz + 1 and reach < (1 << 21):  # next min-size page of the same guest page: a new entry
        out = translate(rows, slot, np.array([vas[0] + reach], np.int64), np.zeros(1, bool), tlb, root=root,
                        two_d=True, h_root=h_root)
        assert out[O_MISSES] == 1
