"""The guest kernel's memory manager over real page tables (every mode).

Design note
-----------
Linux's ``mm/`` as far as page tables go (``fork.c`` ``dup_mmap``/``copy_page_range`` with
copy-on-write, ``exec.c``, ``mmap.c`` ``exit_mmap``/``unmap_region``, ``memory.c``
``handle_mm_fault``), on 4-level x86-64 tables that exist as data in :mod:`pvsim.mm`. Each
process owns an :class:`AddressSpace`: its root, its table pages (by level and address prefix) and
its present pages. How a page-table write, a new address space, a CR3 switch or a TLB flush
reaches the machine is the *backend*'s business (:class:`guest_kernels.mmu.backends.PVBackend` batches
validated updates through ``mmu_update``/``mmuext_op``/``update_va_mapping``;
:class:`guest_kernels.mmu.backends.DirectBackend` stores directly, as an unmodified kernel does, into what the machine side makes of it: plain
memory natively and under HAP, write-protected shadowed tables under shadow paging).

Work reported here is the guest's own (``kernel.*``); the machine side and the hypercall handlers
report theirs.

Page-table pages come from per-level quicklists, as in Linux 2.4's ``include/asm-i386/pgalloc.h``
(``get_pgd_fast``/``pte_alloc_one_fast``; ``free_pte_fast`` pushes a freed table, trimmed to
``pgt_cache_water`` = 25..50 pages by ``check_pgt_cache``): the next fork's tables are the frames
the last exit freed, at the same level. ``clear_page_tables`` clears each upper-level link before
freeing the table below it, so a table leaves (and re-enters) service clean.

Large pages (hugetlbfs / THP, :meth:`GuestMMU.huge_region`): a region mapped by 2 MiB PSE leaves
in PDEs or 1 GiB leaves in PDPTEs, each on an aligned run of contiguous guest frames, as a
benchmark's set-up builds it (``mmap(MAP_HUGETLB)`` and first touch, or THP's
``do_huge_pmd_anonymous_page``). The leaf size is clamped to what the machine side offers
(``guest_page_level_max``: none for PV, at most 2 MiB under shadow paging); a clamped request
is counted (``mm.huge_fallback``), as Linux falls back to 4 KiB pages when the CPU lacks PSE or
pdpe1gb.

Simplifications: one VMA per ``mmap``; file pages are shared read-only mappings of frames the
page cache never frees; no swap, no page-table sharing; huge regions are set up once (unmetered),
never faulted in, split, nor inherited by ``fork``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pvsim.core.meter import Meter  # noqa: F401  (type of platform.meter)

P, RW, US, A, D, PSE = 0x1, 0x2, 0x4, 0x20, 0x40, 0x80
MFN_MASK = 0x000FFFFFFFFFF000
TEXT_VA = 0x400000
MMAP_VA = 0x7F0000000000
HUGE_VA = 0x7E0000000000  # huge regions (1 GiB aligned)
PGT_CACHE_LOW, PGT_CACHE_HIGH = 25, 50  # Linux 2.4 mm/memory.c pgt_cache_water


def pte(frame: int, flags: int) -> int:
    return (frame << 12) | flags


def idx_of(va: int, level: int) -> int:
    return (va >> (12 + 9 * (level - 1))) & 511


@dataclass
class AddressSpace:
    pid: int
    root: int
    parent: int | None = None
    tables: dict = field(default_factory=dict)  # (level, va >> shift(level+1)) -> frame; level 4: root
    pages: dict = field(default_factory=dict)  # vpn -> (frame, flags, kind) kind: anon/file/cow
    next_va: int = TEXT_VA
    regions: list = field(default_factory=list)  # mmap regions: [start_vpn, npages]
    live: bool = False  # in use by the MMU (pinned / loaded)
    huge: dict = field(default_factory=dict)  # leaf level -> (4 KiB page vas of the region, leaves)
    next_huge_va: int = HUGE_VA

    def table_key(self, va: int, level: int) -> tuple:
        return (level, va >> (12 + 9 * level))


class _FramePool:
    """The guest's free pages: ``frames`` in order, then the freed ones most recent first (a stack
    whose untouched part stays the array it was given, not a Python int per page)."""

    __slots__ = ("frames", "i", "back")

    def __init__(self, frames):
        self.frames, self.i, self.back = frames, 0, []

    def __len__(self) -> int:
        return len(self.back) + len(self.frames) - self.i

    def __bool__(self) -> bool:
        return bool(self.back) or self.i < len(self.frames)

    def pop(self) -> int:
        if self.back:
            return self.back.pop()
        f = int(self.frames[self.i])
        self.i += 1
        return f

    def append(self, f: int) -> None:
        self.back.append(f)

    def extend(self, fs) -> None:
        self.back.extend(fs)


class GuestMMU:
    """Processes, address spaces and their page tables; the contract's operations."""

    def __init__(self, mode: str, platform, backend, *, batch: int = 2048, **options):
        self.mode = mode
        self.p = platform
        self.b = backend
        self.batch = int(batch)
        self.options = options
        self.free = _FramePool(backend.frames())
        self.pt_quick: dict[int, list[int]] = {1: [], 2: [], 3: [], 4: []}  # per-level quicklists
        self.procs: dict[int, AddressSpace] = {}
        self.next_pid = 1
        self.current = self._new_as(parent=None)
        self.b.activate(self.current)
        self.b.switch(self.current)

    # ------------------------------------------------------------------ helpers
    @property
    def meter(self):
        return self.p.meter

    def _alloc(self) -> int:
        if not self.free:
            raise MemoryError("guest out of memory")
        return self.free.pop()

    def _release(self, f: int) -> None:
        self.free.append(f)

    def _alloc_table(self, level: int) -> int:
        """A page for a new level-``level`` table: the quicklist's most recently freed first."""
        q = self.pt_quick[level]
        return q.pop() if q else self._alloc()

    def _release_table(self, level: int, f: int) -> None:
        self.pt_quick[level].append(f)
        if sum(len(q) for q in self.pt_quick.values()) > PGT_CACHE_HIGH:
            # check_pgt_cache: trim the quicklists to the low-water mark, oldest entries first
            while sum(len(q) for q in self.pt_quick.values()) > PGT_CACHE_LOW:
                q = max(self.pt_quick.values(), key=len)
                self._release(q.pop(0))

    def _new_as(self, parent: int | None) -> AddressSpace:
        root = self._alloc_table(4)
        self.b.clear_page(root)
        a = AddressSpace(self.next_pid, root, parent)
        a.tables[(4, 0)] = root
        self.procs[a.pid] = a
        self.next_pid += 1
        return a

    def _kernel(self, cause: str, price: str, n: float = 1) -> None:
        self.meter.add(cause, price, n)

    def _ensure_table(self, a: AddressSpace, va: int, level: int, writes: list) -> int:
        """The table page at ``level`` on ``va``'s path, creating missing ones; the link writes
        into existing (possibly live) tables are appended to ``writes``."""
        parent = a.root
        for lv in range(4, level, -1):
            key = a.table_key(va, lv - 1)
            t = a.tables.get(key)
            if t is None:
                t = self._alloc_table(lv - 1)
                self.b.clear_page(t)  # a clean page: plain memory in every mode unless still traced
                a.tables[key] = t
                writes.append((parent, idx_of(va, lv), pte(t, P | RW | US)))
            parent = t
        return parent

    def _populate(self, a: AddressSpace, n: int, kind: str = "anon") -> None:
        """Give ``a`` ``n`` more present pages (set-up of a process assumed to exist: not charged)."""
        with self.b.unmetered():
            writes: list = []
            for _ in range(n):
                va = a.next_va
                a.next_va += 4096
                t = self._ensure_table(a, va, 1, writes)
                f = self._alloc()
                flags = P | RW | US | A | D if kind == "anon" else P | US | A
                writes.append((t, idx_of(va, 1), pte(f, flags)))
                a.pages[va >> 12] = (f, flags, kind)
            self.b.write(a, writes, live=a.live)
            if a is self.current:  # a running process has touched its pages (TLB, shadows)
                vpns = np.fromiter(a.pages.keys(), dtype=np.int64)
                self.b.access(vpns << 12, np.zeros(len(vpns), bool), 0)

    def _alloc_contig(self, span: int) -> int:
        """The first of ``span`` contiguous free frames aligned to ``span`` (a large page), taken
        from the untouched part of the pool; frames skipped to reach alignment stay free."""
        fr, pool = self.free.frames, self.free
        while pool.i + span <= len(fr):
            f0 = int(fr[pool.i])
            if f0 % span == 0 and int(fr[pool.i + span - 1]) == f0 + span - 1:
                pool.i += span
                return f0
            pool.back.insert(0, f0)  # kept free, handed out after the freed ones
            pool.i += 1
        raise MemoryError(f"guest out of memory: no aligned run of {span} frames for a large page")

    def page_level(self, level: int) -> int:
        """The leaf level the guest gets for a request of ``level`` (clamped to the machine's)."""
        return max(1, min(int(level), self.b.m.guest_page_level_max()))

    def huge_region(self, pages: int, level: int) -> np.ndarray:
        """Set-up (unmetered): the current process's region of at least ``pages`` 4 KiB pages
        mapped with level-``level`` leaves (2: 2 MiB, 3: 1 GiB), touched once; returns the vas
        of its 4 KiB pages. Level 1, or a level the machine does not offer (counted as
        ``mm.huge_fallback``), gives the process's ordinary present pages."""
        got = self.page_level(level)
        if got != level:
            self.meter.count("mm.huge_fallback")
        a = self.current
        if got == 1:
            if len(a.pages) < pages:
                self._populate(a, pages - len(a.pages))
            return np.fromiter(a.pages.keys(), dtype=np.int64)[:pages] << 12
        have = a.huge.get(got)
        if have is not None and len(have[0]) >= pages:
            return have[0][:pages]
        span = 1 << (9 * (got - 1))
        nleaves = -(-int(pages) // span)
        va0 = -(-a.next_huge_va // (span << 12)) * (span << 12)
        with self.b.unmetered():
            writes: list = []
            for k in range(nleaves):
                va = va0 + (k * span << 12)
                t = self._ensure_table(a, va, got, writes)
                writes.append((t, idx_of(va, got), pte(self._alloc_contig(span), P | RW | US | A | D | PSE)))
            self.b.write(a, writes, live=a.live)
            a.next_huge_va = va0 + (nleaves * span << 12)
            vas = np.int64(va0) + (np.arange(nleaves * span, dtype=np.int64) << 12)
            if a is self.current:
                self.b.access(vas[::span], np.zeros(nleaves, bool), 0)
        a.huge[got] = (vas, nleaves)
        return vas[:pages]

    def populate(self, pages: int) -> None:
        """Set-up: give the current process ``pages`` present, touched pages (unmetered), as a
        benchmark's initialisation pass leaves them."""
        have = len(self.current.pages)
        if have < pages:
            self._populate(self.current, pages - have)

    # ------------------------------------------------------------------ contract operations
    def fork(self, pages: int, anon: int | None = None) -> None:
        """``copy_page_range``: the child gets copies of the parent's tables; private writable pages
        become read-only (copy-on-write) in both. With ``anon`` the parent has ``pages`` present
        pages of which ``anon`` private writable ones and the rest file-backed read-only (text),
        whose PTEs Linux 2.6 does not copy (a VMA without ``anon_vma``: the child faults them in)."""
        parent = self.current
        have = len(parent.pages)
        if anon is not None:
            anon = min(int(anon), pages)
            files = sum(1 for (_, _, k) in parent.pages.values() if k == "file")
            if files < pages - anon:
                self._populate(parent, pages - anon - files, "file")
            have = len(parent.pages)
        if have < pages:
            self._populate(parent, pages - have)
        self._kernel("kernel.fork", "native.pte_write_cycles", 0)
        child = self._new_as(parent.pid)
        child.next_va = parent.next_va
        child.regions = [list(r) for r in parent.regions]
        fresh: list = []
        parent_wp: list = []
        for (lv, key), t in sorted(parent.tables.items(), key=lambda kv: -kv[0][0]):
            if lv == 4:
                continue
            nt = self._alloc_table(lv)
            self.b.clear_page(nt)
            child.tables[(lv, key)] = nt
        for (lv, key), t in parent.tables.items():
            if lv == 4:
                continue
            # link it from the child's table one level up
            va = key << (12 + 9 * lv)
            up = child.root if lv == 3 else child.tables[(lv + 1, va >> (12 + 9 * (lv + 1)))]
            fresh.append((up, idx_of(va, lv + 1), pte(child.tables[(lv, key)], P | RW | US)))
        for vpn, (f, flags, kind) in parent.pages.items():
            if anon is not None and kind == "file":
                continue  # no anon_vma: not copied, faulted in by the child on first touch
            va = vpn << 12
            l1c = child.tables[(1, va >> 21)]
            l1p = parent.tables[(1, va >> 21)]
            nflags = flags
            if flags & RW and kind != "shared":
                nflags = flags & ~RW
                parent_wp.append((l1p, idx_of(va, 1), pte(f, nflags)))
                parent.pages[vpn] = (f, nflags, "cow")
                kind = "cow"
            fresh.append((l1c, idx_of(va, 1), pte(f, nflags)))
            child.pages[vpn] = (f, nflags, kind)
        self.meter.count("fork.ptes_copied", len(child.pages))
        self.b.write(child, fresh, live=False)  # the child's tables are not in use yet
        with self.b.cow_marking():
            self.b.write(parent, parent_wp, live=True)  # write-protect the parent's PTEs
        if parent_wp:
            self.b.flush(parent)
        self.b.activate(child)  # PV: pin the new root (validates the whole tree)

    def _zap(self, a: AddressSpace) -> None:
        """``exit_mmap``/``zap_page_range``: clear every present PTE and free private pages."""
        writes = []
        for vpn, (f, flags, kind) in a.pages.items():
            va = vpn << 12
            writes.append((a.tables[(1, va >> 21)], idx_of(va, 1), 0))
            if kind == "anon" and not self._shared(vpn, f, a):
                self._release(f)
        self.b.write(a, writes, live=a.live)
        a.pages.clear()

    def _free_tables(self, a: AddressSpace) -> None:
        """``clear_page_tables``/``free_pgtables``: clear each link to a table, free the table."""
        links = []
        for (lv, key), t in a.tables.items():
            if lv == 4:
                continue
            va = key << (12 + 9 * lv)
            up = a.root if lv == 3 else a.tables[(lv + 1, va >> (12 + 9 * (lv + 1)))]
            links.append((up, idx_of(va, lv + 1), 0))
        self.b.write(a, links, live=a.live)
        for (lv, key), t in list(a.tables.items()):
            self.b.release_table(t)
            self._release_table(lv, t)
        a.tables.clear()

    def _teardown(self, a: AddressSpace) -> None:
        """Tear down an address space that is not loaded. PV unpins first (``xen_exit_mmap``), so
        the clears are plain stores; an unmodified kernel clears tables that may still be shadowed."""
        self.b.deactivate(a)
        self._zap(a)
        self._free_tables(a)

    def _shared(self, vpn: int, f: int, a: AddressSpace) -> bool:
        for other in self.procs.values():
            if other is not a and other.pages.get(vpn, (None,))[0] == f:
                return True
        return False

    def exit(self, pages: int | None = None) -> None:
        """The most recent process other than the first ends; if it is current, switch to its parent."""
        cands = [p for p in self.procs.values() if p.pid != 1]
        if not cands:
            return
        a = max(cands, key=lambda p: p.pid)
        parent = self.procs.get(a.parent) or self.procs[1]
        if a is self.current and not self.b.switch_before_zap:
            # Linux: exit_mmap runs in the dying task with its tables still loaded
            self._zap(a)
            self.current = parent
            self.b.switch(parent)
            self.b.deactivate(a)
            self._free_tables(a)
        else:
            if a is self.current:  # PV: leave the tables before unpinning them (drop_mm_ref)
                self.current = parent
                self.b.switch(parent)
            self._teardown(a)
        del self.procs[a.pid]
        # the survivors' copy-on-write pages that are no longer shared stay read-only until
        # written (a COW fault then just makes them writable again)

    def exec(self, pages: int) -> None:
        """A new address space (tables for ``pages`` pages) replaces the current one."""
        old = self.current
        new = self._new_as(old.parent)
        new.pid, old_pid = old.pid, new.pid
        del self.procs[old_pid]
        writes: list = []
        for i in range(0, max(1, pages), 512):
            self._ensure_table(new, TEXT_VA + i * 4096, 1, writes)
        self.b.write(new, writes, live=False)
        self.b.activate(new)
        self.current = new
        self.b.switch(new)
        tmp = AddressSpace(-1, old.root, None, old.tables, old.pages, live=old.live)
        self._teardown(tmp)
        self.procs[new.pid] = new

    def mmap(self, pages: int) -> None:
        a = self.current
        start = (MMAP_VA >> 12) + sum(r[1] for r in a.regions) + 16 * len(a.regions)
        a.regions.append([start, int(pages), 0])
        self.meter.count("mmap")

    def munmap(self, pages: int) -> None:
        a = self.current
        if not a.regions:
            return
        start, n, _ = a.regions.pop()
        writes = []
        for vpn in range(start, start + min(n, pages)):
            ent = a.pages.pop(vpn, None)
            if ent is None:
                continue
            va = vpn << 12
            writes.append((a.tables[(1, va >> 21)], idx_of(va, 1), 0))
            if ent[2] == "anon":
                self._release(ent[0])
        self.b.write(a, writes, live=True)
        if writes:
            self.b.flush(a)

    def page_fault(self, kind: str = "anon") -> None:
        """One true demand fault in the current address space, handled by the guest kernel."""
        a = self.current
        self.b.fault_entry()
        self.meter.count("page_fault")
        if kind == "nano":
            return
        if kind == "cow":
            for vpn, (f, flags, k) in a.pages.items():
                if k == "cow":
                    va = vpn << 12
                    nf = f if not self._shared(vpn, f, a) else self._alloc()
                    a.pages[vpn] = (nf, flags | RW | D, "anon")
                    self.b.install(a, va, a.tables[(1, va >> 21)], pte(nf, flags | RW | A | D), flush=True)
                    self._restart(va, True)
                    return
            kind = "anon"
        va = self._fault_va(a)
        writes: list = []
        t = self._ensure_table(a, va, 1, writes)
        if writes:
            self.b.write(a, writes, live=True)
        f = self._alloc()
        flags = P | RW | US | A | D if kind == "anon" else P | US | A
        a.pages[va >> 12] = (f, flags, kind)
        self.b.install(a, va, t, pte(f, flags), flush=False)
        self._restart(va, kind == "anon")

    def _restart(self, va: int, write: bool) -> None:
        """The faulting instruction restarts after the handler's iret: a TLB miss and walk on the
        new entry (under shadow paging a hidden fault if the shadow lacks it; under HAP a 2-D walk)."""
        self.access_trace(np.array([va], dtype=np.int64), np.array([write]))

    def _fault_va(self, a: AddressSpace) -> int:
        for r in reversed(a.regions):
            if r[2] < r[1]:
                vpn = r[0] + r[2]
                r[2] += 1
                return vpn << 12
        va = a.next_va
        a.next_va += 4096
        return va

    def prot_fault(self) -> None:
        self.b.fault_entry()
        self.meter.count("prot_fault")

    def ptemod(self) -> None:
        """One guest PTE write in the current address space (flip the RW bit of a present page)."""
        a = self.current
        if not a.pages:
            self._populate(a, 1)
        vpn, (f, flags, kind) = next(iter(a.pages.items()))
        nflags = flags ^ RW
        a.pages[vpn] = (f, nflags, kind)
        va = vpn << 12
        self.b.write(a, [(a.tables[(1, va >> 21)], idx_of(va, 1), pte(f, nflags))], live=True, single=True)

    def context_switch(self, to: int | None = None) -> None:
        """Switch to process ``to`` (default: the most recent other process; a new one if alone)."""
        if to is None:
            others = [p for p in self.procs if p != self.current.pid]
            if not others:
                with self.b.unmetered():
                    n = self._new_as(self.current.pid)
                    self._populate(n, 4)
                    self.b.activate(n)
                others = [n.pid]
            to = max(others)
        if to not in self.procs:
            with self.b.unmetered():
                n = self._new_as(self.current.pid)
                self.procs[to] = self.procs.pop(n.pid)
                n.pid = to
                self._populate(n, 4)
                self.b.activate(n)
        nxt = self.procs[to]
        if nxt is self.current:
            return
        self.current = nxt
        self.b.switch(nxt)

    def access_trace(self, vas: np.ndarray, writes: np.ndarray) -> np.ndarray:
        """Touch ``vas`` in the current address space (TLB and walks); true faults are demand
        faults handled by the guest kernel, then the trace resumes."""
        vas = np.asarray(vas, dtype=np.int64)
        writes = np.asarray(writes, dtype=bool)
        start = 0
        last = -1
        total = None
        while True:
            out = self.b.access(vas, writes, start)
            total = out if total is None else total + out
            stop = int(out[0])
            if stop >= len(vas):
                break
            if stop == last:
                raise RuntimeError(f"access to {int(vas[stop]):#x} keeps faulting after the demand fault")
            self._demand(int(vas[stop]), bool(writes[stop]))
            start = last = stop
        return total

    def _demand(self, va: int, write: bool) -> None:
        a = self.current
        self.b.fault_entry()
        self.meter.count("page_fault")
        vpn = va >> 12
        ent = a.pages.get(vpn)
        writes: list = []
        t = self._ensure_table(a, va, 1, writes)
        if writes:
            self.b.write(a, writes, live=True)
        if ent is not None:  # a write to a COW or read-only page: make it private and writable
            f, flags, kind = ent
            nf = self._alloc() if self._shared(vpn, f, a) or kind == "file" else f
            a.pages[vpn] = (nf, flags | RW | D, "anon")
            self.b.install(a, va, t, pte(nf, P | RW | US | A | D), flush=True)
            return
        f = self._alloc()
        a.pages[vpn] = (f, P | RW | US | A | D, "anon")
        self.b.install(a, va, t, pte(f, P | RW | US | A | D), flush=False)

    def tlb_refill(self, pages: int) -> None:
        """First touch of ``pages`` present pages of the current address space after a switch."""
        a = self.current
        if len(a.pages) < pages:
            self._populate(a, pages - len(a.pages))
        vpns = np.fromiter(a.pages.keys(), dtype=np.int64)[:pages]
        if len(vpns):
            self.access_trace(vpns << 12, np.zeros(len(vpns), bool))

    def tlb_walks(self, n: float) -> None:
        """``n`` TLB misses priced with this mode's walk length on the current tables."""
        a = self.current
        if not a.pages:
            self._populate(a, 1)
        refs = self.b.refs_per_miss(a, next(iter(a.pages)) << 12)
        self.meter.add("mmu.page_walk", "native.walk_ref_cycles", refs * n)
        self.meter.count("mmu.walk_refs", refs * n)
