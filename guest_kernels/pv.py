"""Paravirtualized kernels: XenoLinux-style x86-64 (``pv``) and the SOSP'03 ring-1 kernel (``pv32``).

Design note
-----------
Models what a PV-modified Linux does differently from native (Barham et al. SOSP'03 §2-3; Xen
``xen/arch/x86/pv/``; Linux ``arch/x86/xen/``):

* **System calls.** ``pv32``: the guest registers a fast trap gate for int $0x80 and system calls go
  straight to the ring-1 kernel without entering Xen (SOSP'03 §2.1.2). ``pv``: x86-64 has no segment
  limits, so the guest kernel runs in ring 3; every syscall enters Xen, which bounces it to the
  registered ``CALLBACKTYPE_syscall`` entry and switches to the kernel page table; the return is a
  ``HYPERVISOR_iret`` hypercall with the switch back (Linux commit d6182fbf, S25).
* **Exceptions and page faults** always go via Xen (only ring 0 can read CR2), which bounces them to
  the handler registered with ``set_trap_table``. The guest installs the PTE with a validating
  hypercall (``update_va_mapping``), so a demand fault costs two Xen transitions (SOSP'03 §5.1).
* **Page tables** are read-only to the guest: live updates go through ``mmu_update`` batched up to
  ``batch`` entries per call (2048 in SOSP'03 = 8 MB of address space); new tables are written
  while still ordinary pages and then pinned, which validates them; exit unpins (devalidates)
  first so teardown writes are plain stores. See :mod:`pvsim.mm` for the structures.
* **Context switch**: a ``multicall`` of ``stack_switch``, ``mmuext_op(MMUEXT_NEW_BASEPTR)`` (and
  ``MMUEXT_NEW_USER_BASEPTR`` on x86-64) and ``fpu_taskswitch`` (lazy FPU via virtual CR0.TS).

Simplifications: the kernel work between these points runs at native speed; event-channel upcalls
are priced by the I/O subsystem.
"""

from __future__ import annotations

import math

from guest_kernels.base import GuestKernel
from hypercalls.args import MulticallEntry
from hypercalls.ops import Schedop
from hypercalls.table import number


class PVKernel(GuestKernel):
    mode = "pv"
    paging = "4level"

    @property
    def batch(self) -> int:
        return int(self.options.get("batch", 2048))

    # -------------------------------------------------------------- traps
    def _return_to_user(self) -> None:
        if self.p.guest_type == "pv64":
            self.p.hypercall("iret")

    def syscall(self) -> None:
        super().syscall()
        self.p.trap("syscall")
        self._return_to_user()

    def exception(self) -> None:
        super().exception()
        self.p.trap("exception")
        self._return_to_user()

    def page_fault(self, kind: str = "anon") -> None:
        self._add("kernel.page_fault", "native.page_fault_cycles")
        self.meter.count("page_fault")
        self.p.trap("page_fault")
        self._pv_mmu_update(1, call="update_va_mapping")
        self._return_to_user()

    def prot_fault(self) -> None:
        super().prot_fault()
        self.p.trap("page_fault")
        self._return_to_user()

    # -------------------------------------------------------------- MMU (counted form)
    def _pv_mmu_update(self, n: int, call: str = "mmu_update") -> None:
        """n validated PTE updates to live tables, batched ``batch`` per hypercall."""
        if n <= 0:
            return
        calls = 1 if call == "update_va_mapping" else math.ceil(n / self.batch)
        self.p.charge_hypercall(call, calls)
        self._add("mmu.validate", "xen.pte_validate_cycles", n)
        self.meter.count("mmu.validate", n)
        self.meter.count("pte_write", n)

    def _pte_writes(self, n: int, cause: str = "kernel.pte_write") -> None:
        self._pv_mmu_update(n)

    def _flush_tlb(self) -> None:
        # MMUEXT_TLB_FLUSH_LOCAL rides in the same batch: no extra transition
        self._add("mmu.tlb_flush", "native.tlb_flush_cycles")
        self.meter.count("tlb_flush")

    def _activate(self, pages: int) -> None:
        """Pin the new address space: Xen validates every present entry of every table."""
        tables = self._tables_for(pages)
        self._add("mmu.validate", "xen.pte_validate_cycles", pages + tables)
        self.meter.count("mmu.validate", pages + tables)

    def _retire(self, pages: int) -> None:
        """Unpin before teardown: Xen drops the references every entry held."""
        tables = self._tables_for(pages)
        self._add("mmu.validate", "xen.pte_validate_cycles", (pages + tables) / 2)
        self.meter.count("mmu.devalidate", pages + tables)

    # -------------------------------------------------------------- I/O-facing primitives
    def irq(self, source: str = "device") -> None:
        """A PV kernel takes every interrupt as an event-channel upcall: Xen builds a bounce frame
        into the registered event callback, the handler scans the 2-level pending bitmap, and the
        return is ``HYPERVISOR_iret``. A physical device interrupt (a control domain's driver
        domain role) first runs Xen's ``do_IRQ`` (the native delivery) and becomes a pirq event."""
        if source == "physical":
            self._add("kernel.interrupt", "native.interrupt_cycles")
        self._add("io.evtchn", "xen.event_upcall_cycles")
        self._add("io.evtchn", "io.evtchn_scan_cycles")
        self._add("hypercall.iret", "xen.iret_cycles")

    def idle(self) -> None:
        """The idle loop blocks the vCPU with ``SCHEDOP_block`` (events are unmasked first)."""
        self.p.hypercall("sched_op", Schedop.SCHEDOP_block, None)

    def wake(self, source: str = "event") -> None:
        """A blocked PV vCPU woken by an event (``evtchn_send`` -> ``evtchn_2l_set_pending`` ->
        ``vcpu_mark_events_pending`` -> ``vcpu_kick`` -> ``vcpu_unblock`` -> ``vcpu_wake``,
        ``xen/common/event_channel.c``, ``sched/core.c``): credit's ``csched_unit_wake`` inserts
        it with BOOST and tickles a pCPU (``sched/credit.c``) -- ``wake.sched``; a remote waker's
        tickle of that pCPU is an IPI (``cpumask_raise_softirq`` -> ``smp_send_event_check_mask``)
        -- ``wake.ipi``; a device interrupt or the vCPU's own timer reaches the pCPU without one.
        The wait for the pCPU is the simulated scheduler's; the upcall that follows is
        :meth:`irq`. The waker's share of ``vcpu_wake`` is charged here, on the woken vCPU's
        critical path."""
        self._add("wake.sched", "io.vcpu_wake_cycles")
        self.meter.count("wake.vcpu")
        if source in ("event", "thread"):
            self._add("wake.ipi", "native.ipi_cycles")
            self.meter.count("wake.ipi")

    # -------------------------------------------------------------- timer
    def timer_tick(self) -> None:
        """VIRQ_TIMER arrives as an event-channel upcall; the one-shot timer is re-armed."""
        self._add("kernel.timer", "native.timer_tick_cycles")
        self.meter.count("timer_tick")
        self._add("io.evtchn", "xen.event_upcall_cycles")
        self.p.hypercall("set_timer_op", 10_000_000)  # next one-shot deadline (ns of system time)
        self._return_to_user()

    # -------------------------------------------------------------- context switch
    # Flat selector of the guest kernel's stack (FLAT_KERNEL_SS): ring 3 on x86-64, ring 1 on x86-32
    KERNEL_SS = {"pv64": 0xE02B, "pv32": 0xE021}

    def _switch_extras(self) -> None:
        """Linux PV's switch_to: one multicall with stack_switch and fpu_taskswitch (lazy FPU); the
        new base pointer (MMUEXT_NEW_BASEPTR [+ NEW_USER_BASEPTR]) is issued by the MMU path."""
        self._next_stack = getattr(self, "_next_stack", 0xFFFF_8800_0010_0000) + 0x4000
        entries = [
            MulticallEntry(op=number("stack_switch"), args=[self.KERNEL_SS.get(self.p.guest_type, 0xE02B),
                                                           self._next_stack, 0, 0, 0, 0]),
            MulticallEntry(op=number("fpu_taskswitch"), args=[1, 0, 0, 0, 0, 0]),
        ]
        self.p.hypercall("multicall", entries, len(entries))

    def _switch_address_space(self) -> None:
        """Counted MMU path: NEW_BASEPTR [, NEW_USER_BASEPTR] to pinned roots, and the CR3 load."""
        ptrs = 2 if self.p.guest_type == "pv64" else 1
        self._add("hypercall.multicall", "xen.multicall_entry_cycles", ptrs)
        # new_guest_cr3 on a pinned root: a type get and put on the root per pointer
        self._add("mmu.validate", "xen.pte_validate_cycles", 2 * ptrs)
        self.meter.count("mmu.new_baseptr", ptrs)
        self._add("mmu.tlb_flush", "native.cr3_load_cycles")
        self.meter.count("tlb_flush")


class PV32Kernel(PVKernel):
    mode = "pv32"
    paging = "2level"

