"""An unmodified kernel under a binary-translating VMM (``bt``): VMware-style software virtualization.

Design note
-----------
After Adams & Agesen, ASPLOS'06 §3 (and VMware Workstation in SOSP'03's comparison). User code runs
directly; kernel code runs from a translation cache (TC). The mode changes these actions:

* **System calls, exceptions and interrupts**: the user-mode ``int``/``syscall`` (user code runs
  directly) takes the hardware transition into the VMM, which emulates the guest's privilege change
  into the translated kernel (IDT gate, kernel stack frame, virtual CPL/IF, segment state) and
  enters the handler's translation; the guest's ``sysexit``/``iret`` is a callout into the VMM,
  which does the real return -- "a layer of code and an extra privilege transition" (S3). Priced
  step by step from primitives (:func:`pvsim.hypervisor.traps.bt_transfer` ``gate``), never from
  the published syscall figure; the same gate delivers divzero and the timer interrupt.
* **Page faults**: the VMM's software MMU interposes on true and hidden faults; a true fault is
  classified and reflected (``bt.shadow_fault_cycles``, calibrated on nano.pgfault). A hidden fault
  (shadow entry missing after a CR3 switch or a shadow drop) is fixed up without the guest seeing it.
* **PTE writes** to traced (shadowed) page tables are discovered adaptively and translated into a
  callout that updates guest PTE and shadow together (S3 ptemod: "a small program").
* **Sensitive instructions** (CR3 load, TPR write, port I/O) are translated into short sequences or
  callouts; ``in`` talks to the VMM's virtual chipset model without a trap.
* **Indirect control flow** (returns) goes through the TC lookup and usually mispredicts.

* **Shadow life cycle** (counted path, :mod:`guest_kernels.mmu.shadow`): the translator keeps the
  translations of ``mmu.bt_shadow_roots_count`` address spaces (1: a switch to another one
  empties them, the pages next touched re-shadow by hidden faults); fork's copy-on-write marking of
  the parent's traced L1s is ``mmu.shadow_wp_fault``; a dying address space's clears are all
  mediated (the traces persist, see :class:`pvsim.mm.machine.ShadowMMU`).

Under a *hosted* VMM (profile ``bt.hosted_count`` = 1: VMware Workstation) the VMM also leaves its
world for the host OS -- device emulation, first use of a guest frame, host timer ticks
(:class:`guest_kernels.bt_hosted.HostWorld`).

Simplifications: translated kernel code otherwise runs at native speed (``bt.kernel_slowdown_frac``);
no translation-cache misses (warm TC); ``shadow_refill_frac`` (option, default 1.0) scales the
pages re-shadowed after a miss.
"""

from __future__ import annotations

from guest_kernels.base import GuestKernel, Platform
from guest_kernels.bt_hosted import HostWorld
from guest_kernels.mmu.shadow import ShadowLifeCycle


class BTKernel(ShadowLifeCycle, GuestKernel):
    mode = "bt"
    paging = "4level"
    # the translator's shadow cache (guest_kernels.mmu.shadow): few roots, pages and traces kept
    shadow_roots_key = "mmu.bt_shadow_roots_count"
    frees_dropped_shadows = False
    early_unshadow = False

    def __init__(self, platform: Platform, **options):
        super().__init__(platform, **options)
        hosted = self.p.value("bt.hosted_count") >= 1
        self.host = HostWorld(platform) if hosted else None  # the host OS of a hosted VMM
        if hosted:  # a device the VMApp emulates: world switch + the VMApp's host system calls
            self.dm_access_price = self.host.device_prices()

    def act(self, name: str, *args) -> None:
        super().act(name, *args)
        if self.host is not None and name == "page_fault" and self.p.mmu is not None:
            self.host.page_fault(*args[:1] or ("anon",))  # the structural MMU took the fault itself

    def syscall(self) -> None:
        super().syscall()
        self.p.bt("gate")

    def exception(self) -> None:
        super().exception()
        self.p.bt("gate")

    def _true_fault(self) -> None:
        self._add("kernel.page_fault", "native.page_fault_cycles")
        self._add("trap.bt_page_fault", "bt.shadow_fault_cycles")
        self.meter.count("trap.bt_page_fault")

    def page_fault(self, kind: str = "anon") -> None:
        self._true_fault()
        self.meter.count("page_fault")
        if kind != "nano":  # the guest handler installs the PTE in a traced table
            self.ptemod()
        self._fault_in(kind)
        if self.host is not None:
            self.host.page_fault(kind)

    def prot_fault(self) -> None:
        self._true_fault()
        self.meter.count("prot_fault")

    def ptemod(self) -> None:
        self._add("mmu.emulated_pte_write", "native.pte_write_cycles")
        self.p.bt("callout")
        self.p.sw_mmu("mmu.emulated_pte_write")
        self.meter.count("mmu.emulated_pte_write")

    def _pte_writes(self, n: int, cause: str = "kernel.pte_write") -> None:
        """Writes to traced page tables: translated callouts where the VMM adapts (ASPLOS'06), else
        each write takes the VMM's fault path (write-protect trap, classify, emulate, propagate)."""
        if n <= 0:
            return
        self._add("mmu.emulated_pte_write", "native.pte_write_cycles", n)
        if self.p.value("bt.adaptive_pte_translation_count") >= 1:
            self.p.bt("callout", n)
            self.p.sw_mmu("mmu.emulated_pte_write", n)
        else:
            self._add("mmu.emulated_pte_write", "bt.shadow_fault_cycles", n)
        self.meter.count("mmu.emulated_pte_write", n)
        self.meter.count("pte_write", n)

    def _wp_faults(self, n: int) -> None:
        """Fork's copy-on-write marking of the parent's traced L1s: translated callouts where the
        VMM adapts (ASPLOS'06), else a write-protect trap into the VMM for each store."""
        if self.p.value("bt.adaptive_pte_translation_count") >= 1:
            self.p.bt("callout", n)
            self.p.sw_mmu("mmu.shadow_wp_fault", n)
        else:
            self._add("mmu.shadow_wp_fault", "bt.shadow_fault_cycles", n)

    def _cr3_write(self) -> None:
        self.p.bt("callout")  # translated mov to CR3

    def _hidden_faults(self, n: int) -> None:
        self.p.bt("hidden_fault", n)

    def io_port(self) -> None:
        self.device_access(1, "io_instruction")  # the virtual chipset answers without a trap
        self.meter.count("io_port")

    # -------------------------------------------------------------- I/O-facing primitives
    # a device the VMM's chipset model cannot answer alone is emulated in the host: a world switch
    dm_access_price = "bt.world_switch_cycles"

    def device_access(self, n: int, reason: str) -> None:
        """``n`` device-register accesses: each translated into a callout to the VMM's virtual
        chipset, which reads and updates its register state (no hardware trap)."""
        if n:
            self.p.bt("callout", n)
            self._add("device.emulation", "native.mem_ref_cycles", n * self.p.value("bt.chipset_refs_count"))
            self.meter.count("trap.io_callout", n)

    def irq(self, source: str = "device") -> None:
        """A device interrupt lands in the VMM, which injects it into the translated guest's
        handler; the handler's EOI writes to the virtual APIC are callouts."""
        self._add("device.emulation", "io.virq_inject_cycles")
        self._add("kernel.interrupt", "native.interrupt_cycles")
        self.device_access(int(self.p.value("io.eoi_exit_count")), "apic_access")

    def cr8_write(self) -> None:
        # translated into a store to the virtual TPR and a compare with the highest pending vector
        self._add("kernel", "native.mem_ref_cycles")
        self._add("kernel", "bt.tc_lookup_cycles")

    def call_ret(self, n: int = 1) -> None:
        super().call_ret(n)
        self.p.bt("indirect", n)

    def timer_tick(self) -> None:
        if self.host is not None:
            self.host.timer_tick()  # the physical tick arrives in the host world
        self._add("kernel.timer", "native.timer_tick_cycles")
        self.meter.count("timer_tick")
        self.p.bt("gate")  # the interrupt lands in the VMM, whose gate delivers it to the translated handler
        self.p.bt("callout", 2)  # EOI and timer re-arm: translated accesses to the virtual APIC

