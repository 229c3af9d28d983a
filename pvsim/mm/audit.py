"""Audit of the frame table against the references actually present (after Xen's ``audit_domain``).

Design note
-----------
Recomputes from scratch, from the contents of every in-use page-table page, the general and
type reference counts every frame must have, and checks the safety properties PV direct paging
exists to keep (``xen/arch/x86/mm.c`` top comment): no domain maps a frame it does not own, no
writable mapping of a page-table page exists, every in-use table is validated and its entries
obey the ``L?_DISALLOW_MASK`` rules and the level structure. Vectorised with numpy so a test can
run it after every one of 100,000 hypercalls.

A table is *in use* when its type is L1..L4 with a non-zero type count and ``PGT_validated``;
only such tables hold references. Expected counts:

* general: ``PGC_allocated`` + pin + base-pointer uses + one per present entry of an in-use
  table naming the frame (a self-referencing linear entry holds none);
* type: pin + base-pointer uses + one per RW L1 entry + one per present L2-L4 entry.
"""

from __future__ import annotations

import numpy as np

from pvsim.mm import x86 as C
from pvsim.mm.frames import MachineMemory

_MFN = np.uint64(C.PTE_MFN_MASK)


def _flags(e: np.ndarray) -> np.ndarray:
    return ((e >> np.uint64(40)) & np.uint64(~0xFFF & 0xFFFFFF)) | (e & np.uint64(0xFFF))


def audit(mm: MachineMemory, *, limit: int = 20) -> list[str]:
    """Every violated invariant as a sentence (empty when the frame table is consistent)."""
    bad: list[str] = []
    n = mm.nr_frames
    exp_count = mm.allocated.astype(np.int64) + mm.pinned.astype(np.int64)
    exp_type = mm.pinned.astype(np.int64).copy()
    for dmm in mm.domains.values():
        for t in list(dmm.guest_table) + list(dmm.guest_table_user):
            if t:
                exp_count[t] += 1
                exp_type[t] += 1
    typ = mm.type.astype(np.int64)
    is_pt = (typ >= 1) & (typ <= 4)
    inuse = is_pt & (mm.type_count > 0) & mm.validated
    # a page-table type in use must be validated (no half-validated frames between calls)
    half = np.flatnonzero(is_pt & (mm.type_count > 0) & ~mm.validated)
    if half.size:
        bad.append(f"page-table frames in use but not validated: {half[:limit].tolist()}")
    tables = np.flatnonzero(inuse & (mm.slot >= 0))
    if tables.size:
        block = mm.rows[mm.slot[tables]]  # (T, 512)
        r, col = np.nonzero(block & np.uint64(1))  # present entries only
        ents = block[r, col]
        tab = tables[r]
        lvl = typ[tab]
        own = mm.owner[tab].astype(np.int64)
        tgt = ((ents & _MFN) >> np.uint64(C.PAGE_SHIFT))
        fl = _flags(ents)
        selfmap = (tgt == tab.astype(np.uint64)) & (lvl >= 2)
        out_of_range = ~selfmap & (tgt >= np.uint64(n))
        if out_of_range.any():
            bad.append("present entries naming frames beyond the frame table")
        live = ~selfmap & ~out_of_range
        tgt_i = np.where(live, tgt, 0).astype(np.int64)
        # ownership: an unprivileged domain maps only its own frames
        privs = {d for d, dm in mm.domains.items() if dm.privileged}
        priv = np.isin(own, list(privs)) if privs else np.zeros(own.shape, bool)
        foreign = live & (mm.owner[tgt_i] != own) & ~priv
        if foreign.any():
            i = int(np.flatnonzero(foreign)[0])
            bad.append(f"domain maps a frame it does not own: table {tab[i]}[{col[i]}] -> "
                       f"{tgt_i[i]} owned by {mm.owner[tgt_i[i]]}")
        rw = (fl & np.uint64(C._PAGE_RW)) != 0
        l1 = lvl == 1
        dis = np.where(l1, C.L1_DISALLOW_MASK, C.L2_DISALLOW_MASK).astype(np.uint64)
        if ((fl & dis) != 0).any():
            bad.append("an in-use table holds an entry with disallowed flags (e.g. _PAGE_PSE)")
        tt = typ[tgt_i]
        wr_bad = live & l1 & rw & (tt != C.PGT_writable_page)
        if wr_bad.any():
            i = int(np.flatnonzero(wr_bad)[0])
            bad.append(f"writable mapping of a non-writable frame (type {C.PGT_NAMES[int(tt[i])]}): "
                       f"table {tab[i]}[{col[i]}]")
        # level structure: Lk entries name validated L(k-1) tables, or RO same-level (linear)
        upper = live & ~l1
        ok_next = (tt == lvl - 1) & mm.validated[tgt_i]
        ok_linear = (tt == lvl) & mm.validated[tgt_i] & ~rw & mm.linear_pt
        wrong = upper & ~(ok_next | ok_linear)
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            bad.append(f"L{lvl[i]} entry {tab[i]}[{col[i]}] names frame {tgt_i[i]} "
                       f"of type {C.PGT_NAMES[int(tt[i])]}")
        if ((lvl == 4) & (col >= C.ROOT_PAGETABLE_FIRST_XEN_SLOT) & (col <= C.ROOT_PAGETABLE_LAST_XEN_SLOT)).any():
            bad.append("a guest entry sits in Xen's L4 slots")
        exp_count += np.bincount(tgt_i[live], minlength=n)[:n]
        exp_type += np.bincount(tgt_i[live & (~l1 | rw)], minlength=n)[:n]
    diff = np.flatnonzero(exp_count != mm.count)
    if diff.size:
        f = diff[:limit]
        bad.append(f"general counts differ at {f.tolist()}: have {mm.count[f].tolist()}, "
                   f"references present {exp_count[f].tolist()}")
    diff = np.flatnonzero(exp_type != mm.type_count)
    if diff.size:
        f = diff[:limit]
        bad.append(f"type counts differ at {f.tolist()}: have {mm.type_count[f].tolist()}, "
                   f"references present {exp_type[f].tolist()}")
    free_owned = np.flatnonzero((mm.count == 0) & (mm.owner >= 0))
    if free_owned.size:
        bad.append(f"frames with no reference still owned: {free_owned[:limit].tolist()}")
    pinned_bad = np.flatnonzero(mm.pinned & ~inuse)
    if pinned_bad.size:
        bad.append(f"pinned frames not in-use page tables: {pinned_bad[:limit].tolist()}")
    return bad


def maps_of(mm: MachineMemory, domid: int) -> np.ndarray:
    """Every frame reachable by a present entry of an in-use table owned by ``domid``."""
    typ = mm.type.astype(np.int64)
    tables = np.flatnonzero((typ >= 1) & (typ <= 4) & (mm.type_count > 0) & mm.validated
                            & (mm.slot >= 0) & (mm.owner == domid))
    if not tables.size:
        return np.zeros(0, dtype=np.int64)
    ents = mm.rows[mm.slot[tables]]
    present = (ents & np.uint64(1)) != 0
    return np.unique(((ents[present] & _MFN) >> np.uint64(C.PAGE_SHIFT)).astype(np.int64))
