"""Named recreations of the attack patterns of Xen's published PV page-table advisories.
Each must be refused with Xen's errno and leave the frame table consistent."""

import pytest
from hostile import World

from hypercalls import errno as E
from hypercalls import ops as O
from pvsim.mm import x86 as C
from pvsim.mm.audit import audit

P, RW, US = C._PAGE_PRESENT, C._PAGE_RW, C._PAGE_USER


def setup(linear=False):
    w = World(linear_pt=linear)
    p2m = w.att.mm.p2m
    l4, l3, l2, l1 = (int(p2m[i]) for i in range(4))
    return w, w.att.vcpus[0], l4, l3, l2, l1, [int(m) for m in p2m]


def mmu(w, v, *reqs, fd=0x7FF0):
    done = [0]
    rc = w.hv.hypercall_by_name(v, "mmu_update", list(reqs), len(reqs), done, fd)
    return rc, done[0]


def ext(w, v, cmd, a1, a2=0):
    return w.hv.hypercall_by_name(v, "mmuext_op", [(cmd, a1, a2)], 1, None)


def test_xsa148_writable_superpage_over_page_tables():
    """XSA-148: an L2 entry with _PAGE_PSE|_PAGE_RW would map 2 MiB, page tables included, writable."""
    w, v, l4, l3, l2, l1, f = setup()
    base = min(l4, l3, l2, l1) & ~511
    rc, done = mmu(w, v, ((l2 << 12) | (7 * 8), C.make_pte(base, P | RW | US | C._PAGE_PSE)))
    assert (rc, done) == (-E.EINVAL, 0)
    assert w.mm.read_entry(l2, 7) == 0
    assert audit(w.mm) == []


@pytest.mark.parametrize("linear", [False, True])
def test_writable_linear_mapping_of_a_page_table(linear):
    """XSA-240 family: a self-referencing (linear) L4 entry must never be writable."""
    w, v, l4, *_ = setup(linear)
    rc, _ = mmu(w, v, ((l4 << 12) | (5 * 8), C.make_pte(l4, P | RW | US)))
    assert rc == -E.EINVAL
    assert audit(w.mm) == []


def test_xsa182_fast_path_l4_update_skipping_validation():
    """XSA-182: with a read-only linear L4 entry in place, flipping only _PAGE_RW must not take the
    unvalidated fast path (FASTPATH_PDE_FLAG_WHITELIST excludes RW when linear page tables exist)."""
    w, v, l4, *_ = setup(linear=True)
    assert mmu(w, v, ((l4 << 12) | (5 * 8), C.make_pte(l4, P | US)))[0] == 0  # RO self-map: allowed
    rc, _ = mmu(w, v, ((l4 << 12) | (5 * 8), C.make_pte(l4, P | RW | US)))
    assert rc == -E.EINVAL
    assert C.get_pte_flags(w.mm.read_entry(l4, 5)) & RW == 0
    assert audit(w.mm) == []


def test_fast_path_cannot_change_the_frame():
    """The L1 fast path may change only whitelisted flags; a new frame is always validated."""
    w, v, l4, l3, l2, l1, f = setup()
    old = w.mm.read_entry(l1, 0)
    rc, _ = mmu(w, v, ((l1 << 12), C.make_pte(l2, C.get_pte_flags(old))))  # same flags, PT frame
    assert rc == -E.EBUSY
    assert w.mm.read_entry(l1, 0) == old


def test_type_change_while_type_count_nonzero():
    """A frame mapped writable cannot become a page table, and a page table cannot be mapped writable."""
    w, v, l4, l3, l2, l1, f = setup()
    data = f[4]  # mapped RW by L1[0]
    assert w.mm.type[data] == C.PGT_writable_page and w.mm.type_count[data] == 1
    assert ext(w, v, O.MMUEXT_PIN_L1_TABLE, data) == -E.EINVAL
    assert w.mm.type[data] == C.PGT_writable_page
    spare = f[20]
    assert ext(w, v, O.MMUEXT_PIN_L1_TABLE, spare) == 0
    rc, _ = mmu(w, v, ((l1 << 12) | (9 * 8), C.make_pte(spare, P | RW)))
    assert rc == -E.EBUSY
    assert ext(w, v, O.MMUEXT_PIN_L2_TABLE, l1) == -E.EINVAL  # L1 in use cannot be pinned as L2
    assert ext(w, v, O.MMUEXT_PIN_L1_TABLE, spare) == -E.EINVAL  # pins do not nest
    assert audit(w.mm) == []


def test_page_table_written_as_data_is_validated_on_promotion():
    """Entries planted in a data frame are checked when it is pinned (promote_l1_table)."""
    w, v, l4, l3, l2, l1, f = setup()
    victim = w.vic_frames[5]
    frame = f[21]
    assert mmu(w, v, ((frame << 12) | 8, C.make_pte(victim, P | RW)))[0] == 0  # plain write to data
    assert ext(w, v, O.MMUEXT_PIN_L1_TABLE, frame) == -E.EBUSY
    assert w.mm.type_count[frame] == 0 and not w.mm.pinned[frame]
    assert audit(w.mm) == []


def test_foreign_and_mmio_mappings_refused():
    w, v, l4, l3, l2, l1, f = setup()
    assert mmu(w, v, ((l1 << 12) | 9 * 8, C.make_pte(w.vic_frames[3], P)))[0] == -E.EBUSY
    assert mmu(w, v, ((l1 << 12) | 9 * 8, C.make_pte(w.mm.nr_frames + 7, P)))[0] == -E.EPERM
    assert mmu(w, v, ((w.vic_frames[3] << 12), 0))[0] == -E.EINVAL  # victim's table as ptr
    assert mmu(w, v, ((l1 << 12) | 9 * 8, C.make_pte(f[9], P)), fd=2)[0] == -E.EPERM
    assert mmu(w, v, ((l1 << 12) | 9 * 8, C.make_pte(f[9], P)), fd=1)[0] == -E.ESRCH
    assert mmu(w, v, ((l4 << 12) | (256 * 8), C.make_pte(l3, P)))[0] == -E.EINVAL  # Xen's L4 slot
    assert audit(w.mm) == []


def test_balloon_free_refuses_referenced_or_foreign_frames():
    w, v, l4, l3, l2, l1, f = setup()
    mm = w.mm
    assert mm.free_domheap_page(1, f[4]) == -E.EBUSY  # still mapped
    assert mm.free_domheap_page(1, w.vic_frames[10]) == -E.EINVAL  # not ours
    assert mm.free_domheap_page(1, f[30]) == 0
    assert mm.owner[f[30]] == -1
    new = mm.alloc_domheap_page(1)
    assert new >= 0 and mm.owner[new] == 1
    assert audit(mm) == []
