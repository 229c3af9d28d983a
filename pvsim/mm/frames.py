"""The machine frame table, frame contents, P2M/M2P (after Xen's ``struct page_info``).

Design note
-----------
:class:`MachineMemory` is the simulated host RAM as Xen's frame table sees it (the big comment
at the top of ``xen/arch/x86/mm.c`` and ``xen/arch/x86/include/asm/mm.h``): for every machine
frame an owner (``page_get_owner``), a general reference count (``count_info &
PGC_count_mask``, which includes the ``PGC_allocated`` reference held while the domain owns it),
a page type (``PGT_none``, ``PGT_l1..l4_page_table``, ``PGT_seg_desc_page``,
``PGT_writable_page``), a type count (``type_info & PGT_count_mask``) and the ``PGT_pinned`` and
``PGT_validated`` flags, all held as numpy arrays indexed by MFN. The M2P
(``machine_to_phys_mapping``) is an array too; each domain's P2M lives in its :class:`DomainMM`.

Frame *contents* are only kept for frames that have ever been written as page-table data
(an entry written by ``mmu_update`` or by the guest kernel into one of its own page-table
pages): each such frame gets one row of 512 ``uint64`` entries in a growable 2-D array, so a
domain with gigabytes of data frames costs one row per page-table page, not per frame.

Allocation (``alloc_domheap_page``/``free_domheap_page``) follows ``xen/common/page_alloc.c``:
allocating gives the frame one general reference (``PGC_allocated``); freeing is refused while
any other reference (a mapping, a type use, a pin) remains, or when the caller does not own it.

Simplifications: no NUMA, no scrubbing, no ``PGC_extra``/xenheap distinction; a freed frame's
contents row is released at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hypercalls import errno as E
from hypercalls.ops import DOMID_XEN
from pvsim.mm.x86 import PTES_PER_PAGE, PGT_none

OWNER_FREE = -1


@dataclass
class DomainMM:
    """Per-domain memory state: P2M, owned frames, base pointers, dirty CPUs, log-dirty bitmap."""

    domid: int
    p2m: np.ndarray  # pfn -> mfn (-1 = none)
    nr_vcpus: int = 1
    guest_table: list[int] = field(default_factory=list)  # per vCPU: kernel L4 mfn (0 = none)
    guest_table_user: list[int] = field(default_factory=list)  # per vCPU: user L4 mfn
    ldt_base: list[int] = field(default_factory=list)
    tlb_flushes: int = 0  # flushes of this domain's TLBs (local or remote)
    tlb_flush_epoch: list[int] = field(default_factory=list)  # per vCPU, bumped on every flush
    invlpgs: int = 0
    log_dirty: bool = False
    dirty_bitmap: np.ndarray | None = None  # per pfn, for log-dirty
    mode: str = "pv"
    privileged: bool = False  # may map other domains' frames (dom0 / control domain)
    running: list[bool] | None = None  # per vCPU: holds a pCPU (dirty_cpumask); None = all
    last_flush_time: int = 0  # MachineMemory.tlbflush_clock at this domain's last full flush

    def __post_init__(self):
        n = self.nr_vcpus
        self.guest_table = self.guest_table or [0] * n
        self.guest_table_user = self.guest_table_user or [0] * n
        self.ldt_base = self.ldt_base or [0] * n
        self.tlb_flush_epoch = self.tlb_flush_epoch or [0] * n


class FreeFrames:
    """The heap's free frames, lowest first, freed frames reused first (LIFO), like the list it
    replaces, without a Python int per never-used frame: ``next`` marks the never-allocated tail
    ``next..n-1``, ``recycled`` holds the frames given back."""

    __slots__ = ("next", "n", "recycled")

    def __init__(self, first: int, n: int):
        self.next, self.n, self.recycled = int(first), int(n), []

    def __len__(self) -> int:
        return len(self.recycled) + (self.n - self.next)

    def __bool__(self) -> bool:
        return bool(self.recycled) or self.next < self.n

    def peek(self) -> int:
        """The frame the next :meth:`pop` returns."""
        return self.recycled[-1] if self.recycled else self.next

    def pop(self) -> int:
        if self.recycled:
            return self.recycled.pop()
        if self.next >= self.n:
            raise IndexError("pop from no free frames")
        f = self.next
        self.next += 1
        return f

    def append(self, mfn: int) -> None:
        self.recycled.append(int(mfn))

    def take(self, k: int) -> np.ndarray:
        """``k`` frames in the order ``k`` pops would give them."""
        r = min(k, len(self.recycled))
        head = self.recycled[len(self.recycled) - r:][::-1]
        del self.recycled[len(self.recycled) - r:]
        fresh = np.arange(self.next, self.next + (k - r), dtype=np.int64)
        self.next += k - r
        return np.concatenate([np.asarray(head, dtype=np.int64), fresh]) if head else fresh


class MachineMemory:
    """The frame table of the simulated host (one per :class:`~pvsim.hypervisor.Hypervisor`)."""

    def __init__(self, nr_frames: int, *, linear_pt: bool = False, preempt_every: int = 0):
        if nr_frames <= 0:
            raise ValueError("nr_frames must be positive")
        self.nr_frames = int(nr_frames)
        n = self.nr_frames
        self.owner = np.full(n, OWNER_FREE, dtype=np.int32)
        self.count = np.zeros(n, dtype=np.int64)  # general references incl. PGC_allocated
        self.allocated = np.zeros(n, dtype=np.bool_)  # PGC_allocated
        self.type = np.zeros(n, dtype=np.int8)  # PGT_*
        self.type_count = np.zeros(n, dtype=np.int64)
        self.pinned = np.zeros(n, dtype=np.bool_)
        self.validated = np.zeros(n, dtype=np.bool_)
        self.m2p = np.full(n, -1, dtype=np.int64)
        self.linear_count = np.zeros(n, dtype=np.int64)  # >0 linear entries held, <0 linear uses
        self.tlbflush_timestamp = np.zeros(n, dtype=np.int64)  # page->tlbflush_timestamp
        self.tlbflush_clock = 1
        self.slot = np.full(n, -1, dtype=np.int64)  # frame -> row of `rows` (contents), -1 = zero page
        self.rows = np.zeros((64, PTES_PER_PAGE), dtype=np.uint64)
        self._free_rows: list[int] = list(range(63, -1, -1))
        # MFN 0 is Xen's (the low 1 MiB is never given to guests, mm.c arch_init_memory), which
        # also lets 0 mean "no base pointer" as Xen's pagetable_null() does.
        self._free_frames = FreeFrames(1, n)
        self.owner[0] = DOMID_XEN
        self.count[0] = 1
        self.allocated[0] = True
        self.linear_pt = bool(linear_pt)  # CONFIG_PV_LINEAR_PT + opt_pv_linear_pt
        self.preempt_every = int(preempt_every)  # hypercall_preempt_check() true every N elements
        self.use_kernels = True  # run batches of L1 updates through pvsim.mm.pvkern
        self.domains: dict[int, DomainMM] = {}
        self._pv = None

    @property
    def pv(self):
        """The :class:`pvsim.mm.pv.DirectPaging` engine working on this frame table, once
        :func:`pvsim.mm.pv.direct_paging` has attached it."""
        return self._pv

    # ------------------------------------------------------------------ domains
    def add_domain(self, domid: int, nr_pages: int, *, nr_vcpus: int = 1, mode: str = "pv",
                   privileged: bool = False) -> DomainMM:
        """Create the domain's memory: allocate ``nr_pages`` frames, fill P2M and M2P."""
        if domid in self.domains:
            raise ValueError(f"domain {domid} already has memory")
        if nr_pages > len(self._free_frames):
            raise ValueError(f"not enough machine memory for {nr_pages} pages")
        dmm = DomainMM(domid, np.full(nr_pages, -1, dtype=np.int64), nr_vcpus=nr_vcpus, mode=mode,
                       privileged=privileged)
        self.domains[domid] = dmm
        # allocate the lowest free frames in one step (as many alloc_domheap_page calls would)
        mf = self._free_frames.take(nr_pages)
        self._claim(mf, domid)
        dmm.p2m[:] = mf
        self.m2p[mf] = np.arange(nr_pages, dtype=np.int64)
        return dmm

    def owned_frames(self, domid: int) -> np.ndarray:
        return np.flatnonzero(self.owner == domid)

    # ------------------------------------------------------------------ allocation
    def alloc_domheap_page(self, domid: int) -> int:
        """Give one free frame to ``domid`` (one general reference, PGC_allocated). -1 if none."""
        if not self._free_frames:
            return -1
        mfn = self._free_frames.pop()
        self._claim(mfn, domid)
        return int(mfn)

    def _claim(self, mf, domid: int) -> None:
        """Frame ``mf`` (or an array of frames) becomes ``domid``'s: allocated, one general
        reference, untyped, unpinned, no m2p entry."""
        self.owner[mf] = domid
        self.count[mf] = 1
        self.allocated[mf] = True
        self.type[mf] = PGT_none
        self.type_count[mf] = 0
        self.pinned[mf] = False
        self.validated[mf] = False
        self.linear_count[mf] = 0
        self.m2p[mf] = -1

    def pad_to(self, align: int, domid: int) -> int:
        """Give ``domid`` free frames until the next frame :meth:`alloc_domheap_page` (or
        :meth:`add_domain`) hands out is a multiple of ``align``; returns how many. The same as
        that many single allocations, done in one step over the never-used tail."""
        ff, n = self._free_frames, 0
        while ff.recycled and ff.peek() % align:
            self.alloc_domheap_page(domid)
            n += 1
        if ff.recycled or not ff:
            return n
        k = min((-ff.next) % align, ff.n - ff.next)
        if k:
            self._claim(ff.take(k), domid)
        return n + k

    def free_domheap_page(self, domid: int, mfn: int) -> int:
        """Return ``mfn`` to the heap. -EINVAL if not owned by ``domid``; -EBUSY if still referenced."""
        if not (0 <= mfn < self.nr_frames) or self.owner[mfn] != domid or not self.allocated[mfn]:
            return -E.EINVAL
        if self.count[mfn] != 1 or self.type_count[mfn] != 0 or self.pinned[mfn]:
            return -E.EBUSY
        dmm = self.domains.get(domid)
        if dmm is not None:
            pfn = int(self.m2p[mfn])
            if 0 <= pfn < len(dmm.p2m) and dmm.p2m[pfn] == mfn:
                dmm.p2m[pfn] = -1
            for tables in (dmm.guest_table, dmm.guest_table_user):
                if mfn in tables:  # cannot happen with a type_count of 0, kept as a guard
                    return -E.EBUSY
        self.allocated[mfn] = False
        self.count[mfn] = 0
        self._release(mfn)
        return 0

    def _release(self, mfn: int) -> None:
        self.owner[mfn] = OWNER_FREE
        self.type[mfn] = PGT_none
        self.validated[mfn] = False
        self.m2p[mfn] = -1
        s = int(self.slot[mfn])
        if s >= 0:
            self.rows[s] = 0
            self._free_rows.append(s)
            self.slot[mfn] = -1
        self._free_frames.append(int(mfn))

    # ------------------------------------------------------------------ references
    def get_page(self, mfn: int, domid: int) -> bool:
        """``get_page(page, d)``: take a general reference if ``domid`` owns the in-use frame."""
        if not (0 <= mfn < self.nr_frames) or self.owner[mfn] != domid or self.count[mfn] <= 0:
            return False
        self.count[mfn] += 1
        return True

    def put_page(self, mfn: int) -> None:
        c = self.count[mfn] - 1
        if c < 0:
            raise AssertionError(f"general count underflow on mfn {mfn}")
        self.count[mfn] = c
        if c == 0:
            self._release(mfn)

    # ------------------------------------------------------------------ contents
    def entries(self, mfn: int) -> np.ndarray:
        """The 512 entries of frame ``mfn`` (a row created on first use, zero-filled)."""
        s = int(self.slot[mfn])
        if s < 0:
            if not self._free_rows:
                old = self.rows.shape[0]
                self.rows = np.concatenate([self.rows, np.zeros((old, PTES_PER_PAGE), np.uint64)])
                self._free_rows.extend(range(2 * old - 1, old - 1, -1))
            s = self._free_rows.pop()
            self.slot[mfn] = s
        return self.rows[s]

    def read_entry(self, mfn: int, idx: int) -> int:
        s = int(self.slot[mfn])
        return 0 if s < 0 else int(self.rows[s, idx])

    def write_entry(self, mfn: int, idx: int, val: int) -> None:
        self.entries(mfn)[idx] = np.uint64(val & 0xFFFFFFFFFFFFFFFF)

    def has_contents(self, mfn: int) -> bool:
        return self.slot[mfn] >= 0
