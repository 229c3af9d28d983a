"""The ABI data: sub-op values against Xen's public headers, IN/OUT records, dispatcher counting."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls import table as T

# Values copied from xen/include/public/*.h at c447b7308b (see ops.py for the file per group).
XEN_VALUES = {
    "MMU_NORMAL_PT_UPDATE": 0, "MMU_MACHPHYS_UPDATE": 1, "MMU_PT_UPDATE_PRESERVE_AD": 2,
    "MMU_PT_UPDATE_NO_TRANSLATE": 3,
    "MMUEXT_PIN_L1_TABLE": 0, "MMUEXT_PIN_L4_TABLE": 3, "MMUEXT_UNPIN_TABLE": 4,
    "MMUEXT_NEW_BASEPTR": 5, "MMUEXT_TLB_FLUSH_LOCAL": 6, "MMUEXT_INVLPG_LOCAL": 7,
    "MMUEXT_TLB_FLUSH_MULTI": 8, "MMUEXT_INVLPG_MULTI": 9, "MMUEXT_TLB_FLUSH_ALL": 10,
    "MMUEXT_INVLPG_ALL": 11, "MMUEXT_FLUSH_CACHE": 12, "MMUEXT_SET_LDT": 13,
    "MMUEXT_NEW_USER_BASEPTR": 15, "MMUEXT_CLEAR_PAGE": 16, "MMUEXT_COPY_PAGE": 17,
    "MMUEXT_FLUSH_CACHE_GLOBAL": 18, "MMUEXT_MARK_SUPER": 19, "MMUEXT_UNMARK_SUPER": 20,
    "UVMF_NONE": 0, "UVMF_TLB_FLUSH": 1, "UVMF_INVLPG": 2, "UVMF_FLUSHTYPE_MASK": 3,
    "UVMF_MULTI": 0, "UVMF_LOCAL": 0, "UVMF_ALL": 4, "MMU_UPDATE_PREEMPTED": 0x80000000,
    "SCHEDOP_yield": 0, "SCHEDOP_block": 1, "SCHEDOP_shutdown": 2, "SCHEDOP_poll": 3,
    "SCHEDOP_remote_shutdown": 4, "SCHEDOP_shutdown_code": 5, "SCHEDOP_watchdog": 6,
    "SCHEDOP_pin_override": 7,
    "SHUTDOWN_poweroff": 0, "SHUTDOWN_reboot": 1, "SHUTDOWN_suspend": 2, "SHUTDOWN_crash": 3,
    "SHUTDOWN_watchdog": 4, "SHUTDOWN_soft_reset": 5,
    "VCPUOP_initialise": 0, "VCPUOP_up": 1, "VCPUOP_down": 2, "VCPUOP_is_up": 3,
    "VCPUOP_get_runstate_info": 4, "VCPUOP_register_runstate_memory_area": 5,
    "VCPUOP_set_periodic_timer": 6, "VCPUOP_stop_periodic_timer": 7,
    "VCPUOP_set_singleshot_timer": 8, "VCPUOP_stop_singleshot_timer": 9,
    "VCPUOP_register_vcpu_info": 10, "VCPUOP_send_nmi": 11, "VCPUOP_get_physid": 12,
    "VCPU_SSHOTTMR_future": 1,
    "XENMEM_increase_reservation": 0, "XENMEM_decrease_reservation": 1,
    "XENMEM_maximum_ram_page": 2, "XENMEM_current_reservation": 3,
    "XENMEM_maximum_reservation": 4, "XENMEM_populate_physmap": 6, "XENMEM_exchange": 11,
    "XENMEM_add_to_physmap": 7, "XENMEM_maximum_gpfn": 14, "XENMEM_claim_pages": 24,
    "XENMEM_acquire_resource": 28, "XENMEMF_populate_on_demand": 1 << 16,
    "XENVER_version": 0, "XENVER_extraversion": 1, "XENVER_compile_info": 2,
    "XENVER_capabilities": 3, "XENVER_changeset": 4, "XENVER_platform_parameters": 5,
    "XENVER_get_features": 6, "XENVER_pagesize": 7, "XENVER_guest_handle": 8,
    "XENVER_commandline": 9, "XENVER_build_id": 10,
    "CONSOLEIO_write": 0, "CONSOLEIO_read": 1,
    "CALLBACKTYPE_event": 0, "CALLBACKTYPE_failsafe": 1, "CALLBACKTYPE_syscall": 2,
    "CALLBACKTYPE_nmi": 4, "CALLBACKTYPE_sysenter": 5, "CALLBACKTYPE_syscall32": 7,
    "CALLBACKOP_register": 0, "CALLBACKOP_unregister": 1, "CALLBACKF_mask_events": 1,
    "VMASST_CMD_enable": 0, "VMASST_CMD_disable": 1, "VMASST_TYPE_writable_pagetables": 2,
    "VMASST_TYPE_runstate_update_flag": 5, "VMASST_TYPE_m2p_strict": 32,
    "EVTCHNOP_bind_interdomain": 0, "EVTCHNOP_bind_virq": 1, "EVTCHNOP_bind_pirq": 2,
    "EVTCHNOP_close": 3, "EVTCHNOP_send": 4, "EVTCHNOP_status": 5, "EVTCHNOP_alloc_unbound": 6,
    "EVTCHNOP_bind_ipi": 7, "EVTCHNOP_bind_vcpu": 8, "EVTCHNOP_unmask": 9,
    "EVTCHNOP_reset": 10, "EVTCHNOP_init_control": 11, "EVTCHNOP_expand_array": 12,
    "EVTCHNOP_set_priority": 13,
    "EVTCHNSTAT_closed": 0, "EVTCHNSTAT_unbound": 1, "EVTCHNSTAT_interdomain": 2,
    "EVTCHNSTAT_pirq": 3, "EVTCHNSTAT_virq": 4, "EVTCHNSTAT_ipi": 5,
    "VIRQ_TIMER": 0, "VIRQ_DEBUG": 1, "VIRQ_CONSOLE": 2, "VIRQ_DOM_EXC": 3, "VIRQ_TBUF": 4,
    "VIRQ_DEBUGGER": 6, "VIRQ_XENOPROF": 7, "VIRQ_CON_RING": 8, "VIRQ_PCPU_STATE": 9,
    "VIRQ_MEM_EVENT": 10, "VIRQ_ARGO": 11, "VIRQ_ENOMEM": 12, "VIRQ_XENPMU": 13, "NR_VIRQS": 24,
    "GNTTABOP_map_grant_ref": 0, "GNTTABOP_unmap_grant_ref": 1, "GNTTABOP_setup_table": 2,
    "GNTTABOP_dump_table": 3, "GNTTABOP_transfer": 4, "GNTTABOP_copy": 5,
    "GNTTABOP_query_size": 6, "GNTTABOP_unmap_and_replace": 7, "GNTTABOP_set_version": 8,
    "GNTTABOP_get_status_frames": 9, "GNTTABOP_get_version": 10, "GNTTABOP_swap_grant_ref": 11,
    "GNTTABOP_cache_flush": 12,
    "GNTST_okay": 0, "GNTST_general_error": -1, "GNTST_bad_domain": -2, "GNTST_bad_gntref": -3,
    "GNTST_bad_handle": -4, "GNTST_bad_virt_addr": -5, "GNTST_bad_dev_addr": -6,
    "GNTST_no_device_space": -7, "GNTST_permission_denied": -8, "GNTST_bad_page": -9,
    "GNTST_bad_copy_arg": -10, "GNTST_address_too_big": -11, "GNTST_eagain": -12,
    "GNTST_no_space": -13,
    "GTF_invalid": 0, "GTF_permit_access": 1, "GTF_accept_transfer": 2, "GTF_transitive": 3,
    "GTF_readonly": 4, "GTF_reading": 8, "GTF_writing": 16, "GTF_sub_page": 256,
    "GNTMAP_device_map": 1, "GNTMAP_host_map": 2, "GNTMAP_readonly": 4,
    "GNTMAP_application_map": 8, "GNTMAP_contains_pte": 16, "GNTCOPY_source_gref": 1,
    "GNTCOPY_dest_gref": 2, "GNTTAB_NR_RESERVED_ENTRIES": 8,
    "SEGBASE_FS": 0, "SEGBASE_GS_USER": 1, "SEGBASE_GS_KERNEL": 2, "SEGBASE_GS_USER_SEL": 3,
    "EVTCHN_2L_NR_CHANNELS": 4096, "EVTCHN_FIFO_NR_CHANNELS": 131072,
    "EVTCHN_FIFO_PRIORITY_DEFAULT": 7, "HYPERVISOR_VIRT_START": 0xFFFF800000000000,
}


@pytest.mark.parametrize("name,value", sorted(XEN_VALUES.items()))
def test_ops_values_match_xen_headers(name, value):
    assert getattr(O, name) == value


def test_enums_export_their_members_as_constants():
    for cls in O.ENUMS.values():
        for member_name, member in cls.__members__.items():
            assert getattr(O, member_name) is member
    assert O.op_name(O.Vcpuop, 8) == "VCPUOP_set_singleshot_timer"
    assert O.op_name(O.Vcpuop, 99) == "Vcpuop#99"
    assert O.VM_ASSIST_VALID_PV64 == O.VM_ASSIST_VALID_PV32 | (1 << 32)


def test_every_record_field_has_a_direction_and_ctype():
    assert len(A.RECORDS) >= 40
    for cls in A.RECORDS.values():
        dirs = A.directions(cls)
        assert dirs, cls
        assert set(dirs.values()) <= {A.IN, A.OUT, A.INOUT}
        for f in fields(cls):
            ctype = f.metadata["ctype"]
            assert ctype in A.CTYPE_RANGE or ctype in ("handle", "record", "char[]") or (
                ctype.endswith("[]") and ctype[:-2] in A.CTYPE_RANGE), (cls, f.name, ctype)


@pytest.mark.parametrize("cls,field_name,direction", [
    (A.MulticallEntry, "op", A.IN), (A.MulticallEntry, "result", A.OUT),
    (A.MulticallEntry, "args", A.IN),
    (A.XenMemoryReservation, "extent_start", A.INOUT), (A.XenMemoryReservation, "domid", A.IN),
    (A.GnttabMapGrantRef, "status", A.OUT), (A.GnttabMapGrantRef, "handle", A.OUT),
    (A.GnttabMapGrantRef, "ref", A.IN), (A.GnttabQuerySize, "max_nr_frames", A.OUT),
    (A.EvtchnAllocUnbound, "port", A.OUT), (A.EvtchnBindInterdomain, "remote_port", A.IN),
    (A.EvtchnStatus, "status", A.OUT), (A.VcpuRunstateInfo, "time", A.OUT),
    (A.XenFeatureInfo, "submap_idx", A.IN), (A.XenFeatureInfo, "submap", A.OUT),
    (A.TrapInfo, "address", A.IN), (A.MmuUpdate, "val", A.IN), (A.MmuextOp, "arg2", A.IN),
])
def test_directions_follow_the_headers(cls, field_name, direction):
    assert A.directions(cls)[field_name] == direction


def test_in_out_field_lists():
    assert A.in_fields(A.XenMemoryReservation)[0] == "extent_start"
    assert "extent_start" in A.out_fields(A.XenMemoryReservation)
    assert A.out_fields(A.GnttabCopy) == ["status"]


def test_mmuext_op_unions_alias_arg1_and_arg2():
    op = A.MmuextOp(cmd=O.MMUEXT_COPY_PAGE)
    op.mfn = 7
    op.src_mfn = 9
    assert (op.arg1, op.linear_addr, op.arg2, op.nr_ents, op.vcpumask) == (7, 7, 9, 9, 9)


def test_check_in_reads_like_copy_from_guest():
    assert A.check_in(A.TrapInfo(vector=14, address=0x1000), A.TrapInfo) == 0
    assert A.check_in(None, A.TrapInfo) == -E.EFAULT
    assert A.check_in(A.MmuUpdate(), A.TrapInfo) == -E.EFAULT
    assert A.check_in(A.TrapInfo(vector=256), A.TrapInfo) == -E.EFAULT  # not a uint8_t
    assert A.check_in(A.TrapInfo(cs=-1), A.TrapInfo) == -E.EFAULT
    assert A.check_in(A.TrapInfo(address="x"), A.TrapInfo) == -E.EFAULT
    assert A.check_in(A.SchedPoll(ports=[1, 2**32]), A.SchedPoll) == -E.EFAULT
    assert A.check_in(A.SchedPoll(ports=(1, 2)), A.SchedPoll) == -E.EFAULT  # not a guest array
    assert A.check_in(A.GnttabCopy(), A.GnttabCopy) == 0
    bad = A.GnttabCopy(source=A.GnttabCopyPtr(offset=70000))
    assert A.check_in(bad, A.GnttabCopy) == -E.EFAULT
    # OUT fields are not read
    assert A.check_in(A.EvtchnAllocUnbound(port="junk"), A.EvtchnAllocUnbound) == 0
    assert A.check_array([1, 2, 3], "uint32_t", 3) == 0
    assert A.check_array([1, 2], "uint32_t", 3) == -E.EFAULT
    assert A.fits(2**64 - 1, "xen_ulong_t") and not A.fits(2**64, "xen_ulong_t")
    assert A.as_ctype(-1, "int16_t") == -1 and A.as_ctype(1.0, "int16_t") is None


def test_hypercalls_package_does_not_import_pvsim():
    code = ("import sys, hypercalls.ops, hypercalls.args, hypercalls.table, hypercalls.errno;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pvsim'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ dispatcher accounting
def test_call_a_guest_type_may_not_make_is_enosys_and_counted(hv, hvm, pvu):
    nr = T.number("set_trap_table")
    assert hvm("set_trap_table", None) == -E.ENOSYS
    assert hvm.dom.hypercall_counts["set_trap_table"] == 1
    assert hvm.dom.hypercall_errors[("set_trap_table", -E.ENOSYS)] == 1
    assert hv.calls[(3, nr)] == 1
    assert hv.meter.counts["hypercall.set_trap_table"] == 1
    assert hv.meter.counts["hypercall_error.set_trap_table"] == 1
    # the same call from a PV guest is allowed and succeeds
    assert pvu("set_trap_table", None) == 0
    assert hv.calls[(1, nr)] == 1 and hv.calls[(3, nr)] == 1


def test_unknown_numbers_are_enosys_and_counted(hv, pvu):
    for nr in (11, 43, 63, 64, 1000, -1):
        assert hv.hypercall(pvu.vcpu, nr) == -E.ENOSYS
        assert hv.calls[(1, nr)] == 1


def test_counting_per_domain_and_per_number(hv, pvu, dom0, pv32):
    for _ in range(3):
        pvu("fpu_taskswitch", 1)
    dom0("fpu_taskswitch", 0)
    pvu("stack_switch", 0xE02B, 0x1000)
    pv32("stack_switch", 0xE021, 0x1000)
    fpu, ss = T.number("fpu_taskswitch"), T.number("stack_switch")
    assert hv.calls[(1, fpu)] == 3 and hv.calls[(0, fpu)] == 1 and hv.calls[(1, ss)] == 1
    assert hv.calls[(2, ss)] == 1
    assert pvu.dom.hypercall_counts == {"fpu_taskswitch": 3, "stack_switch": 1}
    assert dom0.dom.hypercall_counts == {"fpu_taskswitch": 1}
    assert hv.meter.counts["hypercall.fpu_taskswitch"] == 4
    # pv32 pays the int $0x82 path, pv64 the syscall path
    assert hv.meter.work[("hypercall.stack_switch", "xen.hypercall_entry_pv32_cycles")] == 1
    assert hv.meter.work[("hypercall.stack_switch", "xen.hypercall_entry_pv64_cycles")] == 1


@pytest.mark.parametrize("profile", ["xeon-2003", "p4-2006", "modern"])
def test_reported_work_prices_under_every_bundled_profile(profile, hv, pvu, pv32, dom0):
    """Every price key the handlers report exists in the bundled profiles (no missing constant)."""
    from pvsim.core.profile import load_profile

    prof = load_profile(profile)
    for c in (pvu, pv32):
        c("set_trap_table", [A.TrapInfo(vector=14, address=0x1000), A.TrapInfo()])
        c("stack_switch", 0xE02B, 0x1000)
        c("fpu_taskswitch", 1)
        c("iret")
        c("multicall", [A.MulticallEntry(op=T.number("fpu_taskswitch"), args=[0])], 1)
        c("memory_op", O.XENMEM_increase_reservation, A.XenMemoryReservation([0], 1))
        c("memory_op", O.XENMEM_decrease_reservation, A.XenMemoryReservation([0], 1))
    dom0("console_io", O.CONSOLEIO_write, 2, b"ok")
    priced = hv.meter.price(prof)
    assert priced["hypercall.multicall"] > 0 and priced["hypercall.memory_op"] > 0
    assert priced["hypercall.iret"] > 0
