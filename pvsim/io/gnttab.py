"""Grant tables v1 (after ``xen/common/grant_table.c`` and ``xen/include/public/grant_table.h``).

Design note
-----------
:class:`GrantTable` is one domain's shared v1 table (``grant_entry_v1``: ``flags``, ``domid``,
``frame``), Xen's *active* entries (pin counts per granted ref) and the domain's *maptrack*
(one entry per foreign mapping it holds; a ``grant_handle_t`` indexes it).

* Granting and revoking are memory writes by the granter, no hypercall (:meth:`GrantTable.grant_access`,
  :meth:`GrantTable.end_access`: revoking fails while ``GTF_reading``/``GTF_writing`` are set).
* :func:`map_grant_ref` follows ``map_grant_ref``: the entry must be ``GTF_permit_access`` for the
  *caller's* domid, a writable map of a ``GTF_readonly`` grant or of a ``GTF_sub_page`` grant is
  refused, Xen sets ``GTF_reading``/``GTF_writing``, pins the active entry and allocates a maptrack
  handle. Work: ``io.grant_map_cycles`` per op.
* :func:`unmap_grant_refs` follows ``gnttab_unmap_grant_ref``: ops are processed in batches of
  ``GNTTAB_UNMAP_BATCH_SIZE`` (32) and each batch ends with one TLB flush of the mapping domain's
  dirty CPUs (``io.grant_tlb_flush_cycles`` + ``io.tlb_shootdown_ipi_cycles`` per remote CPU).
* :func:`grant_copy` follows ``gnttab_copy``: a gref side must be granted to the caller (dest needs
  a writable grant), a frame side must be the caller's own unless privileged, ``offset + len`` may
  not cross the page (``GNTST_bad_copy_arg``). Work: ``io.grant_copy_cycles`` per op and
  ``io.memcpy_byte_cycles`` per byte. No PTE change, no flush.
* :func:`grant_transfer` follows ``gnttab_transfer`` (the page flipping of the 2003-2006 netback
  receive path): the *receiver* wrote a ``GTF_accept_transfer`` entry for the caller's domid
  (:meth:`GrantTable.grant_foreign_transfer`); Xen steals the caller's page (``steal_page``),
  assigns it to the receiver, writes the frame into the entry and sets ``GTF_transfer_committed``
  then ``GTF_transfer_completed``. The caller must have unmapped the page first (its PTE zap and
  TLB flush are the backend's own work, :class:`pvsim.io.paths.RingNet`). Work:
  ``io.grant_transfer_cycles`` per op.

Status codes are written into each op record; the hypercall itself returns 0 (or ``-EFAULT``,
``-EINVAL``, ``-ENOSYS`` for a malformed call), as Xen does.

Simplifications: only v1 (``set_version`` to 2 returns ``-EOPNOTSUPP``); frames are numbers, page
contents are not stored (only who may touch what); no transitive grants, no IOMMU mappings;
``transfer`` does not check the page's reference count (the backend's unmap is trusted); a frame side of a copy is not checked against the P2M.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls.ops import DOMID_SELF
from hypercalls.trace import TRC_MEM_PAGE_GRANT_MAP, TRC_MEM_PAGE_GRANT_UNMAP

# xen/common/grant_table.c
GNTTAB_MAX_FRAMES_DEFAULT = 64  # gnttab_max_frames
GNTTAB_MAX_MAPTRACK_FRAMES_DEFAULT = 1024  # gnttab_max_maptrack_frames
MAPTRACK_PER_PAGE = 4096 // 16  # sizeof(struct grant_mapping) == 16
PAGE_SIZE = 4096


@dataclass
class ActiveEntry:
    domid: int  # the domain the grant is for
    frame: int
    pin_read: int = 0
    pin_write: int = 0


@dataclass
class Mapping:
    """A maptrack entry in the mapping domain."""

    granter: int
    ref: int
    flags: int
    host_addr: int


@dataclass
class GrantTable:
    domid: int
    nr_frames: int = 1
    max_frames: int = GNTTAB_MAX_FRAMES_DEFAULT
    max_maptrack_frames: int = GNTTAB_MAX_MAPTRACK_FRAMES_DEFAULT
    flags: list[int] = field(default_factory=list)
    gdomid: list[int] = field(default_factory=list)
    frame: list[int] = field(default_factory=list)
    active: dict[int, ActiveEntry] = field(default_factory=dict)
    maptrack: dict[int, Mapping] = field(default_factory=dict)
    _free_handles: list[int] = field(default_factory=list)
    _next_handle: int = 0
    _free_refs: list[int] = field(default_factory=list)
    _next_ref: int = O.GNTTAB_NR_RESERVED_ENTRIES

    def __post_init__(self):
        n = self.nr_frames * O.GRANT_ENTRIES_PER_PAGE_V1
        self.flags, self.gdomid, self.frame = [0] * n, [0] * n, [0] * n

    @property
    def nr_entries(self) -> int:
        return len(self.flags)

    # ---------------------------------------------------------- granter side (memory writes)
    def grow(self, nr_frames: int) -> bool:
        if nr_frames > self.max_frames:
            return False
        extra = (nr_frames - self.nr_frames) * O.GRANT_ENTRIES_PER_PAGE_V1
        if extra > 0:
            self.flags += [0] * extra
            self.gdomid += [0] * extra
            self.frame += [0] * extra
            self.nr_frames = nr_frames
        return True

    def alloc_ref(self) -> int:
        if self._free_refs:
            return self._free_refs.pop()
        if self._next_ref >= self.nr_entries and not self.grow(self.nr_frames + 1):
            return -1
        r = self._next_ref
        self._next_ref += 1
        return r

    def grant_access(self, domid: int, frame: int, readonly: bool = False, ref: int | None = None) -> int:
        """``gnttab_grant_foreign_access``: write domid, frame, then flags. Returns the ref (or -1).
        Re-granting a given ``ref`` that a peer still has mapped (``GTF_reading``/``GTF_writing``)
        is refused: the write would clear the flags Xen set for that mapping."""
        if ref is None:
            ref = self.alloc_ref()
            if ref < 0:
                return -1
        elif not (0 <= ref < self.nr_entries) or self.flags[ref] & (O.GTF_reading | O.GTF_writing):
            return -1
        self.gdomid[ref] = domid
        self.frame[ref] = frame
        self.flags[ref] = O.GTF_permit_access | (O.GTF_readonly if readonly else 0)
        return ref

    def grant_foreign_transfer(self, domid: int, pfn: int) -> int:
        """``gnttab_grant_foreign_transfer``: accept one page from ``domid`` into ``pfn``'s slot
        (flags ``GTF_accept_transfer``). Returns the ref (or -1)."""
        ref = self.alloc_ref()
        if ref < 0:
            return -1
        self.gdomid[ref] = domid
        self.frame[ref] = pfn
        self.flags[ref] = O.GTF_accept_transfer
        return ref

    def end_transfer(self, ref: int) -> int:
        """``gnttab_end_foreign_transfer_ref``: the frame Xen transferred (-1 if no transfer
        completed); the ref is freed."""
        if not (0 <= ref < self.nr_entries) or not self.flags[ref] & O.GTF_transfer_completed:
            return -1
        frame = self.frame[ref]
        self.flags[ref] = 0
        if ref >= O.GNTTAB_NR_RESERVED_ENTRIES:
            self._free_refs.append(ref)
        return frame

    def end_access(self, ref: int, free: bool = True) -> bool:
        """``gnttab_end_foreign_access_ref``: cmpxchg flags to 0 unless reading/writing. Ending a
        ref that is not granted is refused, so a double ``end_access`` cannot free the ref twice
        (Linux's ``gnttab_free_grant_reference`` would otherwise hand it out twice)."""
        if not (0 <= ref < self.nr_entries) or self.flags[ref] & (O.GTF_reading | O.GTF_writing):
            return False
        if not self.flags[ref] & O.GTF_type_mask:
            return False
        self.flags[ref] = 0
        if free and ref >= O.GNTTAB_NR_RESERVED_ENTRIES:
            self._free_refs.append(ref)
        return True

    # ---------------------------------------------------------- maptrack
    def get_maptrack_handle(self) -> int:
        if self._free_handles:
            return self._free_handles.pop()
        if self._next_handle >= self.max_maptrack_frames * MAPTRACK_PER_PAGE:
            return -1
        h = self._next_handle
        self._next_handle += 1
        return h


def gnttab_for(dom) -> GrantTable:
    if dom.grant_table is None:
        dom.grant_table = GrantTable(dom.domid)
    return dom.grant_table


def _ref_in_table(gt, ref) -> bool:
    """A grant reference names an entry of the table (else GNTST_bad_gntref)."""
    return isinstance(ref, int) and 0 <= ref < gt.nr_entries


def _lookup(hv, caller, domid):
    return hv.lookup_domain(caller, domid)


def map_grant_ref(hv, ld, op: A.GnttabMapGrantRef) -> int:
    meter = hv.meter
    if not (op.flags & (O.GNTMAP_device_map | O.GNTMAP_host_map)):
        op.status = O.GNTST_bad_gntref
        return op.status
    if op.flags & O.GNTMAP_host_map and op.host_addr == 0 and not (op.flags & O.GNTMAP_contains_pte):
        op.status = O.GNTST_bad_virt_addr
        return op.status
    # map_grant_ref: "rcu_lock_domain_by_id(op->dom)" -- by id only, so DOMID_SELF is
    # GNTST_bad_domain (xen/common/grant_table.c), unlike the copy and query paths
    rd = hv.domains.get(op.dom)
    if rd is None:
        op.status = O.GNTST_bad_domain
        return op.status
    rgt = gnttab_for(rd)
    ref = op.ref
    if not _ref_in_table(rgt, ref):
        op.status = O.GNTST_bad_gntref
        return op.status
    meter.add("io.grant", "io.grant_map_cycles")
    fl = rgt.flags[ref]
    if (fl & O.GTF_type_mask) != O.GTF_permit_access or rgt.gdomid[ref] != ld.domid:
        op.status = O.GNTST_permission_denied
        return op.status
    ro = bool(op.flags & O.GNTMAP_readonly)
    if (fl & O.GTF_readonly and not ro) or fl & O.GTF_sub_page:
        op.status = O.GNTST_permission_denied
        return op.status
    lgt = gnttab_for(ld)
    h = lgt.get_maptrack_handle()
    if h < 0:
        op.status = O.GNTST_no_space
        return op.status
    act = rgt.active.get(ref)
    if act is None:
        act = rgt.active[ref] = ActiveEntry(ld.domid, rgt.frame[ref])
    if ro:
        act.pin_read += 1
        rgt.flags[ref] |= O.GTF_reading
    else:
        act.pin_write += 1
        rgt.flags[ref] |= O.GTF_writing | O.GTF_reading
    lgt.maptrack[h] = Mapping(rd.domid, ref, op.flags, op.host_addr)
    op.handle = h
    op.dev_bus_addr = (act.frame << 12) if op.flags & O.GNTMAP_device_map else 0
    op.status = O.GNTST_okay
    meter.count("grant.map")
    hv.trace_dom(ld, TRC_MEM_PAGE_GRANT_MAP, rd.domid, ld.domid)  # {granting dom} + pvsim: the mapping dom
    return 0


def _unmap_one(hv, ld, op: A.GnttabUnmapGrantRef) -> int:
    lgt = gnttab_for(ld)
    m = lgt.maptrack.get(op.handle) if isinstance(op.handle, int) else None
    if m is None:
        op.status = O.GNTST_bad_handle
        return op.status
    if m.flags & O.GNTMAP_host_map and op.host_addr and op.host_addr != m.host_addr:
        op.status = O.GNTST_bad_virt_addr
        return op.status
    hv.meter.add("io.grant", "io.grant_unmap_cycles")
    rd = hv.domains.get(m.granter)
    if rd is not None:
        rgt = gnttab_for(rd)
        act = rgt.active.get(m.ref)
        if act is not None:
            if m.flags & O.GNTMAP_readonly:
                act.pin_read -= 1
            else:
                act.pin_write -= 1
            if act.pin_write == 0:
                rgt.flags[m.ref] &= ~O.GTF_writing
            if act.pin_write == 0 and act.pin_read == 0:
                rgt.flags[m.ref] &= ~O.GTF_reading
                del rgt.active[m.ref]
    del lgt.maptrack[op.handle]
    lgt._free_handles.append(op.handle)
    op.status = O.GNTST_okay
    hv.meter.count("grant.unmap")
    hv.trace_dom(ld, TRC_MEM_PAGE_GRANT_UNMAP, m.granter, ld.domid)
    return 0


def unmap_grant_refs(hv, ld, ops) -> None:
    """Process unmaps in batches of GNTTAB_UNMAP_BATCH_SIZE, one TLB flush per batch."""
    dirty_cpus = max(1, sum(1 for v in ld.vcpus if v.online))
    for start in range(0, len(ops), O.GNTTAB_UNMAP_BATCH_SIZE):
        batch = ops[start:start + O.GNTTAB_UNMAP_BATCH_SIZE]
        done = 0
        for op in batch:
            if _unmap_one(hv, ld, op) == 0:
                done += 1
        if done:
            hv.meter.add("io.grant", "io.grant_tlb_flush_cycles")
            hv.meter.add("io.grant", "io.tlb_shootdown_ipi_cycles", dirty_cpus - 1)
            hv.meter.count("grant.tlb_flush")


def _copy_side(hv, ld, ptr: A.GnttabCopyPtr, is_gref: bool, write: bool, off: int, ln: int) -> int:
    if is_gref:
        gd = _lookup(hv, ld, ptr.domid)
        if gd is None:
            return O.GNTST_bad_domain
        if gd is ld:
            return 0  # a domain may copy within its own grants
        gt = gnttab_for(gd)
        ref = ptr.ref
        if not isinstance(ref, int) or not (0 <= ref < gt.nr_entries):
            return O.GNTST_bad_gntref
        fl = gt.flags[ref]
        if (fl & O.GTF_type_mask) != O.GTF_permit_access or gt.gdomid[ref] != ld.domid:
            return O.GNTST_permission_denied
        if write and fl & O.GTF_readonly:
            return O.GNTST_permission_denied
        return 0
    if ptr.domid not in (DOMID_SELF, ld.domid) and not ld.privileged:
        return O.GNTST_permission_denied
    return 0


def grant_copy(hv, ld, op: A.GnttabCopy) -> int:
    ln = op.len
    if (not isinstance(ln, int) or ln < 0 or op.source.offset < 0 or op.dest.offset < 0
            or op.source.offset + ln > PAGE_SIZE or op.dest.offset + ln > PAGE_SIZE):
        op.status = O.GNTST_bad_copy_arg
        return op.status
    st = _copy_side(hv, ld, op.source, bool(op.flags & O.GNTCOPY_source_gref), False, op.source.offset, ln)
    if st == 0:
        st = _copy_side(hv, ld, op.dest, bool(op.flags & O.GNTCOPY_dest_gref), True, op.dest.offset, ln)
    op.status = st
    if st == 0:
        hv.meter.add("io.grant", "io.grant_copy_cycles")
        hv.meter.add("io.grant", "io.memcpy_byte_cycles", ln)
        hv.meter.count("grant.copy")
    return st


def grant_transfer(hv, ld, op: A.GnttabTransfer) -> int:
    """One ``gnttab_transfer`` op: page ``op.mfn`` of the caller goes to ``op.domid`` through the
    receiver's ``GTF_accept_transfer`` entry ``op.ref``."""
    rd = _lookup(hv, ld, op.domid)
    if rd is None or rd is ld:
        op.status = O.GNTST_bad_domain
        return op.status
    rgt = gnttab_for(rd)
    ref = op.ref
    if not _ref_in_table(rgt, ref):
        op.status = O.GNTST_bad_gntref
        return op.status
    # gnttab_prepare_for_transfer: the entry must accept a transfer from this domain, not yet committed
    if (rgt.flags[ref] & O.GTF_type_mask) != O.GTF_accept_transfer or rgt.gdomid[ref] != ld.domid \
            or rgt.flags[ref] & O.GTF_transfer_committed:
        op.status = O.GNTST_general_error
        return op.status
    rgt.flags[ref] |= O.GTF_transfer_committed
    rgt.frame[ref] = op.mfn  # the receiver learns the machine frame it now owns
    rgt.flags[ref] |= O.GTF_transfer_completed
    op.status = O.GNTST_okay
    hv.meter.add("io.grant", "io.grant_transfer_cycles")
    hv.meter.count("grant.transfer")
    return 0


def setup_table(hv, ld, op: A.GnttabSetupTable) -> int:
    d = _lookup(hv, ld, op.dom)
    if d is None:
        op.status = O.GNTST_bad_domain
        return op.status
    if d is not ld and not ld.privileged:
        op.status = O.GNTST_permission_denied
        return op.status
    gt = gnttab_for(d)
    if not isinstance(op.nr_frames, int) or op.nr_frames < 0 or not gt.grow(max(op.nr_frames, gt.nr_frames)):
        op.status = O.GNTST_general_error
        return op.status
    op.frame_list = [0x100000 + d.domid * 0x1000 + i for i in range(op.nr_frames)]
    op.status = O.GNTST_okay
    return 0


def query_size(hv, ld, op: A.GnttabQuerySize) -> int:
    d = _lookup(hv, ld, op.dom)
    if d is None:
        op.status = O.GNTST_bad_domain
        return op.status
    # gnttab_query_size: xsm_grant_query_size(XSM_TARGET, current->domain, d) fails for another
    # domain unless the caller is privileged -> GNTST_permission_denied
    if d is not ld and not ld.privileged:
        op.status = O.GNTST_permission_denied
        return op.status
    gt = gnttab_for(d)
    op.nr_frames, op.max_nr_frames, op.status = gt.nr_frames, gt.max_frames, O.GNTST_okay
    return 0


_RECORDS = {
    O.GNTTABOP_map_grant_ref: A.GnttabMapGrantRef,
    O.GNTTABOP_unmap_grant_ref: A.GnttabUnmapGrantRef,
    O.GNTTABOP_copy: A.GnttabCopy,
    O.GNTTABOP_transfer: A.GnttabTransfer,
    O.GNTTABOP_setup_table: A.GnttabSetupTable,
    O.GNTTABOP_query_size: A.GnttabQuerySize,
}


def grant_table_op(hv, ld, cmd, uop, count) -> int:
    """The body of ``do_grant_table_op``: batch of ``count`` ops, per-op status, returns 0."""
    if isinstance(cmd, bool) or not isinstance(cmd, int):
        return -E.ENOSYS
    if cmd == O.GNTTABOP_get_version:
        return 1
    if cmd == O.GNTTABOP_set_version:
        if (count != 1 or not isinstance(uop, (list, tuple)) or not uop
                or not isinstance(uop[0], A.GnttabSetVersion) or not A.well_formed(uop[0])):
            return -E.EFAULT
        v = uop[0].version
        if v == 1:
            return 0
        return -E.EOPNOTSUPP if v == 2 else -E.EINVAL  # this model implements v1 only
    rec = _RECORDS.get(cmd)
    if rec is None:
        return -E.ENOSYS
    if not isinstance(count, int) or count < 0:
        return -E.EINVAL
    if count == 0:
        return 0
    if (not isinstance(uop, (list, tuple)) or len(uop) < count
            or not all(isinstance(o, rec) and A.well_formed(o) for o in uop[:count])):
        return -E.EFAULT
    ops = uop[:count]
    if cmd == O.GNTTABOP_map_grant_ref:
        for op in ops:
            map_grant_ref(hv, ld, op)
    elif cmd == O.GNTTABOP_unmap_grant_ref:
        unmap_grant_refs(hv, ld, ops)
    elif cmd == O.GNTTABOP_copy:
        for op in ops:
            grant_copy(hv, ld, op)
    elif cmd == O.GNTTABOP_transfer:
        for op in ops:
            grant_transfer(hv, ld, op)
    elif cmd == O.GNTTABOP_setup_table:
        if count != 1:
            return -E.EINVAL
        setup_table(hv, ld, ops[0])
    elif cmd == O.GNTTABOP_query_size:
        if count != 1:
            return -E.EINVAL
        query_size(hv, ld, ops[0])
    return 0
