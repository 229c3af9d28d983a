"""memory_op: ballooning (increase/decrease reservation, populate physmap) and reservation queries.

Design note
-----------
Models ``do_memory_op`` of ``xen/common/memory.c`` (``increase_reservation``,
``decrease_reservation``, ``populate_physmap``, ``construct_memop_from_reservation``,
``propagate_node``, ``max_order``) at ``xen-project/xen`` ``c447b7308b``, with the page
accounting of ``assign_pages`` (``xen/common/page_alloc.c``: a domain never holds more than
``max_pages``) and the default XSM policy (``xsm_memory_adjust_reservation`` and
``xsm_memory_stat_reservation`` are ``XSM_TARGET``: the domain itself or a control domain).

Xen's answer conventions, kept exactly:

* the three reservation commands return the **number of extents done** (counting from the
  continuation's start extent, ``cmd >> MEMOP_EXTENT_SHIFT``). Every failure, including a bad
  domain id, a permission failure, an unreadable argument, an order above ``max_order`` or an
  allocation beyond ``max_pages``, just stops the count: partial success is not an error;
* ``current_reservation``/``maximum_reservation`` return ``tot_pages``/``max_pages`` or
  ``-EFAULT`` / ``-ESRCH`` / ``-EPERM``; ``maximum_ram_page`` never fails.

Frames: with ``hv.machine_mm`` set (:class:`pvsim.mm.frames.MachineMemory`), pages come from
``machine_mm.alloc_domheap_page(domid) -> mfn | -1`` and go back through
``machine_mm.free_domheap_page(domid, mfn) -> 0 | -errno``; ``populate_physmap`` records the new
frames in ``machine_mm.m2p`` and, for a translated (HVM/PVH) guest, in ``dom.mm.p2m``, which is
also where a translated guest's GFNs are looked up (``machine_mm.guest_physmap_add_page`` /
``gfn_to_mfn`` are used instead when the memory subsystem provides them). Without it, a :class:`FrameLedger` on the hypervisor hands out frame numbers so
ballooning works standalone; a domain's boot-time ``tot_pages`` frames are given to it the
first time memory_op touches it (:func:`domain_frames` lists them). This handler keeps
``Domain.tot_pages`` (the allocator must not change it).

Work reported (cause ``hypercall.memory_op``): one ``xen.pte_validate_cycles`` per page assigned
or removed: each is a refcounted ownership change plus one P2M and one M2P entry write, the
same structure as a validated PTE update (``mod_l1_entry``). Pages are not scrubbed here (Xen
scrubs lazily, and not at all for pages a live domain frees).

Simplifications: no preemption (``args.preempted`` never set); no NUMA (node requests are
checked for permission, then ignored); populate-on-demand only counts; an extent of order > 0 is
contiguous only in standalone mode (``alloc_domheap_page`` hands out single pages);
``XENMEM_exchange``, ``add_to_physmap``, ``maximum_gpfn`` and the other sub-commands are not
modelled and answer ``-ENOSYS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from pvsim.hypervisor.dispatch import handler
from pvsim.hypervisor.domain import VCPU, Domain
from pvsim.hypervisor.handlers.core import lookup_domain_by_any_id, reg, xsm_default_action

PAGE_SHIFT = 12
U32 = (1 << 32) - 1
# max_order() limits (xen/arch/x86/include/asm/config.h, xen/include/xen/mm.h)
DOMU_MAX_ORDER = 9  # CONFIG_DOMU_MAX_ORDER = PAGETABLE_ORDER
CTLDOM_MAX_ORDER = 18  # CONFIG_CTLDOM_MAX_ORDER = CONFIG_PAGEALLOC_MAX_ORDER = 2 * PAGETABLE_ORDER
HWDOM_MAX_ORDER = 12  # CONFIG_HWDOM_MAX_ORDER
MAX_ORDER = 18  # MAX_ORDER = CONFIG_PAGEALLOC_MAX_ORDER on x86 (xen/include/xen/mm.h)
NUMA_NO_NODE = 0xFF
MAX_NUMNODES = 64  # CONFIG_NR_NUMA_NODES default (xen/arch/Kconfig)
FIRST_GUEST_MFN = 0x100  # standalone ledger: frames below are Xen's own


# ============================================================================================
# standalone frame ledger
# ============================================================================================
@dataclass
class DomainFrames:
    frames: set[int] = field(default_factory=set)  # machine frames the domain owns
    p2m: dict[int, int] = field(default_factory=dict)  # translated guests: gfn -> mfn


@dataclass
class FrameLedger:
    """Frame ownership when no machine frame table is attached (``hv.machine_mm is None``)."""

    next_mfn: int = FIRST_GUEST_MFN
    free_list: list[int] = field(default_factory=list)
    doms: dict[int, DomainFrames] = field(default_factory=dict)
    host_pages: int | None = None  # frames available to guests, None = unbounded

    def in_use(self) -> int:
        return sum(len(df.frames) for df in self.doms.values())

    def domain(self, dom: Domain) -> DomainFrames:
        df = self.doms.get(dom.domid)
        if df is None:
            df = self.doms[dom.domid] = DomainFrames()
            base = self.next_mfn
            self.next_mfn += dom.tot_pages
            df.frames.update(range(base, base + dom.tot_pages))
            if not dom.is_pv:
                df.p2m.update({i: base + i for i in range(dom.tot_pages)})
        return df

    def alloc_extent(self, dom: Domain, order: int) -> list[int] | None:
        n = 1 << order
        df = self.domain(dom)
        if self.host_pages is not None and self.in_use() + n > self.host_pages:
            return None
        if n == 1 and self.free_list:
            mfns = [self.free_list.pop()]
        else:
            mfns = list(range(self.next_mfn, self.next_mfn + n))
            self.next_mfn += n
        df.frames.update(mfns)
        return mfns

    def free(self, dom: Domain, mfn: int) -> int:
        df = self.domain(dom)
        if mfn not in df.frames:
            return -E.ENOENT
        df.frames.discard(mfn)
        self.free_list.append(mfn)
        return 0


def ledger(hv) -> FrameLedger:
    led = hv.memory_ledger
    if led is None:
        led = hv.memory_ledger = FrameLedger(host_pages=hv.host_pages)
    return led


def domain_frames(hv, dom: Domain) -> list[int]:
    """Machine frames ``dom`` owns in standalone mode (sorted)."""
    return sorted(ledger(hv).domain(dom).frames)


# ============================================================================================
# allocation through machine_mm or the ledger
# ============================================================================================
def _translated(dom: Domain) -> bool:
    return not dom.is_pv  # paging_mode_translate


def _alloc_extent(hv, dom: Domain, order: int) -> list[int] | None:
    """``alloc_domheap_pages(d, order)`` + ``assign_pages``: refuse beyond ``max_pages``."""
    n = 1 << order
    if dom.tot_pages + n > dom.max_pages:  # "Over-allocation" -> -E2BIG -> NULL
        hv.meter.count("memory.over_allocation")
        return None
    mm = hv.machine_mm
    if mm is None:
        mfns = ledger(hv).alloc_extent(dom, order)
        if mfns is None:
            return None
    else:
        mfns = []
        for _ in range(n):
            mfn = mm.alloc_domheap_page(dom.domid)
            if mfn is None or mfn < 0:
                for m in mfns:
                    mm.free_domheap_page(dom.domid, m)
                return None
            mfns.append(int(mfn))
    dom.tot_pages += n
    hv.meter.add("hypercall.memory_op", "xen.pte_validate_cycles", n)
    return mfns


def _mm_p2m(dom: Domain):
    """The memory subsystem's P2M array of ``dom`` (``DomainMM.p2m``), if it has one."""
    return getattr(dom.mm, "p2m", None) if dom.mm is not None else None


def _physmap_add(hv, dom: Domain, gfn: int, mfn: int) -> None:
    """``guest_physmap_add_page``: M2P[mfn] = gfn, and for a translated guest P2M[gfn] = mfn."""
    mm = hv.machine_mm
    if mm is not None and hasattr(mm, "guest_physmap_add_page"):
        mm.guest_physmap_add_page(dom.domid, gfn, mfn)
        return
    if mm is not None and getattr(mm, "m2p", None) is not None and 0 <= mfn < len(mm.m2p):
        mm.m2p[mfn] = gfn
    if not _translated(dom):
        return
    p2m = _mm_p2m(dom)
    if p2m is not None and 0 <= gfn < len(p2m):
        p2m[gfn] = mfn
    else:
        ledger(hv).domain(dom).p2m[gfn] = mfn


def _gfn_to_mfn(hv, dom: Domain, gfn: int) -> int | None:
    mm = hv.machine_mm
    if mm is not None and hasattr(mm, "gfn_to_mfn"):
        mfn = mm.gfn_to_mfn(dom.domid, gfn)
        return None if mfn is None or mfn < 0 else int(mfn)
    p2m = _mm_p2m(dom)
    if mm is not None and p2m is not None and 0 <= gfn < len(p2m):
        mfn = int(p2m[gfn])
        return mfn if mfn >= 0 else None
    return ledger(hv).domain(dom).p2m.get(gfn)


def _guest_remove_page(hv, dom: Domain, gmfn: int) -> int:
    """``guest_remove_page``: 0, or -ENOENT for a GFN with nothing behind it, or the
    allocator's -errno (e.g. a frame the domain does not own, or one still in use)."""
    mm = hv.machine_mm
    mfn = _gfn_to_mfn(hv, dom, gmfn) if _translated(dom) else gmfn
    if mfn is None:
        return -E.ENOENT
    rc = mm.free_domheap_page(dom.domid, mfn) if mm is not None else ledger(hv).free(dom, mfn)
    if rc:
        return rc
    if _translated(dom) and not (mm is not None and hasattr(mm, "gfn_to_mfn")):
        p2m = _mm_p2m(dom) if mm is not None else None
        if p2m is not None and 0 <= gmfn < len(p2m):
            p2m[gmfn] = -1
        else:
            ledger(hv).domain(dom).p2m.pop(gmfn, None)
    dom.tot_pages -= 1
    hv.meter.add("hypercall.memory_op", "xen.pte_validate_cycles")
    return 0


def max_order(dom: Domain) -> int:
    """``max_order(current->domain)``: the largest extent order the caller may request."""
    order = DOMU_MAX_ORDER
    if dom.privileged:  # control domain (and hardware domain: dom0 is both)
        order = max(order, CTLDOM_MAX_ORDER, HWDOM_MAX_ORDER)
    return order


def max_page(hv) -> int:
    """``max_page``: one more than the highest machine frame of RAM."""
    mm = hv.machine_mm
    mp = None
    if mm is not None:
        mp = getattr(mm, "max_page", None)
        if mp is None:
            mp = getattr(mm, "nr_frames", None)  # MachineMemory: frames 0..nr_frames-1
    if mp is None:
        mp = hv.max_page
    if mp is None:
        led = ledger(hv)
        mp = led.host_pages + FIRST_GUEST_MFN if led.host_pages is not None else led.next_mfn
    return int(mp)


# ============================================================================================
# reservation operations
# ============================================================================================
def _reservation_readable(r) -> bool:
    if not isinstance(r, A.XenMemoryReservation):
        return False
    for name, ctype in (("nr_extents", "xen_ulong_t"), ("extent_order", "unsigned int"),
                        ("mem_flags", "unsigned int"), ("domid", "domid_t")):
        if not A.fits(getattr(r, name), ctype):
            return False
    return r.extent_start is None or isinstance(r.extent_start, list)


def _memflags_ok(hv, curr: Domain, mem_flags: int) -> bool:
    """``construct_memop_from_reservation`` + ``propagate_node``."""
    address_bits = mem_flags & 0xFF
    if address_bits and address_bits < (max_page(hv) - 1).bit_length() + PAGE_SHIFT:
        if address_bits <= PAGE_SHIFT:
            return False
    if mem_flags & O.XENMEMF_vnode:
        return True  # no vNUMA topology: nothing to translate
    node = ((mem_flags >> 8) - 1) & 0xFF
    if node == NUMA_NO_NODE:
        return True
    if curr.privileged:
        return node < MAX_NUMNODES
    return not (mem_flags & O.XENMEMF_exact_node_request)


def _subrange_ok(lst, nr: int) -> bool:
    return isinstance(lst, list) and len(lst) >= nr


def _increase(hv, curr: Domain, d: Domain, r, start: int) -> int:
    lst = r.extent_start
    if lst is not None and not _subrange_ok(lst, r.nr_extents):
        return start
    if r.extent_order > max_order(curr):
        return start
    i = start
    while i < r.nr_extents:
        mfns = _alloc_extent(hv, d, r.extent_order)
        if mfns is None:
            break
        if not _translated(d) and lst is not None:
            lst[i] = mfns[0]  # "Inform the domain of the new page's machine address."
        i += 1
    return i


def _decrease(hv, curr: Domain, d: Domain, r, start: int) -> int:
    lst = r.extent_start
    if not _subrange_ok(lst, r.nr_extents) or r.extent_order > max_order(curr):
        return start
    i = start
    while i < r.nr_extents:
        gmfn = lst[i]
        if not A.fits(gmfn, "xen_pfn_t"):
            break  # __copy_from_guest_offset failed
        if any(_guest_remove_page(hv, d, gmfn + j) for j in range(1 << r.extent_order)):
            break
        i += 1
    return i


def _populate(hv, curr: Domain, d: Domain, r, start: int, pod: bool) -> int:
    lst = r.extent_start
    if not _subrange_ok(lst, r.nr_extents):
        return start
    if r.extent_order > (MAX_ORDER if pod else max_order(curr)):
        return start
    i = start
    while i < r.nr_extents:
        gpfn = lst[i]
        if not A.fits(gpfn, "xen_pfn_t"):
            break
        if pod:
            if d is curr:  # "Disallow populating PoD pages on oneself."
                break
            hv.meter.count("memory.pod_populate", 1 << r.extent_order)
            i += 1
            continue
        mfns = _alloc_extent(hv, d, r.extent_order)
        if mfns is None:
            break
        for j, mfn in enumerate(mfns):
            _physmap_add(hv, d, gpfn + j, mfn)
        if not _translated(d):
            lst[i] = mfns[0]  # "Inform the domain of the new page's machine address."
        i += 1
    return i


@handler("memory_op")
def do_memory_op(hv, vcpu: VCPU, cmd=None, arg=None, *_ignored) -> int:
    curr = vcpu.domain
    c = reg(cmd, 64)
    if c is None:
        return -E.ENOSYS
    op = c & O.MEMOP_CMD_MASK
    start = c >> O.MEMOP_EXTENT_SHIFT

    if op in (O.XENMEM_increase_reservation, O.XENMEM_decrease_reservation,
              O.XENMEM_populate_physmap):
        r = arg
        if not _reservation_readable(r):
            return start
        if r.nr_extents > (U32 >> O.MEMOP_EXTENT_SHIFT):  # too large to encode a continuation
            return start
        if start >= r.nr_extents:
            return start
        d = lookup_domain_by_any_id(hv, curr, r.domid)
        if d is None:
            return start
        if not _memflags_ok(hv, curr, r.mem_flags):
            return start
        pod = op == O.XENMEM_populate_physmap and bool(r.mem_flags & O.XENMEMF_populate_on_demand)
        if xsm_default_action("TARGET", curr, d):
            hv.meter.count("memory.denied")
            return start
        if op == O.XENMEM_increase_reservation:
            done = _increase(hv, curr, d, r, start)
        elif op == O.XENMEM_decrease_reservation:
            done = _decrease(hv, curr, d, r, start)
        else:
            done = _populate(hv, curr, d, r, start, pod)
        hv.meter.count("memory.extents", done - start)
        return done

    if op == O.XENMEM_maximum_ram_page:
        if start:
            return -E.EINVAL
        return max_page(hv)

    if op in (O.XENMEM_current_reservation, O.XENMEM_maximum_reservation):
        if start:
            return -E.EINVAL
        if A.check_in(arg, A.XenMemoryDomain):
            return -E.EFAULT
        d = lookup_domain_by_any_id(hv, curr, arg.domid)
        if d is None:
            return -E.ESRCH
        rc = xsm_default_action("TARGET", curr, d)
        if rc:
            return rc
        return d.tot_pages if op == O.XENMEM_current_reservation else d.max_pages

    return -E.ENOSYS
