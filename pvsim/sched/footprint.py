"""Cache and TLB footprints of a context switch: what a returning context pays to refill what others evicted.

Design note
-----------
When other vCPUs (or, under a native kernel, other processes) have run on a pCPU, the context that
comes back finds part of its cache working set evicted and, with an untagged TLB (no PCID/VPID/ASID:
``mm.tlb_tagged_count = 0``), none of its TLB entries. It refills them on its first touches. Xen does
nothing about it (``context_switch()`` in ``xen/arch/x86/domain.c`` only loads state); the cost is the
hardware's, and it is what makes consolidating many domains on few pCPUs cost more than their
switch paths (cf. Li, Ding and Shen, "Quantifying the cost of context switch", ExpCS 2007;
Thiebaut and Stone, "Footprints in the cache", ACM TOCS 5(4), 1987).

The model, per cache level ``l`` of capacity ``C_l`` lines (profile ``[cache]``: ``l1d_bytes``,
``l2_bytes``, ``l3_bytes`` over ``line_bytes``), is an LRU stack-distance one on a fully associative
cache: a context ``u`` whose working set is ``w`` lines (``min(ws, C_l)``) left its lines on top of
the stack when it last ran; the contexts that ran after it on the same *cache domain* pushed
``D`` lines above them, ``D`` being the sum of the working sets of the **distinct** other contexts
whose last switch-in there came after ``u``'s. The lines pushed below the capacity are gone::

    evicted_l = min(w, max(0, w + D - C_l))

and refilling each costs ``cache.l<l>_refill_cycles / cache.refill_mlp_count`` (the latency of the
next level beyond this level's hit: L1D -> L2 hit, L2 -> L3 or DRAM, L3 -> DRAM; a line evicted from
L2 also left L1D, so the penalties add up to the full miss latency; the refill misses overlap by
the core's memory-level parallelism). A context that last ran on another cache domain
(it migrated) refills its whole working set at every level; one that never ran pays nothing (its
cold start belongs to its own characterization).

TLB: untagged, every switch that loads another address space flushes the non-global entries, so the
returning context refills ``tlb_pages`` pages, less the ``native.context_switch_ws_pages_count``
pages whose refill is already inside the measured switch constants (lmbench lat_ctx 2p/0K). Tagged,
the entries survive unless others' pages pushed them out: the same LRU formula over the
``mm.tlb_4k_sets_count x mm.tlb_4k_ways_count`` entries. A page costs the mode's walk: the guest
kernel's own ``tlb_walks`` action priced in the context's mode (4 references 1-D, 24 for a 2-D
walk), so no walk model is duplicated here.

A switch back to the context an idle pCPU kept loaded (Xen's lazy switch) pays nothing: nobody ran.
Costs are integers (picoseconds per line / page; ns rounded half up) so the Python reference here and
the compiled dispatcher (:mod:`pvsim.sched.hk.core`, ``_footprint``) compute the same numbers.

Input for host topology: ``cache_domains`` maps each pCPU to a cache domain (default: its own; two
hyperthreads or cores sharing a cache would share one). Breakdown causes: ``cache.refill`` and
``tlb.refill_after_switch``.

Simplifications: fully associative LRU (real caches are set-associative, so some eviction starts
before the capacity is reached); a context that runs touches its whole working set each time it
runs, so a workload declares the set it re-touches in one run burst (an I/O-bound transaction's,
not its whole resident set); one average memory-level parallelism for every refill; a shared L3 is given to each pCPU as its slice; hypervisor
and idle-loop footprints are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("l1d", "l2", "l3")
PS_PER_NS = 1000


@dataclass(frozen=True)
class CacheModel:
    """A profile's cache levels (capacities in lines, refill costs in ps per line) and its TLB."""

    line_bytes: int
    caps: tuple[int, int, int]
    refill_ps: tuple[int, int, int]
    tlb_entries: int
    tlb_tagged: bool
    switch_pages: int  # TLB pages whose refill the measured switch constants already hold


@dataclass(frozen=True)
class Footprint:
    """One context's working set: cache lines, TLB pages, and ps per TLB page refilled."""

    lines: int = 0
    pages: int = 0
    page_ps: int = 0


NONE = Footprint()


def cache_model(profile) -> CacheModel:
    line = int(profile.value("cache.line_bytes"))
    caps = tuple(int(profile.value(f"cache.{lv}_bytes")) // line for lv in LEVELS)
    mlp = profile.value("cache.refill_mlp_count")
    ps = tuple(int(round(profile.ns(f"cache.{lv}_refill_cycles") * PS_PER_NS / mlp)) for lv in LEVELS)
    entries = int(profile.value("mmu.tlb_4k_sets_count") * profile.value("mmu.tlb_4k_ways_count"))
    return CacheModel(line, caps, ps, entries, bool(profile.value("mmu.tlb_tagged_count")),
                      int(profile.value("native.context_switch_ws_pages_count")))


def footprint_of(model: CacheModel, cache_kib: float, tlb_pages: int, page_ns: float) -> Footprint:
    """A context of ``cache_kib`` KiB of cache working set and ``tlb_pages`` pages of TLB working set,
    a TLB page refill costing ``page_ns``."""
    lines = -(-int(round(cache_kib * 1024)) // model.line_bytes)
    return Footprint(lines, int(tlb_pages), int(round(page_ns * PS_PER_NS)))


def lru_evicted(ws: int, others: int, cap: int) -> int:
    """Lines (entries) of a ``ws`` working set pushed out of an LRU store of ``cap`` by ``others``."""
    if cap <= 0:
        return 0
    w = ws if ws < cap else cap
    e = w + others - cap
    return 0 if e <= 0 else (w if e > w else e)


def refill_ps(model: CacheModel, fp: Footprint, others_lines: int, others_pages: int, cold: bool) -> tuple[int, int]:
    """(cache ps, TLB ps) the returning context ``fp`` pays."""
    cache = 0
    for cap, ps in zip(model.caps, model.refill_ps):
        if cap > 0:
            cache += ((fp.lines if fp.lines < cap else cap) if cold else lru_evicted(fp.lines, others_lines, cap)) * ps
    pages = fp.pages - model.switch_pages
    if pages <= 0:
        return cache, 0
    if model.tlb_tagged and not cold:
        pages = lru_evicted(pages, others_pages, model.tlb_entries)
    elif pages > model.tlb_entries:
        pages = model.tlb_entries
    return cache, pages * fp.page_ps


def ps_to_ns(ps: int) -> int:
    return (ps + PS_PER_NS // 2) // PS_PER_NS


class FootprintTracker:
    """Per cache domain, who last ran there and when: the Python reference of the footprint charge.

    ``register(domid, fp)`` gives a domain's (or a native process's) contexts their working set,
    before its vCPUs join the dispatcher. ``charge(unit, cpu)`` at a non-lazy switch-in of ``unit``
    on ``cpu`` returns ``(cache_ns, tlb_ns)`` and records the switch-in; ``undo(cpu)`` takes the
    last charge on ``cpu`` back (a unit switched in that blocked before running) and returns its
    parts; ``clear(cpu)`` marks a switch without a charge (lazy)."""

    def __init__(self, model: CacheModel, n_pcpus: int, cache_domains=None):
        self.model = model
        self.cd = list(cache_domains) if cache_domains is not None else list(range(n_pcpus))
        if len(self.cd) != n_pcpus:
            raise ValueError(f"cache_domains names {len(self.cd)} pCPUs, the host has {n_pcpus}")
        self.dom_fp: dict[int, Footprint] = {}
        self.fps: dict[int, Footprint] = {}
        self.seq: dict[int, int] = {}
        self.dom: dict[int, int] = {}
        self._seq = 0
        self._pending: dict[int, tuple] = {}

    def register(self, domid: int, fp: Footprint) -> None:
        self.dom_fp[domid] = fp

    def footprint(self, domid: int) -> Footprint:
        return self.dom_fp.get(domid, NONE)

    def clear(self, cpu: int) -> None:
        self._pending.pop(cpu, None)

    def charge(self, unit, cpu: int) -> tuple[int, int]:
        key = unit.uid
        fp = self.fps.get(key)
        if fp is None:
            fp = self.fps[key] = self.footprint(unit.domid)
        c = self.cd[cpu]
        mine = self.seq.get(key, -1)
        before = self.dom.get(key, -1)
        self._seq += 1
        self.seq[key] = self._seq
        self.dom[key] = c
        self._pending[cpu] = (key, mine, before, 0, 0)
        if mine < 0 or (fp.lines == 0 and fp.pages == 0):
            return 0, 0
        cold = before != c
        lines = pages = 0
        if not cold:
            for k, s in self.seq.items():
                if k != key and s > mine and self.dom[k] == c:
                    o = self.fps[k]
                    lines += o.lines
                    pages += o.pages
        cps, tps = refill_ps(self.model, fp, lines, pages, cold)
        parts = ps_to_ns(cps), ps_to_ns(tps)
        self._pending[cpu] = (key, mine, before, *parts)
        return parts

    def undo(self, cpu: int) -> tuple[int, int]:
        rec = self._pending.pop(cpu, None)
        if rec is None:
            return 0, 0
        key, s, d, fc, ft = rec
        if s < 0:
            self.seq.pop(key, None)
            self.dom.pop(key, None)
        else:
            self.seq[key], self.dom[key] = s, d
        return fc, ft
