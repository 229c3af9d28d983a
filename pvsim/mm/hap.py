"""HAP (EPT/NPT): p2m tables as data, two-dimensional walks, log-dirty by write protection.

Design note
-----------
After ``xen/arch/x86/mm/hap/hap.c`` and ``xen/arch/x86/mm/p2m-ept.c``: under HAP the guest owns
its page tables (guest-physical frame numbers inside), the hardware walks them and translates
every guest-physical address it touches through the host p2m table (EPT/NPT), so guest PTE
writes, CR3 loads and INVLPG do not exit; only p2m violations do (MMIO, log-dirty writes).
:class:`P2M` holds the host table (:class:`~pvsim.mm.tables.Radix` in machine frames, 4 KiB,
2 MiB or 1 GiB leaves, 4 or 5 levels); :meth:`P2M.enable_log_dirty` write-protects every RAM
leaf (``p2m_ram_logdirty``) and :meth:`P2M.log_dirty_fault` handles the resulting
``EPT_VIOLATION``: mark the frame dirty, make it writable again (with 2 MiB/1 GiB leaves, the
large page is split first, as Xen's ``ept_split_super_page`` does). The walk itself is
:func:`pvsim.mm.walk.translate` with ``two_d=True``.

:func:`build_translation_setup` builds a complete 1-D or 2-D configuration (used by the tests,
the kernel registry's cases and the benchmark).

Simplifications: this structural P2M has no PML (page-modification logging; what PML costs a
migrating guest is priced by :mod:`pvsim.hypervisor.logdirty`), no populate-on-demand, no p2m types
beyond RAM and MMIO (absent from the p2m).
"""

from __future__ import annotations

import numpy as np

from hypercalls.ops import DOMID_XEN
from pvsim.mm import x86 as C
from pvsim.mm.frames import MachineMemory
from pvsim.mm.tables import LEAF_FLAGS, Radix


class P2M:
    """The host (EPT/NPT) table of one HVM domain: gfn -> mfn."""

    def __init__(self, mm: MachineMemory, *, levels: int = 4, leaf_level: int = 1):
        if leaf_level not in (1, 2, 3):
            raise ValueError("leaf_level must be 1 (4K), 2 (2M) or 3 (1G)")
        self.mm = mm
        self.leaf_level = leaf_level
        self.radix = Radix(mm, self._alloc, levels=levels)
        self.dirty: set[int] = set()
        self.log_dirty = False

    def _alloc(self) -> int:
        mfn = self.mm.alloc_domheap_page(DOMID_XEN)
        if mfn < 0:
            raise MemoryError("no machine memory for p2m tables")
        return mfn

    @property
    def root(self) -> int:
        return self.radix.root

    def map_range(self, gfn0: int, mfn0: int, n: int) -> None:
        """Map gfn0..gfn0+n-1 to mfn0.. (large leaves where alignment and ``leaf_level`` allow)."""
        i = 0
        while i < n:
            g, m = gfn0 + i, mfn0 + i
            lv = self.leaf_level
            while lv > 1:
                span = 1 << (9 * (lv - 1))
                if g % span == 0 and m % span == 0 and n - i >= span:
                    break
                lv -= 1
            self.radix.map(g << 12, m, level=lv, flags=LEAF_FLAGS)
            i += 1 << (9 * (lv - 1))

    def lookup(self, gfn: int) -> int | None:
        return self.radix.lookup(gfn << 12)

    def enable_log_dirty(self) -> int:
        """Write-protect every RAM leaf; returns the number of leaves changed."""
        self.log_dirty = True
        n = 0
        mm = self.mm
        for t in self.radix.tables:
            ents = mm.entries(t)
            # leaves: entries at level 1 tables or PSE entries; table pointers keep RW
            present = (ents & np.uint64(1)) != 0
            pse = (ents & np.uint64(C._PAGE_PSE)) != 0
            is_l1 = self._level_of(t) == 1
            leaf = present & (pse | is_l1)
            n += int(leaf.sum())
            ents[leaf] &= ~np.uint64(C._PAGE_RW)
        return n

    def _level_of(self, table: int) -> int:
        # the level of a table page: depth of its first appearance on a path from the root
        if not hasattr(self, "_levels_cache"):
            self._levels_cache = {}
        if table in self._levels_cache:
            return self._levels_cache[table]
        stack = [(self.radix.root, self.radix.levels)]
        while stack:
            t, lv = stack.pop()
            self._levels_cache[t] = lv
            if lv == 1:
                continue
            ents = self.mm.entries(t)
            for i in np.flatnonzero((ents & np.uint64(1)) != 0):
                e = int(ents[i])
                if not (C.get_pte_flags(e) & C._PAGE_PSE):
                    stack.append((C.pte_mfn(e), lv - 1))
        return self._levels_cache.get(table, 0)

    def log_dirty_fault(self, gfn: int) -> int:
        """EPT violation on a write under log-dirty: mark dirty, restore write access.
        Returns the number of p2m entries written (a split of a large page writes 512 + 1)."""
        slot = self.radix.leaf_slot(gfn << 12)
        if slot is None:
            return 0
        t, i, lv = slot
        e = self.mm.read_entry(t, i)
        writes = 0
        if lv > 1:  # split the large leaf into the next level down
            base = C.pte_mfn(e)
            nt = self._alloc()
            self.radix.tables.append(nt)
            sub = 1 << (9 * (lv - 2))
            flags = C.get_pte_flags(e) & ~C._PAGE_RW
            if lv - 1 == 1:
                flags &= ~C._PAGE_PSE
            for k in range(512):
                self.mm.write_entry(nt, k, C.make_pte(base + k * sub, flags))
            self.mm.write_entry(t, i, C.make_pte(nt, C._PAGE_PRESENT | C._PAGE_RW | C._PAGE_USER))
            if hasattr(self, "_levels_cache"):
                self._levels_cache[nt] = lv - 1
            writes += 513
            return writes + self.log_dirty_fault(gfn)
        self.mm.write_entry(t, i, e | C._PAGE_RW)
        self.dirty.add(gfn)
        return writes + 1

    def clean_dirty(self) -> set[int]:
        """XEN_DOMCTL_SHADOW_OP_CLEAN: return and clear the dirty set, write-protect again."""
        d, self.dirty = self.dirty, set()
        if self.log_dirty:
            self.enable_log_dirty()
        return d


def build_translation_setup(kind: str, *, guest_levels: int = 4, guest_leaf: int = 1, host_levels: int = 4,
                            host_leaf: int = 1, npages: int = 64, rng=None, spread: bool = True):
    """A self-contained translation configuration for tests and benchmarks.

    ``kind`` "1d": one ``guest_levels``-level table in machine frames mapping ``npages`` leaves
    of size ``guest_leaf``. "2d": the same table in guest frames, plus a host p2m of
    ``host_levels`` levels with ``host_leaf`` leaves. Returns ``((rows, slot, root, levels, two_d,
    h_root, h_levels), vas)`` where ``vas`` are the page-aligned mapped virtual addresses.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    gspan = 1 << (9 * (guest_leaf - 1))
    OFFSET = 1 << 19  # guest frame g lives at machine frame OFFSET + g (1 GiB aligned)
    guest_frames = npages * gspan + 4096
    nr = (OFFSET + (1 << 18) + guest_frames + (1 << 18)) if kind == "2d" else (npages * 8 + 4096)
    mm = MachineMemory(min(nr, 1 << 22))
    # virtual pages: spread over the address space so upper levels fan out
    if spread:
        slots = rng.choice(1 << 20, size=npages, replace=False)
    else:
        slots = np.arange(npages)
    vas = (slots.astype(np.int64) * gspan) << 12
    if guest_levels == 5:
        vas = vas | (np.int64(int(rng.integers(0, 4))) << 48)
    if kind == "1d":
        r = Radix(mm, lambda: mm.alloc_domheap_page(DOMID_XEN), levels=guest_levels)
        for k, va in enumerate(vas):
            r.map(int(va), 100000 + k * gspan, level=guest_leaf)
        return (mm.rows, mm.slot, r.root, guest_levels, False, 0, 4), vas
    p2m = P2M(mm, levels=host_levels, leaf_level=host_leaf)
    next_gfn = [1]

    def galloc():
        g = next_gfn[0]
        next_gfn[0] += 1
        return g

    g = Radix(mm, galloc, levels=guest_levels, to_machine=lambda gfn: OFFSET + gfn)
    data0 = 1 << 18  # guest data frames start here (gfn space), aligned for any leaf size
    for k, va in enumerate(vas):
        g.map(int(va), data0 + k * gspan, level=guest_leaf)
    # the p2m: guest table frames and data frames
    hspan = 1 << (9 * (host_leaf - 1))

    def up(x):
        return -(-x // hspan) * hspan

    p2m.map_range(0, OFFSET, up(next_gfn[0] + 1))
    if gspan <= 512 or hspan >= gspan:
        p2m.map_range(data0, OFFSET + data0, up(npages * gspan))
    else:  # 1 GiB guest pages over smaller host leaves: the host maps the first 2 MiB of each
        for k in range(npages):  # (the callers touch the first 4 KiB of a page; 2^18 leaves each is too many)
            p2m.map_range(data0 + k * gspan, OFFSET + data0 + k * gspan, up(512))
    return (mm.rows, mm.slot, g.root, guest_levels, True, p2m.root, host_levels), vas
