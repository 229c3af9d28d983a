"""The life cycle of shadow page tables on the counted MMU path (``bt``, ``hvm-shadow``).

Design note
-----------
The counted path prices an op mix without page tables as data; under shadow paging its cost still
depends on which address spaces have shadows when. This mixin keeps, per process of the op mix,
what the structural model (:class:`pvsim.mm.machine.ShadowMMU`) keeps as real shadow pages:

* its resident pages, the pages made writable since its last fork, the pages whose shadow entries
  are missing, and the table pages that hold translations;
* the VMM's **shadow cache**: the processes whose shadows survive a CR3 switch, least recently
  loaded out first. Xen (``hvm-shadow``) bounds it only by its pool (``shadow/common.c``:
  ``sh_pin`` on every ``sh_update_cr3``, ``_shadow_prealloc`` unpins from the tail); a binary
  translator by ``mmu.bt_shadow_roots_count`` address spaces as well.

Each life-cycle event reports its own breakdown cause (hand-checkable from the profile):

* ``mmu.shadow_wp_fault``: fork's copy-on-write marking (``copy_one_pte``'s ``ptep_set_wrprotect``)
  stores into the parent's write-protected, shadowed L1s; each is mediated by the VMM (a translated
  callout under adaptive BT, a write-protect trap under WS 3.2's tracing, a #PF exit plus x86
  emulation under first-generation VT-x). Only the PTEs still writable are rewritten (Linux keeps
  COW pages read-only until written), so a loop's steady state protects the pages the parent
  wrote since its previous fork.
* ``mmu.shadow_rebuild``: after a cache miss (a new child, an evicted process, a fresh exec image)
  the first touches rebuild the shadow tables: one software-MMU operation per table page linked
  back into the tree, plus (Xen, whose dropped shadows are freed) a shadow page allocation.
* ``mmu.hidden_fault``: every resident page the process touches after its shadows were dropped,
  on ``tlb_refill`` (the pages a switch's time slice touches) and on ``tlb_walks`` (TLB misses of
  the running code), once per page until it is shadowed again; a fault propagates up to
  ``mmu.shadow_prefetch_count`` neighbouring entries (``sh_prefetch``), so ``n`` pages take
  ``ceil(n / prefetch)`` faults and ``n - faults`` software-MMU propagations (``mmu.shadow_rebuild``).
* ``mmu.shadow_evict``: the cache gives up a process's translations (``mmu.unshadow_cycles`` per
  table page holding any).
* ``mmu.shadow_teardown``: exit and exec drop the dead tables' shadows (Xen's early unshadow:
  ``check_for_early_unshadow`` after two consecutive clearing writes to one L1; a translator keeps
  its traces, and every clearing store into them is mediated).

Simplifications: a process's touched pages are taken as distinct first and as neighbours in its
tables (the prefetch covers them); one shadow table per
``_tables_for`` table page; a process the op mix never declared (lmbench's partner processes) has
an unknown resident set: every page it touches after a miss is taken as unshadowed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Proc:
    resident: int | None = None  # present pages (None: not declared by the op mix)
    writable: int | None = None  # pages writable since the last fork (None: all of them)
    shadowed: int = 0  # resident pages with shadow entries (the hot ones, touched first)
    tables: int = 0  # table pages whose shadows hold translations


@dataclass
class _State:
    cur: int = 1
    next_pid: int = 2
    procs: dict = None
    cache: list = None  # pids with shadows, least recently loaded first
    freed_tables: int = 0  # table pages freed by exit/exec, still traced by a translator

    def __post_init__(self):
        self.procs = {1: _Proc()} if self.procs is None else self.procs
        self.cache = [1] if self.cache is None else self.cache


class ShadowLifeCycle:
    """Mixin for the counted path of a shadow-paging guest kernel (before ``GuestKernel``)."""

    # profile key bounding the cached address spaces (None: the pool alone bounds the cache)
    shadow_roots_key: str | None = None
    # the VMM frees the shadow pages it drops (Xen) or keeps them, with their traces (a translator)
    frees_dropped_shadows = True
    # Xen's check_for_early_unshadow on a dying process's clearing writes
    early_unshadow = True

    # ----------------------------------------------------------------- state
    @property
    def _sl(self) -> _State:
        st = self.__dict__.get("_sl_state")
        if st is None:
            st = self.__dict__["_sl_state"] = _State()
        return st

    def _proc(self, pid: int) -> _Proc:
        return self._sl.procs.setdefault(pid, _Proc())

    def _roots_cap(self) -> int | None:
        k = self.shadow_roots_key
        return max(1, int(self.p.value(k))) if k else None

    def _pool_pages(self) -> int:
        vcpu = getattr(self.p, "vcpu", None)
        dom = getattr(vcpu, "domain", None)
        nr_vcpus = int(getattr(dom, "nr_vcpus", 1) or 1)
        mib = int(getattr(dom, "tot_pages", 0) or 0) // 256
        return (int(self.p.value("mmu.shadow_pool_vcpu_pages_count")) * nr_vcpus
                + max(1, mib) * int(self.p.value("mmu.shadow_pool_mib_pages_count")))

    # ----------------------------------------------------------------- mode hooks
    def _cr3_write(self) -> None:
        """The guest's mov to CR3 as the mode's VMM sees it (a callout or an exit)."""
        raise NotImplementedError

    def _hidden_faults(self, n: int) -> None:
        raise NotImplementedError

    def _wp_faults(self, n: int) -> None:
        """n mediated stores of fork's copy-on-write marking (``mmu.shadow_wp_fault``)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- shadow cache
    def _evict(self, pid: int) -> None:
        pr = self._proc(pid)
        if pr.tables:
            self._add("mmu.shadow_evict", "mmu.unshadow_cycles", pr.tables)
            self.meter.count("mmu.shadow_evict", pr.tables)
        pr.tables = 0
        pr.shadowed = 0
        if pid in self._sl.cache:
            self._sl.cache.remove(pid)

    def _load(self, pid: int) -> None:
        """CR3 now names ``pid``'s root: a cache hit keeps its shadows, a miss evicts as needed."""
        st = self._sl
        if self.meter.cache_touch(st.cache, pid, "mmu.shadow_cache"):
            return
        cap = self._roots_cap()
        while cap is not None and len(st.cache) >= cap:
            self._evict(st.cache[0])
        pr = self._proc(pid)
        pr.shadowed = 0
        pr.tables = 0
        st.cache.append(pid)

    def _fit_pool(self, want: int) -> None:
        """Make room for ``want`` more shadow table pages: evict least recently loaded first."""
        st = self._sl
        pool = self._pool_pages()
        while st.cache[:-1] and sum(self._proc(p).tables for p in st.cache) + want > pool:
            self._evict(st.cache[0])

    def _shadow_in(self, pages: int, hot: bool = True) -> None:
        """Touches of ``pages`` pages of the running process: hidden faults for those without
        shadow entries, and the shadow tables they need rebuilt. ``hot``: the process's first
        ``pages`` pages (a switch's working set, touched first every time); else ``pages`` TLB
        misses spread over the resident pages not yet re-shadowed."""
        pr = self._proc(self._sl.cur)
        if hot:
            if pr.resident is None or pr.resident < pages:  # it touches more than was declared
                pr.resident = max(pr.resident or 0, pages)
            n = max(0, pages - pr.shadowed)
        else:
            n = min(pages, (pr.resident or 0) - pr.shadowed)
        n = int(round(n * float(self.options.get("shadow_refill_frac", 1.0))))
        if n <= 0:
            return
        need = self._tables_for(pr.shadowed + n)
        new = max(0, need - pr.tables)
        if new:
            self._fit_pool(new)
            self.p.sw_mmu("mmu.shadow_rebuild", new)  # link each table's shadow into the tree
            if self.frees_dropped_shadows:
                self._add("mmu.shadow_rebuild", "mmu.shadow_alloc_cycles", new)
            self.meter.count("mmu.shadow_rebuild", new)
            pr.tables += new
        # one hidden fault propagates up to ``prefetch`` neighbouring guest entries (sh_prefetch)
        per = max(1, int(self.p.value("mmu.shadow_prefetch_count")))
        faults = -(-n // per)
        self._hidden_faults(faults)
        if n > faults:
            self.p.sw_mmu("mmu.shadow_rebuild", n - faults)
        pr.shadowed += n

    # ----------------------------------------------------------------- actions
    def context_switch(self, ws_pages: int = 0, to: int | None = None) -> None:
        if self.p.mmu is None:
            st = self._sl
            if to is None:
                others = [p for p in st.procs if p != st.cur]
                if not others:
                    others = [st.next_pid]
                    st.next_pid += 1
                to = max(others)
            self._proc(to)
            self._switch_to = to
        super().context_switch(ws_pages, to)

    def _switch_address_space(self) -> None:
        st = self._sl
        to = self.__dict__.pop("_switch_to", st.cur)
        self._cr3_write()
        self.p.sw_mmu("mmu.shadow_sync")  # sh_update_cr3: find the shadow root by guest frame
        self._add("mmu.tlb_flush", "native.cr3_load_cycles")
        self.meter.count("tlb_flush")
        st.cur = to
        self._load(to)

    def tlb_refill(self, pages: int) -> None:
        super().tlb_refill(pages)
        self._shadow_in(pages)

    def tlb_walks(self, n: float) -> None:
        super().tlb_walks(n)
        self._shadow_in(int(n), hot=False)  # misses on resident pages not re-shadowed since a drop

    def _fault_in(self, kind: str) -> None:
        """Bookkeeping of one demand fault in the running process (its PTE is propagated into
        the shadow by the fault's own handling)."""
        pr = self._proc(self._sl.cur)
        if kind in ("anon", "file") and pr.resident is not None:
            pr.resident += 1
            pr.shadowed += 1
        if kind in ("anon", "cow") and pr.writable is not None:
            pr.writable += 1

    def fork(self, pages: int, anon: int | None = None) -> None:
        st = self._sl
        copied = pages if anon is None else min(int(anon), pages)
        par = self._proc(st.cur)
        if par.resident is None:
            par.resident = pages
        protect = copied if par.writable is None else min(par.writable, copied)
        # the child's tables are written before they are live; under a translator the quicklist
        # tables a previous exit freed are still traced, so their stores are mediated
        traced = 0
        if not self.frees_dropped_shadows and st.freed_tables > 0:
            traced = copied
            st.freed_tables = max(0, st.freed_tables - self._tables_for(copied))
        self._new_table_writes(copied - traced)
        if traced:
            self._pte_writes(traced)
        if protect:
            self._add("mmu.shadow_wp_fault", "native.pte_write_cycles", protect)
            self._wp_faults(protect)
            self.meter.count("mmu.shadow_wp_fault", protect)
            self.meter.count("pte_write", protect)
        self._flush_tlb()
        self._activate(copied)
        par.writable = 0
        child = st.next_pid
        st.next_pid += 1
        st.procs[child] = _Proc(resident=copied, writable=0)

    def _dead_tables(self, pages: int, pr: _Proc) -> None:
        """Clearing a dying address space of ``pages`` pages: a translator mediates every store
        into its traced tables; Xen only those into tables it shadows, and its early unshadow
        stops mediating an L1 after the second clearing store."""
        if not self.early_unshadow:
            self._pte_writes(pages)
            return
        if not pr.tables:
            self._new_table_writes(pages)
            return
        levels = int(self._tables_for(1))
        leaves = max(0, pr.tables - (levels - 1))
        mediated = min(pages, 2 * leaves) + (levels - 1)
        self._pte_writes(mediated)
        self._new_table_writes(max(0, pages - mediated))
        self._add("mmu.shadow_teardown", "mmu.unshadow_cycles", leaves)
        self.meter.count("mmu.shadow_teardown", leaves)

    def exit(self, pages: int) -> None:
        if self.p.mmu is not None:
            return super().exit(pages)
        st = self._sl
        cands = [p for p in st.procs if p != 1]
        victim = max(cands) if cands else None
        pr = self._proc(victim) if victim is not None else _Proc(tables=self._tables_for(pages))
        self._dead_tables(pages, pr)
        st.freed_tables += self._tables_for(pages)
        if victim is not None:
            del st.procs[victim]
            if victim in st.cache:
                st.cache.remove(victim)
            if st.cur == victim:
                st.cur = 1

    def exec(self, pages: int) -> None:
        if self.p.mmu is not None:
            return super().exec(pages)
        st = self._sl
        pr = self._proc(st.cur)
        self._dead_tables(pages, pr)
        st.freed_tables += self._tables_for(pages)
        self._activate(0)
        self._cr3_write()  # activate_mm: the new image's root
        self._add("mmu.tlb_flush", "native.cr3_load_cycles")
        st.procs[st.cur] = _Proc(resident=0, writable=0)
        if st.cur in st.cache:
            st.cache.remove(st.cur)
        st.cache.append(st.cur)
