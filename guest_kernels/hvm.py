"""An unmodified kernel under hardware-assisted virtualization: ``hvm-shadow``, ``hvm``, ``pvhvm``, ``pvh``.

Design note
-----------
VT-x/AMD-V run the guest kernel in non-root ring 0, so system calls and most exceptions run at native
speed (ASPLOS'06 syscall and divzero; Xen ``xen/arch/x86/hvm/vmx/vmcs.c`` exception bitmap). What
exits (``xen/arch/x86/hvm/vmx/vmx.c``):

* ``hvm-shadow`` (first-generation VT-x, Xen shadow paging, ``xen/arch/x86/mm/shadow/``): #PF exits;
  a true fault is classified by the shadow code and injected; guest page-table pages are
  write-protected, so every guest PTE write exits and is emulated (fork's copy-on-write marking:
  ``mmu.shadow_wp_fault``); CR3 loads exit; shadows survive CR3 switches in Xen's pool (LRU of
  top-level shadows, :mod:`guest_kernels.mmu.shadow` on the counted path); after a drop the pages
  next touched are re-shadowed by hidden faults; exits early-unshadow the dying L1s.
* ``hvm`` (EPT/NPT, ``xen/arch/x86/mm/hap/``): no exits for page faults, PTE writes or CR3 loads; a
  TLB miss walks both dimensions (up to 24 references instead of 4; :mod:`pvsim.mm` computes them).
  Port I/O and MMIO exit to the device model (QEMU in dom0, via an ioreq).
* ``pvhvm``: ``hvm`` plus PV drivers for disk and network (the I/O subsystem routes them).
* ``pvh``: HAP, PV drivers, event channels, no device model: a stray port access exits to Xen only.
* ``kvm-virtio``: ``hvm`` under a KVM-style host: virtio rings, vhost in the host kernel.

Simplifications: one hardware cost for every exit reason; no TPR-shadow exits (FrobOS takes no
interrupts, modern parts shadow the TPR).
"""

from __future__ import annotations

from guest_kernels.base import GuestKernel
from guest_kernels.mmu.shadow import ShadowLifeCycle


class _VTx:
    """What every VT-x guest does the same way: interrupts are injected vectors whose EOI may exit,
    idle is a ``HLT`` exit, device registers are intercepted accesses (I/O instructions or EPT
    violations on MMIO) forwarded to a device model in the control domain."""

    device_model = True
    dm_access_price = "hvm.device_model_roundtrip_cycles"

    def irq(self, source: str = "device") -> None:
        self._add("exit.external_interrupt", "io.virq_inject_cycles")  # the injected vector
        self._add("kernel.interrupt", "native.interrupt_cycles")
        self.device_access(int(self.p.value("io.eoi_exit_count")), "apic_access")  # EOI to the LAPIC

    def idle(self) -> None:
        """``HLT`` exits (``vmx_vmexit_handler`` EXIT_REASON_HLT -> ``hvm_hlt`` -> ``vcpu_block``):
        the vCPU is descheduled until an interrupt is pending. The exit's VM entry (priced with
        the exit) is the one that resumes the vCPU when it is woken."""
        self.p.vmexit("hlt")

    def wake(self, source: str = "event") -> None:
        """A halted HVM vCPU woken by an interrupt: ``vcpu_kick`` / ``vcpu_unblock`` ->
        ``vcpu_wake`` (credit's BOOST wake, ``wake.sched``) and, from a remote waker (the device
        model's or Xen's interrupt, an event channel), the IPI to its pCPU (``wake.ipi``): with
        posted interrupts the PI wake-up vector that ``pi_wakeup_interrupt`` handles
        (``xen/arch/x86/hvm/vmx/vmx.c``), without them the event-check IPI of ``vcpu_kick``.
        The VMCS reload and the switch are the scheduler's vCPU switch (``world_switch.vcpu``)."""
        self._add("wake.sched", "io.vcpu_wake_cycles")
        self.meter.count("wake.vcpu")
        if source in ("event", "thread"):
            self._add("wake.ipi", "native.ipi_cycles")
            self.meter.count("wake.pi_wakeup" if self.p.value("io.posted_interrupts_count") else "wake.ipi")

    def device_access(self, n: int, reason: str) -> None:
        if n:
            self.p.vmexit(reason, n=n)


class _EmulatedIO(_VTx):
    """Timer of an HVM guest without PV drivers (LAPIC)."""

    def timer_tick(self) -> None:
        self.p.vmexit("external_interrupt")  # the host timer fires while the guest runs
        self._add("kernel.timer", "native.timer_tick_cycles")
        self.meter.count("timer_tick")
        self.p.vmexit("apic_access")  # EOI write to the emulated LAPIC
        self.p.vmexit("msr_write")  # re-arm the TSC-deadline / LAPIC timer


class HVMShadowKernel(ShadowLifeCycle, _EmulatedIO, GuestKernel):
    mode = "hvm-shadow"
    paging = "4level"
    # Xen's shadow cache (guest_kernels.mmu.shadow): bounded by the pool; dropped shadows freed
    shadow_roots_key = None
    frees_dropped_shadows = True
    early_unshadow = True

    def page_fault(self, kind: str = "anon") -> None:
        self._add("kernel.page_fault", "native.page_fault_cycles")
        self.p.vmexit("exception_nmi", "shadow_fault")
        self.meter.count("page_fault")
        if kind != "nano":
            self.ptemod()
        self._fault_in(kind)

    def prot_fault(self) -> None:
        self._add("kernel.page_fault", "native.page_fault_cycles")
        self.p.vmexit("exception_nmi", "shadow_fault")
        self.meter.count("prot_fault")

    def ptemod(self) -> None:
        self._add("mmu.emulated_pte_write", "native.pte_write_cycles")
        self.p.vmexit("exception_nmi", "emulate")
        self.meter.count("mmu.emulated_pte_write")

    def _pte_writes(self, n: int, cause: str = "kernel.pte_write") -> None:
        for _ in range(int(n)):
            self.ptemod()
        self.meter.count("pte_write", n)

    def _wp_faults(self, n: int) -> None:
        """Fork's copy-on-write marking: each store into the parent's write-protected L1 is a #PF
        exit, classified by the shadow code and emulated (no batching in first-generation VT-x)."""
        self.p.vmexit("exception_nmi", "wp_fault", n=n)

    def _cr3_write(self) -> None:
        self.p.vmexit("cr_access")

    def _hidden_faults(self, n: int) -> None:
        """#PF exits the guest never sees: the exit and entry, then sh_page_fault's fix-up."""
        if n:
            self._add("exit.exception_nmi", "hvm.vmexit_cycles", n)
            self._add("exit.exception_nmi", "hvm.vmentry_cycles", n)
            self.meter.count("exit.exception_nmi", n)
            self._add("mmu.hidden_fault", "hvm.shadow_fault_cycles", n)
            self.meter.count("mmu.hidden_fault", n)

    def _flush_tlb(self) -> None:
        super()._flush_tlb()
        self.p.vmexit("cr_access")  # the flush is a CR3 reload, which exits under shadow paging

    def io_port(self) -> None:
        self.p.vmexit("io_instruction", "device_model")
        self.meter.count("io_port")



class HVMKernel(_EmulatedIO, GuestKernel):
    """EPT/NPT: page tables are the guest's own; only the walk is longer."""

    mode = "hvm"
    paging = "4level"

    def io_port(self) -> None:
        if self.device_model:
            self.p.vmexit("io_instruction", "device_model")
        else:
            self.p.vmexit("io_instruction")
        self.meter.count("io_port")

    def tlb_refill(self, pages: int) -> None:
        # each first touch misses the TLB: a 2-D walk of 24 references instead of 4
        refs = ((4 + 1) * (4 + 1) - 1) * pages
        self._add("mmu.page_walk", "native.walk_ref_cycles", refs)
        self.meter.count("mmu.walk_refs", refs)

    def tlb_walks(self, n: float) -> None:
        refs = ((4 + 1) * (4 + 1) - 1) * n  # 4-level guest x 4-level EPT, no walk caches
        self._add("mmu.page_walk", "native.walk_ref_cycles", refs)
        self.meter.count("mmu.walk_refs", refs)


class PVHVMKernel(HVMKernel):
    """HVM with PV drivers: split-driver I/O, event channels delivered through the callback vector."""

    mode = "pvhvm"

    def timer_tick(self) -> None:
        self.p.vmexit("external_interrupt")
        self._add("kernel.timer", "native.timer_tick_cycles")
        self.meter.count("timer_tick")
        self._add("io.evtchn", "xen.event_upcall_cycles")  # VIRQ_TIMER via the callback vector
        self.p.hypercall("set_timer_op", 10_000_000)  # a vmcall exit (charged by the dispatcher)

    def irq(self, source: str = "device") -> None:
        """Event channels arrive through the callback vector (HVM_PARAM_CALLBACK_IRQ): an injected
        vector, the guest's handler, the 2-level scan; no bounce frame, no ``iret`` hypercall."""
        self._add("io.evtchn", "io.virq_inject_cycles")
        self._add("kernel.interrupt", "native.interrupt_cycles")
        self._add("io.evtchn", "io.evtchn_scan_cycles")


class PVHKernel(PVHVMKernel):
    """PVH: HAP + PV drivers + event channels, no device model (stray port I/O exits to Xen only)."""

    mode = "pvh"
    device_model = False
    dm_access_price = None


class KVMKernel(HVMKernel):
    """A KVM-style guest: VT-x with EPT, virtio devices whose kicks are intercepted I/O writes
    (ioeventfd) to vhost threads in the host kernel, completions injected (irqfd); no Xen
    hypercalls and no device model.

    A ``HLT`` exit enters ``kvm_vcpu_halt`` (``virt/kvm/kvm_main.c``): the vCPU thread first polls
    for a pending interrupt for up to its per-vCPU ``halt_poll_ns`` (at most the module parameter,
    ``io.halt_poll_ns``; ``Documentation/virt/kvm/halt-polling.rst``), keeping its pCPU; a wake-up
    inside the window costs no wake-up path. Otherwise the thread blocks (``kvm_vcpu_block``) and a
    wake-up is ``kvm_vcpu_kick`` -> ``rcuwait_wake_up`` -> ``try_to_wake_up`` of the vCPU thread
    (``wake.host_thread``) plus the reschedule IPI from a remote waker (``wake.ipi``)."""

    mode = "kvm-virtio"
    device_model = False
    dm_access_price = None

    # virt/kvm/kvm_main.c module parameters: halt_poll_ns_grow = 2, halt_poll_ns_grow_start =
    # 10000 ns, halt_poll_ns_shrink = 0 (a long block resets the window)
    HALT_POLL_GROW = 2
    HALT_POLL_GROW_START_NS = 10_000
    HALT_POLL_SHRINK = 0

    @property
    def halt_poll_ns(self) -> int:
        return int(self.p.value("io.halt_poll_ns"))

    def next_halt_poll_ns(self, cur: int, halt_ns: int, hit: bool) -> int:
        """``kvm_vcpu_halt``'s update: keep a window that caught the wake-up, shrink after a block
        longer than the maximum, grow (x2, from 10 us) after a shorter one."""
        mx = self.halt_poll_ns
        if mx <= 0:
            return 0
        if halt_ns <= cur:
            return cur
        if cur and halt_ns > mx:
            val = cur // self.HALT_POLL_SHRINK if self.HALT_POLL_SHRINK else 0
            return val if val >= self.HALT_POLL_GROW_START_NS else 0
        if cur < mx and halt_ns < mx:
            return min(max(cur * self.HALT_POLL_GROW, self.HALT_POLL_GROW_START_NS), mx)
        return cur

    def wake(self, source: str = "event") -> None:
        self._add("wake.host_thread", "io.thread_wake_cycles")
        self.meter.count("wake.host_thread")
        if source in ("event", "thread"):
            self._add("wake.ipi", "native.ipi_cycles")
            self.meter.count("wake.ipi")
