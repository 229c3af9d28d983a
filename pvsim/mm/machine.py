"""The machine side of each MMU mode: what a guest's page-table stores, CR3 loads, INVLPG and
memory touches do on the real structures.

Design note
-----------
A guest kernel never touches :mod:`pvsim.hypervisor` internals; the builder hands it (through its
``platform``) one of these objects, bound to one domain and vCPU:

* :class:`NativeMMU` (paging ``hardware``: native, container): the guest's tables are the hardware's; stores
  are plain, a CR3 load flushes the non-global TLB (or not, with PCID tags), a TLB miss walks
  4 levels (:func:`pvsim.mm.walk.translate`).
* :class:`PVMachine` (paging ``direct``: Xen's PV direct paging, pv and pv32): the hardware walks the guest's validated tables (direct
  paging); a store into a frame in use as a page table is refused (the page is mapped read-only:
  the guest must use ``mmu_update``, or the writable-page-table emulation,
  ``xen/arch/x86/pv/ro-page-fault.c``); stores into its other frames are plain.
* :class:`ShadowMMU` (paging ``shadow``: bt, hvm-shadow): after ``xen/arch/x86/mm/shadow/multi.c``. Guest
  tables hold guest frame numbers; the hardware walks *shadow* tables in Xen's frames, built
  lazily: a walk that meets an empty shadow entry is a **hidden fault** (``sh_page_fault`` fix-up:
  ``_sh_propagate`` down the path, plus ``PREFETCH_DISTANCE`` = 32 neighbouring L1 entries) when
  the guest's own tables map the address, and a **true fault** reflected to the guest otherwise.
  A guest store into a shadowed table page is **emulated** (write-protect fault, x86 emulation,
  re-propagation of that entry); consecutive zero writes to one frame unshadow it
  (``check_for_early_unshadow``). Shadows persist across CR3 loads (hash by guest frame) in a
  bounded pool (libxl's default: 256 pages per vCPU + one per MiB of RAM), recycled oldest first.
  Under a binary translator (``cpu = translated``, the hosted VMMs of 2003-2006) a CR3 load empties every shadow of its translations
  but keeps the pages, and with them the write traces. A guest freeing a table is invisible to the
  VMM: its shadow (and trace) stays until recycled, early-unshadowed, or seen reused -- a data
  store into it, a zeroing of a non-empty page, or use at another level -- each detected by the
  fault it causes.
* :class:`HapMMU` (paging ``hap``: hvm, pvhvm, pvh, kvm-virtio): after ``xen/arch/x86/mm/hap/hap.c``: stores, CR3
  loads and INVLPG do not exit; the hardware walks both dimensions (guest tables and the EPT/NPT
  :class:`~pvsim.mm.hap.P2M`), with the VPID-tagged TLB, page-walk caches and nested TLB the
  profile describes.

Work is reported to the current meter with the platform's entry helpers where the guest-kernel
layer defines them (``platform.vmexit``, ``platform.bt``, ``platform.sw_mmu``), else as raw
profile keys: walks as ``mmu.page_walk`` (``native.mem_ref_cycles`` per reference), TLB flushes
as ``mmu.tlb_flush``, hidden faults as ``mmu.hidden_fault``, emulated writes as
``mmu.emulated_pte_write``, shadow propagation as ``mmu.shadow_sync``.

PV log-dirty (:meth:`PVMachine.enable_log_dirty`): the first write to each page per round faults
into Xen and marks the page dirty, as shadow log-dirty mode does for PV guests.

Option ``oos`` (HVM shadow only, ``shadow/oos.c``): the first emulated write to a shadowed L1
unsyncs it (at most ``SHADOW_OOS_PAGES`` = 3, oldest evicted and resynced); further writes to it
are plain stores; CR3 loads and flushes resync every out-of-sync L1.

A CR3 load under a tagged TLB (PCID/VPID) takes a fresh tag and drops the walk caches, which
carry no tag of their own (real ones are tagged, Intel SDM vol. 3A 4.10.3.1: the new tag could use
none of the old entries). The tags run 1..``ASID_MAX`` (4095); when they are exhausted the next load
starts a new generation with a full flush of the TLB and walk caches and tag 1
(``hvm/asid.c``: ``hvm_asid_handle_vmenter``, ``hvm_asid_flush_core``), counted as
``tlb.asid_rollover``; its price is only the refills (no separate cost constant).

Simplifications: one TLB per vCPU (no SMT sharing); no OOS snapshots (a resync compares every
entry with its recomputed shadow); PV log-dirty
detects first writes through the leaf entries' dirty bits (cleared at each round) instead of
building read-only shadows; guest writes to
the accessed/dirty bits of shadowed guest entries are not propagated back; superpages only in the
p2m, not in shadows.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from hypercalls.ops import DOMID_XEN
from pvsim.core.meter import Meter
from pvsim.mm import walk as W
from pvsim.mm import x86 as C
from pvsim.mm.frames import DomainMM, MachineMemory
from pvsim.mm.hap import P2M

PREFETCH_DISTANCE = 32  # shadow/multi.c
SHADOW_OOS_PAGES = 3  # shadow/private.h: out-of-sync L1s per vCPU
# Tags a tagged TLB hands out: 1..4095 (a 12-bit PCID, Intel SDM vol. 3A 4.10.1; 0 is the tag
# of the untagged/first address space, as Xen keeps ASID/VPID 0 for itself, hvm/asid.c)
ASID_MAX = 4095
SKIP = 2  # _fixup result: the access was completed by emulation (MMIO); resume after it


def tlb_from_profile(profile, *, two_d: bool = False) -> W.TLB:
    """A TLB sized by the profile's ``[mmu]`` geometry (defaults when a key is absent)."""

    def v(key, default):
        return int(profile.value(key)) if profile is not None and profile.has(key) else default

    sets = (v("mmu.tlb_4k_sets_count", 16), v("mmu.tlb_2m_sets_count", 8), v("mmu.tlb_1g_sets_count", 1))
    ways = (v("mmu.tlb_4k_ways_count", 4), v("mmu.tlb_2m_ways_count", 4), v("mmu.tlb_1g_ways_count", 4))
    pwc = (v("mmu.pwc_pde_entries_count", 0), v("mmu.pwc_pdpte_entries_count", 0),
           v("mmu.pwc_pml4e_entries_count", 0), 0)
    return W.TLB(sets=sets, ways=ways, pwc=pwc, ntlb=v("mmu.ntlb_entries_count", 0) if two_d else 0)


class MachineMMU:
    """Common part: the domain's frames, the vCPU's TLB, metering."""

    two_d = False
    # How log-dirty mode tracks this paging's writes (pvsim.hypervisor.logdirty prices it): "shadow"
    # (write-protected shadow/direct L1 entries, a fault on the first write per page per round), "p2m"
    # (p2m_ram_logdirty in the EPT/NPT, or Intel PML where the profile enables it), None (no hypervisor)
    log_dirty: str | None = None

    def __init__(self, hv, vcpu, *, cpu: str = "bare", platform=None, tlb: W.TLB | None = None):
        self.hv = hv
        self.vcpu = vcpu
        self.cpu = cpu  # how the CPU is virtualized (the mode table's ``cpu``): bt changes shadow paging
        self.platform = platform
        self.mm: MachineMemory = hv.machine_mm
        self.dmm: DomainMM = vcpu.domain.mm
        prof = getattr(hv, "profile", None)
        self.tlb = tlb or tlb_from_profile(prof, two_d=self.two_d)
        self.tagged = bool(prof is not None and prof.has("mmu.tlb_tagged_count")
                           and prof.value("mmu.tlb_tagged_count") >= 1)
        self.asid = 0
        self.asid_generation = 1  # hvm/asid.c: generation 0 means "invalid", the count starts at 1
        self.root = 0
        self._free: list[int] = []

    # ------------------------------------------------------------------ metering
    @property
    def meter(self) -> Meter:
        return self.hv.meter

    @contextmanager
    def unmetered(self):
        """Set-up work (building a process the benchmark assumes already exists) is not charged."""
        with self.hv.metering(Meter()):
            yield

    # ------------------------------------------------------------------ frames
    def guest_frames(self) -> np.ndarray:
        """The frame names the guest allocates from (machine frames, or guest frames under HVM)."""
        p2m = self.dmm.p2m
        return p2m[p2m >= 0]

    def frame_of(self, frame: int) -> int:
        """The machine frame holding the contents of guest frame ``frame``."""
        return frame

    def guest_page_level_max(self) -> int:
        """The largest leaf level the guest may put in its tables: 1 (4 KiB only), 2 (2 MiB PSE
        leaves in the PDE) or 3 (1 GiB leaves in the PDPTE, CPUID pdpe1gb): the processor's
        (``mmu.max_page_level_count``), lowered by the paging kind below."""
        prof = getattr(self.hv, "profile", None)
        return int(prof.value("mmu.max_page_level_count")) if prof is not None and prof.has(
            "mmu.max_page_level_count") else 2

    def read(self, frame: int, idx: int) -> int:
        return self.mm.read_entry(self.frame_of(frame), idx)

    # ------------------------------------------------------------------ guest operations
    def store(self, frame: int, idx: int, val: int) -> int:
        """A plain guest store of one page-table entry (the guest's own table page)."""
        self.mm.write_entry(self.frame_of(frame), idx, val)
        self.meter.add("kernel.pte_write", "native.pte_write_cycles")
        self.meter.count("pte_write")
        return 0

    def cr3_load(self, root: int) -> None:
        self.root = root
        self.meter.add("mmu.tlb_flush", "native.cr3_load_cycles")
        self.meter.count("cr3_load")
        self._flush_tlb_state()

    def _flush_tlb_state(self):
        if self.tagged and self.asid >= ASID_MAX:
            # The tag space is exhausted: a new generation, as Xen does on VM entry
            # (xen/arch/x86/hvm/asid.c: hvm_asid_handle_vmenter finds next_asid > max_asid, calls
            # hvm_asid_flush_core -- core_asid_generation++ -- restarts at ASID 1 and returns "flush
            # all", which vmx/svm turn into a flush of every VPID/ASID). Without it, tag 1 would hit
            # the TLB entries another address space left under tag 1 a generation ago. Full flush:
            # TLB and walk caches (the nested TLB with them: TLB_CTRL_FLUSH_ALL drops everything).
            # flushtlb.c's pre_flush does the same for HVM on every TLB flush (hvm_flush_guest_tlbs
            # -> hvm_asid_flush_core). No cost of its own: the refills are charged as walks.
            self.asid = 1
            self.asid_generation += 1
            self.meter.count("tlb.asid_rollover")
            self.tlb.flush()
        elif self.tagged:
            self.asid += 1  # a fresh PCID/ASID instead of a flush
            # The paging-structure caches are tagged like the TLB (Intel SDM vol. 3A 4.10.3.1: each
            # PML4E/PDPTE/PDE-cache entry is associated with a PCID; 28.3.1: and with a VPID), so
            # the new tag can use none of the old tag's entries. The model's walk caches carry no
            # tag: drop them, or the next walk starts from the previous address space's tables
            # (issue 12: wrong translations, and shadow fix-ups that never stick). The nested TLB
            # (guest-physical -> host-physical) does not depend on the guest's CR3 and is kept.
            self.tlb.pwc_tag[:] = -1
        else:
            self.tlb.flush()

    def flush(self) -> None:
        self.meter.add("mmu.tlb_flush", "native.tlb_flush_cycles")
        self.meter.count("mmu.tlb_flush")
        self.tlb.flush()

    def invlpg(self, va: int) -> None:
        self.meter.add("mmu.tlb_flush", "native.invlpg_cycles")
        self.meter.count("mmu.invlpg")
        self.tlb.invlpg(va, self.asid)

    def release_table(self, frame: int) -> None:
        """The guest frees a page-table page."""

    # breakdown cause of a guest store the VMM must mediate (fork's copy-on-write marking differs)
    write_cause = "mmu.emulated_pte_write"

    @contextmanager
    def cow_marking(self):
        """Guest stores inside the block are fork's copy-on-write marking of the parent's PTEs
        (``copy_one_pte``'s ``ptep_set_wrprotect``): a VMM that mediates them reports them as
        ``mmu.shadow_wp_fault``."""
        old = self.write_cause
        self.write_cause = "mmu.shadow_wp_fault"
        try:
            yield
        finally:
            self.write_cause = old

    def zero_page(self, frame: int) -> None:
        """The guest clears a page it is about to use as a page table (part of allocating it)."""
        mfn = self.frame_of(frame)
        if self.mm.has_contents(mfn):
            self.mm.entries(mfn)[:] = 0

    def true_fault(self) -> None:
        """Delivery of a fault the guest must handle (its handler's work is the guest's)."""

    # ------------------------------------------------------------------ memory touches
    def _translate(self, vas, writes, start):
        return W.translate(self.mm.rows, self.mm.slot, vas, writes, self.tlb, root=self.frame_of(self.root),
                           tag=self.asid, start=start)

    def access(self, vas: np.ndarray, writes: np.ndarray, start: int = 0) -> np.ndarray:
        """Translate ``vas[start:]``; returns the counters; ``out[O_STOP] < len`` at a true fault.
        Hidden faults (shadow modes) are fixed up here and the walk resumed."""
        total = np.zeros(W.N_OUT, dtype=np.int64)
        last_stop, retries = -1, 0
        while True:
            out = self._translate(vas, writes, start)
            total[W.O_ACCESSES:W.O_FAULT_VA] += out[W.O_ACCESSES:W.O_FAULT_VA]
            total[W.O_STOP] = out[W.O_STOP]
            total[W.O_FAULT_VA] = out[W.O_FAULT_VA]
            total[W.O_FAULT_KIND] = out[W.O_FAULT_KIND]
            if out[W.O_STOP] >= len(vas):
                break
            fix = self._fixup(int(out[W.O_FAULT_VA]), int(out[W.O_FAULT_KIND]), bool(writes[out[W.O_STOP]]))
            if not fix:
                break
            stop = int(out[W.O_STOP])
            if stop == last_stop:
                # the fix-up did not stick: a model defect, never Xen's behaviour (a fix-up keeps
                # the shadows on its path out of the pool's victims, and a tagged CR3 load drops
                # the walk caches); a guard the tests assert stays 0, rather than faulting forever
                retries += 1
                if retries >= 4:
                    self.meter.count("mmu.fixup_livelock")
                    fix = SKIP
            else:
                last_stop, retries = stop, 0
            start = stop + (1 if fix == SKIP else 0)
            if start >= len(vas):
                total[W.O_STOP] = len(vas)
                break
        self._charge_walks(total)
        return total

    def _fixup(self, va: int, kind: int, write: bool) -> bool:
        """Resolve a fault the guest must not see; True if the access can be retried."""
        return False

    def refs_per_miss(self, va: int) -> int:
        """References of one cold walk for ``va`` on the current tables (no TLB, no walk caches)."""
        saved = self.tlb
        self.tlb = W.TLB(sets=(0, 0, 0), ways=(0, 0, 0))
        try:
            with self.unmetered():
                out = self._translate(np.array([va], np.int64), np.zeros(1, bool), 0)
        finally:
            self.tlb = saved
        return int(out[W.O_REFS])

    def _charge_walks(self, out) -> None:
        refs = int(out[W.O_REFS])
        if refs:
            self.meter.add("mmu.page_walk", "native.walk_ref_cycles", refs)
        self.meter.count("mmu.walk_refs", refs)
        self.meter.count("tlb.miss", int(out[W.O_MISSES]))
        self.meter.count("tlb.hit", int(out[W.O_HITS]))


class NativeMMU(MachineMMU):
    pass


class PVMachine(MachineMMU):
    """PV direct paging: the hardware walks the guest's validated tables (machine frames)."""

    log_dirty = "shadow"  # PV log-dirty runs through shadow mode (sh_enable_log_dirty)

    def guest_page_level_max(self) -> int:
        """4 KiB only: ``L2_DISALLOW_MASK`` contains ``_PAGE_PSE`` (mm.c), so Xen refuses a PV
        superpage mapping. The opt-in was the Xen boot option ``allowsuperpage``
        (``opt_allow_superpage``, default off, mm.c [V]), later removed [MEM]; Linux PV guests clear
        X86_FEATURE_PSE, so hugetlbfs and THP are unavailable to them [MEM]. pvsim models Xen
        with the option off (the default, and today's Xen)."""
        return 1

    def store(self, frame: int, idx: int, val: int) -> int:
        mm = self.mm
        if not (0 <= frame < mm.nr_frames) or int(mm.owner[frame]) != self.dmm.domid:
            return -C_EFAULT
        t = int(mm.type[frame])
        if C.PGT_l1_page_table <= t <= C.PGT_seg_desc_page and mm.type_count[frame] > 0:
            return -C_EFAULT  # mapped read-only: a #PF (the ptwr path, if enabled, is separate)
        return super().store(frame, idx, val)

    def cr3_load(self, root: int) -> None:
        # the CR3 load itself happens inside Xen's new_guest_cr3 (charged by the handler)
        self.root = root
        self._flush_tlb_state()

    def flush(self) -> None:
        self.tlb.flush()  # the flush's price is charged by the mmuext_op handler

    def invlpg(self, va: int) -> None:
        self.tlb.invlpg(va, self.asid)

    # ------------------------------------------------------------------ log-dirty (migration)
    def enable_log_dirty(self) -> None:
        """``XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY`` for a PV guest: from now on the first write to
        each page in each round faults into Xen, which marks the page dirty (sh_enable_log_dirty)."""
        self.dmm.log_dirty = True
        self.dmm.dirty_bitmap = np.zeros(len(self.dmm.p2m), dtype=np.bool_)
        self._write_protect_round()

    def _write_protect_round(self) -> None:
        # Stand-in for the read-only shadow entries: clear the D bit of every leaf of the domain's
        # in-use L1 tables, so the translate kernel reports the first write to each page.
        mm = self.mm
        l1 = np.flatnonzero((mm.owner == self.dmm.domid) & (mm.type == C.PGT_l1_page_table)
                            & (mm.type_count > 0) & (mm.slot >= 0))
        if l1.size:
            rows = mm.slot[l1]
            mm.rows[rows] &= ~np.uint64(C._PAGE_DIRTY)
        self.tlb.flush()

    def clean_dirty(self) -> np.ndarray:
        """``XEN_DOMCTL_SHADOW_OP_CLEAN``: return the dirty pfns and start a new round."""
        bm = self.dmm.dirty_bitmap
        dirty = np.flatnonzero(bm) if bm is not None else np.zeros(0, np.int64)
        if bm is not None:
            bm[:] = False
            self._write_protect_round()
        return dirty

    def access(self, vas, writes, start: int = 0):
        out = super().access(vas, writes, start)
        if self.dmm.log_dirty and out[W.O_DIRTY_SET]:
            n = int(out[W.O_DIRTY_SET])
            self.meter.add("mmu.log_dirty", "mmu.logdirty_fault_cycles", n)
            self.meter.count("mmu.log_dirty_fault", n)
            self._harvest()
        return out

    def _harvest(self) -> None:
        mm = self.mm
        l1 = np.flatnonzero((mm.owner == self.dmm.domid) & (mm.type == C.PGT_l1_page_table)
                            & (mm.type_count > 0) & (mm.slot >= 0))
        if not l1.size:
            return
        ents = mm.rows[mm.slot[l1]]
        d = (ents & np.uint64(C._PAGE_DIRTY | 1)) == np.uint64(C._PAGE_DIRTY | 1)
        mfns = ((ents[d] & np.uint64(C.PTE_MFN_MASK)) >> np.uint64(12)).astype(np.int64)
        mfns = mfns[mfns < mm.nr_frames]
        pfns = mm.m2p[mfns]
        pfns = pfns[(pfns >= 0) & (pfns < len(self.dmm.dirty_bitmap))]
        self.dmm.dirty_bitmap[pfns] = True


C_EFAULT = 14


class HapMMU(MachineMMU):
    """EPT/NPT: guest frames are guest-physical; two-dimensional walks."""

    two_d = True
    log_dirty = "p2m"

    def __init__(self, hv, vcpu, *, cpu: str = "vtx", platform=None, tlb=None, host_leaf_level: int | None = None,
                 host_page_size: str | None = None, p2m: P2M | None = None):
        super().__init__(hv, vcpu, cpu=cpu, platform=platform, tlb=tlb)
        prof = getattr(hv, "profile", None)
        if host_page_size is not None:  # the domain's option beats the profile's default
            host_leaf_level = C.PAGE_LEVELS[host_page_size]
        if host_leaf_level is None:
            host_leaf_level = (int(prof.value("mmu.hap_host_leaf_level_count"))
                               if prof is not None and prof.has("mmu.hap_host_leaf_level_count") else 2)
        if host_leaf_level > MachineMMU.guest_page_level_max(self):
            raise ValueError(f"host page size {C.PAGE_NAMES[host_leaf_level]}: the profile's processor has no such pages"
                             f" (mmu.max_page_level_count = {MachineMMU.guest_page_level_max(self)})")
        self.host_leaf_level = host_leaf_level
        self.p2m = p2m or _build_p2m(self.mm, self.dmm, host_leaf_level)
        self.tagged = True  # VPID/ASID: VM entries and guest CR3 loads need no full flush

    def guest_frames(self) -> np.ndarray:
        return np.arange(len(self.dmm.p2m), dtype=np.int64)

    def frame_of(self, frame: int) -> int:
        return int(self.dmm.p2m[frame])

    def _translate(self, vas, writes, start):
        return W.translate(self.mm.rows, self.mm.slot, vas, writes, self.tlb, root=self.root, two_d=True,
                           h_root=self.p2m.root, h_levels=self.p2m.radix.levels, tag=self.asid, start=start)

    def _fixup(self, va, kind, write):
        if kind == W.FAULT_HOST and self._gfn_of(va) is not None:
            # EPT violation on a guest frame with no RAM behind it: MMIO, emulated by the device model
            if self.platform is not None and hasattr(self.platform, "vmexit"):
                self.platform.vmexit("ept_violation", "device_model")
            else:
                self.meter.add("exit.ept_violation", "hvm.vmexit_cycles")
                self.meter.add("exit.ept_violation", "hvm.vmentry_cycles")
            self.meter.count("mmu.mmio_access")
            return SKIP
        if kind == W.FAULT_HOST_WRITE:  # log-dirty EPT violation
            gpa_gfn = self._gfn_of(va)
            if gpa_gfn is None:
                return False
            if self.platform is not None and hasattr(self.platform, "vmexit"):
                self.platform.vmexit("ept_violation")
            else:
                self.meter.add("exit.ept_violation", "hvm.vmexit_cycles")
                self.meter.add("exit.ept_violation", "hvm.vmentry_cycles")
            n = self.p2m.log_dirty_fault(gpa_gfn)
            self.meter.add("mmu.shadow_sync", "native.mem_ref_cycles", n)
            self.meter.count("mmu.log_dirty_fault")
            self.tlb.flush()
            return True
        return False

    def _gfn_of(self, va):
        t = self.root
        for lv in (4, 3, 2, 1):
            e = self.mm.read_entry(self.frame_of(t), (va >> (12 + 9 * (lv - 1))) & 511)
            if not e & 1:
                return None
            if lv == 1 or (lv <= 3 and C.get_pte_flags(e) & C._PAGE_PSE):
                return C.pte_mfn(e) + ((va >> 12) & ((1 << (9 * (lv - 1))) - 1))
            t = C.pte_mfn(e)
        return None


def _build_p2m(mm: MachineMemory, dmm: DomainMM, leaf: int) -> P2M:
    p2m = P2M(mm, levels=4, leaf_level=leaf)
    # map runs of contiguous machine frames
    p = dmm.p2m
    n = len(p)
    i = 0
    while i < n:
        j = i + 1
        while j < n and p[j] == p[j - 1] + 1:
            j += 1
        p2m.map_range(i, int(p[i]), j - i)
        i = j
    return p2m


class ShadowMMU(MachineMMU):
    """Shadow paging for ``bt`` and ``hvm-shadow`` guests (guest frames are guest-physical)."""

    log_dirty = "shadow"

    def __init__(self, hv, vcpu, *, cpu: str = "vtx", platform=None, tlb=None, pool_pages: int | None = None,
                 early_unshadow: bool | None = None, prefetch: int | None = None,
                 keep_shadows_on_switch: bool | None = None, oos: bool = False, oos_pages: int = SHADOW_OOS_PAGES):
        super().__init__(hv, vcpu, cpu=cpu, platform=platform, tlb=tlb)
        self.bt = cpu == "translated"  # the VMM is a binary translator (callouts, no hardware exits)
        # out-of-sync L1 shadows (shadow/oos.c; HVM only): up to oos_pages L1s left writable
        self.oos = bool(oos) and not self.bt
        self.oos_pages = int(oos_pages)
        self.oos_list: list[int] = []
        prof = getattr(hv, "profile", None)
        # VMware's adaptive translation of PTE writes (ASPLOS'06) vs write-protect traps (WS 3.2)
        self.adaptive = bool(prof is None or not prof.has("bt.adaptive_pte_translation_count")
                             or prof.value("bt.adaptive_pte_translation_count") >= 1)
        # Xen hashes shadows by guest frame and keeps their translations across CR3 loads. The
        # hosted BT VMMs of 2003-2006 rebuilt translations after a switch (SOSP'03 Table 4: VMW
        # 2p/0K is 23x native), but keep the shadow pages, and with them the write traces on every
        # guest frame seen as a page table: a guest free is invisible to a VMM, which must itself
        # "determine when [the] guest has reused page tables" (S. Devine, VMware, "Memory
        # virtualization" lecture, shadow page tables: memory tracing)
        if keep_shadows_on_switch is None:
            keep_shadows_on_switch = not self.bt
        self.keep_shadows = keep_shadows_on_switch
        if early_unshadow is None:
            early_unshadow = not self.bt  # Xen's check_for_early_unshadow heuristic
        nr = len(self.dmm.p2m)

        def pv(key, default):
            return int(prof.value(key)) if prof is not None and prof.has(key) else default

        # the pool (libxl default: 256 pages per vCPU + 1 page per MiB of RAM, shadow share)
        self.pool_pages = pool_pages or (pv("mmu.shadow_pool_vcpu_pages_count", 256) * vcpu.domain.nr_vcpus
                                         + max(1, nr // 256) * pv("mmu.shadow_pool_mib_pages_count", 1))
        # replacement: least recently loaded top-level first (sh_pin / _shadow_prealloc) or FIFO
        self.pin_lru = pv("mmu.shadow_pin_lru_count", 1) >= 1
        # BT: the address spaces whose translations survive a CR3 switch (LRU, the running one last)
        self.bt_roots = max(1, pv("mmu.bt_shadow_roots_count", 1))
        self.recent_roots: list[int] = []
        self.shadow_of: dict[int, int] = {}  # guest table frame -> shadow machine frame
        self.level_of: dict[int, int] = {}  # guest table frame -> its level
        self.order: list[int] = []  # guest frames shadowed, oldest first (recycling order)
        self.parents: dict[int, set] = {}  # shadow mfn -> {(parent shadow mfn, idx)}
        self.early_unshadow = early_unshadow
        self.prefetch = prefetch if prefetch is not None else pv("mmu.shadow_prefetch_count", PREFETCH_DISTANCE)
        self.last_emulated = -1
        self.hidden_faults = 0
        self.emulated_writes = 0
        self.tagged = False if self.bt else self.tagged

    def guest_frames(self) -> np.ndarray:
        return np.arange(len(self.dmm.p2m), dtype=np.int64)

    def frame_of(self, frame: int) -> int:
        return int(self.dmm.p2m[frame])

    def guest_page_level_max(self) -> int:
        """At most 2 MiB: Xen offers 1 GiB guest pages only under HAP (``hvm_pse1gb_supported``
        is ``cpu_has_page1gb && paging_mode_hap(d)``, include/asm-x86/hvm/hvm.h [V]: otherwise
        CPUID hides PAGE1GB from the guest); guest 2 MiB pages are shadowed
        by 4 KiB entries (an ``fl1`` shadow, see :meth:`_fixup`)."""
        return min(2, super().guest_page_level_max())

    # ------------------------------------------------------------------ charging
    def _vmexit(self, reason, handling):
        if self.platform is not None and hasattr(self.platform, "vmexit"):
            self.platform.vmexit(reason, handling)
        else:
            cause = f"exit.{reason}"
            self.meter.add(cause, "hvm.vmexit_cycles")
            self.meter.add(cause, "hvm.vmentry_cycles")

    def _sw_mmu(self, cause, n=1):
        if self.platform is not None and hasattr(self.platform, "sw_mmu"):
            self.platform.sw_mmu(cause, n)
        else:
            self.meter.add(cause, "mmu.shadow_propagate_cycles", n)

    def _bt(self, kind, n=1):
        if self.platform is not None and hasattr(self.platform, "bt"):
            self.platform.bt(kind, n)
        else:
            self.meter.add(f"trap.bt_{kind}", "bt.shadow_fault_cycles", n)

    # ------------------------------------------------------------------ shadow pool
    def _new_shadow(self, gframe: int, level: int) -> int:
        # recycle when the pool is full, never the root's shadow nor one on the path being fixed up
        keep = {self.root} | getattr(self, "_fixing", set())
        while len(self.shadow_of) >= self.pool_pages and self.order:
            victim = self._victim(keep)
            if victim is None:
                break  # everything left is in use: let the pool overflow by one
            self.meter.count("mmu.shadow_recycle")
            self.unshadow(victim, "mmu.shadow_evict")
            if not self.bt:
                self._free_orphans(keep)
        smfn = self.mm.alloc_domheap_page(DOMID_XEN)
        if smfn < 0:
            raise MemoryError("no machine memory for shadow pages")
        self.mm.entries(smfn)
        self.shadow_of[gframe] = smfn
        self.level_of[gframe] = level
        self.order.append(gframe)
        self.parents[smfn] = set()
        self.meter.add("mmu.shadow_rebuild", "mmu.shadow_alloc_cycles")
        self.meter.count("mmu.shadow_alloc")
        return smfn

    def _victim(self, keep: set) -> int | None:
        """The shadow the pool gives up next. Xen (``_shadow_prealloc``) unpins top-level shadows
        from the tail of the pinned list first -- with ``pin_lru`` the one loaded longest ago --
        and only then unhooks others; a binary translator's pool (traces of freed tables
        included) recycles the oldest shadow page."""
        if not self.bt:
            top = next((g for g in self.order if g not in keep and self.level_of.get(g) == 4), None)
            if top is not None:
                return top
        return next((g for g in self.order if g not in keep), None)

    def _free_orphans(self, keep: set) -> None:
        """Shadows no top-level shadow reaches any more are freed with the one unpinned
        (``sh_unpin`` drops the references it held)."""
        while True:
            orphans = [g for g in self.order if g not in keep and self.level_of.get(g, 4) < 4
                       and not self.parents.get(self.shadow_of[g])]
            if not orphans:
                return
            for g in orphans:
                self.unshadow(g, "mmu.shadow_evict")

    def unshadow(self, gframe: int, cause: str = "mmu.shadow_teardown") -> None:
        """``sh_remove_shadows``: drop the shadow of ``gframe`` and every entry pointing at it
        (``cause``: ``mmu.shadow_evict`` when the pool recycles it, ``mmu.shadow_teardown`` when
        the guest's use of the table ended)."""
        smfn = self.shadow_of.pop(gframe, None)
        if smfn is None:
            return
        if gframe in self.oos_list:
            self.oos_list.remove(gframe)
        self.level_of.pop(gframe, None)
        self.order.remove(gframe)
        self._unlink(smfn)
        del self.parents[smfn]
        self.mm.free_domheap_page(DOMID_XEN, smfn)
        self.meter.add(cause, "mmu.unshadow_cycles")
        self.meter.count("mmu.unshadow")
        self.tlb.flush()

    def empty_shadow(self, gframe: int) -> None:
        """Drop every translation of ``gframe``'s shadow but keep the page (and the guest frame's
        write trace): the no-translation-cache switch of the hosted BT VMMs."""
        smfn = self.shadow_of[gframe]
        if not self.parents.get(smfn) and not (self.mm.entries(smfn) & np.uint64(1)).any():
            return  # already empty: nothing to drop (the VMM marks shadows in use)
        self._unlink(smfn)
        self.mm.entries(smfn)[:] = 0
        self.meter.add("mmu.shadow_evict", "mmu.unshadow_cycles")
        self.meter.count("mmu.shadow_empty")

    def _unlink(self, smfn: int) -> None:
        """Cut shadow ``smfn`` out of the shadow tree: clear the entries that point at it and drop
        its children's back-links to it; cached partial walks through it are stale."""
        for (pm, idx) in self.parents.get(smfn, ()):
            self.mm.write_entry(pm, idx, 0)
        self.parents[smfn] = set()
        ents = self.mm.entries(smfn)
        for i in np.flatnonzero(ents & np.uint64(1)):
            child = C.pte_mfn(int(ents[i]))
            if child in self.parents:
                self.parents[child].discard((smfn, int(i)))
        self.tlb.pwc_tag[:] = -1
        self.tlb.ntlb_tag[:] = -1

    def _propagate_l1(self, gl1: int, idx: int) -> int:
        """``_sh_propagate`` of one guest L1 entry: gfn -> mfn, write-protect shadowed tables."""
        g = self.mm.read_entry(self.frame_of(gl1), idx)
        if not g & 1:
            return 0
        gfn = C.pte_mfn(g)
        if gfn >= len(self.dmm.p2m):
            return 0  # MMIO / outside RAM: left to the fault path
        f = C.get_pte_flags(g)
        if gfn in self.shadow_of:
            f &= ~C._PAGE_RW  # guest page tables are mapped read-only in shadows
        return C.make_pte(int(self.dmm.p2m[gfn]), f & ~C._PAGE_PSE)

    # ------------------------------------------------------------------ guest operations
    def store(self, frame: int, idx: int, val: int) -> int:
        m = self.frame_of(frame)
        if frame in self.oos_list:  # out of sync: the guest writes its L1 directly
            self.mm.write_entry(m, idx, val)
            self.meter.add("kernel.pte_write", "native.pte_write_cycles")
            self.meter.count("pte_write")
            return 0
        if frame not in self.shadow_of:
            self.mm.write_entry(m, idx, val)
            self.meter.add("kernel.pte_write", "native.pte_write_cycles")
            self.meter.count("pte_write")
            if frame == self.last_emulated:
                self.last_emulated = -1
            return 0
        # write-protected guest page table: fault into the VMM and emulate the write
        self._emulated_write()
        self.mm.write_entry(m, idx, val)
        if self.early_unshadow and val == 0 and self.last_emulated == frame:
            self.unshadow(frame)  # check_for_early_unshadow: a dying process clears its tables
            self.last_emulated = -1
            return 0
        self.last_emulated = frame if val == 0 else -1
        smfn = self.shadow_of[frame]
        level = self.level_of[frame]
        if level == 1 and self.oos and frame != self.root:
            self._oos_add(frame)  # fixup "oos-add": unsync the L1, make the guest page writable
        old = self.mm.read_entry(smfn, idx)
        if level == 1:
            new = self._propagate_l1(frame, idx)
            self.mm.write_entry(smfn, idx, new)
            self.meter.count("mmu.shadow_sync")
            if not self.bt:
                self._sw_mmu("mmu.shadow_sync")
        elif old & 1:  # upper level: drop the shadow entry, rebuilt lazily on the next walk
            self.mm.write_entry(smfn, idx, 0)
            child = C.pte_mfn(old)
            if child in self.parents:
                self.parents[child].discard((smfn, idx))
            self.meter.count("mmu.shadow_sync")
        if old & 1:
            self.tlb.flush() if level > 1 else None
        return 0

    def _emulated_write(self) -> None:
        """One guest store into a traced page: the VMM's write-protect fault and emulation
        (reported as ``write_cause``: fork's copy-on-write marking is ``mmu.shadow_wp_fault``)."""
        cause = self.write_cause
        self.emulated_writes += 1
        self.meter.add(cause, "native.pte_write_cycles")
        self.meter.count(cause)
        if self.bt and self.adaptive:
            self._bt("callout")  # adaptive translation: the write became a callout (ASPLOS'06)
            self._sw_mmu(cause)
        elif self.bt:  # write-protect trap into the VMM, classify, emulate, propagate
            self.meter.add(cause, "bt.shadow_fault_cycles")
        else:  # the #PF exit and x86 emulation (under the fork's cause while it marks COW)
            self._vmexit("exception_nmi", "emulate" if cause == "mmu.emulated_pte_write" else "wp_fault")

    def zero_page(self, frame: int) -> None:
        """The guest clears a page for a new table. A page still traced from an earlier life as a
        table faults on the first store; the VMM sees the reuse and drops its shadow. A page that
        is already clear needs no store (Linux's page-table quicklists hand out clean pages)."""
        m = self.frame_of(frame)
        if frame in self.shadow_of and self.mm.has_contents(m) and self.mm.entries(m).any():
            self._emulated_write()
            self.meter.count("mmu.trace_reuse")
            self.unshadow(frame)
        super().zero_page(frame)

    def _oos_add(self, frame: int) -> None:
        if len(self.oos_list) >= self.oos_pages:
            self._resync(self.oos_list.pop(0))  # "oos-evict"
        self.oos_list.append(frame)
        self.meter.count("mmu.oos_add")

    def _resync(self, frame: int) -> None:
        """``sh_resync``: recompute the L1 shadow from the guest table (compare with the snapshot:
        one software-MMU operation per entry that changed)."""
        smfn = self.shadow_of.get(frame)
        if smfn is None:
            return
        changed = 0
        for i in range(512):
            new = self._propagate_l1(frame, i)
            if int(self.mm.read_entry(smfn, i)) != new:
                self.mm.write_entry(smfn, i, new)
                changed += 1
        if changed:
            self._sw_mmu("mmu.shadow_sync", changed)
        self.meter.count("mmu.oos_resync")

    def resync_all(self) -> None:
        while self.oos_list:
            self._resync(self.oos_list.pop(0))

    def cr3_load(self, root: int) -> None:
        self.resync_all()
        self.root = root
        if self.bt:
            self._bt("callout")  # translated mov to CR3
        else:
            self._vmexit("cr_access", "simple")
        if not self.keep_shadows:
            self._switch_roots(root)
        self._sw_mmu("mmu.shadow_sync")  # sh_update_cr3: find or build the shadow root
        self._root_shadow()
        if self.pin_lru and root in self.shadow_of:  # sh_pin: the loaded top-level to the head
            self.order.remove(root)
            self.order.append(root)
        self.meter.add("mmu.tlb_flush", "native.cr3_load_cycles")
        self.meter.count("cr3_load")
        self._flush_tlb_state()

    def _switch_roots(self, root: int) -> None:
        """A translator's cache of ``bt_roots`` address spaces (least recently loaded out first):
        a switch to one of them keeps every translation; a miss empties the translations no cached
        root reaches (the shadow pages and their write traces stay), which the pages touched next
        rebuild by hidden faults."""
        if self.meter.cache_touch(self.recent_roots, root, "mmu.shadow_cache"):
            return
        self.recent_roots.append(root)
        del self.recent_roots[:-self.bt_roots]
        keep = self._reachable([self.shadow_of[g] for g in self.recent_roots[:-1] if g in self.shadow_of])
        for g in list(self.order):
            if self.shadow_of[g] not in keep:
                self.empty_shadow(g)

    def _reachable(self, smfns: list) -> set:
        """The shadow pages reachable from ``smfns`` through present upper-level entries."""
        seen: set = set()
        todo = list(smfns)
        while todo:
            s = todo.pop()
            if s in seen:
                continue
            seen.add(s)
            ents = self.mm.entries(s)
            for i in np.flatnonzero(ents & np.uint64(1)):
                child = C.pte_mfn(int(ents[i]))
                if child in self.parents and (s, int(i)) in self.parents[child]:
                    todo.append(child)
        return seen

    def flush(self) -> None:
        if not self.bt:
            self._vmexit("cr_access", "simple")  # a flush is a CR3 reload, which exits
        self.resync_all()
        super().flush()

    def invlpg(self, va: int) -> None:
        if self.bt:
            self._bt("callout")
        else:
            self._vmexit("invlpg", "simple")
        super().invlpg(va)

    def release_table(self, frame: int) -> None:
        """The guest freeing a page-table page is invisible to the VMM: the shadow and the write
        trace stay until recycled, dropped by a heuristic, or the page is seen reused."""

    def true_fault(self) -> None:
        """The hardware #PF lands in the VMM, whose shadow code finds a true guest fault."""
        if self.bt:
            self._bt("reflect")
            self._sw_mmu("mmu.shadow_fault")
        else:
            self._vmexit("exception_nmi", "shadow_fault")

    # ------------------------------------------------------------------ walks
    def _root_shadow(self) -> int:
        """The shadow of the current guest root (a page shadowed at another level is a freed
        table the guest reused as a root: its stale shadow is dropped)."""
        sroot = self.shadow_of.get(self.root)
        if sroot is not None and self.level_of[self.root] != 4:
            self.unshadow(self.root)
            sroot = None
        if sroot is None:
            sroot = self._new_shadow(self.root, 4)
        return sroot

    def _translate(self, vas, writes, start):
        sroot = self._root_shadow()
        return W.translate(self.mm.rows, self.mm.slot, vas, writes, self.tlb, root=sroot, tag=self.asid,
                           start=start)

    def _guest_path(self, va):
        """The guest tables on ``va``'s path: [(gframe, level, idx, entry)] down to the leaf or hole."""
        path = []
        t = self.root
        for lv in (4, 3, 2, 1):
            idx = (va >> (12 + 9 * (lv - 1))) & 511
            e = self.mm.read_entry(self.frame_of(t), idx)
            path.append((t, lv, idx, e))
            if not e & 1 or (lv in (2, 3) and C.get_pte_flags(e) & C._PAGE_PSE):
                break
            t = C.pte_mfn(e)
        return path

    def _fixup(self, va: int, kind: int, write: bool) -> bool:
        path = self._guest_path(va)
        last = path[-1]
        if not last[3] & 1 or last[1] > 2:
            return False  # a true fault: the guest's own tables do not map va
        if write and not all(C.get_pte_flags(p[3]) & C._PAGE_RW for p in path):
            return False  # a true protection fault
        leaf_gfn = C.pte_mfn(last[3]) + (((va >> 12) & 511) if last[1] == 2 else 0)
        if write and leaf_gfn in self.shadow_of:
            # a data store into a page still traced as a page table: the guest freed that table
            # and reused the page. The write-protect fault tells the VMM so; it drops the shadow
            # (and with it the trace) and maps the page writable in the same fault.
            self.meter.count("mmu.trace_reuse")
            self.unshadow(leaf_gfn)
        # hidden fault: build the missing shadows on the path and propagate
        self._fixing = {p[0] for p in path}
        self.hidden_faults += 1
        self.meter.count("mmu.hidden_fault")
        if self.bt:
            self._bt("hidden_fault")
        else:  # the exit, then sh_page_fault's fix-up (its handler work is the hidden fault)
            self.meter.add("exit.exception_nmi", "hvm.vmexit_cycles")
            self.meter.add("exit.exception_nmi", "hvm.vmentry_cycles")
            self.meter.count("exit.exception_nmi")
            self.meter.add("mmu.hidden_fault", "hvm.shadow_fault_cycles")
        self.last_emulated = -1
        smfn = self._root_shadow()
        for (g, lv, idx, e) in path[:-1]:
            child_g = C.pte_mfn(e)
            if child_g in self.shadow_of and self.level_of[child_g] != lv - 1:
                self.unshadow(child_g)  # a freed table page reused at another level
            se = self.mm.read_entry(smfn, idx)
            if se & 1 and C.pte_mfn(se) == self.shadow_of.get(child_g):
                smfn = C.pte_mfn(se)
                continue
            # missing, or stale (the guest entry now names another table): (re)link the child shadow
            child_s = self.shadow_of.get(child_g)
            if child_s is None:
                child_s = self._new_shadow(child_g, lv - 1)
                self._write_protect(child_g)
            self.mm.write_entry(smfn, idx, C.make_pte(child_s, C.get_pte_flags(e) & ~C._PAGE_PSE))
            self.parents[child_s].add((smfn, idx))
            # an upper-level shadow entry changed: cached partial walks through it are stale
            self.tlb.pwc_tag[:] = -1
            self.tlb.ntlb_tag[:] = -1
            self._sw_mmu("mmu.shadow_rebuild")
            smfn = child_s
        if last[1] == 2:
            self._fixup_splintered(smfn, last, va)
            self._fixing = set()
            return True
        # the L1: propagate the faulting entry and prefetch neighbours
        gl1 = path[-1][0]
        idx = path[-1][2]
        lo = max(0, idx - self.prefetch // 2)
        hi = min(512, lo + self.prefetch)
        n = 0
        for i in range(lo, hi):
            if i != idx and self.mm.read_entry(smfn, i) & 1:
                continue
            new = self._propagate_l1(gl1, i)
            if new:
                self.mm.write_entry(smfn, i, new)
                n += 1
        self.meter.count("mmu.shadow_sync", n)
        if n > 1:
            self._sw_mmu("mmu.shadow_rebuild", n - 1)  # the faulting entry is part of the fault's work
        self._fixing = set()
        return True

    def _fixup_splintered(self, sl2: int, last, va: int) -> None:
        """A guest 2 MiB page (PSE entry in a guest L2): Xen shadows it with an ``fl1`` shadow
        (``SH_type_fl1_shadow``, "L1 shadow for 64-bit 2M superpg", shadow/private.h; looked up
        by the superpage's gfn in ``get_fl1_shadow_status``, shadow/multi.c, "which maps its
        splinters" [V]): a shadow L1 with no guest L1 behind it,
        keyed by the superpage's first gfn, whose 4 KiB entries map the superpage's frames. The
        shadow L2 entry points at it without PSE, so the TLB holds 4 KiB entries (splintered). Its
        entries are filled like an L1's: the faulting one and ``prefetch`` neighbours. The fl1 is
        kept under the key ``-1 - gfn`` (never a guest frame) in the same pool."""
        g, _lv, idx, e = last
        base = C.pte_mfn(e)
        key = -1 - base
        flags = C.get_pte_flags(e) & ~C._PAGE_PSE
        fl1 = self.shadow_of.get(key)
        se = self.mm.read_entry(sl2, idx)
        if not (se & 1 and fl1 is not None and C.pte_mfn(se) == fl1):
            if fl1 is None:
                fl1 = self._new_shadow(key, 1)
                self.meter.count("mmu.fl1_shadow")
            self.mm.write_entry(sl2, idx, C.make_pte(fl1, flags))
            self.parents[fl1].add((sl2, idx))
            self.tlb.pwc_tag[:] = -1
            self._sw_mmu("mmu.shadow_sync")
        i4 = (va >> 12) & 511
        lo = max(0, i4 - self.prefetch // 2)
        hi = min(512, lo + self.prefetch)
        n = 0
        for i in range(lo, hi):
            if i != i4 and self.mm.read_entry(fl1, i) & 1:
                continue
            gfn = base + i
            if gfn >= len(self.dmm.p2m):
                continue
            f = flags & ~C._PAGE_RW if gfn in self.shadow_of else flags
            self.mm.write_entry(fl1, i, C.make_pte(int(self.dmm.p2m[gfn]), f))
            n += 1
        self.meter.count("mmu.shadow_sync", n)
        if n > 1:
            self._sw_mmu("mmu.shadow_sync", n - 1)

    def _write_protect(self, gframe: int) -> None:
        """``sh_remove_write_access``: shadow L1 entries mapping a new page table become RO."""
        target = int(self.dmm.p2m[gframe])
        for g, s in list(self.shadow_of.items()):
            if self.level_of.get(g) != 1:
                continue
            ents = self.mm.entries(s)
            hit = ((ents & np.uint64(C.PTE_MFN_MASK)) >> np.uint64(12)) == np.uint64(target)
            hit &= (ents & np.uint64(C._PAGE_RW | 1)) == np.uint64(C._PAGE_RW | 1)
            if hit.any():
                ents[hit] &= ~np.uint64(C._PAGE_RW)
                self._sw_mmu("mmu.shadow_sync", int(hit.sum()))
                self.tlb.flush()


# The machine-side MMU of each paging kind (the mode table's ``paging`` field names one).
PAGING = {"hardware": NativeMMU, "direct": PVMachine, "shadow": ShadowMMU, "hap": HapMMU}
