"""What the hypervisor does when a guest traps, exits or calls out (the non-hypercall entries).

Design note
-----------
Models three entry paths into the hypervisor, each reporting its work to the current meter:

* :func:`pv_bounce` -- a PV guest's exception, page fault or (x86-64) system call enters Xen,
  which builds a bounce frame on the guest kernel stack and jumps to the handler registered with
  ``set_trap_table`` (``xen/arch/x86/traps.c``/``pv/traps.c``: ``pv_inject_event``,
  ``create_bounce_frame``). On x86-64 PV the guest kernel runs in ring 3 with its own page table,
  so the bounce also switches user/kernel page tables (``toggle_guest_mode``, ``pv/domain.c``).
* :func:`vmexit` -- a VT-x/AMD-V exit: hardware exit, the hypervisor's handler for the reason
  (``xen/arch/x86/hvm/vmx/vmx.c`` ``vmx_vmexit_handler``), VM entry. Handler work is VMCS
  accesses counted per reason plus reason-specific software (shadow MMU, x86 emulator, device
  model round trip through an ``ioreq`` to QEMU in dom0).
* :func:`bt_transfer` -- a binary-translating VMM's control transfers: a callout from the
  translation cache (TC) into VMM code, an indirect branch through the TC's lookup, the *gate*
  through which a guest system call, exception or interrupt reaches the translated guest handler
  and returns (Adams & Agesen, ASPLOS'06 §3: "a layer of code and an extra privilege transition"),
  and the reflection of a true guest page fault (the calibrated software-MMU fault path).

  The gate is priced from primitives, step by step (each its own cause): the guest's ``int``/
  ``syscall`` (user code runs directly) enters the VMM through the hardware -- the same transition
  the native kernel pays, so it is the guest's own ``native.syscall_cycles``/``exception_cycles``;
  the VMM emulates the guest's privilege change (``trap.bt_gate_entry``: guest IDT gate, TSS stack,
  the frame pushed on the guest kernel stack, virtual CPL/IF, segment state:
  ``bt.gate_entry_refs_count`` memory references) and enters the handler in the TC (a TC lookup);
  the translated kernel runs one ring above the VMM, so entering it and calling back out of it at
  the guest's ``sysexit``/``iret`` is one extra hardware privilege round trip
  (``trap.bt_gate_ring``, priced as the measured bare fault/iret round trip
  ``native.exception_cycles``); the ``iret`` is a callout (``bt_transfer('callout')``) into the
  VMM, which pops and checks the guest frame and restores the user state
  (``trap.bt_gate_exit``: ``bt.gate_exit_refs_count`` references) before the real return (again
  the guest's own native transition).

Simplifications: one cost for every VM-exit reason's hardware part (ASPLOS'06 publishes the
page-fault exit only); the device model round trip is one primitive, not a scheduled dom0
process (the I/O subsystem schedules it for real where I/O workloads run).
"""

from __future__ import annotations

from pvsim.core.meter import Meter
from pvsim.core.profile import Profile

# VMX basic exit reasons (Intel SDM vol. 3, appendix C; Xen's asm/hvm/vmx/vmx.h names)
EXIT_REASONS = {
    "exception_nmi": 0, "external_interrupt": 1, "triple_fault": 2, "pending_virt_intr": 7,
    "cpuid": 10, "hlt": 12, "invlpg": 14, "rdtsc": 16, "vmcall": 18, "cr_access": 28,
    "io_instruction": 30, "msr_read": 31, "msr_write": 32, "tpr_below_threshold": 43,
    "apic_access": 44, "ept_violation": 48, "ept_misconfig": 49, "wbinvd": 54, "xsetbv": 55,
}

# x86 exception vectors of the traps a PV guest bounces (X86_EXC_*), 0x80 for a bounced x86-64 syscall;
# the trap word of TRC_PV_TRAP
TRAP_VECTORS = {"exception": 13, "page_fault": 14, "syscall": 0x80, "device_not_available": 7}


def _sw_mmu_cycles(profile: Profile) -> float:
    """One software-MMU operation (examine/propagate a guest PTE): counted memory references."""
    return profile.value("bt.sw_mmu_refs_count") * profile.cycles("native.mem_ref_cycles")


def vmexit(meter: Meter, profile: Profile, reason: str, *, handling: str = "simple", n: float = 1) -> None:
    """``n`` VM exits for ``reason`` and their handling, each followed by VM entry.

    ``handling``: ``simple`` (read exit info, advance RIP), ``shadow_fault`` (shadow page fault
    handler: walk, classify, fix up or inject), ``emulate`` (x86 emulation of the faulting write
    after the shadow handler classified it), ``wp_fault`` (the same for fork's copy-on-write
    marking of the parent's write-protected page tables, reported as ``mmu.shadow_wp_fault``), ``device_model`` (I/O to the device model in dom0).
    """
    if reason not in EXIT_REASONS:
        raise ValueError(f"unknown exit reason {reason!r}")
    cause = f"exit.{reason}"
    meter.add(cause, "hvm.vmexit_cycles", n)
    meter.add(cause, "hvm.vmentry_cycles", n)
    meter.count(cause, n)
    if handling == "simple":
        meter.add(cause, "hvm.exit_handling_cycles", n)
    elif handling == "shadow_fault":
        meter.add(cause, "hvm.shadow_fault_cycles", n)
    elif handling in ("emulate", "wp_fault"):
        wcause = "mmu.emulated_pte_write" if handling == "emulate" else "mmu.shadow_wp_fault"
        meter.add(wcause, "hvm.shadow_fault_cycles", n)
        meter.add(wcause, "hvm.vmcs_read_cycles", n * profile.value("hvm.emulate_vmcs_reads_count"))
    elif handling == "device_model":
        meter.add(cause, "hvm.vmcs_read_cycles", n * profile.value("hvm.io_exit_vmcs_reads_count"))
        meter.add(cause, "hvm.vmcs_write_cycles", n * profile.value("hvm.io_exit_vmcs_writes_count"))
        meter.add("device.emulation", "hvm.device_model_roundtrip_cycles", n)
    else:
        raise ValueError(f"unknown exit handling {handling!r}")


def pv_bounce(meter: Meter, profile: Profile, kind: str, *, guest_type: str) -> None:
    """Xen receives a guest trap (``kind``: ``exception``, ``page_fault``, ``syscall``) and bounces it.

    Only the *extra* work over native is reported; the hardware delivery and the guest handler are
    the guest kernel's own work. x86-64 PV also switches to the guest-kernel page table on entry.
    """
    cause = f"trap.{kind}"
    meter.count(cause)
    if guest_type == "pv64":
        if kind == "syscall":
            meter.add(cause, "xen.syscall_bounce_pv64_cycles")
        else:
            meter.add(cause, "xen.trap_bounce_cycles")
        meter.add("mmu.guest_mode_switch", "xen.guest_cr3_switch_pv64_cycles")
    else:
        if kind == "syscall":  # pv32: trap gate straight to ring 1, Xen not entered
            return
        meter.add(cause, "xen.trap_bounce_cycles")


def bt_transfer(meter: Meter, profile: Profile, kind: str, n: float = 1) -> None:
    """Binary-translation control transfers.

    ``indirect``: an indirect branch or return through the TC lookup (misprediction + lookup);
    ``callout``: TC -> VMM routine -> TC; ``gate``: a guest system call, exception or interrupt
    delivered by the VMM into the translated handler and its translated return, priced from
    primitives (module Design note); ``reflect``: a true guest page fault classified by the
    software MMU and delivered the same way (the calibrated true-fault path less its software-MMU
    part, ``bt.shadow_fault_cycles``); ``hidden_fault``: a shadow fault the guest never sees
    (hardware fault into the VMM, software-MMU fix-up, return).
    """
    if kind == "indirect":
        meter.add("trap.bt_indirect", "native.branch_mispredict_cycles", n)
        meter.add("trap.bt_indirect", "bt.tc_lookup_cycles", n)
    elif kind == "callout":
        k = profile.value("bt.callout_count") * n
        meter.add("trap.bt_callout", "native.branch_mispredict_cycles", k)
        meter.add("trap.bt_callout", "bt.tc_lookup_cycles", k)
        meter.count("bt.callout", n)
    elif kind == "gate":
        meter.add("trap.bt_gate_entry", "native.mem_ref_cycles", profile.value("bt.gate_entry_refs_count") * n)
        # enter the handler's translation through the TC lookup (an indirect transfer)
        meter.add("trap.bt_gate_entry", "native.branch_mispredict_cycles", n)
        meter.add("trap.bt_gate_entry", "bt.tc_lookup_cycles", n)
        meter.add("trap.bt_gate_ring", "native.exception_cycles", n)
        bt_transfer(meter, profile, "callout", n)  # the translated sysexit/iret
        meter.add("trap.bt_gate_exit", "native.mem_ref_cycles", profile.value("bt.gate_exit_refs_count") * n)
        meter.count("bt.gate", n)
    elif kind == "reflect":
        meter.add("trap.bt_reflect", "bt.shadow_fault_cycles", n)
        meter.add("trap.bt_reflect", "cycles", -_sw_mmu_cycles(profile) * n)
        meter.count("bt.reflect", n)
    elif kind == "hidden_fault":
        meter.add("mmu.hidden_fault", "native.exception_cycles", n)
        meter.add("mmu.hidden_fault", "cycles", _sw_mmu_cycles(profile) * n)
        meter.count("mmu.hidden_fault", n)
    else:
        raise ValueError(f"unknown BT transfer {kind!r}")


def sw_mmu(meter: Meter, profile: Profile, cause: str, n: float = 1) -> None:
    """n software-MMU operations (examine or propagate one guest PTE into its shadow)."""
    meter.add(cause, "cycles", _sw_mmu_cycles(profile) * n)
