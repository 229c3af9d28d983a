"""UML (skas3): each host-side mechanism against a hand calculation from the profile's native
primitives and the structural counts of arch/um/kernel/skas/process.c (guest_kernels/uml.py)."""

import pytest
from typer.testing import CliRunner

from guest_kernels.modes import MODES
from guest_kernels.uml import UMLKernel
from pvsim import validation
from pvsim.cli import app
from pvsim.core.meter import Meter
from pvsim.core.profile import load_profile
from pvsim.pricing import op_cost
from pvsim.wiring import scratch_platform
from pvsim.workloads.lmbench import COW_FAULTS, PROC_PAGES

X = load_profile("xeon-2003")
V = X.value
SYSCALL_HOST_CALLS = 1 + V("uml.round_host_calls_count") + V("uml.syscall_extra_host_calls_count")  # 10


@pytest.fixture(scope="module", params=["counted", "structural"])
def mmu(request):
    return request.param


def causes(op, mmu, mode="uml"):
    return op_cost(op, mode, X, {"mmu": mmu}).cycles


def test_the_row_reads_as_a_host_process_mode():
    s = MODES["uml"]
    assert (s.control, s.cpu, s.paging, s.devices, s.guest_type) == ("host", "process", "hardware", "host", None)
    assert s.vmm is None and s.os_kinds == frozenset({"linux"})


def test_null_call_hand_calculation(mmu):
    c = causes("lmbench.null_call", mmu)
    assert c["trap.uml_host_syscall"] == pytest.approx(SYSCALL_HOST_CALLS * V("native.syscall_cycles"))
    assert SYSCALL_HOST_CALLS == 10
    assert c["trap.uml_ptrace_stop"] == pytest.approx(2 * V("uml.ptrace_stop_cycles"))
    assert c["world_switch.uml_host_switch"] == pytest.approx(4 * V("native.context_switch_cycles"))
    assert "kernel.syscall" not in c  # the guest's int $0x80 is the host's (nullified) call


def test_page_fault_hand_calculation(mmu):
    c = causes("lmbench.page_fault", mmu)
    n = causes("lmbench.page_fault", mmu, "native")
    assert c["mmu.uml_host_fault"] == pytest.approx(2 * V("native.page_fault_cycles"))  # SIGSEGV fault + refault
    assert c["trap.uml_ptrace_stop"] == pytest.approx(V("uml.ptrace_stop_cycles"))
    assert c["world_switch.uml_host_switch"] == pytest.approx(2 * V("native.context_switch_cycles"))
    # one loop round, PTRACE_FAULTINFO, one /proc/mm mmap
    assert c["trap.uml_host_syscall"] == pytest.approx((V("uml.round_host_calls_count") + 2) * V("native.syscall_cycles"))
    assert c["mmu.uml_host_map"] == pytest.approx(V("uml.host_mm_op_cycles"))
    assert c["kernel.page_fault"] == pytest.approx(n["kernel.page_fault"])  # the UML kernel's own handler


def test_fork_host_mm_ops_hand_calculation(mmu):
    c = causes("lmbench.fork", mmu)
    ops = PROC_PAGES + PROC_PAGES + COW_FAULTS  # COW write-protect, exit's unmaps, one mmap per fault
    assert c["mmu.uml_host_map"] == pytest.approx(ops * V("uml.host_mm_op_cycles"))
    calls = (3 * SYSCALL_HOST_CALLS + 2 + PROC_PAGES + PROC_PAGES + 1 + 2  # syscalls, new_mm, ops, close, 2 switch_mm
             + COW_FAULTS * (V("uml.round_host_calls_count") + 2))
    assert c["trap.uml_host_syscall"] == pytest.approx(calls * V("native.syscall_cycles"))


def test_context_switch_adds_ptrace_switch_mm(mmu):
    c = causes("lmbench.ctx_2p_0k", mmu)
    n = causes("lmbench.ctx_2p_0k", mmu, "native")
    assert c["trap.uml_host_syscall"] == pytest.approx(V("native.syscall_cycles"))
    assert c["kernel.context_switch"] == pytest.approx(n["kernel.context_switch"])


def test_uml_syscall_path_costs_more_than_bt_reflection(mmu):
    # SOSP'03 also has UML's page fault (26.3 us) above VMware Workstation's (12.4 us); with the hosted
    # VMM's world switch on a fault that needs a new host page, pvsim's bt page fault (10x native) is
    # now above its UML page fault (6.7x): a reported miss of the UML model (docs/uml.md), not asserted.
    for op in ("lmbench.null_call",):
        assert op_cost(op, "uml", X, {"mmu": mmu}).total_cycles > op_cost(op, "bt", X, {"mmu": mmu}).total_cycles


def test_every_profile_prices_uml():
    for name in ("xeon-2003", "p4-2006", "modern"):
        p = load_profile(name)
        assert op_cost("lmbench.null_call", "uml", p).total_cycles > op_cost("lmbench.null_call", "native", p).total_cycles


def test_uml_rows_in_the_validation_set_with_their_bands():
    e = {(x.test, x.mode): x for x in validation.entries(("lmbench",))}
    null = e["null_call", "uml"]
    assert null.published == pytest.approx(24.7 / 0.45, rel=1e-3)
    assert validation.Row(null, null.published, null.published / 1.99).passed
    assert not validation.Row(null, null.published, null.published / 2.01).passed
    fork = e["fork", "uml"]
    assert validation.Row(fork, fork.published, fork.published * 1.99).passed
    assert not validation.Row(fork, fork.published, fork.published * 2.01).passed
    stat = e["stat", "uml"]
    assert validation.Row(stat, stat.published, stat.published * 1.29).passed
    assert not validation.Row(stat, stat.published, stat.published * 1.31).passed


def test_compare_lays_out_the_four_sosp03_systems(tmp_path):
    j = tmp_path / "c.json"
    r = CliRunner().invoke(app, ["compare", "--workload", "lmbench.null_call", "--modes", "native,pv32,bt,uml",
                                 "--profile", "xeon-2003", "--ops", "50", "--json", str(j)])
    assert r.exit_code == 0, r.output
    header = next(ln for ln in r.output.splitlines() if "workload" in ln)
    assert all(m in header for m in ("native", "pv32", "bt", "uml"))


TWO_HOSTS = """
[[hosts]]
name = "h1"
profile = "xeon-2003"
[[hosts]]
name = "h2"
profile = "xeon-2003"
[[links]]
between = ["h1", "h2"]
[run]
duration_ms = 10
[[domains]]
name = "u"
mode = "uml"
workload = "cpu-int"
memory_mib = 512
host = "h1"
"""


def test_a_uml_domain_has_no_hypervisor_to_migrate_it(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(TWO_HOSTS)
    r = CliRunner().invoke(app, ["migrate", str(f), "--domain", "u", "--to", "h2"])
    assert r.exit_code == 2 and "no hypervisor" in r.output and len(r.output.strip().splitlines()) == 1, r.output


def _kernel_meter():
    platform = scratch_platform("uml", X, nr_pages=1024)
    m = platform.hv.meter = Meter()  # after the set-up
    return UMLKernel(platform), m


def test_signals_and_frames_hand_calculation():
    k, m = _kernel_meter()
    round_ = (V("uml.ptrace_stop_cycles") + 2 * V("native.context_switch_cycles")
              + V("uml.round_host_calls_count") * V("native.syscall_cycles"))
    k.irq()  # SIGIO: the host interrupt, one intercepted round, one read of the descriptor
    assert m.total_cycles(X) == pytest.approx(V("native.interrupt_cycles") + round_ + V("native.syscall_cycles"))
    k, m = _kernel_meter()
    k.timer_tick()  # the host tick, SIGVTALRM intercepted, the UML tick handler
    assert m.total_cycles(X) == pytest.approx(2 * V("native.timer_tick_cycles") + round_)
    k, m = _kernel_meter()
    k.nic_packets(3)  # one TUN read/write each, then the host's NIC path
    assert m.price(X)["trap.uml_host_syscall"] == pytest.approx(3 * V("native.syscall_cycles"))
    assert m.price(X)["kernel.nic_driver"] == pytest.approx(3 * V("io.native_nic_packet_cycles"))
    k, m = _kernel_meter()
    k.exception()  # the host trap, SIGFPE intercepted, the UML kernel's handler
    c = m.price(X)
    assert c["trap.uml_host_trap"] == pytest.approx(V("native.exception_cycles"))
    assert m.total_cycles(X) == pytest.approx(2 * V("native.exception_cycles") + round_)
