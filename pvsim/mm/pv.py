"""PV direct paging with Xen's validation rules (after ``xen/arch/x86/mm.c``).

Design note
-----------
:class:`DirectPaging` implements, on the :class:`~pvsim.mm.frames.MachineMemory` frame table,
the functions of ``mm.c`` that make PV direct paging safe:

* the type system: ``_get_page_type`` (type changes only at type count 0, re-validation after
  a change, the TLB flush filtered by ``tlbflush_timestamp`` when a frame stops being writable),
  ``_put_page_type`` (demotion when the count of a page-table type falls to 0);
* validation: ``promote_l1_table`` .. ``promote_l4_table`` (recursive through
  ``get_page_and_type_from_mfn``), ``get_page_from_l1e`` (``L1_DISALLOW_MASK``, ownership,
  a ``PGT_writable_page`` type reference for every RW mapping), ``get_page_from_l2e/l3e/l4e``
  (``L?_DISALLOW_MASK``, which contains ``_PAGE_PSE``: no PV superpages), and
  ``get_lN_linear_pagetable`` (read-only, same-level, already validated, only when linear page
  tables are enabled);
* updates: ``mod_l1_entry`` (with the ``FASTPATH_FLAG_WHITELIST`` fast path),
  ``mod_l2/l3/l4_entry`` (``FASTPATH_PDE_FLAG_WHITELIST``; Xen's L4 slots refused);
* hypercalls: ``do_mmu_update`` (normal, preserve-A/D and machphys updates, the flush of the
  owner's dirty CPUs after any L2+ change, continuation every ``preempt_every`` elements),
  ``__do_update_va_mapping`` (``UVMF_*`` flushes), ``do_mmuext_op`` (pin/unpin, new (user)
  base pointer via ``new_guest_cr3``, local/multi/all flushes and invlpg, clear/copy page,
  ``MARK_SUPER`` refused) and the writable-page-table emulation of one L1 write
  (``xen/arch/x86/pv/ro-page-fault.c``, ``ptwr_emulated_update``).

Every element of work is reported to ``self.meter`` (``mmu.validate``, ``mmu.tlb_flush``);
errors are Xen's negative errnos.

Simplifications: validation and devalidation are not preemptible (no ``PGT_partial``: the whole
sub-tree is validated in one go and charged); no grant-mapped PTEs, no I/O memory (an MFN beyond
the frame table is MMIO that a domU may not map: ``-EPERM``); no XPTI; no shadow-refcount mode;
``MMUEXT_SET_LDT`` only records the base; the dirty-CPU mask is the set of the domain's running
vCPUs.
"""

from __future__ import annotations

import numpy as np

from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls.ops import DOMID_IO, DOMID_SELF, DOMID_XEN
from pvsim.core.meter import Meter
from pvsim.mm import x86 as C
from pvsim.mm.frames import DomainMM, MachineMemory
from pvsim.mm.pvkern import l1_batch

# type a Lk entry's target must have
_NEXT_TYPE = {2: C.PGT_l1_page_table, 3: C.PGT_l2_page_table, 4: C.PGT_l3_page_table}
_DISALLOW = {2: C.L2_DISALLOW_MASK, 3: C.L3_DISALLOW_MASK, 4: C.L4_DISALLOW_MASK}
_PIN_TYPE = {O.MMUEXT_PIN_L1_TABLE: 1, O.MMUEXT_PIN_L2_TABLE: 2, O.MMUEXT_PIN_L3_TABLE: 3,
             O.MMUEXT_PIN_L4_TABLE: 4}
_AD = C.put_pte_flags(C._PAGE_ACCESSED | C._PAGE_DIRTY)
_U64 = 0xFFFFFFFFFFFFFFFF


class DirectPaging:
    """PV direct paging on one host's frame table. ``meter`` is set by the caller per hypercall."""

    def __init__(self, mm: MachineMemory, meter: Meter | None = None):
        self.mm = mm
        self.meter = meter if meter is not None else Meter()
        self.continuations = 0  # re-entries the last mmu_update needed

    # ================================================================== type references
    def get_page_type(self, mfn: int, t: int) -> int:
        """``_get_page_type``: one type reference of type ``t``; validate on 0->1 with a new type."""
        mm = self.mm
        tc = int(mm.type_count[mfn])
        if tc == 0:
            old = int(mm.type[mfn])
            if old != t:
                if old == C.PGT_writable_page and t != C.PGT_writable_page:
                    self._type_change_flush(mfn)
                mm.type[mfn] = t
                mm.validated[mfn] = False
        elif int(mm.type[mfn]) != t:
            return -E.EINVAL  # a new reference of the wrong type
        elif not mm.validated[mfn]:
            return -E.EINVAL  # being validated further up this call chain (Xen would wait)
        mm.type_count[mfn] = tc + 1
        if mm.validated[mfn]:
            return 0
        rc = self._validate_page(mfn, t)
        if rc:
            mm.type_count[mfn] = tc  # back to 0: the page stays invalid
            return rc
        mm.validated[mfn] = True
        return 0

    def put_page_type(self, mfn: int) -> None:
        """``_put_page_type``: drop a type reference; a page table at count 0 is devalidated."""
        mm = self.mm
        tc = int(mm.type_count[mfn]) - 1
        if tc < 0:
            raise AssertionError(f"type count underflow on mfn {mfn}")
        t = int(mm.type[mfn])
        if tc == 0:
            if C.PGT_l1_page_table <= t <= C.PGT_l4_page_table and mm.validated[mfn]:
                mm.validated[mfn] = False
                self._demote(mfn, t)
            if t == C.PGT_writable_page:
                mm.tlbflush_timestamp[mfn] = mm.tlbflush_clock  # stale RW TLB entries may remain
        mm.type_count[mfn] = tc

    def get_page_and_type(self, mfn: int, domid: int, t: int) -> int:
        if not self.mm.get_page(mfn, domid):
            return -E.EINVAL
        rc = self.get_page_type(mfn, t)
        if rc:
            self.mm.put_page(mfn)
        return rc

    def put_page_and_type(self, mfn: int) -> None:
        self.put_page_type(mfn)
        self.mm.put_page(mfn)

    def _type_change_flush(self, mfn: int) -> None:
        """A frame leaves PGT_writable_page: flush the owner's dirty CPUs unless tlbflush_filter says no."""
        mm = self.mm
        dmm = mm.domains.get(int(mm.owner[mfn]))
        if dmm is None:
            return
        if mm.tlbflush_timestamp[mfn] > dmm.last_flush_time:
            self.meter.count("mmu.type_change_flush")
            self.flush_domain(dmm, local_vcpu=None)

    # ================================================================== validation
    def _validate_page(self, mfn: int, t: int) -> int:
        if C.PGT_l1_page_table <= t <= C.PGT_l4_page_table:
            return self._promote(mfn, t)
        return 0  # writable, seg_desc (descriptor checks not modelled), shared

    def _promote(self, mfn: int, level: int) -> int:
        """``promote_lN_table``: validate every present entry, rolling back on failure."""
        mm = self.mm
        domid = int(mm.owner[mfn])
        self.meter.add("mmu.validate", "mmu.pte_scan_cycles", C.PTES_PER_PAGE)
        if not mm.has_contents(mfn):
            return 0
        ents = mm.entries(mfn)
        if level == 4:  # init_xen_l4_slots(): Xen's own slots are Xen's, whatever was there
            ents[C.ROOT_PAGETABLE_FIRST_XEN_SLOT:C.ROOT_PAGETABLE_LAST_XEN_SLOT + 1] = 0
        present = [int(i) for i in (ents & 1).nonzero()[0]]
        done: list[int] = []
        for i in present:
            e = int(ents[i])
            if level == 1:
                rc = self.get_page_from_l1e(e, domid, domid)
            else:
                rc = self.get_page_from_lNe(e, level, mfn, domid)
            if rc:
                for j in reversed(done):
                    if level == 1:
                        self.put_page_from_l1e(int(ents[j]))
                    else:
                        self.put_page_from_lNe(int(ents[j]), level, mfn)
                return rc
            done.append(i)
        return 0

    def _demote(self, mfn: int, level: int) -> None:
        """``free_lN_table``: drop the references every present entry held."""
        mm = self.mm
        self.meter.add("mmu.validate", "mmu.pte_scan_cycles", C.PTES_PER_PAGE)
        if not mm.has_contents(mfn):
            return
        ents = mm.entries(mfn)
        for i in ents.nonzero()[0]:
            e = int(ents[i])
            if not e & 1:
                continue
            if level == 1:
                self.put_page_from_l1e(e)
            else:
                self.put_page_from_lNe(e, level, mfn)

    # ------------------------------------------------------------------ L1 entries
    def get_page_from_l1e(self, e: int, l1e_owner: int, pg_owner: int) -> int:
        mm = self.mm
        f = C.get_pte_flags(e)
        if f & C.L1_DISALLOW_MASK:
            return -E.EINVAL
        mfn = C.pte_mfn(e)
        self.meter.add("mmu.validate", "xen.pte_validate_cycles")
        self.meter.count("mmu.validated_pte")
        if mfn >= mm.nr_frames:
            return -E.EPERM  # MMIO: "non-privileged attempt to map MMIO space"
        real = int(mm.owner[mfn])
        if mm.count[mfn] <= 0 or real < 0:
            return -E.EBUSY  # could_not_pin: no owner
        if real != pg_owner:
            # real_pg_owner != pg_owner: refused when pg_owner == l1e_owner, and otherwise unless
            # xsm_priv_mapping(XSM_TARGET, pg_owner, real_pg_owner) passes -- the privilege of the
            # *pg_owner* over the real owner (xen/arch/x86/mm.c get_page_from_l1e), not the
            # mapping domain's: dom0 naming an unprivileged pg_owner maps only that domain's frames.
            priv = mm.domains.get(pg_owner)
            if pg_owner == l1e_owner or priv is None or not priv.privileged or real == DOMID_XEN:
                return -E.EBUSY
        mm.count[mfn] += 1
        if f & C._PAGE_RW:
            if self.get_page_type(mfn, C.PGT_writable_page):
                mm.put_page(mfn)
                return -E.EBUSY  # "Could not get page type PGT_writable_page"
        return 0

    def put_page_from_l1e(self, e: int) -> None:
        if not e & 1:
            return
        mfn = C.pte_mfn(e)
        if mfn >= self.mm.nr_frames:
            return
        self.meter.add("mmu.validate", "mmu.pte_unref_cycles")
        if C.get_pte_flags(e) & C._PAGE_RW:
            self.put_page_type(mfn)
        self.mm.put_page(mfn)

    # ------------------------------------------------------------------ L2-L4 entries
    def get_page_from_lNe(self, e: int, level: int, pt_mfn: int, domid: int) -> int:
        f = C.get_pte_flags(e)
        if f & _DISALLOW[level]:
            return -E.EINVAL
        self.meter.add("mmu.validate", "xen.pte_validate_cycles")
        self.meter.count("mmu.validated_pte")
        mfn = C.pte_mfn(e)
        rc = self.get_page_and_type(mfn, domid, _NEXT_TYPE[level])
        if rc == -E.EINVAL and self._get_linear_pagetable(e, level, pt_mfn, domid):
            rc = 0
        return rc

    def _get_linear_pagetable(self, e: int, level: int, pt_mfn: int, domid: int) -> bool:
        """``get_lN_linear_pagetable``: a read-only entry to a validated table of the same level."""
        mm = self.mm
        if not mm.linear_pt:
            return False
        if C.get_pte_flags(e) & C._PAGE_RW:
            return False  # "Attempt to create linear p.t. with write perms"
        mfn = C.pte_mfn(e)
        if mfn == pt_mfn:
            return True  # self-map: no reference taken
        if int(mm.owner[pt_mfn]) != domid or not mm.get_page(mfn, domid):
            return False
        if mm.linear_count[pt_mfn] < 0 or mm.linear_count[mfn] > 0:  # inc_linear_entries/uses
            mm.put_page(mfn)
            return False
        if int(mm.type[mfn]) != level or not mm.validated[mfn] or mm.type_count[mfn] == 0:
            mm.put_page(mfn)
            return False
        mm.linear_count[pt_mfn] += 1
        mm.linear_count[mfn] -= 1
        mm.type_count[mfn] += 1
        return True

    def put_page_from_lNe(self, e: int, level: int, pt_mfn: int) -> None:
        if not e & 1:
            return
        mfn = C.pte_mfn(e)
        if mfn == pt_mfn:
            return
        self.meter.add("mmu.validate", "mmu.pte_unref_cycles")
        mm = self.mm
        if int(mm.type[mfn]) == level:  # a linear entry (same level)
            mm.linear_count[pt_mfn] -= 1
            mm.linear_count[mfn] += 1
        self.put_page_and_type(mfn)

    # ------------------------------------------------------------------ mod_lN_entry
    def mod_l1_entry(self, pt_mfn: int, idx: int, nval: int, cmd: int, pt_owner: int, pg_owner: int) -> int:
        mm = self.mm
        nval &= _U64
        o = mm.read_entry(pt_mfn, idx)
        if nval & 1:
            if C.get_pte_flags(nval) & C.L1_DISALLOW_MASK:
                return -E.EINVAL
            if not C.pte_has_changed(o, nval, ~C.FASTPATH_FLAG_WHITELIST & 0xFFFFFF):
                if cmd == O.MMU_PT_UPDATE_PRESERVE_AD:
                    nval |= o & _AD
                mm.write_entry(pt_mfn, idx, nval)
                self.meter.add("mmu.validate", "mmu.pte_fastpath_cycles")
                self.meter.count("mmu.fastpath_pte")
                return 0
            rc = self.get_page_from_l1e(nval, pt_owner, pg_owner)
            if rc:
                return rc
            if cmd == O.MMU_PT_UPDATE_PRESERVE_AD:
                nval |= o & _AD
        else:
            self.meter.add("mmu.validate", "mmu.pte_fastpath_cycles")
        mm.write_entry(pt_mfn, idx, nval)
        self.put_page_from_l1e(o)
        return 0

    def mod_lN_entry(self, pt_mfn: int, idx: int, nval: int, level: int, preserve_ad: bool, domid: int) -> int:
        mm = self.mm
        nval &= _U64
        if level == 4 and not C.is_guest_l4_slot(idx):
            return -E.EINVAL  # "Attempt to modify Xen's L4 slot"
        o = mm.read_entry(pt_mfn, idx)
        if nval & 1:
            if C.get_pte_flags(nval) & _DISALLOW[level]:
                return -E.EINVAL
            wl = C.fastpath_pde_flag_whitelist(mm.linear_pt)
            if not C.pte_has_changed(o, nval, ~wl & 0xFFFFFF):
                if preserve_ad:
                    nval |= o & _AD
                mm.write_entry(pt_mfn, idx, nval)
                self.meter.add("mmu.validate", "mmu.pte_fastpath_cycles")
                self.meter.count("mmu.fastpath_pte")
                return 0
            rc = self.get_page_from_lNe(nval, level, pt_mfn, domid)
            if rc:
                return rc
            if preserve_ad:
                nval |= o & _AD
        else:
            self.meter.add("mmu.validate", "mmu.pte_fastpath_cycles")
        mm.write_entry(pt_mfn, idx, nval)
        self.put_page_from_lNe(o, level, pt_mfn)
        return 0

    # ================================================================== TLB flushes
    def dirty_vcpus(self, dmm: DomainMM, local_vcpu: int | None) -> list[int]:
        """``d->dirty_cpumask``: the vCPUs currently running (plus the caller's)."""
        run = dmm.running
        vs = [v for v in range(dmm.nr_vcpus) if run is None or (v < len(run) and run[v])]
        if local_vcpu is not None and local_vcpu not in vs:
            vs.append(local_vcpu)
        return vs

    def flush_domain(self, dmm: DomainMM, local_vcpu: int | None, vcpus: list[int] | None = None) -> None:
        """Flush the TLBs of ``vcpus`` (default: the domain's dirty CPUs), IPIs to remote ones."""
        mm = self.mm
        targets = vcpus if vcpus is not None else self.dirty_vcpus(dmm, local_vcpu)
        for v in targets:
            dmm.tlb_flush_epoch[v] += 1
        remote = sum(1 for v in targets if v != local_vcpu)
        if local_vcpu is not None and local_vcpu in targets:
            self.meter.add("mmu.tlb_flush", "native.tlb_flush_cycles")
        if remote:
            self.meter.add("mmu.tlb_flush", "native.ipi_cycles", remote)
            self.meter.add("mmu.tlb_flush", "native.tlb_flush_cycles", remote)
        dmm.tlb_flushes += 1
        self.meter.count("mmu.tlb_flush")
        if vcpus is None or len(targets) >= dmm.nr_vcpus:
            mm.tlbflush_clock += 1
            dmm.last_flush_time = mm.tlbflush_clock

    def invlpg(self, dmm: DomainMM, local_vcpu: int | None, vcpus: list[int]) -> None:
        for v in vcpus:
            if v == local_vcpu:
                self.meter.add("mmu.tlb_flush", "native.invlpg_cycles")
            else:
                self.meter.add("mmu.tlb_flush", "native.ipi_cycles")
                self.meter.add("mmu.tlb_flush", "native.invlpg_cycles")
        dmm.invlpgs += 1
        self.meter.count("mmu.invlpg")

    # ================================================================== hypercalls
    def mmu_update(self, dmm: DomainMM, vcpu: int, reqs, foreigndom: int, domains: dict[int, DomainMM]) -> tuple[int, int]:
        """``do_mmu_update`` over ``reqs`` ((ptr, val) pairs). Returns (rc, done)."""
        mm = self.mm
        d = dmm.domid
        pt_owner = d
        pt_dom = (foreigndom >> 16) & 0xFFFF
        if pt_dom:
            if (pt_dom - 1) not in domains:
                return -E.ESRCH, 0
            pt_owner = pt_dom - 1
            if pt_owner != d and not dmm.privileged:
                return -E.EPERM, 0  # xsm_mmu_update(XSM_TARGET)
        fd = foreigndom & 0xFFFF
        # get_pg_owner() (common/page_alloc.c): naming itself or an unknown domain is -ESRCH;
        # xsm_mmu_update(XSM_TARGET) then refuses a foreign owner to an unprivileged caller.
        if fd == DOMID_SELF:
            pg_owner = d
        elif fd == d or (fd not in domains and fd not in (DOMID_IO, DOMID_XEN)):
            return -E.ESRCH, 0
        elif not dmm.privileged or fd in (DOMID_IO, DOMID_XEN):
            return -E.EPERM, 0  # no I/O-memory or Xen-heap mappings modelled
        else:
            pg_owner = fd
        flush_linear_pt = False
        rc = 0
        done = 0
        reqs = [(int(p) & _U64, int(v) & _U64) for p, v in reqs]
        n = len(reqs)
        arrays = None
        i = 0
        while i < n:
            ptr, val = reqs[i]
            cmd = ptr & 7
            if mm.use_kernels and cmd in (O.MMU_NORMAL_PT_UPDATE, O.MMU_PT_UPDATE_PRESERVE_AD) and n - i >= 2:
                if arrays is None:
                    a = np.array([r[0] for r in reqs], dtype=np.uint64)
                    arrays = ((a >> np.uint64(C.PAGE_SHIFT)).astype(np.int64),
                              ((a & np.uint64(C.PAGE_SIZE - 1)) >> np.uint64(3)).astype(np.int64),
                              np.array([r[1] for r in reqs], dtype=np.uint64), (a & np.uint64(7)).astype(np.int64))
                out = l1_batch(mm, arrays[0][i:], arrays[1][i:], arrays[2][i:], arrays[3][i:], pt_owner, pg_owner)
                k = int(out[0])
                if k:
                    self.meter.add("mmu.validate", "xen.pte_validate_cycles", int(out[1]))
                    self.meter.count("mmu.validated_pte", int(out[1]))
                    self.meter.add("mmu.validate", "mmu.pte_fastpath_cycles", k - int(out[1]))
                    self.meter.count("mmu.fastpath_pte", int(out[2]))
                    self.meter.add("mmu.validate", "mmu.pte_unref_cycles", int(out[3]))
                    i += k
                    done += k
                    continue
            if cmd in (O.MMU_NORMAL_PT_UPDATE, O.MMU_PT_UPDATE_PRESERVE_AD, O.MMU_PT_UPDATE_NO_TRANSLATE):
                rc = self._normal_update(ptr - cmd, val, cmd, pt_owner, pg_owner)
                if rc == 1:
                    flush_linear_pt = True
                    rc = 0
            elif cmd == O.MMU_MACHPHYS_UPDATE:
                mfn = ptr >> C.PAGE_SHIFT
                if d != pt_owner:
                    rc = -E.EPERM
                elif not mm.get_page(mfn, pg_owner):
                    rc = -E.EINVAL
                else:
                    mm.m2p[mfn] = val if val < (1 << 62) else -1
                    self.meter.add("mmu.validate", "mmu.pte_fastpath_cycles")
                    owner = domains.get(pg_owner)
                    if owner is not None and owner.log_dirty and owner.dirty_bitmap is not None \
                            and 0 <= val < len(owner.dirty_bitmap):
                        owner.dirty_bitmap[val] = True
                    mm.put_page(mfn)
                    rc = 0
            else:
                rc = -E.ENOSYS
            if rc:
                break
            done += 1
            i += 1
        # hypercall_preempt_check() every preempt_every elements: the guest re-enters
        self.continuations = (min(done, n - 1) // mm.preempt_every) if (mm.preempt_every and n) else 0
        if flush_linear_pt:  # any L2+ entry changed: flush every dirty CPU of the PT owner
            self.flush_domain(domains[pt_owner], local_vcpu=vcpu if pt_owner == d else None)
        return rc, done

    def _normal_update(self, ma: int, val: int, cmd: int, pt_owner: int, pg_owner: int) -> int:
        """One MMU_NORMAL_PT_UPDATE. Returns <0 errno, 0, or 1 when an L2+ entry changed."""
        mm = self.mm
        mfn = ma >> C.PAGE_SHIFT
        idx = (ma & (C.PAGE_SIZE - 1)) >> 3
        if not mm.get_page(mfn, pt_owner):
            return -E.EINVAL  # "Could not get page for normal update"
        try:
            t = int(mm.type[mfn])
            if mm.type_count[mfn] > 0 and mm.validated[mfn]:  # page_lock() succeeds
                if t == C.PGT_l1_page_table:
                    return self.mod_l1_entry(mfn, idx, val, cmd, pt_owner, pg_owner)
                if C.PGT_l2_page_table <= t <= C.PGT_l4_page_table:
                    if pg_owner != pt_owner:
                        return -E.EINVAL
                    rc = self.mod_lN_entry(mfn, idx, val, t, cmd == O.MMU_PT_UPDATE_PRESERVE_AD, pt_owner)
                    return 1 if rc == 0 else rc
                if t == C.PGT_writable_page:
                    mm.write_entry(mfn, idx, val)
                    self.meter.add("mmu.validate", "mmu.pte_fastpath_cycles")
                    return 0
                return -E.EINVAL  # seg_desc / shared
            if self.get_page_type(mfn, C.PGT_writable_page) == 0:
                mm.write_entry(mfn, idx, val)
                self.meter.add("mmu.validate", "mmu.pte_fastpath_cycles")
                self.put_page_type(mfn)
                return 0
            return -E.EINVAL
        finally:
            mm.put_page(mfn)

    # ------------------------------------------------------------------ va walks
    def guest_l1e_slot(self, dmm: DomainMM, vcpu: int, va: int) -> tuple[int, int] | None:
        """``guest_map_l1e``: (L1 mfn, index) mapping ``va`` in the current address space."""
        mm = self.mm
        user = va < (1 << 47) and dmm.guest_table_user[vcpu]
        mfn = dmm.guest_table_user[vcpu] if user else dmm.guest_table[vcpu]
        if not mfn:
            mfn = dmm.guest_table[vcpu]
        if not mfn:
            return None
        for level in (4, 3, 2):
            e = mm.read_entry(mfn, C.table_offset(va, level))
            if not e & 1 or C.get_pte_flags(e) & C._PAGE_PSE:
                return None
            mfn = C.pte_mfn(e)
            if mfn >= mm.nr_frames:
                return None
        return mfn, C.table_offset(va, 1)

    def update_va_mapping(self, dmm: DomainMM, vcpu: int, va: int, val: int, flags: int,
                          pg_owner: int | None = None) -> int:
        """``__do_update_va_mapping``: mod_l1_entry on the L1 mapping ``va``, then the UVMF flush."""
        mm = self.mm
        d = dmm.domid
        slot = self.guest_l1e_slot(dmm, vcpu, int(va) & _U64)
        if slot is None:
            return -E.EINVAL
        l1, idx = slot
        if int(mm.owner[l1]) != d or int(mm.type[l1]) != C.PGT_l1_page_table or mm.type_count[l1] == 0:
            return -E.EINVAL
        rc = self.mod_l1_entry(l1, idx, val, O.MMU_NORMAL_PT_UPDATE, d, d if pg_owner is None else pg_owner)
        if rc:
            return rc
        ftype = flags & O.UVMF_FLUSHTYPE_MASK
        if ftype == O.UVMF_NONE:
            return 0
        if flags & ~(O.UVMF_FLUSHTYPE_MASK | O.UVMF_ALL):
            # a pointer to a vCPU bitmap; any set bit naming an existing vCPU
            vcpus = [v for v in range(dmm.nr_vcpus) if (flags >> 2) & (1 << v)] or [vcpu]
        elif flags & O.UVMF_ALL:
            vcpus = self.dirty_vcpus(dmm, vcpu)
        else:
            vcpus = [vcpu]
        if ftype == O.UVMF_TLB_FLUSH:
            self.flush_domain(dmm, vcpu, vcpus)
        elif ftype == O.UVMF_INVLPG:
            self.invlpg(dmm, vcpu, vcpus)
        else:
            return -E.EINVAL
        return 0

    def new_guest_cr3(self, dmm: DomainMM, vcpu: int, mfn: int, user: bool = False) -> int:
        """``new_guest_cr3`` / ``MMUEXT_NEW_USER_BASEPTR``: take a root type ref, drop the old one."""
        tables = dmm.guest_table_user if user else dmm.guest_table
        if user and mfn == 0:
            old = tables[vcpu]
            tables[vcpu] = 0
            if old:
                self.put_page_and_type(old)
            return 0
        if not (0 <= mfn < self.mm.nr_frames):
            return -E.EINVAL
        if tables[vcpu] == mfn:
            self.meter.add("mmu.tlb_flush", "native.cr3_load_cycles")
            return 0
        rc = self.get_page_and_type(mfn, dmm.domid, C.PGT_root_page_table)
        if rc:
            return rc
        old = tables[vcpu]
        tables[vcpu] = mfn
        if old:
            self.put_page_and_type(old)
        if not user:
            self.meter.add("mmu.tlb_flush", "native.cr3_load_cycles")  # write_ptbase
            dmm.tlb_flush_epoch[vcpu] += 1
        return 0

    def mmuext_op(self, dmm: DomainMM, vcpu: int, op_cmd: int, arg1: int, arg2: int) -> int:
        """One ``mmuext_op`` element (the loop and ``pdone`` live in the handler)."""
        mm = self.mm
        d = dmm.domid
        cmd = int(op_cmd)
        arg1 = int(arg1) & _U64
        if cmd in _PIN_TYPE:
            level = _PIN_TYPE[cmd]
            if not (arg1 < mm.nr_frames and mm.get_page(arg1, d)):
                return -E.EINVAL
            rc = self.get_page_type(arg1, level)
            if rc:
                mm.put_page(arg1)
                return rc
            if mm.pinned[arg1]:
                self.put_page_and_type(arg1)
                return -E.EINVAL  # "mfn already pinned"
            mm.pinned[arg1] = True
            self._mark_dirty(dmm, arg1)
            return 0
        if cmd == O.MMUEXT_UNPIN_TABLE:
            if not (arg1 < mm.nr_frames and mm.get_page(arg1, d)):
                return -E.EINVAL
            if not mm.pinned[arg1]:
                mm.put_page(arg1)
                return -E.EINVAL  # "mfn not pinned"
            mm.pinned[arg1] = False
            self.put_page_and_type(arg1)  # the pin's references; may demote recursively
            mm.put_page(arg1)
            self._mark_dirty(dmm, arg1)
            return 0
        if cmd == O.MMUEXT_NEW_BASEPTR:
            return self.new_guest_cr3(dmm, vcpu, arg1) if arg1 < mm.nr_frames else -E.EINVAL
        if cmd == O.MMUEXT_NEW_USER_BASEPTR:
            return self.new_guest_cr3(dmm, vcpu, arg1, user=True) if arg1 < mm.nr_frames else -E.EINVAL
        if cmd == O.MMUEXT_TLB_FLUSH_LOCAL:
            self.flush_domain(dmm, vcpu, [vcpu])
            return 0
        if cmd == O.MMUEXT_INVLPG_LOCAL:
            self.invlpg(dmm, vcpu, [vcpu])
            return 0
        if cmd in (O.MMUEXT_TLB_FLUSH_MULTI, O.MMUEXT_INVLPG_MULTI):
            mask = int(arg2)
            if mask < 0 or mask >> dmm.nr_vcpus:
                return -E.EINVAL  # vcpumask names a vCPU the domain does not have
            vcpus = [v for v in range(dmm.nr_vcpus) if mask & (1 << v)]
            if cmd == O.MMUEXT_TLB_FLUSH_MULTI:
                self.flush_domain(dmm, vcpu, vcpus)
            else:
                self.invlpg(dmm, vcpu, vcpus)
            return 0
        if cmd == O.MMUEXT_TLB_FLUSH_ALL:
            self.flush_domain(dmm, vcpu)
            return 0
        if cmd == O.MMUEXT_INVLPG_ALL:
            self.invlpg(dmm, vcpu, self.dirty_vcpus(dmm, vcpu))
            return 0
        if cmd == O.MMUEXT_FLUSH_CACHE:
            return 0
        if cmd == O.MMUEXT_FLUSH_CACHE_GLOBAL:
            return -E.EACCES  # cache_flush_permitted(): no I/O resources
        if cmd == O.MMUEXT_SET_LDT:
            # xen/arch/x86/mm.c do_mmuext_op, MMUEXT_SET_LDT: nr_ents is an unsigned int,
            # "ptr = ents ? op.arg1.linear_addr : 0", refused unless page aligned, __addr_ok(ptr)
            # (below 1 << 47 or at or above HYPERVISOR_VIRT_END) and ents <= 8192
            ents = int(arg2) & 0xFFFFFFFF
            ptr = (int(arg1) & _U64) if ents else 0
            if (ptr & (C.PAGE_SIZE - 1)) or not (ptr < (1 << 47) or ptr >= O.HYPERVISOR_VIRT_END) or ents > 8192:
                return -E.EINVAL
            dmm.ldt_base[vcpu] = ptr
            return 0
        if cmd == O.MMUEXT_CLEAR_PAGE:
            if not (arg1 < mm.nr_frames and mm.get_page(arg1, d)):
                return -E.EINVAL
            if self.get_page_type(arg1, C.PGT_writable_page):
                mm.put_page(arg1)
                return -E.EINVAL
            if mm.has_contents(arg1):
                mm.entries(arg1)[:] = 0
            self.put_page_and_type(arg1)
            return 0
        if cmd == O.MMUEXT_COPY_PAGE:
            src = int(arg2) & _U64
            if not (src < mm.nr_frames and mm.get_page(src, d)):
                return -E.EINVAL
            if not (arg1 < mm.nr_frames and mm.get_page(arg1, d)):
                mm.put_page(src)
                return -E.EINVAL
            if self.get_page_type(arg1, C.PGT_writable_page):
                mm.put_page(arg1)
                mm.put_page(src)
                return -E.EINVAL
            if mm.has_contents(src) or mm.has_contents(arg1):
                mm.entries(arg1)[:] = mm.entries(src)
            self.put_page_and_type(arg1)
            mm.put_page(src)
            return 0
        if cmd in (O.MMUEXT_MARK_SUPER, O.MMUEXT_UNMARK_SUPER):
            return -E.EOPNOTSUPP
        return -E.ENOSYS

    def _mark_dirty(self, dmm: DomainMM, mfn: int) -> None:
        if dmm.log_dirty and dmm.dirty_bitmap is not None:
            pfn = int(self.mm.m2p[mfn])
            if 0 <= pfn < len(dmm.dirty_bitmap):
                dmm.dirty_bitmap[pfn] = True

    # ================================================================== writable page tables
    def ptwr_emulated_update(self, dmm: DomainMM, vcpu: int, pt_mfn: int, idx: int, val: int,
                             vm_assist: int) -> int:
        """A direct guest write to one of its L1 tables (``pv/ro-page-fault.c``).

        Returns 0 when emulated, or a negative errno when the fault is bounced to the guest
        (writable page tables not enabled, not an L1, or the new entry is refused).
        """
        mm = self.mm
        self.meter.count("mmu.ptwr_fault")
        if not vm_assist & (1 << O.VMASST_TYPE_writable_pagetables):
            return -E.EFAULT
        if not (0 <= pt_mfn < mm.nr_frames) or int(mm.owner[pt_mfn]) != dmm.domid \
                or int(mm.type[pt_mfn]) != C.PGT_l1_page_table or mm.type_count[pt_mfn] == 0:
            return -E.EFAULT
        self.meter.add("mmu.emulated_pte_write", "mmu.ptwr_emulate_cycles")
        return self.mod_l1_entry(pt_mfn, idx, val, O.MMU_NORMAL_PT_UPDATE, dmm.domid, dmm.domid)


def direct_paging(mm: MachineMemory) -> "DirectPaging":
    """The PV direct-paging engine of frame table ``mm`` (made on first use, then kept on it)."""
    if mm._pv is None:
        mm._pv = DirectPaging(mm)
    return mm._pv
