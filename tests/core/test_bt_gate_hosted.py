"""The BT system-call gate and the hosted VMM's host world, each cause against a hand calculation
from the profile (guest_kernels/bt.py, guest_kernels/bt_hosted.py, pvsim/hypervisor/traps.py)."""

import pytest

from pvsim.core.meter import Meter
from pvsim.core.profile import load_profile
from pvsim.pricing import _scratch_kernel, op_cost, price_actions
from pvsim.scenario import DomainOptions
from pvsim.system import Attachment
from pvsim.workloads.base import act as A
from pvsim.workloads.base import op_mix
from pvsim.workloads.spec import resolve

P4 = load_profile("p4-2006")
XEON = load_profile("xeon-2003")


def v(prof, key):
    return prof.value(key)


def gate_by_hand(prof):
    """One gate: emulated privilege change + TC entry, one extra ring round trip, the translated
    iret's callout, the emulated return."""
    mem, mis, tc = v(prof, "native.mem_ref_cycles"), v(prof, "native.branch_mispredict_cycles"), v(prof, "bt.tc_lookup_cycles")
    return {
        "trap.bt_gate_entry": v(prof, "bt.gate_entry_refs_count") * mem + mis + tc,
        "trap.bt_gate_ring": v(prof, "native.exception_cycles"),
        "trap.bt_callout": v(prof, "bt.callout_count") * (mis + tc),
        "trap.bt_gate_exit": v(prof, "bt.gate_exit_refs_count") * mem,
    }


def costs(actions, mode, prof, mmu="counted"):
    body = tuple(x for st in resolve(op_mix("test.actions", actions)).action_steps() for x in st.body)
    return price_actions(body, mode, prof, DomainOptions(mmu=mmu))


@pytest.mark.parametrize("prof", [P4, XEON], ids=["p4-2006", "xeon-2003"])
def test_syscall_gate_causes_by_hand(prof):
    c = op_cost("nano.syscall", "bt", prof, {"mmu": "counted"})
    hand = gate_by_hand(prof)
    for cause, cyc in hand.items():
        assert c.cycles[cause] == pytest.approx(cyc), cause
    assert c.cycles["kernel.syscall"] == pytest.approx(v(prof, "native.syscall_cycles"))
    assert c.total_cycles == pytest.approx(v(prof, "native.syscall_cycles") + sum(hand.values()))
    assert c.counts["bt.gate"] == 1
    assert "trap.bt_reflect" not in c.cycles  # no longer derived from the calibrated fault path


def test_divzero_and_timer_take_the_same_gate():
    hand = sum(gate_by_hand(P4).values())
    div = op_cost("nano.divzero", "bt", P4, {"mmu": "counted"}).total_cycles
    assert div - v(P4, "native.exception_cycles") == pytest.approx(hand)
    bt = costs([A("timer_tick")], "bt", P4).total_cycles
    native = costs([A("timer_tick")], "native", P4).total_cycles
    callouts = 2 * v(P4, "bt.callout_count") * (v(P4, "native.branch_mispredict_cycles") + v(P4, "bt.tc_lookup_cycles"))
    assert bt - native == pytest.approx(hand + callouts)


def test_profile_choice_of_hosted_vmm():
    assert v(XEON, "bt.hosted_count") == 1  # VMware Workstation 3.2 (SOSP'03)
    assert v(P4, "bt.hosted_count") == 0  # ASPLOS'06's VMM, modelled bare-metal
    assert v(load_profile("modern"), "bt.hosted_count") == 0


def test_hosted_timer_tick_world_switch_and_host_handler_by_hand():
    n = v(XEON, "bt.host_ticks_per_guest_tick_count")
    c = costs([A("timer_tick")], "bt", XEON)
    assert c.cycles["world_switch.host_timer"] == pytest.approx(n * v(XEON, "bt.world_switch_cycles"))
    assert c.cycles["kernel.host_timer"] == pytest.approx(n * v(XEON, "native.timer_tick_cycles"))
    assert c.counts["world_switch.host_timer"] == n
    assert "world_switch.host_timer" not in costs([A("timer_tick")], "bt", P4).cycles  # bare-metal VMM


@pytest.mark.parametrize("mmu", ["counted", "structural"])
def test_hosted_file_fault_backs_a_new_frame_by_hand(mmu):
    c = costs([A("page_fault", "file")], "bt", XEON, mmu)
    assert c.cycles["world_switch.host_fault"] == pytest.approx(v(XEON, "bt.world_switch_cycles"))
    assert c.cycles["mmu.host_backing"] == pytest.approx(
        v(XEON, "native.page_fault_cycles") + v(XEON, "bt.host_lock_page_refs_count") * v(XEON, "native.mem_ref_cycles"))
    assert c.counts["host.page_backed"] == 1
    # an anonymous fault reuses a frame the guest freed: the host has it already
    anon = costs([A("page_fault", "anon")], "bt", XEON, mmu)
    assert "world_switch.host_fault" not in anon.cycles and "mmu.host_backing" not in anon.cycles
    # a bare-metal VMM owns the machine's memory: no host to ask
    assert "world_switch.host_fault" not in costs([A("page_fault", "file")], "bt", P4, mmu).cycles


def test_hosted_lmbench_page_fault_and_mmap_count_their_new_frames():
    pf = op_cost("lmbench.page_fault", "bt", XEON)
    assert pf.counts["world_switch.host_fault"] == 1
    mm = op_cost("lmbench.mmap", "bt", XEON)
    assert mm.counts["world_switch.host_fault"] == 16  # MMAP_PAGES file pages touched per iteration
    for op in ("lmbench.fork", "lmbench.exec", "lmbench.ctx_2p_0k", "lmbench.null_call"):
        assert "world_switch.host_fault" not in op_cost(op, "bt", XEON).cycles, op


class _OS:
    def __init__(self):
        self.meter = Meter()

    def work(self, cause, price, n=1):
        self.meter.add(cause, price, n)

    def count(self, name, n=1):
        self.meter.count(name, n)


def test_hosted_device_access_world_switch_and_vmapp_calls_by_hand():
    kernel = _hosted_kernel()
    att = Attachment.__new__(Attachment)  # only the device-model step is exercised
    att.dm_price = kernel.dm_access_price
    os_ = _OS()
    att.dm_access(os_, 3)
    got = os_.meter.price(XEON)
    assert got["world_switch.device"] == pytest.approx(3 * v(XEON, "bt.world_switch_cycles"))
    assert got["device.host_vmapp"] == pytest.approx(
        3 * v(XEON, "bt.host_vmapp_syscalls_count") * v(XEON, "native.syscall_cycles"))
    assert os_.meter.counts["device_model.access"] == 3


def _hosted_kernel():
    _hv, kernel = _scratch_kernel("bt", XEON, DomainOptions(mmu="counted"))
    return kernel
