"""How each mode's guest kernel makes its page-table changes reach the machine.

Design note
-----------
* :class:`PVBackend` (``pv``, ``pv32``): XenoLinux's way (SOSP'03 §3.3.3; Linux
  ``arch/x86/xen/mmu_pv.c``): page-table pages in use are read-only, so updates to live tables are
  queued and sent as ``mmu_update`` batches of up to ``batch`` entries (2048 in SOSP'03); a new
  address space is written while its pages are still ordinary memory and then pinned
  (``MMUEXT_PIN_L4_TABLE``: Xen validates the whole tree once); a dying one is unpinned first so
  its clears are plain stores; a demand fault installs its PTE with ``update_va_mapping``; a
  switch is ``MMUEXT_NEW_BASEPTR`` (+ ``MMUEXT_NEW_USER_BASEPTR`` on x86-64); flushes are
  ``MMUEXT_TLB_FLUSH_LOCAL``/``UVMF_INVLPG``. Faults arrive bounced by Xen (``platform.trap``).
* :class:`DirectBackend` (``native``, ``container``, ``bt``, ``hvm-shadow``, ``hvm``, ``pvhvm``,
  ``pvh``): an unmodified kernel stores into its tables, loads CR3 and flushes itself; the
  machine side (:mod:`pvsim.mm.machine`) decides what that costs (nothing extra natively and
  under HAP; emulated writes, exits and hidden faults under shadow paging).

Sub-op values and ``DOMID_SELF`` come from :mod:`hypercalls.ops` (``xen/include/public/xen.h``)
and hypercalls are named as :mod:`hypercalls.table` names them, never from ``pvsim.hypervisor``.
"""

from __future__ import annotations

from contextlib import contextmanager

from hypercalls import errno as E
from hypercalls.ops import (
    DOMID_SELF,
    MMUEXT_NEW_BASEPTR,
    MMUEXT_NEW_USER_BASEPTR,
    MMUEXT_PIN_L4_TABLE,
    MMUEXT_TLB_FLUSH_LOCAL,
    MMUEXT_UNPIN_TABLE,
    UVMF_INVLPG,
)


class GuestMMUError(RuntimeError):
    """The guest kernel model issued an update Xen refused: a bug in the model, not in the guest."""


class _Base:
    switch_before_zap = False

    def __init__(self, platform, machine, batch: int):
        self.p = platform
        self.m = machine
        self.batch = max(1, int(batch))

    @property
    def meter(self):
        return self.p.meter

    def frames(self) -> list[int]:
        return self.m.guest_frames()

    def unmetered(self):
        return self.m.unmetered() if hasattr(self.m, "unmetered") else _null()

    def clear_page(self, frame: int) -> None:
        self.m.zero_page(frame)
        self.meter.count("pt_page_alloc")

    def access(self, vas, writes, start):
        return self.m.access(vas, writes, start)

    def release_table(self, frame: int) -> None:
        self.m.release_table(frame)

    def cow_marking(self):
        """A block of fork's copy-on-write marking stores (the machine side names their cause)."""
        return self.m.cow_marking() if hasattr(self.m, "cow_marking") else _null()

    def refs_per_miss(self, a, va: int) -> int:
        return self.m.refs_per_miss(va)


@contextmanager
def _null():
    yield


class PVBackend(_Base):
    switch_before_zap = True

    def _hc(self, name, *args) -> int:
        rc = self.p.hypercall(name, *args)
        if rc < 0:
            raise GuestMMUError(f"{name} refused: {E.errname(rc)}")
        return rc

    def write(self, a, writes, *, live: bool, single: bool = False) -> None:
        if not writes:
            return
        self.meter.add("kernel.pte_write", "native.pte_write_cycles", len(writes))  # compose the entries
        if not live:
            for t, i, v in writes:
                if self.m.store(t, i, v) < 0:
                    raise GuestMMUError(f"store into live page table {t}")
            return
        reqs = [((t << 12) | (i * 8), v) for t, i, v in writes]
        for k in range(0, len(reqs), self.batch):
            chunk = reqs[k:k + self.batch]
            done = [0]
            self._hc("mmu_update", chunk, len(chunk), done, DOMID_SELF)

    def activate(self, a) -> None:
        self._hc("mmuext_op", [(MMUEXT_PIN_L4_TABLE, a.root, 0)], 1, None, DOMID_SELF)
        a.live = True

    def deactivate(self, a) -> None:
        if a.live:
            self._hc("mmuext_op", [(MMUEXT_UNPIN_TABLE, a.root, 0)], 1, None, DOMID_SELF)
        a.live = False

    def switch(self, a) -> None:
        ops = [(MMUEXT_NEW_BASEPTR, a.root, 0)]
        if getattr(self.p, "guest_type", "pv64") == "pv64":
            ops.append((MMUEXT_NEW_USER_BASEPTR, a.root, 0))
        self._hc("mmuext_op", ops, len(ops), None, DOMID_SELF)
        self.m.cr3_load(a.root)

    def flush(self, a) -> None:
        self._hc("mmuext_op", [(MMUEXT_TLB_FLUSH_LOCAL, 0, 0)], 1, None, DOMID_SELF)
        self.m.flush()

    def install(self, a, va, table, val, *, flush: bool) -> None:
        self.meter.add("kernel.pte_write", "native.pte_write_cycles")
        self._hc("update_va_mapping", va, val, UVMF_INVLPG if flush else 0)
        if flush:
            self.m.invlpg(va)

    def fault_entry(self) -> None:
        self.meter.add("kernel.page_fault", "native.page_fault_cycles")
        if hasattr(self.p, "trap"):
            self.p.trap("page_fault")
        else:
            self.meter.add("trap.page_fault", "xen.trap_bounce_cycles")


class DirectBackend(_Base):
    def write(self, a, writes, *, live: bool, single: bool = False) -> None:
        for t, i, v in writes:
            self.m.store(t, i, v)

    def activate(self, a) -> None:
        a.live = True

    def deactivate(self, a) -> None:
        a.live = False

    def switch(self, a) -> None:
        self.m.cr3_load(a.root)

    def flush(self, a) -> None:
        self.m.flush()

    def install(self, a, va, table, val, *, flush: bool) -> None:
        self.m.store(table, (va >> 12) & 511, val)
        if flush:
            self.m.invlpg(va)

    def fault_entry(self) -> None:
        self.meter.add("kernel.page_fault", "native.page_fault_cycles")
        self.m.true_fault()
