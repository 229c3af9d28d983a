"""sched_op and vcpu_op: success and every errno path."""

from __future__ import annotations

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from hypercalls.ops import RUNSTATE_offline
from pvsim.hypervisor.domain import Domain


# ------------------------------------------------------------------ sched_op
def test_yield_and_block(hv, pvu):
    assert pvu("sched_op", O.SCHEDOP_yield) == 0
    v = pvu.vcpu
    v.evtchn_upcall_mask = 1
    v.evtchn_upcall_pending = 1
    assert pvu("sched_op", O.SCHEDOP_block) == 0
    assert v.evtchn_upcall_mask == 0 and not v.blocked  # event pending: no block
    v.evtchn_upcall_pending = 0
    assert pvu("sched_op", O.SCHEDOP_block) == 0
    assert v.blocked
    assert hv.meter.counts["sched.block"] == 2 and hv.meter.counts["sched.yield"] == 1


def test_unknown_sched_op_is_enosys(pvu, hvm):
    assert pvu("sched_op", 8) == -E.ENOSYS
    assert pvu("sched_op", -1) == -E.ENOSYS
    assert pvu("sched_op", None) == -E.ENOSYS
    assert hvm("sched_op", O.SCHEDOP_yield) == 0  # sched_op is for every guest type


def test_shutdown_and_shutdown_code(pvu, dom0):
    assert pvu("sched_op", O.SCHEDOP_shutdown, None) == -E.EFAULT
    assert pvu("sched_op", O.SCHEDOP_shutdown_code, 3) == -E.EFAULT
    assert pvu("sched_op", O.SCHEDOP_shutdown_code, A.SchedShutdown(O.SHUTDOWN_reboot)) == 0
    assert not pvu.dom.is_shutdown
    assert pvu("sched_op", O.SCHEDOP_shutdown, A.SchedShutdown(O.SHUTDOWN_poweroff)) == 0
    # the latched code wins over the reason given at shutdown
    assert pvu.dom.is_shutdown and pvu.dom.shutdown_reason == O.SHUTDOWN_reboot
    assert pvu("sched_op", O.SCHEDOP_shutdown, A.SchedShutdown(O.SHUTDOWN_crash)) == 0
    assert pvu.dom.shutdown_reason == O.SHUTDOWN_reboot
    assert not dom0.dom.is_shutdown


def test_poll(hv, pvu, pv32):
    v = pvu.vcpu
    assert pvu("sched_op", O.SCHEDOP_poll, "ports") == -E.EFAULT
    assert pvu("sched_op", O.SCHEDOP_poll, A.SchedPoll(ports=[1] * 129, nr_ports=129)) == -E.EINVAL
    assert pvu("sched_op", O.SCHEDOP_poll, A.SchedPoll(ports=[1], nr_ports=2)) == -E.EFAULT
    assert pvu("sched_op", O.SCHEDOP_poll, A.SchedPoll(ports=[4096], nr_ports=1)) == -E.EINVAL
    assert pv32("sched_op", O.SCHEDOP_poll, A.SchedPoll(ports=[1024], nr_ports=1)) == -E.EINVAL
    assert not v.blocked
    v.evtchn_upcall_pending, v.evtchn_upcall_mask = 1, 0
    assert pvu("sched_op", O.SCHEDOP_poll, A.SchedPoll(ports=[5, 9999], nr_ports=2)) == 0
    assert not v.blocked  # events pending: returns at once, ports not even read
    v.evtchn_upcall_pending = 0
    poll = A.SchedPoll(ports=[5, 6, 7], nr_ports=2, timeout=hv.engine.now_ns + 10)
    assert pvu("sched_op", O.SCHEDOP_poll, poll) == 0
    assert v.blocked and v.polling == frozenset({5, 6}) and v.poll_deadline_ns == hv.engine.now_ns + 10


def test_poll_uses_the_event_channel_subsystem_when_present(hv, pvu):
    class Ev:
        def port_poll(self, port):
            return 1 if port == 3 else (0 if port < 10 else -E.EINVAL)

    pvu.dom.evtchn = Ev()
    assert pvu("sched_op", O.SCHEDOP_poll, A.SchedPoll(ports=[1, 3], nr_ports=2)) == 0
    assert not pvu.vcpu.blocked  # port 3 already pending
    assert pvu("sched_op", O.SCHEDOP_poll, A.SchedPoll(ports=[11], nr_ports=1)) == -E.EINVAL


def test_remote_shutdown(hv, pvu, dom0, hvm):
    req = A.SchedRemoteShutdown(domain_id=3, reason=O.SHUTDOWN_crash)
    assert pvu("sched_op", O.SCHEDOP_remote_shutdown, req) == -E.EPERM
    assert not hvm.dom.is_shutdown
    assert pvu("sched_op", O.SCHEDOP_remote_shutdown, None) == -E.EFAULT
    assert dom0("sched_op", O.SCHEDOP_remote_shutdown,
                A.SchedRemoteShutdown(domain_id=77, reason=0)) == -E.ESRCH
    # rcu_lock_domain_by_id: DOMID_SELF is not resolved here
    assert dom0("sched_op", O.SCHEDOP_remote_shutdown,
                A.SchedRemoteShutdown(domain_id=0x7FF0, reason=0)) == -E.ESRCH
    assert dom0("sched_op", O.SCHEDOP_remote_shutdown, req) == 0
    assert hvm.dom.is_shutdown and hvm.dom.shutdown_reason == O.SHUTDOWN_crash
    assert not dom0.dom.is_shutdown


def test_watchdog(hv, pvu):
    wd = O.SCHEDOP_watchdog
    assert pvu("sched_op", wd, A.SchedWatchdog(id=0, timeout=30)) == 1
    assert pvu("sched_op", wd, A.SchedWatchdog(id=0, timeout=30)) == 2
    assert pvu("sched_op", wd, A.SchedWatchdog(id=0, timeout=30)) == -E.ENOSPC
    assert pvu.dom.watchdog_deadline_ns[0] == hv.engine.now_ns + 30 * 10**9
    assert pvu("sched_op", wd, A.SchedWatchdog(id=3, timeout=1)) == -E.EINVAL
    assert pvu("sched_op", wd, A.SchedWatchdog(id=1, timeout=0)) == 0  # destroy
    assert pvu("sched_op", wd, A.SchedWatchdog(id=1, timeout=5)) == -E.EINVAL  # not in use
    assert pvu("sched_op", wd, A.SchedWatchdog(id=2, timeout=5)) == 0  # poke
    assert pvu.dom.watchdog_deadline_ns == [None, hv.engine.now_ns + 5 * 10**9]
    assert pvu("sched_op", wd, A.SchedWatchdog(id=-1)) == -E.EFAULT


def test_pin_override(hv, pvu, dom0):
    po = O.SCHEDOP_pin_override
    assert pvu("sched_op", po, A.SchedPinOverride(pcpu=1)) == -E.EPERM
    assert dom0("sched_op", po, None) == -E.EFAULT
    assert dom0("sched_op", po, A.SchedPinOverride(pcpu=100_000)) == -E.EINVAL
    assert dom0("sched_op", po, A.SchedPinOverride(pcpu=1)) == 0
    assert dom0.vcpu.pin_override == 1
    assert dom0("sched_op", po, A.SchedPinOverride(pcpu=-1)) == 0
    assert dom0.vcpu.pin_override is None


# ------------------------------------------------------------------ vcpu_op
def test_vcpu_op_bad_vcpuid_is_enoent(pvu):
    for vid in (2, 2**32 - 1, -1, None, "0"):
        assert pvu("vcpu_op", O.VCPUOP_is_up, vid, None) == -E.ENOENT
    assert pvu("vcpu_op", 99, 0, None) == -E.ENOSYS
    assert pvu("vcpu_op", 99, 5, None) == -E.ENOENT  # vcpuid checked first


def test_vcpu_up_down_is_up(hv, pvu):
    assert pvu("vcpu_op", O.VCPUOP_is_up, 1, None) == 1
    assert pvu("vcpu_op", O.VCPUOP_down, 1, None) == 0
    v1 = pvu.dom.vcpus[1]
    assert not v1.online and v1.runstate == RUNSTATE_offline
    assert pvu("vcpu_op", O.VCPUOP_is_up, 1, None) == 0
    assert pvu("vcpu_op", O.VCPUOP_up, 1, None) == 0 and v1.online
    v1.online = False
    v1.initialised = False
    assert pvu("vcpu_op", O.VCPUOP_up, 1, None) == -E.EINVAL
    # the last vCPU going down powers the domain off
    assert pvu("vcpu_op", O.VCPUOP_down, 0, None) == 0
    assert pvu.dom.is_shutdown and pvu.dom.shutdown_reason == O.SHUTDOWN_poweroff


def test_vcpu_initialise(hv, pvu):
    v1 = pvu.dom.vcpus[1]
    ctx = A.VcpuGuestContext(kernel_ss=0xE028, kernel_sp=0xFFFF880000002000,
                             event_callback_eip=0xFFFFFFFF81000000)
    assert pvu("vcpu_op", O.VCPUOP_initialise, 1, ctx) == -E.EEXIST
    v1.initialised, v1.online = False, False
    assert pvu("vcpu_op", O.VCPUOP_initialise, 1, None) == -E.EFAULT
    assert pvu("vcpu_op", O.VCPUOP_initialise, 1, ctx) == 0
    assert v1.initialised and v1.kernel_ss == 0xE02B and not v1.online
    assert pvu.dom.callbacks[O.CALLBACKTYPE_event] == 0xFFFFFFFF81000000
    assert pvu("vcpu_op", O.VCPUOP_up, 1, None) == 0 and v1.online


def test_vcpu_initialise_beyond_legacy_vcpu_info_needs_registration(hv):
    big = hv.add_domain(Domain(9, "big", "pv", "pv64", nr_vcpus=33, tot_pages=10))
    v32 = big.vcpus[32]
    v32.initialised = False
    rc = hv.hypercall_by_name(big.vcpus[0], "vcpu_op", O.VCPUOP_initialise, 32, A.VcpuGuestContext())
    assert rc == -E.EINVAL
    v32.vcpu_info_registered = True
    rc = hv.hypercall_by_name(big.vcpus[0], "vcpu_op", O.VCPUOP_initialise, 32, A.VcpuGuestContext())
    assert rc == 0


def test_runstate_info_and_area(hv, pvu):
    pvu.dom.vcpus[1].runstate_time_ns = [10, 20, 30, 40]
    info = A.VcpuRunstateInfo()
    assert pvu("vcpu_op", O.VCPUOP_get_runstate_info, 1, info) == 0
    assert info.time == [10, 20, 30, 40] and info.state == pvu.dom.vcpus[1].runstate
    assert pvu("vcpu_op", O.VCPUOP_get_runstate_info, 1, None) == -E.EFAULT
    area = A.VcpuRunstateInfo()
    reg = A.VcpuRegisterRunstateMemoryArea(addr=area)
    assert pvu("vcpu_op", O.VCPUOP_register_runstate_memory_area, 1, reg) == 0
    assert area.time == [10, 20, 30, 40] and pvu.dom.vcpus[1].runstate_area_registered
    assert pvu("vcpu_op", O.VCPUOP_register_runstate_memory_area, 1,
               A.VcpuRegisterRunstateMemoryArea(addr=0x1000)) == -E.EFAULT
    assert pvu("vcpu_op", O.VCPUOP_register_runstate_memory_area, 1, area) == -E.EFAULT


def test_periodic_timer(pvu):
    v = pvu.vcpu
    assert pvu("vcpu_op", O.VCPUOP_set_periodic_timer, 0, A.VcpuSetPeriodicTimer(999_999)) == -E.EINVAL
    assert pvu("vcpu_op", O.VCPUOP_set_periodic_timer, 0, A.VcpuSetPeriodicTimer(2**62)) == -E.EINVAL
    assert pvu("vcpu_op", O.VCPUOP_set_periodic_timer, 0, 5) == -E.EFAULT
    assert pvu("vcpu_op", O.VCPUOP_set_periodic_timer, 0, A.VcpuSetPeriodicTimer(4_000_000)) == 0
    assert v.periodic_period_ns == 4_000_000
    assert pvu("vcpu_op", O.VCPUOP_stop_periodic_timer, 0, None) == 0
    assert v.periodic_period_ns is None


def test_singleshot_timer(hv, pvu):
    now = hv.engine.now_ns
    v = pvu.vcpu
    ss = O.VCPUOP_set_singleshot_timer
    assert pvu("vcpu_op", ss, 1, A.VcpuSetSingleshotTimer(now + 10)) == -E.EINVAL  # not current
    assert pvu("vcpu_op", ss, 0, None) == -E.EFAULT
    assert pvu("vcpu_op", ss, 0, A.VcpuSetSingleshotTimer(now + 10)) == 0
    assert v.timer_deadline_ns == now + 10
    # already expired: Xen >= 4.18 ignores VCPU_SSHOTTMR_future and injects VIRQ_TIMER
    past = A.VcpuSetSingleshotTimer(now - 10, flags=O.VCPU_SSHOTTMR_future)
    assert pvu("vcpu_op", ss, 0, past) == 0
    assert v.timer_deadline_ns is None and hv.meter.counts["virq.timer"] == 1
    hv.honour_sshottmr_future = True  # older Xen
    assert pvu("vcpu_op", ss, 0, past) == -E.ETIME
    assert pvu("vcpu_op", ss, 0, A.VcpuSetSingleshotTimer(now - 10, flags=0)) == 0
    assert pvu("vcpu_op", O.VCPUOP_stop_singleshot_timer, 1, None) == -E.EINVAL
    v.timer_deadline_ns = 5
    assert pvu("vcpu_op", O.VCPUOP_stop_singleshot_timer, 0, None) == 0
    assert v.timer_deadline_ns is None


def test_singleshot_expired_raises_virq_timer_through_evtchn(hv, pvu):
    got = []

    class Ev:
        def send_guest_vcpu_virq(self, v, virq):
            got.append((v.vcpu_id, virq))

    pvu.dom.evtchn = Ev()
    assert pvu("vcpu_op", O.VCPUOP_set_singleshot_timer, 0, A.VcpuSetSingleshotTimer(0)) == 0
    assert got == [(0, O.VIRQ_TIMER)]


def test_register_vcpu_info(pvu, pv32):
    rv = O.VCPUOP_register_vcpu_info
    assert pvu("vcpu_op", rv, 0, None) == -E.EFAULT
    assert pvu("vcpu_op", rv, 0, A.VcpuRegisterVcpuInfo(mfn=5, offset=4096)) == -E.EINVAL
    assert pvu("vcpu_op", rv, 0, A.VcpuRegisterVcpuInfo(mfn=2**52, offset=0)) == -E.EINVAL
    assert pvu("vcpu_op", rv, 0, A.VcpuRegisterVcpuInfo(mfn=5, offset=4064)) == -E.ENXIO  # crosses
    assert pvu("vcpu_op", rv, 0, A.VcpuRegisterVcpuInfo(mfn=5, offset=4)) == -E.ENXIO  # misaligned
    assert pv32("vcpu_op", rv, 0, A.VcpuRegisterVcpuInfo(mfn=5, offset=4)) == 0  # 4-byte align ok
    assert pvu("vcpu_op", rv, 0, A.VcpuRegisterVcpuInfo(mfn=5, offset=64)) == 0
    assert pvu.vcpu.vcpu_info_registered
    assert pvu("vcpu_op", rv, 0, A.VcpuRegisterVcpuInfo(mfn=6, offset=0)) == -E.EBUSY


def test_send_nmi_and_get_physid(hv, pvu):
    assert pvu("vcpu_op", O.VCPUOP_send_nmi, 1, A.VcpuGetPhysid()) == -E.EINVAL
    assert pvu("vcpu_op", O.VCPUOP_send_nmi, 1, None) == 0
    assert pvu.dom.vcpus[1].nmi_pending
    assert pvu("vcpu_op", O.VCPUOP_send_nmi, 1, None) == 0
    assert hv.meter.counts["vcpu.kick"] == 1  # test_and_set: kicked once
    assert pvu("vcpu_op", O.VCPUOP_get_physid, 0, A.VcpuGetPhysid()) == -E.EINVAL


def test_vcpu_op_other_domain_untouched(hv, pvu, dom0):
    pvu("vcpu_op", O.VCPUOP_down, 1, None)
    assert all(v.online for v in dom0.dom.vcpus)


def test_poll_and_timer_with_the_io_event_channels(hv, pvu):
    """With pvsim.io's event channels: a pending bound port ends the poll; an expired
    single-shot timer raises the bound VIRQ_TIMER port."""
    from pvsim.io import evtchn as io_ev

    ed = io_ev.evtchn_for(pvu.dom)
    bind = A.EvtchnBindVirq(virq=O.VIRQ_TIMER, vcpu=0)
    port = io_ev.bind_virq(hv, pvu.dom, bind.virq, bind.vcpu)
    assert port > 0
    assert pvu("sched_op", O.SCHEDOP_poll, A.SchedPoll(ports=[port + 50], nr_ports=1)) == -E.EINVAL
    assert pvu("sched_op", O.SCHEDOP_poll, A.SchedPoll(ports=[port], nr_ports=1)) == 0
    assert pvu.vcpu.blocked and pvu.vcpu.polling == frozenset({port})
    pvu.vcpu.blocked = False
    assert pvu("vcpu_op", O.VCPUOP_set_singleshot_timer, 0, A.VcpuSetSingleshotTimer(1)) == 0
    assert ed.pending[port] == 1 and pvu.vcpu.evtchn_upcall_pending == 1
    pvu.vcpu.evtchn_upcall_mask = 1  # events masked: the pending port itself ends the poll
    assert pvu("sched_op", O.SCHEDOP_poll, A.SchedPoll(ports=[port], nr_ports=1)) == 0
    assert not pvu.vcpu.blocked


def test_sched_op_compat(hv, pv32, pvu, hvm):
    assert pv32("sched_op_compat", O.SCHEDOP_yield, 0) == 0
    pv32.vcpu.evtchn_upcall_pending = 0
    assert pv32("sched_op_compat", O.SCHEDOP_block, 0) == 0 and pv32.vcpu.blocked
    assert pv32("sched_op_compat", O.SCHEDOP_poll, 0) == -E.ENOSYS
    assert pv32("sched_op_compat", O.SCHEDOP_shutdown, None) == -E.EINVAL
    assert pv32("sched_op_compat", O.SCHEDOP_shutdown, 0x100 | O.SHUTDOWN_crash) == 0  # (u8)arg
    assert pv32.dom.is_shutdown and pv32.dom.shutdown_reason == O.SHUTDOWN_crash
    assert not pvu.dom.is_shutdown
    assert hvm("sched_op_compat", O.SCHEDOP_yield, 0) == -E.ENOSYS  # PV only
