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
ordered LRU lists), :func:`_translate_kernel` (``@njit(cache=True)``) and :func:`translate`.

Simplifications: no TLB prefetching or page-splintering penalties; a 2-D TLB entry has the smaller
of the guest and host page sizes; the host walk of a 2-D walk has no separate PWC (only the NTLB).
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
MFN_MASK = np.uint64(0x000FFFFFFFFFF000)
PSE = 0x80
RW = 0x2
ACC = 0x20
DIRTY = 0x40
_U = np.uint64


def level_shift(level: int) -> int:
    return 12 + 9 * (level - 1)


# ============================================================================ kernel
@njit(cache=True)
def _lru_find(tags, base, n, key):
    for i in range(n):
        if tags[base + i] == key:
            return i
    return -1


@njit(cache=True)
def _lru_victim(tags, stamps, base, n):
    best = 0
    bs = stamps[base]
    for i in range(n):
        if tags[base + i] == -1:
            return i
        if stamps[base + i] < bs:
            bs = stamps[base + i]
            best = i
    return best


@njit(cache=True)
def _host_walk(rows, slot, h_root, h_levels, gpa, ntlb_tag, ntlb_val, ntlb_stamp, n_ntlb, ck):
    """gpa -> (machine frame of the 4K page or -1 on a fault, host leaf level | writable << 3,
    references made, 1 if the nested TLB hit, updated LRU clock)."""
    gfn = gpa >> 12
    nbase = 0
    nways = 0
    if n_ntlb > 0:
        nways = min(ASSOC, n_ntlb)
        nbase = (gfn % (n_ntlb // nways)) * nways
        w = _lru_find(ntlb_tag, nbase, nways, gfn)
        if w >= 0:
            ck += 1
            ntlb_stamp[nbase + w] = ck
            return ntlb_val[nbase + w] >> 4, ntlb_val[nbase + w] & 15, 0, 1, ck
    tbl = h_root
    level = h_levels
    hw = 1
    refs = 0
    while True:
        s = slot[tbl]
        refs += 1
        if s < 0:
            return -1, level, refs, 0, ck
        idx = (gpa >> (12 + 9 * (level - 1))) & 511
        e = rows[s, idx]
        if (e & _U(1)) == _U(0):
            return -1, level, refs, 0, ck
        nxt = np.int64((e & MFN_MASK) >> _U(12))
        if (e & _U(RW)) == _U(0):
            hw = 0
        if level == 1 or (level <= 3 and (e & _U(PSE)) != _U(0)):
            mfn = nxt + ((gpa >> 12) & ((np.int64(1) << (9 * (level - 1))) - 1))
            info = level | (hw << 3)
            if n_ntlb > 0:
                w = nbase + _lru_victim(ntlb_tag, ntlb_stamp, nbase, nways)
                ck += 1
                ntlb_tag[w] = gfn
                ntlb_val[w] = (mfn << 4) | info
                ntlb_stamp[w] = ck
            return mfn, info, refs, 0, ck
        tbl = nxt
        level -= 1


@njit(cache=True)
def _translate_kernel(rows, slot, vas, writes, start, root, levels, two_d, h_root, h_levels, tag,
                      tlb_tag, tlb_val, tlb_stamp, tlb_sets, tlb_ways,
                      pwc_tag, pwc_val, pwc_stamp, pwc_n,
                      ntlb_tag, ntlb_val, ntlb_stamp, n_ntlb, clock, out):
    """Translate vas[start:] (TLB, then a 1-D or 2-D walk). Stops at the first fault.

    tlb_*: (3, max_sets*max_ways) per page size; pwc_*: (6, max_entries) per level (index =
    level of the cached entry, 2..levels); ntlb_*: (max_entries,). out: N_OUT counters.
    """
    n = vas.shape[0]
    out[O_STOP] = n
    # which TLB sizes can hold anything (an empty TLB never hits: skip probing it)
    live0 = tlb_sets[0] > 0
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
    any_pwc = False
    for lv in range(2, levels + 1):
        if pwc_n[lv] > 0:
            any_pwc = True
    accesses = 0
    hits = 0
    misses = 0
    refs = 0
    grefs = 0
    hrefs = 0
    pwc_hits = 0
    ntlb_hits = 0
    dirty = 0
    ck = clock[0]
    for i in range(start, n):
        va = vas[i]
        wr = writes[i]
        accesses += 1
        hit = False
        for sz in range(3):
            if sz == 0:
                if not live0:
                    continue
            elif sz == 1:
                if not live1:
                    continue
            elif not live2:
                continue
            ns = tlb_sets[sz]
            nw = tlb_ways[sz]
            vpn = va >> (12 + 9 * sz)
            if (ns & (ns - 1)) == 0:
                base = (vpn & (ns - 1)) * nw  # same as vpn % ns for a power of two
            else:
                base = (vpn % ns) * nw
            key = (vpn << 12) | tag
            w = -1
            for j in range(nw):
                if tlb_tag[sz, base + j] == key:
                    w = j
                    break
            if w >= 0:
                if wr and (tlb_val[sz, base + w] & 1) == 0:
                    # cached translation is read-only (or its D bit clear): treat as a miss
                    tlb_tag[sz, base + w] = -1
                    break
                ck += 1
                tlb_stamp[sz, base + w] = ck
                hit = True
                break
        if hit:
            hits += 1
            continue
        misses += 1
        # ---- page-walk caches: the longest cached prefix
        tbl = root  # 1-D: a machine frame; 2-D: a guest frame number
        level = levels
        if any_pwc:
            for lv in range(2, levels + 1):
                m = pwc_n[lv]
                if m == 0:
                    continue
                key = va >> (12 + 9 * (lv - 1))
                pw = min(ASSOC, m)
                pb = (key % (m // pw)) * pw
                w = -1
                for j in range(pb, pb + pw):
                    if pwc_tag[lv, j] == key:
                        w = j
                        break
                if w >= 0:
                    ck += 1
                    pwc_stamp[lv, w] = ck
                    tbl = pwc_val[lv, w]
                    level = lv - 1
                    pwc_hits += 1
                    break
        # ---- the walk
        fault = FAULT_NONE
        leaf_level = 1
        writable = True
        entry_row = -1
        entry_idx = 0
        final = np.int64(0)
        while True:
            if two_d:
                mfn, hl, hr, nh, ck = _host_walk(rows, slot, h_root, h_levels, tbl << 12, ntlb_tag, ntlb_val,
                                                 ntlb_stamp, n_ntlb, ck)
                refs += hr
                hrefs += hr
                ntlb_hits += nh
                if mfn < 0:
                    fault = FAULT_HOST
                    break
            else:
                mfn = tbl
            s = slot[mfn]
            refs += 1
            grefs += 1
            if s < 0:
                fault = FAULT_GUEST
                break
            idx = (va >> (12 + 9 * (level - 1))) & 511
            e = rows[s, idx]
            if (e & _U(1)) == _U(0):
                fault = FAULT_GUEST
                break
            if (e & _U(RW)) == _U(0):
                writable = False
            nxt = np.int64((e & MFN_MASK) >> _U(12))
            if level == 1 or (level <= 3 and (e & _U(PSE)) != _U(0)):
                leaf_level = level
                entry_row = s
                entry_idx = idx
                final = nxt + ((va >> 12) & ((np.int64(1) << (9 * (level - 1))) - 1))
                break
            m = pwc_n[level]
            if m > 0:
                key = va >> (12 + 9 * (level - 1))
                pw = min(ASSOC, m)
                pb = (key % (m // pw)) * pw
                w = pb
                bs = pwc_stamp[level, pb]
                for j in range(pb, pb + pw):
                    if pwc_tag[level, j] == -1:
                        w = j
                        break
                    if pwc_stamp[level, j] < bs:
                        bs = pwc_stamp[level, j]
                        w = j
                ck += 1
                pwc_tag[level, w] = key
                pwc_val[level, w] = nxt
                pwc_stamp[level, w] = ck
            tbl = nxt
            level -= 1
        if fault == FAULT_NONE and wr and not writable:
            fault = FAULT_WRITE
        if fault == FAULT_NONE and two_d:
            hm, hl, hr, nh, ck = _host_walk(rows, slot, h_root, h_levels, final << 12, ntlb_tag, ntlb_val,
                                            ntlb_stamp, n_ntlb, ck)
            refs += hr
            hrefs += hr
            ntlb_hits += nh
            if hm < 0:
                fault = FAULT_HOST
            elif wr and (hl >> 3) == 0:
                fault = FAULT_HOST_WRITE  # EPT violation: log-dirty write protection
            else:
                if (hl >> 3) == 0:
                    writable = False  # the cached translation must not allow writes
                if (hl & 7) < leaf_level:
                    leaf_level = hl & 7
        if fault != FAULT_NONE:
            out[O_STOP] = i
            out[O_FAULT_VA] = va
            out[O_FAULT_KIND] = fault
            out[O_ACCESSES] += accesses - 1
            out[O_HITS] += hits
            out[O_MISSES] += misses - 1
            out[O_REFS] += refs
            out[O_GREFS] += grefs
            out[O_HREFS] += hrefs
            out[O_PWC_HITS] += pwc_hits
            out[O_NTLB_HITS] += ntlb_hits
            out[O_DIRTY_SET] += dirty
            clock[0] = ck
            return
        # accessed / dirty bits in the leaf
        e = rows[entry_row, entry_idx]
        if wr and (e & _U(DIRTY)) == _U(0):
            dirty += 1
            e = e | _U(DIRTY)
        rows[entry_row, entry_idx] = e | _U(ACC)
        # fill the TLB of the leaf's size
        sz = leaf_level - 1
        ns = tlb_sets[sz]
        nw = tlb_ways[sz]
        if ns > 0:
            if sz == 1:
                live1 = True
            elif sz == 2:
                live2 = True
            vpn = va >> (12 + 9 * sz)
            base = (vpn % ns) * nw
            w = 0
            bs = tlb_stamp[sz, base]
            for j in range(nw):
                if tlb_tag[sz, base + j] == -1:
                    w = j
                    break
                if tlb_stamp[sz, base + j] < bs:
                    bs = tlb_stamp[sz, base + j]
                    w = j
            ck += 1
            tlb_tag[sz, base + w] = (vpn << 12) | tag
            tlb_val[sz, base + w] = 1 if (writable and wr) or (writable and (e & _U(DIRTY)) != _U(0)) else 0
            tlb_stamp[sz, base + w] = ck
    out[O_ACCESSES] += accesses
    out[O_HITS] += hits
    out[O_MISSES] += misses
    out[O_REFS] += refs
    out[O_GREFS] += grefs
    out[O_HREFS] += hrefs
    out[O_PWC_HITS] += pwc_hits
    out[O_NTLB_HITS] += ntlb_hits
    out[O_DIRTY_SET] += dirty
    clock[0] = ck
    return


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
             ("2d", 4, 2, 4, 2), ("2d", 5, 1, 5, 1), ("2d", 4, 1, 4, 3), ("1d", 5, 1, 4, 1)]
    for kind, gl, gleaf, hl, hleaf in specs:
        npages = int(rng.integers(8, 300))
        setup, vas_mapped = build_translation_setup(kind, guest_levels=gl, guest_leaf=gleaf, host_levels=hl,
                                                    host_leaf=hleaf, npages=npages, rng=rng)
        for cache in (False, True):
            tlb = TLB(sets=(int(rng.integers(1, 8)), 2, 1), ways=(int(rng.integers(1, 5)), 2, 2),
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
for _helper in (_lru_find, _lru_victim, _host_walk):
    register(f"translate.{getattr(_helper, 'py_func', _helper).__name__}", kernel=_helper, reference=_translate_ref_raw,
             cases=lambda rng: (), compare=_compare)
