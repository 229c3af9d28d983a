"""Sub-operation enums and flag values of the Xen hypercall ABI (the canonical home in pvsim).

Design note
-----------
Every name and value is Xen's, verbatim, read from the public headers of ``xen-project/xen`` at
``c447b7308b`` (version string ``4.23-unstable``); each group cites its header below (paths are
relative to ``xen/include/public/``). Command sets are :class:`enum.IntEnum` classes whose
member names are Xen's macro names, and every member is also exported as a module-level
constant, so ``ops.MMUEXT_PIN_L4_TABLE`` and ``ops.MmuextCmd.MMUEXT_PIN_L4_TABLE`` are the same
value. Flag sets that are ORed together (``UVMF_*``, ``GTF_*``, ``GNTMAP_*``, ...) and plain
values (the reserved ``DOMID_*`` of ``xen.h``, the ``RUNSTATE_*`` of ``vcpu.h``) are plain
``int`` constants, as in C; this is their one definition in pvsim.

Facts about the calling convention that are not numbers (kept here as documentation, after
``xen.h`` and ``arch-x86/xen-x86_64.h``):

* The hypercall page holds 128 stubs of 32 bytes; the stub for ``nr`` is at ``32 * nr``.
* x86-64 PV: ``syscall`` with the number in ``rax`` and up to five arguments in ``rdi, rsi,
  rdx, r10, r8``; result in ``rax``. ``HYPERVISOR_iret`` is jumped to, not called.
* x86-32 PV (the SOSP'03 ring-1 kernel): ``int $0x82`` (``HYPERCALL_VECTOR``) with arguments in
  ``ebx, ecx, edx, esi, edi``; old guests spelled the instruction ``TRAP_INSTR``.
* HVM/PVH: the same page holds ``vmcall`` (Intel) or ``vmmcall`` (AMD) stubs.

Simplifications: only what a guest of the simulator can name is here (e.g. ``XENMEM_*``
sub-commands of ``paging_op``/``sharing_op``/``access_op`` and the FIFO control-block layout are
given as constants but no handler acts on them).
"""

from __future__ import annotations

from enum import IntEnum


def _export(enum_cls: type[IntEnum]) -> type[IntEnum]:
    """Export every member of ``enum_cls`` (aliases included) as a module-level constant."""
    for member_name, member in enum_cls.__members__.items():
        globals()[member_name] = member
    return enum_cls


# --------------------------------------------------------------------------------------------
# Calling convention facts (xen.h, arch-x86/xen-x86_64.h, arch-x86/xen-x86_32.h)
# --------------------------------------------------------------------------------------------
HYPERCALL_PAGE_STUBS = 128  # PAGE_SIZE / 32 stubs (xen/arch/x86/pv/hypercall.c)
HYPERCALL_STUB_BYTES = 32
HYPERCALL_MAX_ARGS = 5  # "Only 5 arguments are supported in reality." (xen.h, multicall_entry)
HYPERCALL_VECTOR_PV32 = 0x82  # HYPERCALL_VECTOR (xen/arch/x86/include/asm/irq-vectors.h)
TRAP_INSTR_PV32 = "int $0x82"
TRAP_INSTR_PV64 = "syscall"
TRAP_INSTR_HVM = "vmcall/vmmcall"

# 64-bit flat selectors in Xen's reserved GDT area (arch-x86/xen-x86_64.h)
FLAT_RING3_CS32 = 0xE023
FLAT_RING3_CS64 = 0xE033
FLAT_RING3_DS32 = 0xE02B
FLAT_RING3_DS64 = 0x0000
FLAT_RING3_SS32 = 0xE02B
FLAT_RING3_SS64 = 0xE02B
FLAT_KERNEL_CS = FLAT_RING3_CS64
FLAT_KERNEL_SS = FLAT_RING3_SS64
FLAT_KERNEL_DS = FLAT_RING3_DS64
FLAT_USER_CS = FLAT_RING3_CS64
FLAT_USER_SS = FLAT_RING3_SS64
FLAT_USER_DS = FLAT_RING3_DS64
# x86-32 Xen (the SOSP'03 layout): the guest kernel runs in ring 1 (arch-x86/xen-x86_32.h)
FLAT_RING1_CS = 0xE019
FLAT_RING1_DS = 0xE021
FLAT_RING1_SS = 0xE021
FLAT_RING3_CS = 0xE02B
FLAT_RING3_DS = 0xE033
FLAT_RING3_SS = 0xE033

# Reserved domain ids (xen.h). DOMID_IDLE is Xen's id for the idle domain; it is never a guest's.
DOMID_FIRST_RESERVED = 0x7FF0
DOMID_SELF = 0x7FF0
DOMID_IO = 0x7FF1
DOMID_XEN = 0x7FF2
DOMID_COW = 0x7FF3
DOMID_INVALID = 0x7FF4
DOMID_ANY = 0x7FF5
DOMID_IDLE = 0x7FFF

# Hypervisor hole (arch-x86/xen-x86_64.h)
HYPERVISOR_VIRT_START = 0xFFFF800000000000
HYPERVISOR_VIRT_END = 0xFFFF880000000000
MACH2PHYS_VIRT_START = 0xFFFF800000000000
MACH2PHYS_VIRT_END = 0xFFFF804000000000
# Where the hole starts for a 32-bit PV guest on 64-bit Xen, as XENVER_platform_parameters
# reports it (__HYPERVISOR_COMPAT_VIRT_START, asm/config.h; __HYPERVISOR_VIRT_START_PAE in
# arch-x86/xen-x86_32.h)
HYPERVISOR_COMPAT_VIRT_START = 0xF5800000

# trap_info.flags (arch-x86/xen.h): bits 0-1 DPL, bit 2 "clear event enable" (interrupt gate)
TI_DPL_MASK = 3
TI_IF_FLAG = 4
X86_IDT_VECTORS = 256  # trap_ctxt[256] in vcpu_guest_context (arch-x86/xen.h)


def TI_GET_DPL(flags: int) -> int:
    return flags & 3


def TI_GET_IF(flags: int) -> int:
    return flags & 4


# iret flags (arch-x86/xen-x86_64.h)
VGCF_in_syscall = 1 << 8


# --------------------------------------------------------------------------------------------
# mmu_update sub-commands, ptr[1:0] (xen.h)
# --------------------------------------------------------------------------------------------
@_export
class MmuCmd(IntEnum):
    MMU_NORMAL_PT_UPDATE = 0  # checked '*ptr = val'. ptr is MA.
    MMU_MACHPHYS_UPDATE = 1  # ptr = MA of frame to modify entry for
    MMU_PT_UPDATE_PRESERVE_AD = 2  # atomically: *ptr = val | (*ptr&(A|D))
    MMU_PT_UPDATE_NO_TRANSLATE = 3  # checked '*ptr = val'. val never translated.


MMU_CMD_MASK = 3  # the sub-command lives in ptr[1:0] (sizeof(l1_pgentry_t)-1, arch/x86/mm.c)
# mmu_update/mmuext_op continuation: ORed into `count`
MMU_UPDATE_PREEMPTED = 1 << 31  # (~(~0U>>1)), xen/arch/x86/include/asm/hypercall.h


# --------------------------------------------------------------------------------------------
# mmuext_op commands (xen.h, "enum mmuext_cmd")
# --------------------------------------------------------------------------------------------
@_export
class MmuextCmd(IntEnum):
    MMUEXT_PIN_L1_TABLE = 0
    MMUEXT_PIN_L2_TABLE = 1
    MMUEXT_PIN_L3_TABLE = 2
    MMUEXT_PIN_L4_TABLE = 3
    MMUEXT_UNPIN_TABLE = 4
    MMUEXT_NEW_BASEPTR = 5
    MMUEXT_TLB_FLUSH_LOCAL = 6
    MMUEXT_INVLPG_LOCAL = 7
    MMUEXT_TLB_FLUSH_MULTI = 8
    MMUEXT_INVLPG_MULTI = 9
    MMUEXT_TLB_FLUSH_ALL = 10
    MMUEXT_INVLPG_ALL = 11
    MMUEXT_FLUSH_CACHE = 12
    MMUEXT_SET_LDT = 13
    MMUEXT_NEW_USER_BASEPTR = 15
    MMUEXT_CLEAR_PAGE = 16
    MMUEXT_COPY_PAGE = 17
    MMUEXT_FLUSH_CACHE_GLOBAL = 18
    MMUEXT_MARK_SUPER = 19
    MMUEXT_UNMARK_SUPER = 20


# --------------------------------------------------------------------------------------------
# update_va_mapping flags, "enum uvm_flags" (xen.h). UVMF_MULTI: OR in a pointer to a vCPU
# bitmap; UVMF_LOCAL is UVMF_MULTI with a NULL bitmap pointer.
# --------------------------------------------------------------------------------------------
UVMF_NONE = 0 << 0  # No flushing at all.
UVMF_TLB_FLUSH = 1 << 0  # Flush entire TLB(s).
UVMF_INVLPG = 2 << 0  # Flush only one entry.
UVMF_FLUSHTYPE_MASK = 3 << 0
UVMF_MULTI = 0 << 2  # Flush subset of TLBs.
UVMF_LOCAL = 0 << 2  # Flush local TLB.
UVMF_ALL = 1 << 2  # Flush all TLBs.


# --------------------------------------------------------------------------------------------
# console_io (xen.h)
# --------------------------------------------------------------------------------------------
@_export
class ConsoleioCmd(IntEnum):
    CONSOLEIO_write = 0
    CONSOLEIO_read = 1


# --------------------------------------------------------------------------------------------
# vm_assist (xen.h)
# --------------------------------------------------------------------------------------------
@_export
class VmasstCmd(IntEnum):
    VMASST_CMD_enable = 0
    VMASST_CMD_disable = 1


@_export
class VmasstType(IntEnum):
    VMASST_TYPE_4gb_segments = 0
    VMASST_TYPE_4gb_segments_notify = 1
    VMASST_TYPE_writable_pagetables = 2
    VMASST_TYPE_pae_extended_cr3 = 3
    VMASST_TYPE_architectural_iopl = 4
    VMASST_TYPE_runstate_update_flag = 5
    VMASST_TYPE_m2p_strict = 32


# Valid vm_assist types per guest kind (xen/arch/x86/include/asm/domain.h,
# arch_vm_assist_valid_mask: PV32_VM_ASSIST_MASK, PV64_VM_ASSIST_MASK, HVM_VM_ASSIST_MASK).
VM_ASSIST_VALID_PV32 = (
    (1 << VmasstType.VMASST_TYPE_4gb_segments)
    | (1 << VmasstType.VMASST_TYPE_4gb_segments_notify)
    | (1 << VmasstType.VMASST_TYPE_writable_pagetables)
    | (1 << VmasstType.VMASST_TYPE_pae_extended_cr3)
    | (1 << VmasstType.VMASST_TYPE_architectural_iopl)
    | (1 << VmasstType.VMASST_TYPE_runstate_update_flag)
)
# "Various of what PV32_VM_ASSIST_MASK has isn't really applicable to 64-bit, but we can't make
# such requests fail all of the sudden." (asm/domain.h)
VM_ASSIST_VALID_PV64 = VM_ASSIST_VALID_PV32 | (1 << VmasstType.VMASST_TYPE_m2p_strict)
VM_ASSIST_VALID_HVM = 1 << VmasstType.VMASST_TYPE_runstate_update_flag


# --------------------------------------------------------------------------------------------
# Virtual IRQs (xen.h). V = per-vCPU, G = global, D = per-domain.
# --------------------------------------------------------------------------------------------
@_export
class Virq(IntEnum):
    VIRQ_TIMER = 0  # V. Timebase update, and/or requested timeout.
    VIRQ_DEBUG = 1  # V. Request guest to dump debug info.
    VIRQ_CONSOLE = 2  # G. Bytes received on emergency console.
    VIRQ_DOM_EXC = 3  # G. Exceptional event for some domain.
    VIRQ_TBUF = 4  # G. Trace buffer has records available.
    VIRQ_DEBUGGER = 6  # G. A domain has paused for debugging.
    VIRQ_XENOPROF = 7  # V. XenOprofile interrupt: new sample available
    VIRQ_CON_RING = 8  # G. Bytes received on console
    VIRQ_PCPU_STATE = 9  # G. PCPU state changed
    VIRQ_MEM_EVENT = 10  # G. A memory event has occurred
    VIRQ_ARGO = 11  # D. Argo interdomain message notification
    VIRQ_ENOMEM = 12  # G. Low on heap memory
    VIRQ_XENPMU = 13  # V. PMC interrupt
    VIRQ_ARCH_0 = 16
    VIRQ_ARCH_1 = 17
    VIRQ_ARCH_2 = 18
    VIRQ_ARCH_3 = 19
    VIRQ_ARCH_4 = 20
    VIRQ_ARCH_5 = 21
    VIRQ_ARCH_6 = 22
    VIRQ_ARCH_7 = 23


NR_VIRQS = 24
# get_virq_type() (xen/common/event_channel.c): VIRQ_VCPU and VIRQ_DOMAIN classes; the rest global
# (virq_is_global() is false for the per-vCPU ones; VIRQ_XENOPROF is left out: pvsim has no xenoprof)
VIRQ_PER_VCPU = frozenset({Virq.VIRQ_TIMER, Virq.VIRQ_DEBUG, Virq.VIRQ_XENPMU})
VIRQ_PER_DOMAIN = frozenset({Virq.VIRQ_ARGO})


# --------------------------------------------------------------------------------------------
# set_segment_base (arch-x86/xen-x86_64.h)
# --------------------------------------------------------------------------------------------
@_export
class Segbase(IntEnum):
    SEGBASE_FS = 0
    SEGBASE_GS_USER = 1
    SEGBASE_GS_KERNEL = 2
    SEGBASE_GS_USER_SEL = 3  # Set user %gs specified in base[15:0]


# --------------------------------------------------------------------------------------------
# sched_op (sched.h)
# --------------------------------------------------------------------------------------------
@_export
class Schedop(IntEnum):
    SCHEDOP_yield = 0
    SCHEDOP_block = 1
    SCHEDOP_shutdown = 2
    SCHEDOP_poll = 3
    SCHEDOP_remote_shutdown = 4
    SCHEDOP_shutdown_code = 5
    SCHEDOP_watchdog = 6
    SCHEDOP_pin_override = 7


@_export
class Shutdown(IntEnum):
    SHUTDOWN_poweroff = 0  # Domain exited normally. Clean up and kill.
    SHUTDOWN_reboot = 1  # Clean up, kill, and then restart.
    SHUTDOWN_suspend = 2  # Clean up, save suspend info, kill.
    SHUTDOWN_crash = 3  # Tell controller we've crashed.
    SHUTDOWN_watchdog = 4  # Restart because watchdog time expired.
    SHUTDOWN_soft_reset = 5  # Domain asked to perform 'soft reset' for it.


SHUTDOWN_MAX = 5  # Maximum valid shutdown reason.
SCHED_POLL_MAX_PORTS = 128  # "Fairly arbitrary limit." (xen/common/sched/core.c, do_poll)
NR_DOMAIN_WATCHDOG_TIMERS = 2  # xen/include/xen/sched.h


# --------------------------------------------------------------------------------------------
# vcpu_op (vcpu.h)
# --------------------------------------------------------------------------------------------
@_export
class Vcpuop(IntEnum):
    VCPUOP_initialise = 0
    VCPUOP_up = 1
    VCPUOP_down = 2
    VCPUOP_is_up = 3
    VCPUOP_get_runstate_info = 4
    VCPUOP_register_runstate_memory_area = 5
    VCPUOP_set_periodic_timer = 6
    VCPUOP_stop_periodic_timer = 7
    VCPUOP_set_singleshot_timer = 8
    VCPUOP_stop_singleshot_timer = 9
    VCPUOP_register_vcpu_info = 10
    VCPUOP_send_nmi = 11
    VCPUOP_get_physid = 12
    VCPUOP_register_vcpu_time_memory_area = 13
    VCPUOP_register_runstate_phys_area = 14
    VCPUOP_register_vcpu_time_phys_area = 15


# vCPU runstates (vcpu.h): plain ints, as the index of vcpu_runstate_info.time[4]
RUNSTATE_running = 0  # VCPU is currently running on a physical CPU.
RUNSTATE_runnable = 1  # VCPU is runnable, but not currently scheduled on any physical CPU.
RUNSTATE_blocked = 2  # VCPU is blocked (a.k.a. idle). It is therefore not runnable.
RUNSTATE_offline = 3  # VCPU is not runnable, but it is not blocked.
RUNSTATE_NAMES = ("running", "runnable", "blocked", "offline")  # index = RUNSTATE_*

XEN_RUNSTATE_UPDATE = 1 << 63
_VCPU_SSHOTTMR_future = 0
# "Request the timeout to be in the future (return -ETIME if it's passed) but can be ignored by
# the hypervisor." Xen >= 4.18 ignores it (commit 19c6cbd909, "xen/vcpu: ignore
# VCPU_SSHOTTMR_future").
VCPU_SSHOTTMR_future = 1 << _VCPU_SSHOTTMR_future


# --------------------------------------------------------------------------------------------
# memory_op (memory.h)
# --------------------------------------------------------------------------------------------
@_export
class Xenmem(IntEnum):
    XENMEM_increase_reservation = 0
    XENMEM_decrease_reservation = 1
    XENMEM_maximum_ram_page = 2
    XENMEM_current_reservation = 3
    XENMEM_maximum_reservation = 4
    XENMEM_machphys_mfn_list = 5
    XENMEM_populate_physmap = 6
    XENMEM_add_to_physmap = 7
    XENMEM_memory_map = 9
    XENMEM_machine_memory_map = 10
    XENMEM_exchange = 11
    XENMEM_machphys_mapping = 12
    XENMEM_set_memory_map = 13
    XENMEM_maximum_gpfn = 14
    XENMEM_remove_from_physmap = 15
    XENMEM_set_pod_target = 16
    XENMEM_get_pod_target = 17
    XENMEM_get_sharing_freed_pages = 18
    XENMEM_get_sharing_shared_pages = 19
    XENMEM_paging_op = 20
    XENMEM_access_op = 21
    XENMEM_sharing_op = 22
    XENMEM_add_to_physmap_batch = 23
    XENMEM_claim_pages = 24
    XENMEM_machphys_compat_mfn_list = 25
    XENMEM_get_vnumainfo = 26
    XENMEM_reserved_device_memory_map = 27
    XENMEM_acquire_resource = 28


XENMEM_add_to_physmap_range = Xenmem.XENMEM_add_to_physmap_batch


# XENMEMF_* flags of xen_memory_reservation.mem_flags (memory.h)
def XENMEMF_address_bits(x: int) -> int:
    return x


def XENMEMF_get_address_bits(x: int) -> int:
    return x & 0xFF


def XENMEMF_node(x: int) -> int:
    return (x + 1) << 8


def XENMEMF_get_node(x: int) -> int:
    return ((x >> 8) - 1) & 0xFF


XENMEMF_populate_on_demand = 1 << 16
XENMEMF_exact_node_request = 1 << 17
XENMEMF_vnode = 1 << 18

# memory_op continuation encoding (xen/include/xen/hypercall.h): cmd[:6] == start_extent
MEMOP_EXTENT_SHIFT = 6
MEMOP_CMD_MASK = (1 << MEMOP_EXTENT_SHIFT) - 1


# --------------------------------------------------------------------------------------------
# xen_version (version.h)
# --------------------------------------------------------------------------------------------
@_export
class Xenver(IntEnum):
    XENVER_version = 0
    XENVER_extraversion = 1
    XENVER_compile_info = 2
    XENVER_capabilities = 3
    XENVER_changeset = 4
    XENVER_platform_parameters = 5
    XENVER_get_features = 6
    XENVER_pagesize = 7
    XENVER_guest_handle = 8
    XENVER_commandline = 9
    XENVER_build_id = 10
    XENVER_extraversion2 = 11
    XENVER_capabilities2 = 12
    XENVER_changeset2 = 13
    XENVER_commandline2 = 14


# Fixed-size string outputs (version.h): char[16], char[1024], char[64], char[1024]
XEN_EXTRAVERSION_LEN = 16
XEN_CAPABILITIES_INFO_LEN = 1024
XEN_CHANGESET_INFO_LEN = 64
XEN_COMMANDLINE_LEN = 1024
XEN_GUEST_HANDLE_LEN = 16  # xen_domain_handle_t: uint8_t[16]


# XENFEAT_* bit numbers returned by XENVER_get_features (features.h)
@_export
class Xenfeat(IntEnum):
    XENFEAT_writable_page_tables = 0
    XENFEAT_writable_descriptor_tables = 1
    XENFEAT_auto_translated_physmap = 2
    XENFEAT_supervisor_mode_kernel = 3
    XENFEAT_pae_pgdir_above_4gb = 4
    XENFEAT_mmu_pt_update_preserve_ad = 5
    XENFEAT_highmem_assist = 6
    XENFEAT_gnttab_map_avail_bits = 7
    XENFEAT_hvm_callback_vector = 8
    XENFEAT_hvm_safe_pvclock = 9
    XENFEAT_hvm_pirqs = 10
    XENFEAT_dom0 = 11
    XENFEAT_grant_map_identity = 12
    XENFEAT_memory_op_vnode_supported = 13
    XENFEAT_ARM_SMCCC_supported = 14
    XENFEAT_linux_rsdp_unrestricted = 15
    XENFEAT_not_direct_mapped = 16
    XENFEAT_direct_mapped = 17
    XENFEAT_runstate_phys_area = 18
    XENFEAT_vcpu_time_phys_area = 19
    XENFEAT_dm_msix_all_writes = 20


XENFEAT_NR_SUBMAPS = 1


# --------------------------------------------------------------------------------------------
# callback_op (callback.h)
# --------------------------------------------------------------------------------------------
@_export
class Callbacktype(IntEnum):
    CALLBACKTYPE_event = 0
    CALLBACKTYPE_failsafe = 1
    CALLBACKTYPE_syscall = 2  # x86_64 only
    CALLBACKTYPE_sysenter_deprecated = 3  # x86_32 only, deprecated alias of sysenter
    CALLBACKTYPE_nmi = 4
    CALLBACKTYPE_sysenter = 5  # x86_32 and compat guests on x86_64
    CALLBACKTYPE_syscall32 = 7  # x86_64: 32-bit syscall from compat user space


@_export
class Callbackop(IntEnum):
    CALLBACKOP_register = 0
    CALLBACKOP_unregister = 1


_CALLBACKF_mask_events = 0
CALLBACKF_mask_events = 1 << _CALLBACKF_mask_events


# --------------------------------------------------------------------------------------------
# event_channel_op (event_channel.h)
# --------------------------------------------------------------------------------------------
@_export
class Evtchnop(IntEnum):
    EVTCHNOP_bind_interdomain = 0
    EVTCHNOP_bind_virq = 1
    EVTCHNOP_bind_pirq = 2
    EVTCHNOP_close = 3
    EVTCHNOP_send = 4
    EVTCHNOP_status = 5
    EVTCHNOP_alloc_unbound = 6
    EVTCHNOP_bind_ipi = 7
    EVTCHNOP_bind_vcpu = 8
    EVTCHNOP_unmask = 9
    EVTCHNOP_reset = 10
    EVTCHNOP_init_control = 11
    EVTCHNOP_expand_array = 12
    EVTCHNOP_set_priority = 13
    EVTCHNOP_reset_cont = 14


@_export
class Evtchnstat(IntEnum):
    EVTCHNSTAT_closed = 0  # Channel is not in use.
    EVTCHNSTAT_unbound = 1  # Channel is waiting interdom connection.
    EVTCHNSTAT_interdomain = 2  # Channel is connected to remote domain.
    EVTCHNSTAT_pirq = 3  # Channel is bound to a phys IRQ line.
    EVTCHNSTAT_virq = 4  # Channel is bound to a virtual IRQ line
    EVTCHNSTAT_ipi = 5  # Channel is bound to a virtual IPI line


BIND_PIRQ__WILL_SHARE = 1
# EVTCHN_2L_NR_CHANNELS = sizeof(xen_ulong_t) * sizeof(xen_ulong_t) * 64
BITS_PER_XEN_ULONG_64 = 64
BITS_PER_XEN_ULONG_32 = 32
EVTCHN_2L_NR_CHANNELS_64 = 8 * 8 * 64  # sizeof(xen_ulong_t)^2 * 64 on x86-64 = 4096
EVTCHN_2L_NR_CHANNELS_32 = 4 * 4 * 64  # 32-bit xen_ulong_t (old 32-bit Xen) = 1024
EVTCHN_2L_NR_CHANNELS = EVTCHN_2L_NR_CHANNELS_64
EVTCHN_FIFO_PRIORITY_MAX = 0
EVTCHN_FIFO_PRIORITY_DEFAULT = 7
EVTCHN_FIFO_PRIORITY_MIN = 15
EVTCHN_FIFO_MAX_QUEUES = EVTCHN_FIFO_PRIORITY_MIN + 1
EVTCHN_FIFO_PENDING = 31
EVTCHN_FIFO_MASKED = 30
EVTCHN_FIFO_LINKED = 29
EVTCHN_FIFO_BUSY = 28
EVTCHN_FIFO_LINK_BITS = 17
EVTCHN_FIFO_LINK_MASK = (1 << EVTCHN_FIFO_LINK_BITS) - 1
EVTCHN_FIFO_NR_CHANNELS = 1 << EVTCHN_FIFO_LINK_BITS


# --------------------------------------------------------------------------------------------
# grant_table_op (grant_table.h)
# --------------------------------------------------------------------------------------------
@_export
class Gnttabop(IntEnum):
    GNTTABOP_map_grant_ref = 0
    GNTTABOP_unmap_grant_ref = 1
    GNTTABOP_setup_table = 2
    GNTTABOP_dump_table = 3
    GNTTABOP_transfer = 4
    GNTTABOP_copy = 5
    GNTTABOP_query_size = 6
    GNTTABOP_unmap_and_replace = 7
    GNTTABOP_set_version = 8
    GNTTABOP_get_status_frames = 9
    GNTTABOP_get_version = 10
    GNTTABOP_swap_grant_ref = 11
    GNTTABOP_cache_flush = 12


@_export
class Gntst(IntEnum):
    GNTST_okay = 0  # Normal return.
    GNTST_general_error = -1  # General undefined error.
    GNTST_bad_domain = -2  # Unrecognsed domain id.
    GNTST_bad_gntref = -3  # Unrecognised or inappropriate gntref.
    GNTST_bad_handle = -4  # Unrecognised or inappropriate handle.
    GNTST_bad_virt_addr = -5  # Inappropriate virtual address to map.
    GNTST_bad_dev_addr = -6  # Inappropriate device address to unmap.
    GNTST_no_device_space = -7  # Out of space in I/O MMU.
    GNTST_permission_denied = -8  # Not enough privilege for operation.
    GNTST_bad_page = -9  # Specified page was invalid for op.
    GNTST_bad_copy_arg = -10  # copy arguments cross page boundary.
    GNTST_address_too_big = -11  # transfer page address too large.
    GNTST_eagain = -12  # Operation not done; try again.
    GNTST_no_space = -13  # Out of space (handles etc).


GNTTAB_NR_RESERVED_ENTRIES = 8
GNTTAB_RESERVED_CONSOLE = 0
GNTTAB_RESERVED_XENSTORE = 1
GNTTAB_UNMAP_BATCH_SIZE = 32  # xen/common/grant_table.c
GRANT_ENTRY_V1_BYTES = 8  # sizeof(grant_entry_v1_t)
GRANT_ENTRIES_PER_PAGE_V1 = 4096 // GRANT_ENTRY_V1_BYTES  # 512

# Grant entry flags (grant_table.h)
GTF_invalid = 0 << 0
GTF_permit_access = 1 << 0
GTF_accept_transfer = 2 << 0
GTF_transitive = 3 << 0
GTF_type_mask = 3 << 0
_GTF_readonly = 2
GTF_readonly = 1 << _GTF_readonly
_GTF_reading = 3
GTF_reading = 1 << _GTF_reading
_GTF_writing = 4
GTF_writing = 1 << _GTF_writing
_GTF_PWT = 5
GTF_PWT = 1 << _GTF_PWT
_GTF_PCD = 6
GTF_PCD = 1 << _GTF_PCD
_GTF_PAT = 7
GTF_PAT = 1 << _GTF_PAT
_GTF_sub_page = 8
GTF_sub_page = 1 << _GTF_sub_page
_GTF_transfer_committed = 2
GTF_transfer_committed = 1 << _GTF_transfer_committed
_GTF_transfer_completed = 3
GTF_transfer_completed = 1 << _GTF_transfer_completed

# map_grant_ref flags (grant_table.h)
_GNTMAP_device_map = 0
GNTMAP_device_map = 1 << _GNTMAP_device_map
_GNTMAP_host_map = 1
GNTMAP_host_map = 1 << _GNTMAP_host_map
_GNTMAP_readonly = 2
GNTMAP_readonly = 1 << _GNTMAP_readonly
_GNTMAP_application_map = 3
GNTMAP_application_map = 1 << _GNTMAP_application_map
_GNTMAP_contains_pte = 4
GNTMAP_contains_pte = 1 << _GNTMAP_contains_pte
_GNTMAP_guest_avail0 = 16
GNTMAP_guest_avail_mask = (0xFFFFFFFF << _GNTMAP_guest_avail0) & 0xFFFFFFFF

# gnttab_copy flags (grant_table.h)
_GNTCOPY_source_gref = 0
GNTCOPY_source_gref = 1 << _GNTCOPY_source_gref
_GNTCOPY_dest_gref = 1
GNTCOPY_dest_gref = 1 << _GNTCOPY_dest_gref


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
ENUMS: dict[str, type[IntEnum]] = {
    cls.__name__: cls
    for cls in (
        MmuCmd, MmuextCmd, ConsoleioCmd, VmasstCmd, VmasstType, Virq, Segbase, Schedop,
        Shutdown, Vcpuop, Xenmem, Xenver, Xenfeat, Callbacktype, Callbackop,
        Evtchnop, Evtchnstat, Gnttabop, Gntst,
    )
}


def op_name(enum_cls: type[IntEnum], value: int) -> str:
    """Xen's name of ``value`` in ``enum_cls``, or ``"<prefix>#<value>"`` when unknown."""
    try:
        return enum_cls(value).name
    except (ValueError, TypeError):
        return f"{enum_cls.__name__}#{value}"
