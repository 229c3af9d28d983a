"""Building radix page tables as data (native/guest tables, shadow tables, EPT/NPT p2m tables).

Design note
-----------
A :class:`Radix` is one 4- or 5-level x86-64 page table stored in a
:class:`~pvsim.mm.frames.MachineMemory` (entries ``frame << 12 | flags``, ``_PAGE_PSE`` leaves at
level 2 (2 MiB) or 3 (1 GiB)), the shape Intel SDM vol. 3 ch. 4.5 describes and Xen's
``l?e_from_pfn`` builds. Table pages are named in the table's own frame space (machine frames for
native, PV, shadow and p2m tables; guest frames for an HVM guest's tables under HAP), and
``to_machine`` says where a table page's contents live. The guest-side MMU code of each mode uses
it to write its tables; PV guests instead send the same writes through ``mmu_update``.

Simplifications: EPT entries use the same bit layout as ordinary entries (present = bit 0,
writable = bit 1, large = bit 7) instead of EPT's R/W/X bits; memory types are not modelled.
"""

from __future__ import annotations

from typing import Callable

from pvsim.mm import x86 as C
from pvsim.mm.frames import MachineMemory

LEAF_FLAGS = C._PAGE_PRESENT | C._PAGE_RW | C._PAGE_USER
TABLE_FLAGS = C._PAGE_PRESENT | C._PAGE_RW | C._PAGE_USER


class Radix:
    def __init__(self, mm: MachineMemory, alloc: Callable[[], int], *, levels: int = 4,
                 to_machine: Callable[[int], int] | None = None):
        if levels not in (4, 5):
            raise ValueError("levels must be 4 or 5")
        self.mm = mm
        self.alloc = alloc
        self.levels = levels
        self.to_machine = to_machine or (lambda f: f)
        self.root = alloc()
        self.tables: list[int] = [self.root]  # every table page, in its own frame space
        self.mm.entries(self.to_machine(self.root))

    def _index(self, va: int, level: int) -> int:
        return (va >> (12 + 9 * (level - 1))) & 511

    def table_for(self, va: int, level: int, *, create: bool = True) -> int | None:
        """The table page at ``level`` on ``va``'s path (created on demand). None if absent."""
        t = self.root
        for lv in range(self.levels, level, -1):
            m = self.to_machine(t)
            i = self._index(va, lv)
            e = self.mm.read_entry(m, i)
            if not e & 1:
                if not create:
                    return None
                nt = self.alloc()
                self.tables.append(nt)
                self.mm.entries(self.to_machine(nt))
                self.mm.write_entry(m, i, C.make_pte(nt, TABLE_FLAGS))
                t = nt
            elif C.get_pte_flags(e) & C._PAGE_PSE and lv <= 3:
                raise ValueError(f"va {va:#x} is inside a large page at level {lv}")
            else:
                t = C.pte_mfn(e)
        return t

    def map(self, va: int, frame: int, *, level: int = 1, flags: int = LEAF_FLAGS) -> tuple[int, int]:
        """Map ``va`` to ``frame`` with a leaf at ``level`` (1: 4 KiB, 2: 2 MiB, 3: 1 GiB).
        Returns (table page, index) of the leaf entry."""
        t = self.table_for(va, level)
        f = flags | (C._PAGE_PSE if level > 1 else 0)
        i = self._index(va, level)
        self.mm.write_entry(self.to_machine(t), i, C.make_pte(frame, f))
        return t, i

    def leaf_slot(self, va: int) -> tuple[int, int, int] | None:
        """(table page, index, level) of the entry that maps ``va`` (present or not), or None."""
        t = self.root
        for lv in range(self.levels, 0, -1):
            i = self._index(va, lv)
            e = self.mm.read_entry(self.to_machine(t), i)
            if lv == 1 or (e & 1 and C.get_pte_flags(e) & C._PAGE_PSE and lv <= 3):
                return t, i, lv
            if not e & 1:
                return None
            t = C.pte_mfn(e)
        return None

    def lookup(self, va: int) -> int | None:
        s = self.leaf_slot(va)
        if s is None:
            return None
        e = self.mm.read_entry(self.to_machine(s[0]), s[1])
        if not e & 1:
            return None
        return C.pte_mfn(e) + ((va >> 12) & ((1 << (9 * (s[2] - 1))) - 1))
