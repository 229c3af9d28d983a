"""The guest-kernel interface: the OS actions a workload may ask for.

Design note
-----------
Every action reports work to ``platform.meter`` (never a cost): ``meter.add(cause, price, n)``
with a profile key as price. The native implementation of each action is the baseline; mode
subclasses add what their mode makes of the action (see each module's Design note):

================  ===========================================================================
action            meaning (per call)
================  ===========================================================================
user(c)           c cycles of user-mode work (never virtualized, except BT's kernel-only TC)
kernel(c)         c cycles of guest-kernel work that touches nothing sensitive
syscall()         one user -> kernel -> user round trip (the kernel work is reported separately)
exception()       one non-MMU fault delivered to the guest kernel and returned from (divzero)
page_fault(kind)  one true demand fault handled by the guest kernel, PTE installed
prot_fault()      one protection fault (signal delivered, no PTE change)
ptemod()          one guest PTE write in the current address space
fork(pages, anon) copy an address space of ``pages`` present pages (COW), incl. page-table pages
                  (``anon``: only that many are private writable pages whose PTEs are copied)
exec(pages)       tear down the old address space and build a new one of ``pages`` pages
exit(pages)       tear down an address space of ``pages`` pages
mmap(pages)       map ``pages`` pages (mapping only; touching them is page_fault)
munmap(pages)     unmap ``pages`` pages (with the TLB flush it needs)
context_switch()  switch process (ws_pages, to): kernel path, address-space switch, stack, FPU
llc_wakeup()      wake a task on another vCPU (lines, ws_lines): cross-LLC IPI, line transfers, migration refill
tlb_refill(p)     after a switch or flush, the first touch of each of ``p`` pages
io_port()         one in/out to a legacy or emulated device register
cr8_write()       one write of the task-priority register
call_ret(n)       n call/return pairs executed in kernel mode
================  ===========================================================================

Simplifications: actions are priced one at a time in the order given; there is no cache model
beyond the per-reference costs in the profile; the MMU work of fork/exec/exit/mmap is delegated to
``platform.mmu`` (:mod:`pvsim.mm`, page tables as data) when the builder provides one, else it is
counted here from the page and page-table counts.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol

from pvsim.core.meter import Meter


class Platform(Protocol):
    """What a guest kernel receives from the builder (bound to one domain and vCPU)."""

    meter: Meter
    guest_type: str  # pv32 | pv64 | hvm32 | hvm64 (hypercall availability)
    mmu: Any  # guest-side MMU (guest_kernels.mmu) or None

    def hypercall(self, name: str, *args) -> int: ...
    def charge_hypercall(self, name: str, n: int = 1) -> None: ...  # entries on a counted path
    def trap(self, kind: str) -> None: ...  # PV: Xen bounces a guest trap
    def vmexit(self, reason: str, handling: str = "simple", n: float = 1) -> None: ...
    def bt(self, kind: str, n: float = 1) -> None: ...  # binary-translation transfers
    def sw_mmu(self, cause: str, n: float = 1) -> None: ...  # software-MMU operations
    def value(self, key: str) -> float: ...  # a count-type profile constant


# Netfilter hooks an IPv4 segment crosses in the host stack it is sent or received by: LOCAL_OUT +
# POST_ROUTING on transmit, PRE_ROUTING + LOCAL_IN on receive (include/uapi/linux/netfilter.h,
# net/ipv4/ip_output.c and ip_input.c)
NF_HOOKS_PER_PACKET = 2

# Page-table geometry per paging format: (levels, entries per table)
PAGING = {"2level": (2, 1024), "4level": (4, 512)}


# Actions whose page-table work the structural MMU (platform.mmu) performs for every mode.
MMU_ACTIONS = frozenset({"fork", "exec", "exit", "mmap", "munmap", "page_fault", "prot_fault", "ptemod",
                         "tlb_walks", "tlb_refill"})


class GuestKernel:
    """Native behaviour; mode subclasses override what their mode changes."""

    mode = "native"
    paging = "4level"

    def __init__(self, platform: Platform, **options):
        self.p = platform
        self.options = options

    @property
    def meter(self) -> Meter:
        return self.p.meter

    def act(self, name: str, *args) -> None:
        """Perform action ``name``. MMU actions go to the structural MMU when one is attached
        (page tables as data, :mod:`pvsim.mm`); a ``nano`` page fault (delivery only, FrobOS) and
        every other action are the kernel's own."""
        mmu = self.p.mmu
        if mmu is not None and name in MMU_ACTIONS and not (name == "page_fault" and args[:1] == ("nano",)):
            getattr(mmu, name)(*args)
            return
        fn = getattr(self, name, None)
        if fn is None or name.startswith("_"):
            raise AttributeError(f"unknown guest-kernel action {name!r}")
        fn(*args)

    # ----------------------------------------------------------------- helpers
    def _tables_for(self, pages: int) -> int:
        """Leaf page-table pages needed to map ``pages`` pages (plus the upper levels' share)."""
        levels, per = PAGING[self.paging]
        leaf = math.ceil(pages / per) if pages else 0
        return leaf + (levels - 1 if leaf else 0)

    def _add(self, cause: str, price: str, n: float = 1) -> None:
        self.meter.add(cause, price, n)

    # ----------------------------------------------------------------- plain work
    def user(self, cycles: float) -> None:
        self._add("user", "cycles", cycles)

    def kernel(self, cycles: float) -> None:
        self._add("kernel", "cycles", cycles)

    def call_ret(self, n: int = 1) -> None:
        self._add("kernel", "native.call_ret_cycles", n)

    # ----------------------------------------------------------------- traps
    def syscall(self) -> None:
        self._add("kernel.syscall", "native.syscall_cycles")
        self.meter.count("syscall")

    def exception(self) -> None:
        self._add("kernel.exception", "native.exception_cycles")
        self.meter.count("exception")

    def page_fault(self, kind: str = "anon") -> None:
        self._add("kernel.page_fault", "native.page_fault_cycles")
        self.meter.count("page_fault")
        if kind != "nano":  # FrobOS's pgfault handler installs no PTE; a demand fault does
            self._pte_writes(1, "kernel.page_fault")

    def prot_fault(self) -> None:
        self._add("kernel.page_fault", "native.page_fault_cycles")
        self.meter.count("prot_fault")

    def io_port(self) -> None:
        self._add("device.port_io", "native.io_port_cycles")
        self.meter.count("io_port")

    def cr8_write(self) -> None:
        self._add("kernel", "native.cr8_write_cycles")

    # ----------------------------------------------------------------- timer, walks, I/O
    def timer_tick(self) -> None:
        """One timer interrupt and tick handler (HZ-driven or one-shot re-armed)."""
        self._add("kernel.timer", "native.timer_tick_cycles")
        self.meter.count("timer_tick")

    def tlb_walks(self, n: float) -> None:
        """n TLB misses that need a page walk (4 references natively, counted per level)."""
        refs = 4 * n
        self._add("mmu.page_walk", "native.walk_ref_cycles", refs)
        self.meter.count("mmu.walk_refs", refs)

    # ----------------------------------------------------------------- I/O-facing primitives
    # The device paths (pvsim.io.paths) call these for the work that differs per mode; the paths
    # themselves are the same protocol code for every mode.
    # what a device model pays per forwarded access: a profile key, or ((cause, key, units), ...)
    dm_access_price: str | tuple | None = None

    def irq(self, source: str = "device") -> None:
        """One interrupt taken: ``device`` (a device vector), ``evtchn`` (an event-channel upcall)
        or ``physical`` (a physical device's interrupt reaching this OS). Natively: delivery and
        handler entry/exit."""
        self._add("kernel.interrupt", "native.interrupt_cycles")

    def idle(self) -> None:
        """Nothing to run: the OS halts until an interrupt (free natively)."""

    halt_poll_ns = 0  # a VMM's halt polling before a halted vCPU blocks (KVM's kvm_vcpu_halt)

    def wake(self, source: str = "event") -> None:
        """The wake-up path after a block (``source``: ``event``, ``irq``, ``thread`` or ``timer``,
        see :class:`guest_kernels.os.VcpuOS`). Natively a device interrupt or the CPU's own timer
        is the wake-up (priced by :meth:`irq`); a thread woken by another CPU reaches an idle CPU by
        the reschedule IPI (Linux ``try_to_wake_up`` -> ``smp_send_reschedule``)."""
        if source == "thread":
            self._add("wake.ipi", "native.ipi_cycles")
            self.meter.count("wake.ipi")

    def next_halt_poll_ns(self, cur: int, halt_ns: int, hit: bool) -> int:
        """The next halt-poll window after a halt of ``halt_ns`` (no halt polling: 0)."""
        return 0

    def device_access(self, n: int, reason: str) -> None:
        """``n`` accesses to device registers that a VMM intercepts (none natively)."""

    def nic_packets(self, n: int) -> None:
        """The physical NIC driver's work for ``n`` frames (host stack only)."""
        self._add("kernel.nic_driver", "io.native_nic_packet_cycles", n)

    def net_stack(self, n: int, payload: int) -> None:
        """The TCP/IP stack's work for ``n`` segments carrying ``payload`` bytes (sent or received),
        with the netfilter hooks each segment crosses (:data:`NF_HOOKS_PER_PACKET`)."""
        self._add("kernel.net_stack", "io.tcp_packet_cycles", n)
        self._add("kernel.net_stack", "io.memcpy_byte_cycles", payload)
        self._add("kernel.netfilter", "io.netfilter_hook_cycles", NF_HOOKS_PER_PACKET * n)
        self.meter.count("net.netfilter_hook", NF_HOOKS_PER_PACKET * n)

    # ----------------------------------------------------------------- MMU
    def _pte_writes(self, n: int, cause: str = "kernel.pte_write") -> None:
        """n PTE writes into the current (live) page tables."""
        self._add(cause, "native.pte_write_cycles", n)
        self.meter.count("pte_write", n)

    def _new_table_writes(self, n: int) -> None:
        """n PTE writes into page-table pages not yet in use (no MMU mediation in any mode)."""
        self._add("kernel.pte_write", "native.pte_write_cycles", n)
        self.meter.count("pte_write", n)

    def _flush_tlb(self) -> None:
        self._add("mmu.tlb_flush", "native.tlb_flush_cycles")
        self.meter.count("tlb_flush")

    def _activate(self, pages: int) -> None:
        """A new address space becomes usable (nothing to do natively)."""

    def _retire(self, pages: int) -> None:
        """An address space is torn down (nothing beyond the PTE clears natively)."""

    def ptemod(self) -> None:
        self._pte_writes(1)

    def fork(self, pages: int, anon: int | None = None) -> None:
        # child's tables are written while not yet live; the parent's PTEs are write-protected (COW).
        # ``anon``: Linux 2.6 copies only the PTEs of mappings with anonymous pages (copy_page_range
        # skips the others, which the child faults in); None: every present page (Linux 2.4)
        copied = pages if anon is None else min(anon, pages)
        self._new_table_writes(copied)
        self._pte_writes(copied)
        self._flush_tlb()
        self._activate(copied)

    def exit(self, pages: int) -> None:
        self._retire(pages)
        self._teardown_writes(pages)

    def _teardown_writes(self, pages: int) -> None:
        self._new_table_writes(pages)  # after retire the tables are plain memory again

    def exec(self, pages: int) -> None:
        self.exit(pages)
        self._activate(0)

    def mmap(self, pages: int) -> None:
        """Mapping only creates the VMA; entries appear at fault time."""

    def munmap(self, pages: int) -> None:
        self._pte_writes(pages)
        self._flush_tlb()

    def llc_wakeup(self, lines: float = 0, ws_lines: float = 0) -> None:
        """One wake-up of a task on another vCPU of this guest, priced by where the vCPUs sit in
        the host's cache topology (:mod:`pvsim.sched.topology`; the builder's ``placement`` =
        (P wake-up across LLCs, P woken vCPU migrated across LLCs)): a cross-LLC wake-up pays the
        IPI's extra cost and the transfer of the ``lines`` lines the waker wrote for the wakee; a
        cross-LLC migration refills the wakee's ``ws_lines``-line working set."""
        p_wake, p_mig = self.options.get("placement", (0.0, 0.0))
        self.meter.count("llc_wakeup")
        if p_wake:
            self._add("sched.cross_llc_wakeup", "sched.cross_llc_ipi_cycles", p_wake)
            self._add("sched.cross_llc_wakeup", "sched.cross_llc_line_cycles", p_wake * lines)
            self.meter.count("sched.cross_llc_wakeup", p_wake)
        if p_mig:
            self._add("sched.llc_migration_refill", "sched.cross_llc_line_cycles", p_mig * ws_lines)
            self.meter.count("sched.llc_migration", p_mig)

    def context_switch(self, ws_pages: int = 0, to: int | None = None) -> None:
        """Process switch: the kernel's switch path, the mode's extras (PV: a multicall), the
        address-space switch (CR3 load and whatever the mode makes of it) and the refill of the
        ``ws_pages`` pages the next process touches. ``to`` names the process (1 is the workload's
        first process, e.g. lmbench's parent); None means the most recent other one."""
        # native.context_switch_cycles is lat_ctx 2p/0K's whole switch; the CR3 load and the TLB
        # refill of the pages that measurement touched are priced apart (by the MMU path)
        self._add("kernel.context_switch", "native.context_switch_cycles")
        self._add("kernel.context_switch", "native.cr3_load_cycles", -1)
        self._add("kernel.context_switch", "native.walk_ref_cycles", -4 * self.p.value("native.context_switch_ws_pages_count"))
        self.meter.count("context_switch")
        self._switch_extras()
        if self.p.mmu is not None:
            self.p.mmu.context_switch(to)
            self.p.mmu.tlb_refill(ws_pages)
        else:
            self._switch_address_space()
            self.tlb_refill(ws_pages)

    def _switch_extras(self) -> None:
        """Mode-specific switch work that is not MMU work (nothing natively)."""

    def _switch_address_space(self) -> None:
        """Counted MMU path: load CR3 (flushes the non-global TLB)."""
        self._add("mmu.tlb_flush", "native.cr3_load_cycles")
        self.meter.count("tlb_flush")

    def tlb_refill(self, pages: int) -> None:
        """First touch of ``pages`` pages after a switch: one TLB miss and a 4-reference walk each
        (shadow modes add hidden faults, HAP longer walks)."""
        self._add("mmu.page_walk", "native.walk_ref_cycles", 4 * pages)
        self.meter.count("mmu.walk_refs", 4 * pages)


KernelFactory = Callable[..., GuestKernel]
