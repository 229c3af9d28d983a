"""Per-page dirty tracking of a migrating guest: its page versions, the log-dirty bitmap and the
writes of its workload, page by page.

Design note
-----------
Models Xen's log-dirty mode as the save engine sees it (``xen/arch/x86/mm/paging.c``
``paging_log_dirty_op``; shadow log-dirty ``sh_enable_log_dirty`` for PV, ``p2m_ram_logdirty`` for
HAP; ``XEN_DOMCTL_SHADOW_OP_CLEAN`` / ``PEEK`` in ``xen/include/public/domctl.h``): one bit per pfn,
set by the first write to the page after the last ``CLEAN``; ``CLEAN`` returns the set and clears
it, ``PEEK`` returns it unchanged. Each page also carries a *version* the guest bumps on every write,
so the receiver's image can be checked page by page (the "nothing lost" property).

The guest's writes come from its workload's writable working set
(:class:`pvsim.workloads.spec.WritableSpec`): ``ws_pages`` pages starting at pfn ``ws_base``, written
at ``pages_per_s`` in a pattern -- ``uniform`` over the set, ``hot`` (the first ``hot_pages`` of the
set take ``hot_share`` of the writes, the rest spread over the remainder: a Zipf-like hot set) or
``sequential`` (a sweep from a seeded offset that wraps). Writes are generated one page at a time
from a splitmix64 stream (seeded per guest), so the compiled kernel and its plain-Python reference
produce the same pages bit for bit. For post-copy (:mod:`pvsim.migrate.save`, an extension after
QEMU's ``migration/postcopy-ram.c``) the same stream drives the guest's touches on the target
(:func:`_touch_kernel` stops at the first page not yet there), and two kernels pick the background
push's next batch and place arrived pages.

Simplifications: writes arrive at a constant rate in simulated time while the guest runs (not
interleaved with its instructions). :meth:`GuestMemory.write` returns the pages newly dirtied: each
is one first-write log-dirty event, which the save engine hands to :mod:`pvsim.hypervisor.logdirty`
to price on the guest's own vCPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from pvsim.core import kernels

PAGE_SIZE = 4096  # x86 4 KiB pages (XC_PAGE_SHIFT 12, xenctrl.h)
PATTERNS = {"uniform": 0, "hot": 1, "sequential": 2}
MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # splitmix64 constants (Steele, Lea, Flood, OOPSLA'14)
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


# ============================================================================== compiled kernels
@njit(cache=True)
def _draw(kind, state, cursor, ws_pages, hot_pages, hot_thr, cold):
    """The next written page's offset in the working set: a sequential sweep (``kind`` 2), or a
    splitmix64 draw, uniform (0) or into the hot set with probability ``hot_thr`` / 2**32 (1).
    Returns (state, cursor, offset)."""
    if kind == 2:
        return state, cursor + 1, cursor % ws_pages
    state = state + np.uint64(GOLDEN)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    z = z ^ (z >> np.uint64(31))
    lo = np.int64(z & np.uint64(0xFFFFFFFF))
    if kind == 0:
        return state, cursor, lo % ws_pages
    hi = np.int64(z >> np.uint64(32))
    if hi < hot_thr or cold == 0:
        return state, cursor, lo % hot_pages
    return state, cursor, hot_pages + lo % cold


@njit(cache=True)
def _write_kernel(kind, n, state, cursor, ws_base, ws_pages, hot_pages, hot_thr, version, dirty):
    """``n`` page writes: bump each page's version and set its dirty bit. Returns (state, cursor,
    pages newly dirtied)."""
    new = 0
    cold = ws_pages - hot_pages
    for _ in range(n):
        state, cursor, off = _draw(kind, state, cursor, ws_pages, hot_pages, hot_thr, cold)
        pfn = ws_base + off
        version[pfn] += 1
        if dirty[pfn] == 0:
            dirty[pfn] = 1
            new += 1
    return state, cursor, new


@njit(cache=True)
def _clean_kernel(dirty, out):
    """``XEN_DOMCTL_SHADOW_OP_CLEAN``: the dirty pfns into ``out`` (ascending), bits cleared; returns
    the count.

    The bitmap is read a 64-bit word (8 pfns) at a time and an all-clean word is skipped, as Xen's
    ``paging_log_dirty_op`` walks its bitmap a word at a time. Within a word that has a dirty pfn the
    pfns are stored without a branch (each is written at ``out[k]`` and ``k`` advances only if it is
    dirty: a dense random bitmap otherwise costs a mispredicted branch per pfn); the one stray store
    past the word's last dirty pfn lands on ``out[k + count]``, whose value is saved and put back, so
    ``out`` beyond the returned count is left exactly as it was given."""
    n = dirty.shape[0]
    m = out.shape[0]
    n8 = n - n % 8
    words = dirty[:n8].view(np.uint64)
    k = 0
    for g in range(n8 >> 3):
        if words[g] == 0:
            continue
        i = g << 3
        c = 0
        for j in range(8):
            c += dirty[i + j] != 0
        e = k + c
        if e < m:
            keep = out[e]
            for j in range(8):
                out[k] = i + j
                k += dirty[i + j] != 0
            out[e] = keep
        else:  # the last slots of ``out``: no room for the stray store
            for j in range(8):
                if dirty[i + j] != 0:
                    out[k] = i + j
                    k += 1
        words[g] = 0
    for pfn in range(n8, n):
        if dirty[pfn] != 0:
            out[k] = pfn
            k += 1
            dirty[pfn] = 0
    return k


@njit(cache=True)
def _copy_kernel(pfns, n, src, dst):
    """The receiver's image takes the sender's page contents (versions) of ``pfns[:n]``."""
    for i in range(n):
        p = pfns[i]
        dst[p] = src[p]


@njit(cache=True)
def _touch_kernel(kind, n, state, cursor, ws_base, ws_pages, hot_pages, hot_thr, version, recv, where):
    """Post-copy: up to ``n`` page touches of the guest on the target, from the same stream as
    :func:`_write_kernel`. A touch of a local page (``where == 0``) bumps its version in the guest's
    image and in the target's copy; the first touch of a page not yet local stops the run *before*
    that draw (the guest faults). Returns (state, cursor, touches done, the faulting pfn, or
    ``len(where)`` if none)."""
    cold = ws_pages - hot_pages
    for i in range(n):
        st0, cu0 = state, cursor
        state, cursor, off = _draw(kind, state, cursor, ws_pages, hot_pages, hot_thr, cold)
        pfn = ws_base + off
        if where[pfn] != 0:
            return st0, cu0, i, pfn
        version[pfn] += 1
        recv[pfn] += 1
    return state, cursor, n, where.shape[0]


@njit(cache=True)
def _next_remote_kernel(where, start, limit, out):
    """The background push's next batch: up to ``limit`` pfns still remote (``where == 1``) from
    ``start`` in pfn order, marked in flight (2). Returns (count, the pfn to resume from)."""
    k = 0
    p = start
    while p < where.shape[0] and k < limit:
        if where[p] == 1:
            out[k] = p
            where[p] = 2
            k += 1
        p += 1
    return k, p


@njit(cache=True)
def _deliver_kernel(pfns, n, version, recv, where, fetched):
    """Pages arrive on the target: the source's (frozen) copy is placed, the page becomes local."""
    for i in range(n):
        p = pfns[i]
        recv[p] = version[p]
        where[p] = 0
        fetched[p] += 1


# ============================================================================== references
def draw_ref(kind, state, cursor, ws_pages, hot_pages, hot_thr, cold):
    """Plain-Python reference of :func:`_draw`."""
    state = int(state)
    if kind == 2:
        return state, cursor + 1, cursor % ws_pages
    state = (state + GOLDEN) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    z ^= z >> 31
    lo = z & 0xFFFFFFFF
    if kind == 0:
        return state, cursor, lo % ws_pages
    return state, cursor, (lo % hot_pages if ((z >> 32) < hot_thr or cold == 0) else hot_pages + lo % cold)


def write_ref(kind, n, state, cursor, ws_base, ws_pages, hot_pages, hot_thr, version, dirty):
    """Plain-Python reference of :func:`_write_kernel`."""
    state = int(state)
    new = 0
    cold = ws_pages - hot_pages
    for _ in range(n):
        state, cursor, off = draw_ref(kind, state, cursor, ws_pages, hot_pages, hot_thr, cold)
        pfn = ws_base + off
        version[pfn] += 1
        if dirty[pfn] == 0:
            dirty[pfn] = 1
            new += 1
    return np.uint64(state), cursor, new


def clean_ref(dirty, out):
    """Plain-Python reference of :func:`_clean_kernel`."""
    k = 0
    for pfn in range(len(dirty)):
        if dirty[pfn]:
            out[k] = pfn
            k += 1
            dirty[pfn] = 0
    return k


def copy_ref(pfns, n, src, dst):
    for i in range(n):
        dst[pfns[i]] = src[pfns[i]]


def touch_ref(kind, n, state, cursor, ws_base, ws_pages, hot_pages, hot_thr, version, recv, where):
    """Plain-Python reference of :func:`_touch_kernel`."""
    state = int(state)
    cold = ws_pages - hot_pages
    for i in range(n):
        st0, cu0 = state, cursor
        state, cursor, off = draw_ref(kind, state, cursor, ws_pages, hot_pages, hot_thr, cold)
        pfn = ws_base + off
        if where[pfn] != 0:
            return np.uint64(st0), cu0, i, pfn
        version[pfn] += 1
        recv[pfn] += 1
    return np.uint64(state), cursor, n, len(where)


def next_remote_ref(where, start, limit, out):
    """Plain-Python reference of :func:`_next_remote_kernel`."""
    k, p = 0, start
    while p < len(where) and k < limit:
        if where[p] == 1:
            out[k] = p
            where[p] = 2
            k += 1
        p += 1
    return k, p


def deliver_ref(pfns, n, version, recv, where, fetched):
    """Plain-Python reference of :func:`_deliver_kernel`."""
    for i in range(n):
        p = pfns[i]
        recv[p] = version[p]
        where[p] = 0
        fetched[p] += 1


# ============================================================================== the guest's memory
@dataclass(frozen=True)
class WriteModel:
    """The resolved writable working set of one guest (pfns and rates)."""

    n_pages: int
    ws_base: int
    ws_pages: int
    pages_per_s: float
    pattern: str = "uniform"
    hot_pages: int = 1
    hot_share: float = 0.9
    free_pages: int = 0  # the top of RAM: zero pages, never written

    @classmethod
    def of(cls, writable, memory_mib: int, *, seed_offset: int = 0) -> "WriteModel":
        """From a :class:`~pvsim.workloads.spec.WritableSpec` (``None``: the guest writes nothing)."""
        n = int(memory_mib) * 256
        if writable is None:
            return cls(n, 0, 1, 0.0)
        free = int(round(writable.free_frac * n))
        ws = writable.ram_frac * n if writable.ram_frac is not None else (writable.mib or 0) * 256
        ws = max(1, min(int(round(ws)), n - free))
        span = n - free - ws  # the set sits in the used part of RAM at a seeded offset
        base = seed_offset % (span + 1) if span > 0 else 0
        hot = max(1, min(ws, int(round(writable.hot_frac * ws))))
        return cls(n, base, ws, writable.mb_per_s * 1e6 / PAGE_SIZE, writable.pattern, hot, writable.hot_share, free)


class GuestMemory:
    """A guest's pages as the save engine sees them: version per pfn, the log-dirty bitmap, and the
    writes of its workload advanced in simulated time."""

    def __init__(self, model: WriteModel, seed: int, *, compiled: bool = True):
        self.model = model
        self.version = np.zeros(model.n_pages, dtype=np.int64)
        self.dirty = np.zeros(model.n_pages, dtype=np.uint8)
        self.logdirty = False
        self.state = int(seed) & MASK64
        self.cursor = int(seed % max(1, model.ws_pages)) if model.pattern == "sequential" else 0
        self._carry = 0.0
        self.writes = 0
        self.newly_dirtied = 0
        self.throttle = 0.0  # QEMU auto-converge: fraction of the guest's CPU taken away
        self.compiled = compiled
        self._kind = PATTERNS[model.pattern]
        self._thr = int(model.hot_share * (1 << 32))

    def write_for(self, ns: float) -> int:
        """The guest runs ``ns`` of simulated time: its writes in that time; returns pages newly dirty."""
        m = self.model
        if m.pages_per_s <= 0 or ns <= 0:
            return 0
        x = self._carry + m.pages_per_s * (1.0 - self.throttle) * ns / 1e9
        n = int(math.floor(x))
        self._carry = x - n
        return self.write(n)

    def write(self, n: int) -> int:
        if n <= 0:
            return 0
        m = self.model
        fn = _write_kernel if self.compiled else write_ref
        st, self.cursor, new = fn(self._kind, int(n), np.uint64(self.state), int(self.cursor), m.ws_base, m.ws_pages,
                                  m.hot_pages, self._thr, self.version, self.dirty)
        self.state = int(st)
        self.writes += n
        self.newly_dirtied += new
        return int(new)

    def clean(self) -> np.ndarray:
        """``XEN_DOMCTL_SHADOW_OP_CLEAN``: the dirty pfns, bitmap cleared."""
        out = np.empty(self.model.n_pages, dtype=np.int64)
        k = (_clean_kernel if self.compiled else clean_ref)(self.dirty, out)
        return out[:k]

    def peek(self) -> np.ndarray:
        """``XEN_DOMCTL_SHADOW_OP_PEEK``: the live bitmap, unchanged (a view)."""
        return self.dirty

    def dirty_count(self) -> int:
        return int(np.count_nonzero(self.dirty))

    def zero_pages(self) -> np.ndarray:
        """Pages never written whose content is zero (the free top of RAM)."""
        z = np.zeros(self.model.n_pages, dtype=bool)
        if self.model.free_pages:
            z[self.model.n_pages - self.model.free_pages:] = True
        return z & (self.version == 0)


def copy_pages(pfns: np.ndarray, src: np.ndarray, dst: np.ndarray, compiled: bool = True) -> None:
    (_copy_kernel if compiled else copy_ref)(pfns, len(pfns), src, dst)


# ============================================================================== registry
def _arrays_equal(ka, ra) -> None:
    for a, b in zip(ka, ra):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


def _write_cases(rng):
    for kind in (0, 1, 2):
        for npages, ws, hot in ((64, 64, 8), (1000, 300, 30), (4096, 4096, 4096), (50, 1, 1)):
            for n in (0, 1, 37, 2000):
                version = rng.integers(0, 5, npages).astype(np.int64)
                dirty = (rng.random(npages) < 0.2).astype(np.uint8)
                base = int(rng.integers(0, npages - ws + 1))
                yield (kind, n, np.uint64(rng.integers(0, 2**63)), int(rng.integers(0, 10**6)), base, ws, hot,
                       int(rng.integers(0, 2**32)), version, dirty)


def _clean_cases(rng):
    # sizes off and on a word boundary, sparse to full bitmaps, bytes other than 1, and an ``out``
    # prefilled with a sentinel (the kernel must leave ``out`` past the count as it was), exactly as
    # long as the bitmap (no room for a stray store at the end) or longer
    for npages in (0, 1, 7, 8, 9, 100, 5000):
        for frac in (0.0, 0.01, 0.3, 0.9, 1.0):
            dirty = (rng.random(npages) < frac).astype(np.uint8) * rng.integers(1, 256, npages).astype(np.uint8)
            for extra in (0, 3):
                yield dirty.copy(), np.full(npages + extra, -7, np.int64)
    dirty = np.zeros(4096, np.uint8)
    dirty[1000:1200] = 1  # a dense run inside a clean bitmap (a hot set)
    yield dirty, rng.integers(-99, 99, 4096).astype(np.int64)


def _copy_cases(rng):
    for npages in (1, 100, 5000):
        pfns = rng.permutation(npages).astype(np.int64)
        yield pfns, int(rng.integers(0, npages + 1)), rng.integers(0, 99, npages).astype(np.int64), \
            np.zeros(npages, np.int64)


def _draw_cases(rng):
    for kind in (0, 1, 2):
        for ws, hot in ((64, 8), (300, 30), (1, 1), (1000, 1000)):
            for _ in range(20):
                yield (kind, np.uint64(rng.integers(0, 2**63)), int(rng.integers(0, 10**6)), ws, hot,
                       int(rng.integers(0, 2**32)), ws - hot)


kernels.register("dirty_draw", kernel=_draw, reference=draw_ref, cases=_draw_cases, compare=_arrays_equal)
kernels.register("dirty_write", kernel=_write_kernel, reference=write_ref, cases=_write_cases, compare=_arrays_equal)
kernels.register("dirty_clean", kernel=_clean_kernel, reference=clean_ref, cases=_clean_cases, compare=_arrays_equal)
kernels.register("dirty_copy", kernel=_copy_kernel, reference=copy_ref, cases=_copy_cases, compare=_arrays_equal)


def _touch_cases(rng):
    for kind in (0, 1, 2):
        for npages, ws, hot in ((64, 64, 8), (1000, 300, 30), (50, 1, 1)):
            for n in (0, 1, 37, 2000):
                version = rng.integers(0, 5, npages).astype(np.int64)
                where = (rng.random(npages) < 0.05).astype(np.uint8) * np.uint8(rng.integers(1, 3))
                base = int(rng.integers(0, npages - ws + 1))
                yield (kind, n, np.uint64(rng.integers(0, 2**63)), int(rng.integers(0, 10**6)), base, ws, hot,
                       int(rng.integers(0, 2**32)), version, version.copy(), where)


def _next_remote_cases(rng):
    for npages in (0, 1, 100, 5000):
        where = rng.integers(0, 3, npages).astype(np.uint8)
        yield where, int(rng.integers(0, npages + 1)), int(rng.integers(1, 1025)), np.zeros(max(1, npages), np.int64)


def _deliver_cases(rng):
    for npages in (1, 100, 5000):
        pfns = rng.permutation(npages).astype(np.int64)
        yield (pfns, int(rng.integers(0, npages + 1)), rng.integers(0, 99, npages).astype(np.int64),
               np.zeros(npages, np.int64), np.ones(npages, np.uint8), np.zeros(npages, np.int64))


kernels.register("postcopy_touch", kernel=_touch_kernel, reference=touch_ref, cases=_touch_cases,
                 compare=_arrays_equal)
kernels.register("postcopy_next_remote", kernel=_next_remote_kernel, reference=next_remote_ref,
                 cases=_next_remote_cases, compare=_arrays_equal)
kernels.register("postcopy_deliver", kernel=_deliver_kernel, reference=deliver_ref, cases=_deliver_cases,
                 compare=_arrays_equal)
