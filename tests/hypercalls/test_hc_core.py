"""set_trap_table, stack_switch, fpu_taskswitch, set_segment_base, iret, set_timer_op,
callback_op, set_callbacks, vm_assist: success and every errno path."""

from __future__ import annotations

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from pvsim.hypervisor.handlers import core

CANON = 0xFFFFFFFF80001000  # a kernel-half canonical address
NONCANON = 0x0000800000000000


# ------------------------------------------------------------------ set_trap_table
def test_set_trap_table_installs_entries_and_fixes_cs_rpl(hv, pvu):
    traps = [A.TrapInfo(vector=14, flags=0, cs=0xE030, address=CANON),
             A.TrapInfo(vector=0x80, flags=3, cs=0xE033, address=CANON + 8),
             A.TrapInfo()]  # sentinel
    assert pvu("set_trap_table", traps) == 0
    tt = pvu.dom.trap_table
    assert set(tt) == {14, 0x80}
    assert tt[14]["cs"] == 0xE033  # RPL 0 raised to the 64-bit PV kernel's ring 3
    assert tt[0x80]["flags"] == 3 and tt[0x80]["address"] == CANON + 8
    assert hv.meter.work[("hypercall.set_trap_table", "native.mem_ref_cycles")] == 3
    # NULL clears the whole virtual IDT
    assert pvu("set_trap_table", None) == 0
    assert pvu.dom.trap_table == {}


def test_set_trap_table_pv32_ring1_and_no_canonical_check(pv32):
    traps = [A.TrapInfo(vector=14, cs=0xE018, address=0xC0100000), A.TrapInfo()]
    assert pv32("set_trap_table", traps) == 0
    assert pv32.dom.trap_table[14]["cs"] == 0xE019  # GUEST_KERNEL_RPL = 1
    # a 32-bit trap_info cannot hold a 64-bit address
    assert pv32("set_trap_table", [A.TrapInfo(vector=1, address=2**40), A.TrapInfo()]) == -E.EFAULT


def test_set_trap_table_errors(pvu):
    assert pvu("set_trap_table", 0x1234) == -E.EFAULT  # not a guest array
    # no sentinel: the entries before the fault stay installed, as in Xen
    assert pvu("set_trap_table", [A.TrapInfo(vector=3, address=CANON)]) == -E.EFAULT
    assert 3 in pvu.dom.trap_table
    assert pvu("set_trap_table", [A.TrapInfo(vector=300, address=CANON)]) == -E.EFAULT
    assert pvu("set_trap_table", [A.MmuUpdate()]) == -E.EFAULT
    assert pvu("set_trap_table", [A.TrapInfo(vector=6, address=NONCANON), A.TrapInfo()]) == -E.EINVAL
    assert 6 not in pvu.dom.trap_table


# ------------------------------------------------------------------ stack_switch / fpu
def test_stack_switch_sets_kernel_stack_with_rpl_fixup(hv, pvu, pv32):
    assert pvu("stack_switch", 0xE028, 0xFFFF880000123000) == 0
    assert (pvu.vcpu.kernel_ss, pvu.vcpu.kernel_sp) == (0xE02B, 0xFFFF880000123000)
    assert pv32("stack_switch", 0xE020, 0xC0001000) == 0
    assert pv32.vcpu.kernel_ss == 0xE021
    assert pv32("stack_switch", 0xE023, 2**32 + 5) == 0  # 32-bit registers
    assert (pv32.vcpu.kernel_ss, pv32.vcpu.kernel_sp) == (0xE023, 5)
    assert hv.meter.work[("hypercall.stack_switch", "xen.stack_switch_cycles")] == 3
    assert pvu("stack_switch", None, 5) == -E.EINVAL
    assert pvu("stack_switch") == -E.EINVAL


def test_fpu_taskswitch(hv, pvu):
    assert pvu("fpu_taskswitch", 1) == 0 and pvu.vcpu.fpu_ts is True
    assert pvu("fpu_taskswitch", 0) == 0 and pvu.vcpu.fpu_ts is False
    assert pvu("fpu_taskswitch", 2**32) == 0 and pvu.vcpu.fpu_ts is False  # C int truncation
    assert pvu("fpu_taskswitch", -1) == 0 and pvu.vcpu.fpu_ts is True
    assert pvu("fpu_taskswitch", "yes") == -E.EINVAL
    assert hv.meter.work[("hypercall.fpu_taskswitch", "xen.fpu_taskswitch_cycles")] == 4


# ------------------------------------------------------------------ set_segment_base
def test_set_segment_base(pvu, pv32, hv):
    assert pvu("set_segment_base", O.SEGBASE_FS, 0x7F0000001000) == 0
    assert pvu.vcpu.fs_base == 0x7F0000001000
    assert pvu("set_segment_base", O.SEGBASE_GS_USER, 0x1000) == 0
    assert pvu("set_segment_base", O.SEGBASE_GS_KERNEL, CANON) == 0
    assert (pvu.vcpu.gs_base_user, pvu.vcpu.gs_base_kernel) == (0x1000, CANON)
    assert pvu("set_segment_base", O.SEGBASE_GS_USER_SEL, 0x2B) == 0
    assert pvu.vcpu.gs_base_user == 0
    assert pvu("set_segment_base", O.SEGBASE_FS, NONCANON) == -E.EINVAL
    assert pvu("set_segment_base", 9, 0) == -E.EINVAL
    assert pvu("set_segment_base", None, 0) == -E.EINVAL
    # 32-bit PV: the dispatcher refuses it (table), and the handler itself says x86/64 only
    assert pv32("set_segment_base", O.SEGBASE_FS, 0) == -E.ENOSYS
    assert core.do_set_segment_base(hv, pv32.vcpu, O.SEGBASE_FS, 0) == -E.ENOSYS


# ------------------------------------------------------------------ iret
def test_iret_default_frame_returns_to_user_with_events_on(hv, pvu, pv32):
    pvu.vcpu.evtchn_upcall_mask = 1
    pvu.vcpu.in_event_callback = True
    assert pvu("iret") == 0
    assert pvu.vcpu.evtchn_upcall_mask == 0 and not pvu.vcpu.in_event_callback
    assert hv.meter.work[("hypercall.iret", "xen.guest_cr3_switch_pv64_cycles")] == 1
    assert pv32("iret") == 0  # ring-1 kernel: no page-table toggle
    assert hv.meter.work[("hypercall.iret", "xen.guest_cr3_switch_pv64_cycles")] == 1
    assert hv.meter.counts["iret.to_user"] == 2


def test_iret_frame_to_kernel_restores_mask_and_rax(hv, pvu):
    frame = A.IretContext(rax=42, cs=0xE030, rflags=0, rip=CANON)  # RPL 0: back to the kernel
    assert pvu("iret", frame) == 42
    assert pvu.vcpu.evtchn_upcall_mask == 1  # EFLAGS.IF clear -> events masked
    assert ("hypercall.iret", "xen.guest_cr3_switch_pv64_cycles") not in hv.meter.work


def test_iret_unreadable_frame_crashes_the_domain(hv, pvu, dom0):
    assert pvu("iret", "garbage") == 0
    assert pvu.dom.is_shutdown and pvu.dom.shutdown_reason == O.SHUTDOWN_crash
    assert not dom0.dom.is_shutdown


def test_iret_not_for_hvm(hvm):
    assert hvm("iret") == -E.ENOSYS


# ------------------------------------------------------------------ set_timer_op
def test_set_timer_op(hv, pvu, pv32):
    now = hv.engine.now_ns
    assert pvu("set_timer_op", now + 5_000_000) == 0
    assert pvu.vcpu.timer_deadline_ns == now + 5_000_000
    assert pvu("set_timer_op", 0) == 0 and pvu.vcpu.timer_deadline_ns is None
    assert pvu("set_timer_op", -5) == 0  # wrapped negative: 100 ms from now
    assert pvu.vcpu.timer_deadline_ns == now + 100_000_000
    assert pvu("set_timer_op", now + (1 << 51)) == 0  # > 2^50 ns away
    assert pvu.vcpu.timer_deadline_ns == now + 100_000_000
    assert pvu("set_timer_op", now - 1) == 0  # in the past: fires at once
    assert pvu.vcpu.timer_deadline_ns == now - 1
    t = now + 7_000_000
    assert pv32("set_timer_op", t & 0xFFFFFFFF, t >> 32) == 0  # compat: lo, hi halves
    assert pv32.vcpu.timer_deadline_ns == t
    assert pvu("set_timer_op", None) == -E.EINVAL
    assert pv32("set_timer_op", 1, "x") == -E.EINVAL


def test_set_timer_op_allowed_for_hvm(hvm, hv):
    assert hvm("set_timer_op", hv.engine.now_ns + 1000) == 0


# ------------------------------------------------------------------ callback_op / set_callbacks
def test_callback_register_and_unregister(pvu):
    reg = A.CallbackRegister(type=O.CALLBACKTYPE_event, address=CANON)
    assert pvu("callback_op", O.CALLBACKOP_register, reg) == 0
    assert pvu.dom.callbacks[O.CALLBACKTYPE_event] == CANON
    for t in (O.CALLBACKTYPE_failsafe, O.CALLBACKTYPE_syscall, O.CALLBACKTYPE_syscall32,
              O.CALLBACKTYPE_sysenter):
        assert pvu("callback_op", O.CALLBACKOP_register, A.CallbackRegister(type=t, address=CANON)) == 0
    nmi = A.CallbackRegister(type=O.CALLBACKTYPE_nmi, address=CANON + 0x40)
    assert pvu("callback_op", O.CALLBACKOP_register, nmi) == 0
    assert pvu.dom.trap_table[2]["address"] == CANON + 0x40
    assert pvu("callback_op", O.CALLBACKOP_unregister, A.CallbackUnregister(type=O.CALLBACKTYPE_nmi)) == 0
    assert 2 not in pvu.dom.trap_table
    assert pvu("callback_op", O.CALLBACKOP_unregister,
               A.CallbackUnregister(type=O.CALLBACKTYPE_event)) == -E.EINVAL
    assert pvu("callback_op", O.CALLBACKOP_unregister, A.CallbackUnregister(type=9)) == -E.ENOSYS


def test_callback_op_errors(pvu, pv32, hvm):
    assert pvu("callback_op", O.CALLBACKOP_register,
               A.CallbackRegister(type=0, address=NONCANON)) == -E.EINVAL
    assert pvu("callback_op", O.CALLBACKOP_register,
               A.CallbackRegister(type=3, address=CANON)) == -E.ENOSYS
    assert pvu("callback_op", O.CALLBACKOP_register, None) == -E.EFAULT
    assert pvu("callback_op", O.CALLBACKOP_unregister, A.CallbackRegister()) == -E.EFAULT
    assert pvu("callback_op", 7, None) == -E.ENOSYS  # do_callback_op default
    assert pv32("callback_op", 7, None) == -E.EINVAL  # compat_callback_op default
    # a 32-bit guest has no 64-bit syscall callback
    assert pv32("callback_op", O.CALLBACKOP_register,
                A.CallbackRegister(type=O.CALLBACKTYPE_syscall, address=0xC0000000)) == -E.ENOSYS
    assert pv32("callback_op", O.CALLBACKOP_unregister,
                A.CallbackUnregister(type=O.CALLBACKTYPE_syscall)) == -E.ENOSYS
    assert hvm("callback_op", O.CALLBACKOP_register, A.CallbackRegister()) == -E.ENOSYS


def test_set_callbacks_ignores_bad_addresses(pvu, pv32):
    assert pvu("set_callbacks", CANON, NONCANON, CANON + 16) == 0
    assert pvu.dom.callbacks == {O.CALLBACKTYPE_event: CANON, O.CALLBACKTYPE_syscall: CANON + 16}
    assert pv32("set_callbacks", 0xE019, 0xC0001000, 0xE019, 0xC0002000) == 0
    assert pv32.dom.callbacks == {O.CALLBACKTYPE_event: 0xC0001000,
                                  O.CALLBACKTYPE_failsafe: 0xC0002000}
    assert pvu("set_callbacks") == 0


# ------------------------------------------------------------------ vm_assist
def test_vm_assist(pvu, pv32, hv, hvm):
    wpt = O.VMASST_TYPE_writable_pagetables
    assert pvu("vm_assist", O.VMASST_CMD_enable, wpt) == 0
    assert pvu.dom.vm_assist == 1 << wpt
    assert pvu("vm_assist", O.VMASST_CMD_enable, O.VMASST_TYPE_m2p_strict) == 0
    assert pvu("vm_assist", O.VMASST_CMD_disable, wpt) == 0
    assert pvu.dom.vm_assist == 1 << 32
    assert pvu("vm_assist", O.VMASST_CMD_enable, 6) == -E.EINVAL  # not a defined type
    assert pvu("vm_assist", O.VMASST_CMD_enable, 64) == -E.EINVAL
    assert pv32("vm_assist", O.VMASST_CMD_enable, O.VMASST_TYPE_m2p_strict) == -E.EINVAL
    assert pvu("vm_assist", 2, wpt) == -E.ENOSYS
    assert pvu("vm_assist", O.VMASST_CMD_enable, None) == -E.EINVAL
    # HVM guests may only ask for runstate_update_flag (the handler, called directly: see report)
    assert core.do_vm_assist(hv, hvm.vcpu, O.VMASST_CMD_enable, wpt) == -E.EINVAL
    assert core.do_vm_assist(hv, hvm.vcpu, O.VMASST_CMD_enable,
                             O.VMASST_TYPE_runstate_update_flag) == 0
