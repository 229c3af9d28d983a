"""TLBs and page walks over an access trace, on real radix tables (1-D and 2-D/nested).

Design note
-----------
The hardware side of address translation, as the Intel SDM vol. 3 ch. 4.10 ("Caching
translation information") and Bhargava et al. (ASPLOS'08, two-dimensional walks, page-walk
caches and the nested TLB) describe it, over page tables that exist as data in
:class:`~pvsim.mm.frames.MachineMemory` (entries in Xen's ``l?e`` format:
``mfn << 12 | flags``, ``_PAGE_PSE`` marking a 2 MiB / 1 GiB leaf):

* **TLB**: one set-associative array per page size (4 KiB, 2 MiB, 1 GiB), LRU by stamp, each
  entry tagged by its virtual page number and by an ASID/PCID/VPID tag (``tag``); a lookup probes
  every size (as split L1 DTLBs do). A flush without tagging clears non-global entries (done by
  :class:`TLB.flush`, outside the kernel).
* **1-D walk** (native, PV direct paging, shadow): ``levels`` (4, or 5 with LA57) dependent
  references from the root, stopping at a PSE leaf. With caches off: exactly 4 references per
  miss on 4-level tables.
* **2-D walk** (HAP: EPT/NPT): each guest table's guest-physical address and the final data
  address are translated through the host (p2m) tables; with caches off a miss costs
  ``(n+1)(m+1)-1`` references (4x4: 24, 4x3: 19, 3x3: 15, 5x5: 35), ``n``/``m`` being the guest
  and host levels actually walked.
* **Page-walk caches** (Intel paging-structure caches / AMD PWC): a fully associative LRU cache
  per upper level holding the entry that points to the next table, keyed by the virtual-address
  prefix; the longest hit skips the upper references. **Nested TLB** (AMD NTLB): a fully
  associative LRU cache of guest-frame -> machine-frame translations used by 2-D walks.
* **Accessed/dirty bits**: a write sets ``_PAGE_DIRTY`` in the leaf if it was clear (counted: the
  dirty-bit tracking log-dirty and migration rely on); every used leaf gets ``_PAGE_ACCESSED``.

A walk that meets a not-present entry stops the kernel and reports the index, so that the caller
(a guest kernel's demand fault, or the shadow code's hidden-fault fixup) can fill the tables and
resume: the kernel itself never allocates nor draws random numbers.

Three forms, per ``pvsim.core.kernels``: :func:`translate_ref` (plain Python with dictionaries and
ordered LRU lists: the specification), :func:`_translate_kernel` (``@njit(cache=True)``; it runs
one of two compiled loops, :func:`_loop_1d` or :func:`_loop_2d`, over flat per-call state) and
:func:`translate`. The kernel's counters and A/D bits equal the reference's exactly; how it is made
fast without changing what it computes is described at the top of the kernel section.

Large pages: a PSE leaf at level 2 (2 MiB) or 3 (1 GiB) ends a walk early (native 4-level: 3 or 2
references instead of 4) and fills the TLB of its size. In a 2-D walk the guest leaf level ``g``
and the host (p2m) leaf level ``h`` shorten both dimensions: with ``n = levels - g + 1`` guest and
``m = h_levels - h + 1`` host references per translation, a cold miss costs ``(n+1)(m+1)-1``
(4 KiB/4 KiB 24, 2M/4K and 4K/2M 19, 2M/2M 15, 1G/4K and 4K/1G 14, 1G/2M and 2M/1G 11, 1G/1G 8),
and the TLB entry has the smaller of the two page sizes (a splintered large page): its reach is
``min(guest, host)`` page size.

Simplifications: no TLB prefetching; no STLB shared between page sizes (one array per size); the
host walk of a 2-D walk has no separate PWC (only the NTLB).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numba import njit

from pvsim.core.kernels import register
from pvsim.mm.hap import build_translation_setup

# out[] layout
O_STOP, O_ACCESSES, O_HITS, O_MISSES, O_REFS, O_GREFS, O_HREFS, O_PWC_HITS, O_NTLB_HITS, \
    O_DIRTY_SET, O_FAULT_VA, O_FAULT_KIND, O_WRITE_PROT = range(13)
N_OUT = 13
FAULT_NONE, FAULT_GUEST, FAULT_HOST, FAULT_WRITE, FAULT_HOST_WRITE = 0, 1, 2, 3, 4

SIZE_SHIFTS = np.array([12, 21, 30], dtype=np.int64)
ASSOC = 4  # ways of a page-walk cache / nested TLB (sets = entries // ways)
HINT_WAYS = 4  # 4 KiB TLBs of more ways probe the set's last-used way first
MFN_MASK = np.uint64(0x000FFFFFFFFFF000)
PSE = 0x80
RW = 0x2
ACC = 0x20
DIRTY = 0x40
_U = np.uint64


def level_shift(level: int) -> int:
    return 12 + 9 * (level - 1)


# ============================================================================ kernel
# The work per access: most accesses hit the TLB, which is one set probe of one page size; only a
# miss walks. How it is made fast, without changing what it computes:
# * two compiled loops, _loop_1d and _loop_2d (the 1-D one carries no host-walk state), each with
#   the 4 KiB TLB hit as an inner loop of its own that runs until an access misses: the register
#   allocator then keeps that loop's few values in registers instead of spilling them around the
#   walk code;
# * no calls with array arguments inside the loops (numba would reference-count every array passed
#   to an inlined helper, and not inline the others): probes, walks and fills are written out;
# * a set is probed by comparing all its ways and keeping the first match with a select, never an
#   early exit (which way hits is random: a mispredicted branch costs more than the compares); the
#   LRU victim (first empty way, else the first oldest stamp) is chosen the same way;
# * a 4 KiB TLB of more than HINT_WAYS ways (the modern profile's 12) first compares the way of the
#   set that hit or was filled last (a per-call array, ``mru``), and compares all ways only when
#   that one does not match: a key is in at most one way of its set, so the hint changes no result,
#   and a hot page alone in its set costs one compare instead of twelve (narrow sets, where hot
#   pages share a set and the hint would mispredict, compare all ways at once as before);
# * cache geometry (ways, sets, a mask when the set count is a power of two) is computed once per
#   call, so an access divides only for a non-power-of-two set count; the TLB of a page size that
#   holds nothing is not probed (it cannot hit);
# * one int64 type throughout (page-table entries are uint64 and converted once per entry read).
@njit(cache=True)
def _set_mask(nsets):
    """``nsets - 1`` if ``nsets`` is a power of two (``x % nsets == x & mask``, also for negative
    ``x``), else -1."""
    return nsets - 1 if nsets > 0 and (nsets & (nsets - 1)) == 0 else -1


@njit(cache=True)
def _setup(levels, tlb_tag, tlb_sets, tlb_ways, pwc_n):
    """Per-call invariants: whether the 2 MiB and 1 GiB TLBs hold anything (an empty TLB never hits,
    so it is not probed) and the page-walk caches' geometry: ``geo[0, lv]`` ways (0 = off),
    ``geo[1, lv]`` sets, ``geo[2, lv]`` set mask (or -1), for the cache of level-``lv`` entries."""
    live1 = False
    live2 = False
    for w in range(tlb_sets[1] * tlb_ways[1]):
        if tlb_tag[1, w] != -1:
            live1 = True
            break
    for w in range(tlb_sets[2] * tlb_ways[2]):
        if tlb_tag[2, w] != -1:
            live2 = True
            break
    geo = np.zeros((3, 6), dtype=np.int64)
    for lv in range(2, levels + 1):
        m = pwc_n[lv]
        if m > 0:
            pw = min(ASSOC, m)
            geo[0, lv] = pw
            geo[1, lv] = m // pw
            geo[2, lv] = _set_mask(m // pw)
    return live1, live2, geo


@njit(cache=True)
def _stop(out, i, va, fault, accesses, hits, refs, grefs, hrefs, pwc_hits, ntlb_hits, dirty, clock, ck):
    """Add the counters to ``out`` (misses = accesses - hits); if ``fault`` != FAULT_NONE, the run
    stopped at ``vas[i]`` (not counted as an access)."""
    if fault != FAULT_NONE:
        out[O_STOP] = i
        out[O_FAULT_VA] = va
        out[O_FAULT_KIND] = fault
    out[O_ACCESSES] += accesses
    out[O_HITS] += hits
    out[O_MISSES] += accesses - hits
    out[O_REFS] += refs
    out[O_GREFS] += grefs
    out[O_HREFS] += hrefs
    out[O_PWC_HITS] += pwc_hits
    out[O_NTLB_HITS] += ntlb_hits
    out[O_DIRTY_SET] += dirty
    clock[0] = ck


@njit(cache=True)
def _loop_1d(rows, slot, vas, writes, start, root, levels, tag, tlb_tag, tlb_val, tlb_stamp, tlb_sets, tlb_ways,
             pwc_tag, pwc_val, pwc_stamp, pwc_n, clock, out):
    """:func:`_translate_kernel` with ``two_d`` False (every reference is a guest reference)."""
    n = vas.shape[0]
    out[O_STOP] = n
    live1, live2, geo = _setup(levels, tlb_tag, tlb_sets, tlb_ways, pwc_n)
    any_pwc = geo[0].sum() > 0
    nw0 = tlb_ways[0]
    ns0 = tlb_sets[0] if nw0 > 0 else 0
    mru = np.zeros(max(ns0, 1), dtype=np.int64)  # per 4 KiB set: the way that hit or was filled last
    hint = nw0 > HINT_WAYS  # probe that way first (wide sets only)
    mk0 = _set_mask(ns0)
    masks = (mk0, _set_mask(tlb_sets[1]), _set_mask(tlb_sets[2]))
    hits = 0
    refs = 0
    pwc_hits = 0
    dirty = 0
    ck = clock[0]
    i = start
    while i < n:
        # ---- TLB: 4 KiB first (the common case, a hit, is this inner loop), then 2 MiB and 1 GiB
        found = 0  # 0 absent, 1 hit, 2 present but read-only for a write (dropped: a miss)
        if ns0 > 0:
            while True:
                va = vas[_U(i)]
                wr = writes[_U(i)]
                vpn = va >> 12
                key = (vpn << 12) | tag
                si = (vpn & mk0) if mk0 >= 0 else (vpn % ns0)
                base = si * nw0
                w = mru[_U(si)] if hint else 0
                if not hint or tlb_tag[0, _U(base + w)] != key:
                    w = -1
                    for j in range(nw0 - 1, -1, -1):  # the matching way, by selects
                        if tlb_tag[0, _U(base + j)] == key:
                            w = j
                    if w < 0:
                        break
                    mru[_U(si)] = w
                if wr and (tlb_val[0, _U(base + w)] & 1) == 0:
                    break
                ck += 1
                tlb_stamp[0, _U(base + w)] = ck
                hits += 1
                i += 1
                if i >= n:
                    break
            if i >= n:
                break
            if w >= 0:
                tlb_tag[0, base + w] = -1  # read-only (or D clear) for a write: treat as a miss
                found = 2
        else:
            va = vas[i]
            wr = writes[i]
        if found == 0 and (live1 or live2):
            for sz in range(1, 3):
                if (sz == 1 and not live1) or (sz == 2 and not live2):
                    continue
                ns = tlb_sets[sz]
                nw = tlb_ways[sz]
                mk = masks[sz]
                vpn = va >> (12 + 9 * sz)
                key = (vpn << 12) | tag
                base = ((vpn & mk) if mk >= 0 else (vpn % ns)) * nw
                w = -1
                for j in range(nw):
                    if (tlb_tag[sz, base + j] == key) & (w < 0):
                        w = j
                if w >= 0:
                    if wr & ((tlb_val[sz, base + w] & 1) == 0):
                        tlb_tag[sz, base + w] = -1
                        found = 2
                    else:
                        ck += 1
                        tlb_stamp[sz, base + w] = ck
                        found = 1
                    break
            if found == 1:
                hits += 1
                i += 1
                continue
        # ---- page-walk caches: start from the longest cached prefix
        tbl = root
        level = levels
        if any_pwc:
            for lv in range(2, levels + 1):
                pw = geo[0, lv]
                if pw == 0:
                    continue
                key = va >> (3 + 9 * lv)
                mk = geo[2, lv]
                pb = ((key & mk) if mk >= 0 else (key % geo[1, lv])) * pw
                w = -1
                for j in range(pw):
                    if (pwc_tag[lv, pb + j] == key) & (w < 0):
                        w = j
                if w >= 0:
                    ck += 1
                    pwc_stamp[lv, pb + w] = ck
                    tbl = pwc_val[lv, pb + w]
                    level = lv - 1
                    pwc_hits += 1
                    break
        # ---- the walk
        writable = True
        s = -1
        idx = 0
        e = _U(0)
        while True:
            s = slot[tbl]
            refs += 1
            if s < 0:
                break
            idx = (va >> (3 + 9 * level)) & 511
            e = rows[s, idx]
            if (e & _U(1)) == _U(0):
                s = -1
                break
            writable = writable & ((e & _U(RW)) != _U(0))
            nxt = np.int64((e & MFN_MASK) >> _U(12))
            if level == 1 or (level <= 3 and (e & _U(PSE)) != _U(0)):
                break
            pw = geo[0, level]
            if pw > 0:  # cache the entry pointing to the next table, in the LRU way of its set
                key = va >> (3 + 9 * level)
                mk = geo[2, level]
                pb = ((key & mk) if mk >= 0 else (key % geo[1, level])) * pw
                v = -1
                w = 0
                bs = pwc_stamp[level, pb]
                for j in range(pw):
                    if (pwc_tag[level, pb + j] == -1) & (v < 0):
                        v = j
                    st = pwc_stamp[level, pb + j]
                    if st < bs:
                        bs = st
                        w = j
                w = pb + (v if v >= 0 else w)
                ck += 1
                pwc_tag[level, w] = key
                pwc_val[level, w] = nxt
                pwc_stamp[level, w] = ck
            tbl = nxt
            level -= 1
        if s < 0 or (wr and not writable):
            k = i - start
            _stop(out, i, va, FAULT_GUEST if s < 0 else FAULT_WRITE, k, hits, refs, refs, 0, pwc_hits, 0, dirty,
                  clock, ck)
            return
        # ---- accessed / dirty bits in the leaf (entry idx of row s, at level ``level``)
        if wr and (e & _U(DIRTY)) == _U(0):
            dirty += 1
            e = e | _U(DIRTY)
        rows[s, idx] = e | _U(ACC)
        # ---- fill the TLB of the leaf's size, in the LRU way of its set
        sz = level - 1
        ns = tlb_sets[sz]
        if ns > 0 and tlb_ways[sz] > 0:
            if sz == 1:
                live1 = True
            elif sz == 2:
                live2 = True
            nw = tlb_ways[sz]
            mk = masks[sz]
            vpn = va >> (12 + 9 * sz)
            base = ((vpn & mk) if mk >= 0 else (vpn % ns)) * nw
            v = -1
            w = 0
            bs = tlb_stamp[sz, base]
            for j in range(nw):
                if (tlb_tag[sz, base + j] == -1) & (v < 0):
                    v = j
                st = tlb_stamp[sz, base + j]
                if st < bs:
                    bs = st
                    w = j
            if sz == 0:
                mru[(vpn & mk) if mk >= 0 else (vpn % ns)] = v if v >= 0 else w
            w = base + (v if v >= 0 else w)
            ck += 1
            tlb_tag[sz, w] = (vpn << 12) | tag
            tlb_val[sz, w] = 1 if writable and (e & _U(DIRTY)) != _U(0) else 0  # D is set by now on a write
            tlb_stamp[sz, w] = ck
        i += 1
    k = n - start if n > start else 0
    _stop(out, n, 0, FAULT_NONE, k, hits, refs, refs, 0, pwc_hits, 0, dirty, clock, ck)


@njit(cache=True)
def _loop_2d(rows, slot, vas, writes, start, root, levels, h_root, h_levels, tag,
             tlb_tag, tlb_val, tlb_stamp, tlb_sets, tlb_ways, pwc_tag, pwc_val, pwc_stamp, pwc_n,
             ntlb_tag, ntlb_val, ntlb_stamp, n_ntlb, clock, out):
    """:func:`_translate_kernel` with ``two_d`` True: each guest table frame and the final data
    frame are translated through the host table (the nested TLB first), at one place in the loop."""
    n = vas.shape[0]
    out[O_STOP] = n
    live1, live2, geo = _setup(levels, tlb_tag, tlb_sets, tlb_ways, pwc_n)
    any_pwc = geo[0].sum() > 0
    nw0 = tlb_ways[0]
    ns0 = tlb_sets[0] if nw0 > 0 else 0
    mru = np.zeros(max(ns0, 1), dtype=np.int64)  # per 4 KiB set: the way that hit or was filled last
    hint = nw0 > HINT_WAYS  # probe that way first (wide sets only)
    mk0 = _set_mask(ns0)
    masks = (mk0, _set_mask(tlb_sets[1]), _set_mask(tlb_sets[2]))
    nt_ways = min(ASSOC, n_ntlb) if n_ntlb > 0 else 0
    nt_sets = n_ntlb // nt_ways if nt_ways > 0 else 0
    nt_mask = _set_mask(nt_sets)
    hits = 0
    grefs = 0
    hrefs = 0
    pwc_hits = 0
    ntlb_hits = 0
    dirty = 0
    ck = clock[0]
    i = start
    while i < n:
        # ---- TLB (as in _loop_1d)
        found = 0
        if ns0 > 0:
            while True:
                va = vas[i]
                wr = writes[i]
                vpn = va >> 12
                key = (vpn << 12) | tag
                si = (vpn & mk0) if mk0 >= 0 else (vpn % ns0)
                base = si * nw0
                w = mru[_U(si)] if hint else 0
                if not hint or tlb_tag[0, _U(base + w)] != key:
                    w = -1
                    for j in range(nw0 - 1, -1, -1):
                        if tlb_tag[0, _U(base + j)] == key:
                            w = j
                    if w < 0:
                        break
                    mru[_U(si)] = w
                if wr and (tlb_val[0, _U(base + w)] & 1) == 0:
                    break
                ck += 1
                tlb_stamp[0, base + w] = ck
                hits += 1
                i += 1
                if i >= n:
                    break
            if i >= n:
                break
            if w >= 0:
                tlb_tag[0, base + w] = -1
                found = 2
        else:
            va = vas[i]
            wr = writes[i]
        if found == 0 and (live1 or live2):
            for sz in range(1, 3):
                if (sz == 1 and not live1) or (sz == 2 and not live2):
                    continue
                ns = tlb_sets[sz]
                nw = tlb_ways[sz]
                mk = masks[sz]
                vpn = va >> (12 + 9 * sz)
                key = (vpn << 12) | tag
                base = ((vpn & mk) if mk >= 0 else (vpn % ns)) * nw
                w = -1
                for j in range(nw):
                    if (tlb_tag[sz, base + j] == key) & (w < 0):
                        w = j
                if w >= 0:
                    if wr & ((tlb_val[sz, base + w] & 1) == 0):
                        tlb_tag[sz, base + w] = -1
                        found = 2
                    else:
                        ck += 1
                        tlb_stamp[sz, base + w] = ck
                        found = 1
                    break
            if found == 1:
                hits += 1
                i += 1
                continue
        # ---- page-walk caches (guest dimension; the cached values are guest frames)
        gfn = root
        level = levels
        if any_pwc:
            for lv in range(2, levels + 1):
                pw = geo[0, lv]
                if pw == 0:
                    continue
                key = va >> (3 + 9 * lv)
                mk = geo[2, lv]
                pb = ((key & mk) if mk >= 0 else (key % geo[1, lv])) * pw
                w = -1
                for j in range(pw):
                    if (pwc_tag[lv, pb + j] == key) & (w < 0):
                        w = j
                if w >= 0:
                    ck += 1
                    pwc_stamp[lv, pb + w] = ck
                    gfn = pwc_val[lv, pb + w]
                    level = lv - 1
                    pwc_hits += 1
                    break
        # ---- the 2-D walk: host-translate gfn, then (unless it is the data frame) read the guest entry
        fault = FAULT_NONE
        writable = True
        data = False  # gfn is the final data frame (the guest walk is done)
        s = -1
        idx = 0
        e = _U(0)
        info = 0
        while True:
            # host: gfn -> mfn, through the nested TLB, else a walk of the host table
            mfn = -1
            nb = 0
            if nt_ways > 0:
                nb = ((gfn & nt_mask) if nt_mask >= 0 else (gfn % nt_sets)) * nt_ways
                w = -1
                for j in range(nt_ways):
                    if (ntlb_tag[nb + j] == gfn) & (w < 0):
                        w = j
                if w >= 0:
                    ck += 1
                    ntlb_stamp[nb + w] = ck
                    v = ntlb_val[nb + w]
                    mfn = v >> 4
                    info = v & 15
                    ntlb_hits += 1
            if mfn < 0:
                htbl = h_root
                hl = h_levels
                hw = 1
                while True:
                    hs = slot[htbl]
                    hrefs += 1
                    if hs < 0:
                        break
                    he = rows[hs, (gfn >> (9 * (hl - 1))) & 511]
                    if (he & _U(1)) == _U(0):
                        break
                    hnxt = np.int64((he & MFN_MASK) >> _U(12))
                    if (he & _U(RW)) == _U(0):
                        hw = 0
                    if hl == 1 or (hl <= 3 and (he & _U(PSE)) != _U(0)):
                        mfn = hnxt + (gfn & ((np.int64(1) << (9 * (hl - 1))) - 1))
                        info = hl | (hw << 3)
                        if nt_ways > 0:
                            v = -1
                            w = 0
                            bs = ntlb_stamp[nb]
                            for j in range(nt_ways):
                                if (ntlb_tag[nb + j] == -1) & (v < 0):
                                    v = j
                                st = ntlb_stamp[nb + j]
                                if st < bs:
                                    bs = st
                                    w = j
                            w = nb + (v if v >= 0 else w)
                            ck += 1
                            ntlb_tag[w] = gfn
                            ntlb_val[w] = (mfn << 4) | info
                            ntlb_stamp[w] = ck
                        break
                    htbl = hnxt
                    hl -= 1
                if mfn < 0:
                    fault = FAULT_HOST
                    break
            if data:
                break
            # guest: the entry of this level in the table at machine frame mfn
            s = slot[mfn]
            grefs += 1
            if s < 0:
                fault = FAULT_GUEST
                break
            idx = (va >> (3 + 9 * level)) & 511
            e = rows[s, idx]
            if (e & _U(1)) == _U(0):
                fault = FAULT_GUEST
                break
            writable = writable & ((e & _U(RW)) != _U(0))
            nxt = np.int64((e & MFN_MASK) >> _U(12))
            if level == 1 or (level <= 3 and (e & _U(PSE)) != _U(0)):
                if wr and not writable:
                    fault = FAULT_WRITE
                    break
                gfn = nxt + ((va >> 12) & ((np.int64(1) << (9 * (level - 1))) - 1))
                data = True
                continue
            pw = geo[0, level]
            if pw > 0:
                key = va >> (3 + 9 * level)
                mk = geo[2, level]
                pb = ((key & mk) if mk >= 0 else (key % geo[1, level])) * pw
                v = -1
                w = 0
                bs = pwc_stamp[level, pb]
                for j in range(pw):
                    if (pwc_tag[level, pb + j] == -1) & (v < 0):
                        v = j
                    st = pwc_stamp[level, pb + j]
                    if st < bs:
                        bs = st
                        w = j
                w = pb + (v if v >= 0 else w)
                ck += 1
                pwc_tag[level, w] = key
                pwc_val[level, w] = nxt
                pwc_stamp[level, w] = ck
            gfn = nxt
            level -= 1
        leaf_level = level
        if fault == FAULT_NONE:
            if wr and (info >> 3) == 0:
                fault = FAULT_HOST_WRITE  # EPT violation: log-dirty write protection
            else:
                if (info >> 3) == 0:
                    writable = False  # the cached translation must not allow writes
                if (info & 7) < leaf_level:
                    leaf_level = info & 7
        if fault != FAULT_NONE:
            k = i - start
            _stop(out, i, va, fault, k, hits, grefs + hrefs, grefs, hrefs, pwc_hits, ntlb_hits, dirty, clock, ck)
            return
        # ---- accessed / dirty bits in the guest leaf
        if wr and (e & _U(DIRTY)) == _U(0):
            dirty += 1
            e = e | _U(DIRTY)
        rows[s, idx] = e | _U(ACC)
        # ---- fill the TLB of the smaller of the guest and host page sizes
        sz = leaf_level - 1
        ns = tlb_sets[sz]
        if ns > 0 and tlb_ways[sz] > 0:
            if sz == 1:
                live1 = True
            elif sz == 2:
                live2 = True
            nw = tlb_ways[sz]
            mk = masks[sz]
            vpn = va >> (12 + 9 * sz)
            base = ((vpn & mk) if mk >= 0 else (vpn % ns)) * nw
            v = -1
            w = 0
            bs = tlb_stamp[sz, base]
            for j in range(nw):
                if (tlb_tag[sz, base + j] == -1) & (v < 0):
                    v = j
                st = tlb_stamp[sz, base + j]
                if st < bs:
                    bs = st
                    w = j
            if sz == 0:
                mru[(vpn & mk) if mk >= 0 else (vpn % ns)] = v if v >= 0 else w
            w = base + (v if v >= 0 else w)
            ck += 1
            tlb_tag[sz, w] = (vpn << 12) | tag
            tlb_val[sz, w] = 1 if writable and (e & _U(DIRTY)) != _U(0) else 0
            tlb_stamp[sz, w] = ck
        i += 1
    k = n - start if n > start else 0
    _stop(out, n, 0, FAULT_NONE, k, hits, grefs + hrefs, grefs, hrefs, pwc_hits, ntlb_hits, dirty, clock, ck)


@njit(cache=True)
def _translate_kernel(rows, slot, vas, writes, start, root, levels, two_d, h_root, h_levels, tag,
                      tlb_tag, tlb_val, tlb_stamp, tlb_sets, tlb_ways,
                      pwc_tag, pwc_val, pwc_stamp, pwc_n,
                      ntlb_tag, ntlb_val, ntlb_stamp, n_ntlb, clock, out):
    """Translate vas[start:] (TLB, then a 1-D or 2-D walk). Stops at the first fault.

    tlb_*: (3, max_sets*max_ways) per page size; pwc_*: (6, max_entries) per level (index =
    level of the cached entry, 2..levels); ntlb_*: (max_entries,). out: N_OUT counters.
    """
    if two_d:
        _loop_2d(rows, slot, vas, writes, start, root, levels, h_root, h_levels, tag,
                 tlb_tag, tlb_val, tlb_stamp, tlb_sets, tlb_ways, pwc_tag, pwc_val, pwc_stamp, pwc_n,
                 ntlb_tag, ntlb_val, ntlb_stamp, n_ntlb, clock, out)
    else:
        _loop_1d(rows, slot, vas, writes, start, root, levels, tag, tlb_tag, tlb_val, tlb_stamp, tlb_sets,
                 tlb_ways, pwc_tag, pwc_val, pwc_stamp, pwc_n, clock, out)


# ============================================================================ state objects
class TLB:
    """TLB, page-walk caches and nested TLB state of one (v)CPU, as arrays the kernel updates."""

    def __init__(self, *, sets=(16, 8, 1), ways=(4, 4, 4), pwc=(0, 0, 0, 0), ntlb: int = 0):
        """``sets``/``ways`` per page size (4K, 2M, 1G); ``pwc`` entries for the caches of the L2,
        L3, L4, L5 entries (0 disables one); ``ntlb`` nested-TLB entries (0 disables)."""
        self.sets = np.array(sets, dtype=np.int64)
        self.ways = np.array(ways, dtype=np.int64)
        if (self.sets < 0).any() or (self.ways < 0).any() or len(self.sets) != 3 or len(self.ways) != 3:
            raise ValueError("sets and ways: three non-negative sizes (4K, 2M, 1G)")
        cap = int(max(1, (self.sets * self.ways).max()))
        self.tag = np.full((3, cap), -1, dtype=np.int64)
        self.val = np.zeros((3, cap), dtype=np.int64)
        self.stamp = np.zeros((3, cap), dtype=np.int64)
        pw = [0, 0] + [int(x) for x in pwc] + [0] * (4 - len(pwc))
        for x in pw + [int(ntlb)]:
            if x < 0 or (x > ASSOC and x % ASSOC):
                raise ValueError(f"walk-cache sizes must be 0..{ASSOC} or multiples of {ASSOC}, got {x}")
        self.pwc_n = np.array(pw[:6], dtype=np.int64)
        pcap = int(max(1, self.pwc_n.max()))
        self.pwc_tag = np.full((6, pcap), -1, dtype=np.int64)
        self.pwc_val = np.zeros((6, pcap), dtype=np.int64)
        self.pwc_stamp = np.zeros((6, pcap), dtype=np.int64)
        self.n_ntlb = int(ntlb)
        self.ntlb_tag = np.full(max(1, self.n_ntlb), -1, dtype=np.int64)
        self.ntlb_val = np.zeros(max(1, self.n_ntlb), dtype=np.int64)
        self.ntlb_stamp = np.zeros(max(1, self.n_ntlb), dtype=np.int64)
        self.clock = np.zeros(1, dtype=np.int64)

    def flush(self, tag: int | None = None) -> None:
        """Drop every entry (or only those of ASID/PCID ``tag``), and the walk caches."""
        if tag is None:
            self.tag[:] = -1
        else:
            mine = (self.tag >= 0) & ((self.tag & 0xFFF) == tag)
            self.tag[mine] = -1
        self.pwc_tag[:] = -1
        self.ntlb_tag[:] = -1

    def invlpg(self, va: int, tag: int = 0) -> None:
        for sz in range(3):
            ns, nw = int(self.sets[sz]), int(self.ways[sz])
            if ns == 0:
                continue
            vpn = va >> (12 + 9 * sz)
            base = (vpn % ns) * nw
            key = (vpn << 12) | tag
            row = self.tag[sz, base:base + nw]
            row[row == key] = -1
        self.pwc_tag[:] = -1

    def copy(self) -> "TLB":
        t = TLB.__new__(TLB)
        for k, v in self.__dict__.items():
            setattr(t, k, v.copy() if isinstance(v, np.ndarray) else v)
        return t


def translate(rows, slot, vas, writes, tlb: TLB, *, root: int, levels: int = 4, two_d: bool = False,
              h_root: int = 0, h_levels: int = 4, tag: int = 0, start: int = 0) -> np.ndarray:
    """Run the kernel over ``vas[start:]``; returns the N_OUT counters (``out[O_STOP]`` = stop index)."""
    vas = np.ascontiguousarray(vas, dtype=np.int64)
    writes = np.ascontiguousarray(writes, dtype=np.bool_)
    if vas.shape != writes.shape or vas.ndim != 1:
        raise ValueError("vas and writes: 1-D arrays of the same length")
    if levels not in (4, 5) or (two_d and h_levels not in (4, 5)):
        raise ValueError("levels must be 4 or 5")
    if not (0 <= tag < 4096):
        raise ValueError("tag (ASID/PCID/VPID) must be in 0..4095")
    out = np.zeros(N_OUT, dtype=np.int64)
    _translate_kernel(rows, slot, vas, writes, int(start), int(root), int(levels), bool(two_d), int(h_root),
                      int(h_levels), int(tag), tlb.tag, tlb.val, tlb.stamp, tlb.sets, tlb.ways,
                      tlb.pwc_tag, tlb.pwc_val, tlb.pwc_stamp, tlb.pwc_n,
                      tlb.ntlb_tag, tlb.ntlb_val, tlb.ntlb_stamp, tlb.n_ntlb, tlb.clock, out)
    return out


# ============================================================================ reference
class _LRU:
    """A fully associative LRU of ``n`` entries (OrderedDict: oldest first)."""

    def __init__(self, n):
        self.n = n
        self.d: OrderedDict = OrderedDict()

    def get(self, k):
        if self.n == 0 or k not in self.d:
            return None
        self.d.move_to_end(k)
        return self.d[k]

    def put(self, k, v):
        if self.n == 0:
            return
        if k in self.d:
            self.d.pop(k)
        elif len(self.d) >= self.n:
            self.d.popitem(last=False)
        self.d[k] = v


class _SetLRU:
    """``n`` entries as ``n // ways`` sets of ``ways`` LRU entries, indexed by key modulo sets."""

    def __init__(self, n):
        self.ways = min(ASSOC, n)
        self.nsets = n // self.ways if n else 0
        self.sets = [_LRU(self.ways) for _ in range(self.nsets)]

    def get(self, k):
        return self.sets[k % self.nsets].get(k) if self.nsets else None

    def put(self, k, v):
        if self.nsets:
            self.sets[k % self.nsets].put(k, v)


def _ref_state(tlb: TLB):
    """Decode the kernel's array state into dictionaries (so both start from the same state)."""
    sets = []
    for sz in range(3):
        ns, nw = int(tlb.sets[sz]), int(tlb.ways[sz])
        st = []
        for si in range(ns):
            lru = _LRU(nw)
            items = [(int(tlb.stamp[sz, si * nw + w]), int(tlb.tag[sz, si * nw + w]), int(tlb.val[sz, si * nw + w]))
                     for w in range(nw) if tlb.tag[sz, si * nw + w] != -1]
            for _, k, v in sorted(items):
                lru.put(k, v)
            st.append(lru)
        sets.append(st)
    pwcs = {lv: _SetLRU(int(tlb.pwc_n[lv])) for lv in range(2, 6)}
    for lv in range(2, 6):
        m = int(tlb.pwc_n[lv])
        items = [(int(tlb.pwc_stamp[lv, w]), int(tlb.pwc_tag[lv, w]), int(tlb.pwc_val[lv, w]))
                 for w in range(m) if tlb.pwc_tag[lv, w] != -1]
        for _, k, v in sorted(items):
            pwcs[lv].put(k, v)
    ntlb = _SetLRU(int(tlb.n_ntlb))
    items = [(int(tlb.ntlb_stamp[w]), int(tlb.ntlb_tag[w]), int(tlb.ntlb_val[w]))
             for w in range(tlb.n_ntlb) if tlb.ntlb_tag[w] != -1]
    for _, k, v in sorted(items):
        ntlb.put(k, (v >> 4, v & 7, bool(v & 8)))
    return sets, pwcs, ntlb


def translate_ref(rows, slot, vas, writes, tlb: TLB, *, root: int, levels: int = 4, two_d: bool = False,
                  h_root: int = 0, h_levels: int = 4, tag: int = 0, start: int = 0) -> np.ndarray:
    """Plain-Python reference of :func:`translate` (dictionaries, recursion-free walks).

    It updates ``rows`` (A/D bits) like the kernel but keeps its TLB state in dictionaries, so
    afterwards the caller's ``tlb`` arrays are not updated (compare counters and ``rows``).
    """
    out = [0] * N_OUT
    sets, pwcs, ntlb = _ref_state(tlb)
    n = len(vas)
    out[O_STOP] = n

    def entry(mfn, idx):
        s = int(slot[mfn])
        return None if s < 0 else (s, int(rows[s, idx]))

    def host(gpa):
        gfn = gpa >> 12
        v = ntlb.get(gfn)
        if v is not None:
            out[O_NTLB_HITS] += 1
            return v
        tbl, level, hw = h_root, h_levels, True
        while True:
            out[O_REFS] += 1
            out[O_HREFS] += 1
            got = entry(tbl, (gpa >> level_shift(level)) & 511)
            if got is None or not got[1] & 1:
                return None
            e = got[1]
            hw = hw and bool(e & RW)
            nxt = (e & 0x000FFFFFFFFFF000) >> 12
            if level == 1 or (level <= 3 and e & PSE):
                res = (nxt + ((gpa >> 12) & ((1 << (9 * (level - 1))) - 1)), level, hw)
                ntlb.put(gfn, res)
                return res
            tbl, level = nxt, level - 1

    for i in range(start, n):
        va, wr = int(vas[i]), bool(writes[i])
        out[O_ACCESSES] += 1
        found = False
        for sz in range(3):
            ns = int(tlb.sets[sz])
            if ns == 0:
                continue
            vpn = va >> (12 + 9 * sz)
            lru = sets[sz][vpn % ns]
            key = (vpn << 12) | tag
            if key in lru.d:
                if wr and not lru.d[key]:
                    lru.d.pop(key)
                    break
                lru.get(key)
                found = True
                break
        if found:
            out[O_HITS] += 1
            continue
        out[O_MISSES] += 1
        tbl, level = root, levels
        for lv in range(2, levels + 1):
            v = pwcs[lv].get(va >> level_shift(lv))
            if v is not None:
                tbl, level = v, lv - 1
                out[O_PWC_HITS] += 1
                break
        fault, writable, leaf = FAULT_NONE, True, None
        while True:
            if two_d:
                h = host(tbl << 12)
                if h is None:
                    fault = FAULT_HOST
                    break
                mfn = h[0]
            else:
                mfn = tbl
            out[O_REFS] += 1
            out[O_GREFS] += 1
            idx = (va >> level_shift(level)) & 511
            got = entry(mfn, idx)
            if got is None or not got[1] & 1:
                fault = FAULT_GUEST
                break
            s, e = got
            writable = writable and bool(e & RW)
            nxt = (e & 0x000FFFFFFFFFF000) >> 12
            if level == 1 or (level <= 3 and e & PSE):
                leaf = (s, idx, level, nxt + ((va >> 12) & ((1 << (9 * (level - 1))) - 1)))
                break
            pwcs[level].put(va >> level_shift(level), nxt)
            tbl, level = nxt, level - 1
        if fault == FAULT_NONE and wr and not writable:
            fault = FAULT_WRITE
        leaf_level = leaf[2] if leaf else 1
        if fault == FAULT_NONE and two_d:
            h = host(leaf[3] << 12)
            if h is None:
                fault = FAULT_HOST
            elif wr and not h[2]:
                fault = FAULT_HOST_WRITE
            else:
                writable = writable and h[2]
                leaf_level = min(leaf_level, h[1])
        if fault != FAULT_NONE:
            out[O_STOP], out[O_FAULT_VA], out[O_FAULT_KIND] = i, va, fault
            out[O_ACCESSES] -= 1
            out[O_MISSES] -= 1
            return np.array(out, dtype=np.int64)
        s, idx = leaf[0], leaf[1]
        e = int(rows[s, idx])
        if wr and not e & DIRTY:
            out[O_DIRTY_SET] += 1
            e |= DIRTY
        rows[s, idx] = np.uint64(e | ACC)
        sz = leaf_level - 1
        ns = int(tlb.sets[sz])
        if ns:
            vpn = va >> (12 + 9 * sz)
            sets[sz][vpn % ns].put((vpn << 12) | tag, 1 if writable and (wr or e & DIRTY) else 0)
    return np.array(out, dtype=np.int64)


# ============================================================================ registry
class _ArrayState:
    """The kernel's raw state arrays seen as a :class:`TLB` (for the raw-signature reference)."""

    def __init__(self, tag, val, stamp, sets, ways, pwc_tag, pwc_val, pwc_stamp, pwc_n,
                 ntlb_tag, ntlb_val, ntlb_stamp, n_ntlb, clock):
        self.tag, self.val, self.stamp, self.sets, self.ways = tag, val, stamp, sets, ways
        self.pwc_tag, self.pwc_val, self.pwc_stamp, self.pwc_n = pwc_tag, pwc_val, pwc_stamp, pwc_n
        self.ntlb_tag, self.ntlb_val, self.ntlb_stamp, self.n_ntlb = ntlb_tag, ntlb_val, ntlb_stamp, n_ntlb
        self.clock = clock


def _translate_ref_raw(rows, slot, vas, writes, start, root, levels, two_d, h_root, h_levels, tag,
                       tlb_tag, tlb_val, tlb_stamp, tlb_sets, tlb_ways, pwc_tag, pwc_val, pwc_stamp, pwc_n,
                       ntlb_tag, ntlb_val, ntlb_stamp, n_ntlb, clock, out):
    """Same signature as :func:`_translate_kernel`; the work is :func:`translate_ref`'s."""
    st = _ArrayState(tlb_tag, tlb_val, tlb_stamp, tlb_sets, tlb_ways, pwc_tag, pwc_val, pwc_stamp, pwc_n,
                     ntlb_tag, ntlb_val, ntlb_stamp, n_ntlb, clock)
    res = translate_ref(rows, slot, vas, writes, st, root=root, levels=levels, two_d=two_d,
                        h_root=h_root, h_levels=h_levels, tag=tag, start=start)
    out[:] = res


def _kernel_args(setup, tlb: TLB, vas, writes, tag=0, start=0):
    rows, slot, root, levels, two_d, h_root, h_levels = setup
    return (rows, slot, np.asarray(vas, np.int64), np.asarray(writes, np.bool_), start, root, levels, two_d,
            h_root, h_levels, tag, tlb.tag, tlb.val, tlb.stamp, tlb.sets, tlb.ways,
            tlb.pwc_tag, tlb.pwc_val, tlb.pwc_stamp, tlb.pwc_n,
            tlb.ntlb_tag, tlb.ntlb_val, tlb.ntlb_stamp, tlb.n_ntlb, tlb.clock, np.zeros(N_OUT, np.int64))


def _cases(rng):
    specs = [("1d", 4, 1, 4, 1), ("1d", 4, 2, 4, 1), ("2d", 4, 1, 4, 1), ("2d", 4, 1, 4, 2),
             ("2d", 4, 2, 4, 2), ("2d", 5, 1, 5, 1), ("2d", 4, 1, 4, 3), ("1d", 5, 1, 4, 1),
             ("1d", 4, 3, 4, 1), ("2d", 4, 3, 4, 1), ("2d", 4, 2, 4, 3), ("2d", 4, 3, 4, 3)]
    for kind, gl, gleaf, hl, hleaf in specs:
        npages = int(rng.integers(8, 300))
        setup, vas_mapped = build_translation_setup(kind, guest_levels=gl, guest_leaf=gleaf, host_levels=hl,
                                                    host_leaf=hleaf, npages=npages, rng=rng)
        for cache in (False, True):
            tlb = TLB(sets=(int(rng.integers(1, 8)), 2, 1), ways=(int(rng.integers(1, 13)), 2, 2),
                      pwc=(4, 2, 1, 1) if cache else (0, 0, 0, 0), ntlb=8 if cache else 0)
            n = int(rng.integers(50, 600))
            vas = vas_mapped[rng.integers(0, len(vas_mapped), size=n)] + rng.integers(0, 4096, size=n)
            if rng.random() < 0.5:  # an unmapped address somewhere: the walk must stop there
                vas[int(rng.integers(0, n))] = (1 << 46) + 12345 * 4096
            writes = rng.random(n) < 0.3
            yield _kernel_args(setup, tlb, vas, writes, tag=int(rng.integers(0, 3)))
    # edge: empty trace, start beyond end
    setup, vm = build_translation_setup("1d", guest_levels=4, guest_leaf=1, host_levels=4, host_leaf=1,
                                        npages=4, rng=rng)
    yield _kernel_args(setup, TLB(), vm[:0], np.zeros(0, bool))
    yield _kernel_args(setup, TLB(sets=(0, 0, 0), ways=(0, 0, 0)), vm, np.ones(len(vm), bool))


def _compare(k, r):
    """Counters (``out``) must be identical; given whole argument tuples, the page tables' A/D
    bits (``rows``) too."""
    if isinstance(k, tuple):
        np.testing.assert_array_equal(k[-1], r[-1])
        np.testing.assert_array_equal(k[0], r[0])
    else:
        np.testing.assert_array_equal(k, r)


register("translate", kernel=_translate_kernel, reference=_translate_ref_raw, cases=_cases, compare=_compare)
# helpers called only from inside _translate_kernel: exercised through the "translate" cases
for _helper in (_set_mask, _setup, _stop, _loop_1d, _loop_2d):
    register(f"translate.{getattr(_helper, 'py_func', _helper).__name__}", kernel=_helper, reference=_translate_ref_raw,
             cases=lambda rng: (), compare=_compare)
