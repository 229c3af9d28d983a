"""Batched L1 PTE validation: the common case of ``mmu_update`` as a compiled kernel.

Design note
-----------
The per-entry loop of ``do_mmu_update`` for requests that hit an in-use L1 table
(``mod_l1_entry`` in ``xen/arch/x86/mm.c``): the ``FASTPATH_FLAG_WHITELIST`` fast path, and the
slow path's ``get_page_from_l1e`` (ownership, a ``PGT_writable_page`` type reference for RW
entries, taken at type count 0 by changing the type) followed by ``put_page_from_l1e`` of the old
entry. The kernel handles exactly those cases on the frame-table arrays and *stops* at the first
request it does not handle (a refusal, whose errno the Python path computes; a reference drop to
zero, which frees the frame; an upper-level table; a foreign or unvalidated table; a machphys
update), returning how many it processed, so :class:`pvsim.mm.pv.DirectPaging` runs that request
in Python and calls the kernel again for the rest. Results are identical to the all-Python path
(tested); the kernel only makes long batches (fork of a large process) fast.

Three forms, per ``pvsim.core.kernels``: :func:`l1_batch_ref` (plain Python), :func:`_l1_batch_kernel`
(``@njit(cache=True)``), :func:`l1_batch` (validates and allocates ``out``).

``out``: [processed, validated (get_page_from_l1e), fast-path updates, references dropped].
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pvsim.core.kernels import register
from pvsim.mm import x86 as C

_MFN = np.uint64(C.PTE_MFN_MASK)
_AD = np.uint64(C._PAGE_ACCESSED | C._PAGE_DIRTY)
_WL_CHANGE = np.uint64(C.PTE_MFN_MASK | C.put_pte_flags(~C.FASTPATH_FLAG_WHITELIST & 0xFFFFFF))
_L1_DISALLOW = np.uint64(C.put_pte_flags(C.L1_DISALLOW_MASK))
_RW = np.uint64(C._PAGE_RW)
WRITABLE = C.PGT_writable_page
L1 = C.PGT_l1_page_table


@njit(cache=True)
def _l1_batch_kernel(rows, slot, owner, count, typ, type_count, validated, tlbts, clock,
                     mfns, idxs, vals, cmds, pt_owner, pg_owner, out):
    n = mfns.shape[0]
    nr = owner.shape[0]
    for i in range(n):
        m = mfns[i]
        cmd = cmds[i]
        if cmd != 0 and cmd != 2:
            break
        if m < 0 or m >= nr or owner[m] != pt_owner or count[m] <= 0 or typ[m] != L1 \
                or type_count[m] <= 0 or not validated[m] or slot[m] < 0:
            break
        s = slot[m]
        ix = idxs[i]
        o = rows[s, ix]
        v = vals[i]
        if (v & np.uint64(1)) != np.uint64(0):
            if (v & _L1_DISALLOW) != np.uint64(0):
                break
            if ((o ^ v) & _WL_CHANGE) == np.uint64(0):  # fast path: whitelisted flags only
                if cmd == 2:
                    v = v | (o & _AD)
                rows[s, ix] = v
                out[2] += 1
                out[0] += 1
                continue
            t = np.int64((v & _MFN) >> np.uint64(12))
            if t >= nr or owner[t] != pg_owner or count[t] <= 0:
                break
            rw = (v & _RW) != np.uint64(0)
            if rw and type_count[t] > 0 and typ[t] != WRITABLE:
                break
        # the old entry's references must not fall to zero here (freeing is the Python path's)
        if (o & np.uint64(1)) != np.uint64(0):
            ot = np.int64((o & _MFN) >> np.uint64(12))
            if ot < nr:
                need = 1
                if (v & np.uint64(1)) != np.uint64(0) and np.int64((v & _MFN) >> np.uint64(12)) == ot:
                    need = 0  # the new entry takes its reference first
                if count[ot] <= need:
                    break
        if (v & np.uint64(1)) != np.uint64(0):
            t = np.int64((v & _MFN) >> np.uint64(12))
            count[t] += 1
            if (v & _RW) != np.uint64(0):
                if type_count[t] == 0 and typ[t] != WRITABLE:
                    typ[t] = WRITABLE
                    validated[t] = True
                type_count[t] += 1
            out[1] += 1
            if cmd == 2:
                v = v | (o & _AD)
        rows[s, ix] = v
        if (o & np.uint64(1)) != np.uint64(0):
            ot = np.int64((o & _MFN) >> np.uint64(12))
            if ot < nr:
                if (o & _RW) != np.uint64(0):
                    type_count[ot] -= 1
                    if type_count[ot] == 0 and typ[ot] == WRITABLE:
                        tlbts[ot] = clock
                count[ot] -= 1
                out[3] += 1
        out[0] += 1


def l1_batch_ref(rows, slot, owner, count, typ, type_count, validated, tlbts, clock,
                 mfns, idxs, vals, cmds, pt_owner, pg_owner, out):
    """Plain-Python reference: one request at a time as ``mod_l1_entry`` reads in mm.c."""
    nr = len(owner)
    wl = C.PTE_MFN_MASK | C.put_pte_flags(~C.FASTPATH_FLAG_WHITELIST & 0xFFFFFF)
    dis = C.put_pte_flags(C.L1_DISALLOW_MASK)
    ad = C._PAGE_ACCESSED | C._PAGE_DIRTY

    def in_use_l1(m):
        return (0 <= m < nr and owner[m] == pt_owner and count[m] > 0 and typ[m] == L1
                and type_count[m] > 0 and validated[m] and slot[m] >= 0)

    for m, ix, v, cmd in zip(mfns.tolist(), idxs.tolist(), vals.tolist(), cmds.tolist()):
        if cmd not in (0, 2) or not in_use_l1(m):
            return
        o = int(rows[slot[m], ix])
        present_new = bool(v & 1)
        if present_new:
            if v & dis:
                return
            if not (o ^ v) & wl:
                rows[slot[m], ix] = np.uint64(v | (o & ad) if cmd == 2 else v)
                out[0] += 1
                out[2] += 1
                continue
            t = C.pte_mfn(v)
            if t >= nr or owner[t] != pg_owner or count[t] <= 0:
                return
            if v & C._PAGE_RW and type_count[t] > 0 and typ[t] != WRITABLE:
                return
        old_ref = C.pte_mfn(o) if o & 1 and C.pte_mfn(o) < nr else None
        if old_ref is not None:
            same = present_new and C.pte_mfn(v) == old_ref
            if count[old_ref] <= (0 if same else 1):
                return
        if present_new:
            t = C.pte_mfn(v)
            count[t] += 1
            if v & C._PAGE_RW:
                if type_count[t] == 0 and typ[t] != WRITABLE:
                    typ[t] = WRITABLE
                    validated[t] = True
                type_count[t] += 1
            out[1] += 1
            if cmd == 2:
                v |= o & ad
        rows[slot[m], ix] = np.uint64(v)
        if old_ref is not None:
            if o & C._PAGE_RW:
                type_count[old_ref] -= 1
                if type_count[old_ref] == 0 and typ[old_ref] == WRITABLE:
                    tlbts[old_ref] = clock
            count[old_ref] -= 1
            out[3] += 1
        out[0] += 1


def l1_batch(mm, mfns, idxs, vals, cmds, pt_owner: int, pg_owner: int) -> np.ndarray:
    """Run the kernel on ``mm`` (a MachineMemory). Returns ``out``."""
    mfns = np.ascontiguousarray(mfns, dtype=np.int64)
    idxs = np.ascontiguousarray(idxs, dtype=np.int64)
    vals = np.ascontiguousarray(vals, dtype=np.uint64)
    cmds = np.ascontiguousarray(cmds, dtype=np.int64)
    if not (len(mfns) == len(idxs) == len(vals) == len(cmds)):
        raise ValueError("mfns, idxs, vals, cmds: same length")
    if len(idxs) and (idxs.min() < 0 or idxs.max() > 511):
        raise ValueError("entry indices must be 0..511")
    out = np.zeros(4, dtype=np.int64)
    _l1_batch_kernel(mm.rows, mm.slot, mm.owner, mm.count, mm.type, mm.type_count, mm.validated,
                     mm.tlbflush_timestamp, int(mm.tlbflush_clock), mfns, idxs, vals, cmds,
                     int(pt_owner), int(pg_owner), out)
    return out


def _cases(rng):
    """Random frame tables (a few L1 tables in use, frames of several owners and types) and
    batches mixing fast-path, slow-path, foreign, disallowed and reference-dropping updates."""
    for _ in range(12):
        nr = int(rng.integers(16, 64))
        rows = np.zeros((8, 512), np.uint64)
        slot = np.full(nr, -1, np.int64)
        owner = rng.integers(0, 3, size=nr).astype(np.int32)
        owner[rng.random(nr) < 0.1] = -1
        count = np.where(owner >= 0, rng.integers(1, 4, size=nr), 0).astype(np.int64)
        typ = rng.choice([0, 1, 2, 7], size=nr).astype(np.int8)
        type_count = np.where(typ > 0, rng.integers(0, 3, size=nr), 0).astype(np.int64)
        validated = rng.random(nr) < 0.8
        l1s = rng.choice(nr, size=4, replace=False)
        for k, m in enumerate(l1s):
            owner[m], count[m], typ[m], type_count[m], validated[m], slot[m] = 1, 2, L1, 1, True, k
        tlbts = np.zeros(nr, np.int64)
        n = int(rng.integers(1, 40))
        mfns = np.where(rng.random(n) < 0.9, rng.choice(l1s, size=n), rng.integers(0, nr, size=n)).astype(np.int64)
        idxs = rng.integers(0, 6, size=n).astype(np.int64)
        tg = rng.integers(0, nr + 2, size=n)
        fl = rng.choice([0, 1, 3, 7, 0x23, 0x63, 0x81, 0x103, 1 << 12 | 1], size=n)
        vals = np.array([C.make_pte(int(t), int(f)) for t, f in zip(tg, fl)], dtype=np.uint64)
        cmds = rng.choice([0, 0, 0, 2, 1], size=n).astype(np.int64)
        yield (rows, slot, owner, count, typ, type_count, validated, tlbts, 7, mfns, idxs, vals, cmds, 1,
               1, np.zeros(4, np.int64))


def _compare(k, r):
    if isinstance(k, tuple):
        for a, b in zip(k, r):
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_array_equal(k, r)


register("l1_batch", kernel=_l1_batch_kernel, reference=l1_batch_ref, cases=_cases, compare=_compare)
