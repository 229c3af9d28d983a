"""PV direct paging: validation counts, demotion, flushes, continuations, writable page tables."""

from hostile import World

from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls.ops import RUNSTATE_running
from pvsim.core.meter import Meter
from pvsim.mm import x86 as C
from pvsim.mm.audit import audit
from pvsim.mm.pv import direct_paging

P, RW, US = C._PAGE_PRESENT, C._PAGE_RW, C._PAGE_USER


def test_pin_validates_the_whole_tree_and_unpin_demotes_it():
    w = World()
    mm, f = w.mm, [int(m) for m in w.att.mm.p2m]
    # the builder pinned L4 and loaded it: every table in use, each data frame writable once
    assert [int(mm.type[x]) for x in f[:5]] == [4, 3, 2, 1, 7]
    assert mm.type_count[f[0]] == 2  # pin + base pointer
    v = w.att.vcpus[0]
    assert w.hv.hypercall_by_name(v, "mmuext_op", [(O.MMUEXT_UNPIN_TABLE, f[0], 0)], 1, None) == 0
    assert mm.validated[f[0]] and mm.type_count[f[0]] == 1  # still the base pointer
    # switching CR3 away drops the last type reference: the whole tree is demoted
    assert w.hv.hypercall_by_name(v, "mmuext_op", [(O.MMUEXT_PIN_L4_TABLE, f[22], 0)], 1, None) == 0
    assert w.hv.hypercall_by_name(v, "mmuext_op", [(O.MMUEXT_NEW_BASEPTR, f[22], 0)], 1, None) == 0
    assert mm.type_count[f[0]] == 0 and not mm.validated[f[0]]
    assert all(mm.type_count[x] == 0 for x in f[:12])
    assert audit(mm) == []


def test_validation_work_is_metered_per_entry():
    w = World()
    v = w.att.vcpus[0]
    f = [int(m) for m in w.att.mm.p2m]
    l1 = f[3]
    with w.hv.metering(Meter()) as m:
        reqs = [((l1 << 12) | ((16 + i) * 8), C.make_pte(f[24 + i], P | RW)) for i in range(8)]
        assert w.hv.hypercall_by_name(v, "mmu_update", reqs, 8, None) == 0
    assert m.work[("mmu.validate", "xen.pte_validate_cycles")] == 8
    assert m.counts["hypercall.mmu_update"] == 1
    assert ("mmu.tlb_flush", "native.tlb_flush_cycles") not in m.work  # L1-only batch: no flush
    with w.hv.metering(Meter()) as m:  # an L2 change flushes the dirty CPUs (here: this one)
        assert w.hv.hypercall_by_name(v, "mmu_update", [((f[2] << 12) | 8, 0)], 1, None) == 0
    assert m.work[("mmu.tlb_flush", "native.tlb_flush_cycles")] == 1
    # with the second vCPU running, the flush reaches it by IPI
    w.att.vcpus[1].runstate = RUNSTATE_running
    with w.hv.metering(Meter()) as m:
        assert w.hv.hypercall_by_name(v, "mmu_update", [((f[2] << 12) | 16, 0)], 1, None) == 0
    assert m.work[("mmu.tlb_flush", "native.ipi_cycles")] == 1


def test_long_batches_are_continued():
    w = World(preempt_every=4)
    v = w.att.vcpus[0]
    f = [int(m) for m in w.att.mm.p2m]
    reqs = [((f[3] << 12) | ((20 + i) * 8), C.make_pte(f[25], P)) for i in range(10)]
    done = [0]
    with w.hv.metering(Meter()) as m:
        assert w.hv.hypercall_by_name(v, "mmu_update", reqs, 10, done) == 0
    assert done == [10]
    assert m.counts["hypercall_continuation.mmu_update"] == 2
    assert m.work[("hypercall.mmu_update", "xen.hypercall_entry_pv64_cycles")] == 3
    assert audit(w.mm) == []


def test_batch_stops_at_first_error_and_reports_done():
    w = World()
    v = w.att.vcpus[0]
    f = [int(m) for m in w.att.mm.p2m]
    reqs = [((f[3] << 12) | (20 * 8), C.make_pte(f[25], P)),
            ((f[3] << 12) | (21 * 8), C.make_pte(w.vic_frames[2], P)),
            ((f[3] << 12) | (22 * 8), C.make_pte(f[26], P))]
    done = [0]
    assert w.hv.hypercall_by_name(v, "mmu_update", reqs, 3, done) == -E.EBUSY
    assert done == [1]
    assert w.mm.read_entry(f[3], 22) == 0


def test_update_va_mapping_and_flush_flags():
    w = World()
    v = w.att.vcpus[0]
    f = [int(m) for m in w.att.mm.p2m]
    with w.hv.metering(Meter()) as m:
        assert w.hv.hypercall_by_name(v, "update_va_mapping", 3 << 12, C.make_pte(f[30], P | RW),
                                      O.UVMF_INVLPG) == 0
    assert m.work[("mmu.tlb_flush", "native.invlpg_cycles")] == 1
    assert C.pte_mfn(w.mm.read_entry(f[3], 3)) == f[30]
    assert w.hv.hypercall_by_name(v, "update_va_mapping", 99 << 30, 0, 0) == -E.EINVAL
    assert audit(w.mm) == []


def test_machphys_update_sets_m2p():
    w = World()
    v = w.att.vcpus[0]
    f = [int(m) for m in w.att.mm.p2m]
    assert w.hv.hypercall_by_name(v, "mmu_update", [((f[7] << 12) | O.MMU_MACHPHYS_UPDATE, 33)], 1, None) == 0
    assert w.mm.m2p[f[7]] == 33
    assert w.hv.hypercall_by_name(v, "mmu_update", [((w.vic_frames[1] << 12) | 1, 3)], 1, None) == -E.EINVAL


def test_writable_page_tables_emulate_one_l1_write():
    w = World()
    f = [int(m) for m in w.att.mm.p2m]
    pv, dmm = direct_paging(w.mm), w.att.mm
    pv.meter = Meter()
    assert pv.ptwr_emulated_update(dmm, 0, f[3], 12, C.make_pte(f[31], P | RW), 0) == -E.EFAULT
    vm = 1 << O.VMASST_TYPE_writable_pagetables
    assert pv.ptwr_emulated_update(dmm, 0, f[3], 12, C.make_pte(f[31], P | RW), vm) == 0
    assert pv.ptwr_emulated_update(dmm, 0, f[3], 13, C.make_pte(f[2], P | RW), vm) == -E.EBUSY
    assert pv.ptwr_emulated_update(dmm, 0, f[2], 13, 0, vm) == -E.EFAULT  # only L1s
    assert pv.meter.work[("mmu.emulated_pte_write", "mmu.ptwr_emulate_cycles")] == 2
    assert audit(w.mm) == []
