"""x86-64 paging bits and Xen-internal page types, verbatim from Xen.

Design note
-----------
This module holds hardware paging bits (``_PAGE_*``, the PTE frame mask, the 4-level geometry,
``get_pte_flags``/``put_pte_flags`` and the PTE helpers) and Xen-internal memory-management
constants (``PGT_*`` page types, ``base_disallow_mask``, ``L?_DISALLOW_MASK``,
``FASTPATH_FLAG_WHITELIST``, Xen's L4 slots). None of it is guest ABI: the hypercall ABI
(``MMU_*``, ``MMUEXT_*``, ``UVMF_*``, ``VMASST_*``, ...) is :mod:`hypercalls.ops`.

Values are copied by name and number from ``xen/arch/x86/include/asm/page.h`` (``_PAGE_*``),
``xen/arch/x86/include/asm/x86_64/page.h`` (``get_pte_flags``, ``_PAGE_NX_BIT``,
``_PAGE_GNTTAB``), ``xen/arch/x86/include/asm/mm.h`` (``PGT_*`` page types),
``xen/arch/x86/include/asm/config.h`` (Xen's L4 slots) and ``xen/arch/x86/mm.c``
(``base_disallow_mask``, ``L?_DISALLOW_MASK``, ``FASTPATH_FLAG_WHITELIST``). Snapshot read:
xen-project/xen c447b7308b (4.23-unstable).

Simplifications: the CPU is assumed to support NX (so ``_PAGE_NX`` is ``_PAGE_NX_BIT``); the
domain is a plain PV domU without I/O resources, so ``l1_disallow_mask`` is ``L1_DISALLOW_MASK``.
"""

from __future__ import annotations

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PTES_PER_PAGE = 512  # L?_PAGETABLE_ENTRIES on x86-64
PADDR_BITS = 52
PADDR_MASK = (1 << PADDR_BITS) - 1
PTE_MFN_MASK = PADDR_MASK & ~(PAGE_SIZE - 1)  # bits 12..51 of an entry

# _PAGE_* flag bits (asm/page.h), as bits of the 24-bit "flags" integer of get_pte_flags()
_PAGE_PRESENT = 0x001
_PAGE_RW = 0x002
_PAGE_USER = 0x004
_PAGE_PWT = 0x008
_PAGE_PCD = 0x010
_PAGE_ACCESSED = 0x020
_PAGE_DIRTY = 0x040
_PAGE_PAT = 0x080
_PAGE_PSE = 0x080
_PAGE_GLOBAL = 0x100
_PAGE_AVAIL = 0xE00
_PAGE_PSE_PAT = 0x1000
_PAGE_AVAIL_HIGH = 0x7FF << 12
_PAGE_NX_BIT = 1 << 23  # x86_64/page.h
_PAGE_GNTTAB = 1 << 22  # x86_64/page.h
_PAGE_NX = _PAGE_NX_BIT  # cpu_has_nx assumed
PAGE_CACHE_ATTRS = _PAGE_PAT | _PAGE_PCD | _PAGE_PWT


def get_pte_flags(x: int) -> int:
    """x86_64/page.h: fold bits 52..63 into bits 12..23 of a 24-bit flags integer."""
    return ((x >> 40) & ~0xFFF) | (x & 0xFFF)


def put_pte_flags(f: int) -> int:
    return ((f & ~0xFFF) << 40) | (f & 0xFFF)


def pte_mfn(x: int) -> int:
    return (x & PTE_MFN_MASK) >> PAGE_SHIFT


def make_pte(mfn: int, flags: int) -> int:
    return ((mfn << PAGE_SHIFT) & PTE_MFN_MASK) | put_pte_flags(flags)


# mm.c arch_init_memory(): the guest-accessible flags; everything else is disallowed.
base_disallow_mask = (~(_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY
                        | _PAGE_AVAIL | _PAGE_AVAIL_HIGH | _PAGE_NX)) & 0xFFFFFF
# mm.c: "Global bit is allowed to be set on L1 PTEs. Intended for user mappings."
L1_DISALLOW_MASK = (base_disallow_mask | _PAGE_GNTTAB) & ~_PAGE_GLOBAL
L2_DISALLOW_MASK = base_disallow_mask  # includes _PAGE_PSE: no PV superpages
L3_DISALLOW_MASK = base_disallow_mask  # l3_disallow_mask(d) for a 64-bit PV domain
L4_DISALLOW_MASK = base_disallow_mask

# mm.c: "PTE flags that a guest may change without re-validating the PTE."
FASTPATH_FLAG_WHITELIST = (_PAGE_NX_BIT | _PAGE_AVAIL_HIGH | _PAGE_AVAIL | _PAGE_GLOBAL
                           | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_USER)


def fastpath_pde_flag_whitelist(linear_pt: bool) -> int:
    """mm.c: without guest linear page tables, _PAGE_RW of a PDE may also change on the fast path."""
    return FASTPATH_FLAG_WHITELIST if linear_pt else (FASTPATH_FLAG_WHITELIST | _PAGE_RW)


def pte_has_changed(o: int, n: int, flags: int) -> bool:
    """``l1e_has_changed(o, n, flags)``: do the frame or any flag in ``flags`` differ?"""
    return bool((o ^ n) & (PTE_MFN_MASK | put_pte_flags(flags)))


# Page types (asm/mm.h, PGT_* >> PGT_type shift)
PGT_none = 0
PGT_l1_page_table = 1
PGT_l2_page_table = 2
PGT_l3_page_table = 3
PGT_l4_page_table = 4
PGT_seg_desc_page = 5
PGT_shared_page = 6
PGT_writable_page = 7
PGT_root_page_table = PGT_l4_page_table
PGT_NAMES = {0: "none", 1: "l1", 2: "l2", 3: "l3", 4: "l4", 5: "seg_desc", 6: "shared", 7: "writable"}

# Xen's L4 slots in every 64-bit PV address space (asm/config.h): HYPERVISOR_VIRT_START
# 0xFFFF800000000000 (slot 256) .. 0xFFFF880000000000 (slot 272).
ROOT_PAGETABLE_FIRST_XEN_SLOT = 256
ROOT_PAGETABLE_LAST_XEN_SLOT = 271


def is_guest_l4_slot(s: int) -> bool:
    return s < ROOT_PAGETABLE_FIRST_XEN_SLOT or s > ROOT_PAGETABLE_LAST_XEN_SLOT


# address-space geometry
L1_SHIFT, L2_SHIFT, L3_SHIFT, L4_SHIFT = 12, 21, 30, 39
LEVEL_SHIFT = {1: L1_SHIFT, 2: L2_SHIFT, 3: L3_SHIFT, 4: L4_SHIFT}


def table_offset(va: int, level: int) -> int:
    return (va >> LEVEL_SHIFT[level]) & (PTES_PER_PAGE - 1)


# Page sizes by name -> the level of the leaf that maps them in 4-level tables (Intel SDM vol. 3
# 4.5: a PDE with PS=1 maps 2 MiB, a PDPTE with PS=1 maps 1 GiB where CPUID.80000001H:EDX.Page1GB)
PAGE_LEVELS = {"4k": 1, "2m": 2, "1g": 3}
PAGE_NAMES = {v: k for k, v in PAGE_LEVELS.items()}
