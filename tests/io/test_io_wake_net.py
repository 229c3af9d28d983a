"""Wake-up paths (issue 12 item 5) and network variants (item 6): hand calculations from the
profiles, the protocol's counts per packet, and the runs that pay them."""

import pytest

from guest_kernels.base import NF_HOOKS_PER_PACKET
from guest_kernels.hvm import KVMKernel
from guest_kernels.modes import MODES
from hypercalls import args as A
from hypercalls import ops as O
from hypercalls.table import HYPERVISOR_grant_table_op
from pvsim.core.errors import ScenarioError
from pvsim.core.meter import Meter
from pvsim.core.profile import load_profile
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.io import gnttab as gt
from pvsim.io.paths import flip_flush, flip_pte_updates
from pvsim.scenario import Scenario
from pvsim.wiring import scratch_platform
from tests.io.io_helpers import run_io, scenario_dict


def _kernel(mode, profile, **opts):
    prof = load_profile(profile)
    p = scratch_platform(mode, prof)
    m = p.hv.meter = Meter()  # after the set-up's own work
    return MODES[mode].kernel(p, **opts), m, prof


def _cycles(m, prof, cause):
    return m.price(prof).get(cause, 0.0)


# ----------------------------------------------------------------------------- wake-up paths
@pytest.mark.parametrize("profile", ["modern", "xeon-2003"])
def test_pv_evtchn_wake_hand_calc(profile):
    k, m, prof = _kernel("pv", profile)
    k.wake("event")
    assert _cycles(m, prof, "wake.sched") == pytest.approx(prof.cycles("io.vcpu_wake_cycles"))
    assert _cycles(m, prof, "wake.ipi") == pytest.approx(prof.cycles("native.ipi_cycles"))
    assert m.counts["wake.vcpu"] == 1 and m.counts["wake.ipi"] == 1
    # vcpu_wake is half a schedule() pass, as the profile's source derives it
    assert prof.cycles("io.vcpu_wake_cycles") == pytest.approx(prof.cycles("sched.schedule_cycles") // 2)
    k2, m2, _ = _kernel("pv", profile)
    k2.wake("timer")  # its own singleshot timer: vcpu_wake, no IPI
    assert _cycles(m2, prof, "wake.ipi") == 0 and m2.counts["wake.vcpu"] == 1


@pytest.mark.parametrize("profile,counted", [("modern", "wake.pi_wakeup"), ("p4-2006", "wake.ipi")])
def test_hvm_hlt_wake_hand_calc(profile, counted):
    k, m, prof = _kernel("hvm-shadow", profile)
    k.idle()  # the HLT exit (and the entry that resumes the vCPU)
    assert m.counts["exit.hlt"] == 1
    k.wake("event")
    assert _cycles(m, prof, "wake.sched") == pytest.approx(prof.cycles("io.vcpu_wake_cycles"))
    assert _cycles(m, prof, "wake.ipi") == pytest.approx(prof.cycles("native.ipi_cycles"))
    assert m.counts[counted] == 1


def test_kvm_wake_and_native_thread_wake_hand_calc():
    k, m, prof = _kernel("kvm-virtio", "modern")
    assert k.halt_poll_ns == 200_000
    k.wake("event")
    assert _cycles(m, prof, "wake.host_thread") == pytest.approx(prof.cycles("io.thread_wake_cycles"))
    assert _cycles(m, prof, "wake.ipi") == pytest.approx(prof.cycles("native.ipi_cycles"))
    n, mn, _ = _kernel("native", "modern")
    n.wake("irq")  # a device interrupt is the wake-up itself
    assert not mn.price(prof)
    n.wake("thread")  # try_to_wake_up from another CPU: the reschedule IPI
    assert _cycles(mn, prof, "wake.ipi") == pytest.approx(prof.cycles("native.ipi_cycles"))


def test_kvm_halt_poll_window_follows_kvm_vcpu_halt():
    k, _, _ = _kernel("kvm-virtio", "modern")
    f = k.next_halt_poll_ns
    assert f(0, 20_000, False) == KVMKernel.HALT_POLL_GROW_START_NS  # grow from 0 to grow_start
    assert f(10_000, 20_000, False) == 20_000  # x2
    assert f(20_000, 30_000, False) == 40_000
    assert f(40_000, 30_000, True) == 40_000  # the window caught it: unchanged
    assert f(160_000, 190_000, False) == 200_000  # capped at halt_poll_ns
    assert f(40_000, 300_000, False) == 0  # longer than the maximum: shrink (halt_poll_ns_shrink = 0)
    k2, _, _ = _kernel("kvm-virtio", "xeon-2003")  # no halt polling in that era
    assert k2.halt_poll_ns == 0 and k2.next_halt_poll_ns(0, 10, False) == 0


def test_netperf_rr_pays_the_wake_ups_every_transaction():
    pv = run_io("netperf-rr", "pv", ms=10)
    tr = pv["requests"]
    # the guest blocks for the response and for the TX completion: at most two wake-ups a transaction,
    # each from Domain-0's event (an IPI)
    assert tr > 100
    assert tr * 0.9 <= pv["counts"]["wake.vcpu"] <= 2 * tr + 2
    assert pv["counts"]["wake.ipi"] == pv["counts"]["wake.vcpu"]
    assert pv["breakdown_ns"]["wake.sched"] > 0 and pv["breakdown_ns"]["wake.ipi"] > 0
    kvm = run_io("netperf-rr", "kvm-virtio", ms=10)
    c = kvm["counts"]
    # halt polling: the guest vCPU polls through its short idle periods (no wake-up path), burning
    # its pCPU; the vhost worker is woken (try_to_wake_up + switch) for each kick
    assert c["idle.halt_poll_hit"] >= kvm["requests"]
    assert kvm["breakdown_ns"]["idle.halt_poll"] > 0
    assert c["wake.host_thread"] >= kvm["requests"]
    assert kvm["dom0_breakdown_ns"]["wake.host_thread"] > 0
    hvm = run_io("netperf-rr", "hvm", ms=10)
    assert hvm["counts"]["wake.host_thread"] >= hvm["requests"]  # QEMU's I/O thread woken per access batch
    assert hvm["counts"]["wake.vcpu"] >= hvm["requests"] * 0.9


def test_halt_poll_occupies_the_pcpu_in_the_scheduler():
    """The poll is a Run on the pCPU (the scheduler sees it), not a block: with halt polling the
    guest vCPU's busy share goes up while its blocked wake-ups disappear."""
    kvm = run_io("netperf-rr", "kvm-virtio", ms=10)
    b = kvm["breakdown_ns"]
    assert b.get("idle.halt_poll", 0) > b.get("idle", 0)
    assert kvm["counts"].get("idle.halt_poll_miss", 0) <= kvm["counts"]["idle.halt_poll_hit"]


# ----------------------------------------------------------------------------- network variants
@pytest.mark.parametrize("net,extra", [("host", ()), ("bridge", ("kernel.container_bridge",)),
                                       ("nat", ("kernel.container_bridge", "kernel.conntrack", "kernel.nat"))])
def test_container_networks_hand_calc(net, extra):
    k, m, prof = _kernel("container", "modern", container_net=net)
    k.nic_packets(10)
    price = {"kernel.nic_driver": "io.native_nic_packet_cycles", "kernel.container_bridge": "io.container_bridge_packet_cycles",
             "kernel.conntrack": "io.conntrack_lookup_cycles", "kernel.nat": "io.nat_rewrite_cycles"}
    got = m.price(prof)
    assert set(got) == {"kernel.nic_driver", *extra}
    for cause in got:
        assert got[cause] == pytest.approx(10 * prof.cycles(price[cause]))
    assert m.counts["net.conntrack_lookup"] == (10 if net == "nat" else 0)


def test_netfilter_hooks_per_segment_hand_calc():
    for mode in ("native", "pv", "hvm"):
        k, m, prof = _kernel(mode, "modern")
        k.net_stack(7, 1000)
        assert _cycles(m, prof, "kernel.netfilter") == pytest.approx(7 * NF_HOOKS_PER_PACKET * prof.cycles("io.netfilter_hook_cycles"))
        assert m.counts["net.netfilter_hook"] == 14


def test_container_nat_one_conntrack_lookup_per_frame():
    rows = {net: run_io("ttcp-500", "container", ms=6, options={"container_net": net}) for net in ("host", "bridge", "nat")}
    nat = rows["nat"]["counts"]
    assert nat["net.conntrack_lookup"] == nat["net.nat_rewrite"] == nat["net.bridge"] > 0
    assert "net.bridge" not in rows["host"]["counts"]
    assert rows["host"]["value"] > rows["bridge"]["value"] > rows["nat"]["value"]


def _two_domains():
    hv = Hypervisor(load_profile("xeon-2003"))
    hv.meter = Meter()
    d0 = hv.add_domain(Domain(0, "Domain-0", "pv", "pv64", nr_vcpus=1, tot_pages=4096))
    g = hv.add_domain(Domain(1, "guest", "pv", "pv64", nr_vcpus=1, tot_pages=4096))
    return hv, d0, g


def test_grant_transfer_protocol():
    hv, d0, g = _two_domains()
    ggt = gt.gnttab_for(g)
    ref = ggt.grant_foreign_transfer(0, pfn=0x123)
    assert ggt.flags[ref] == O.GTF_accept_transfer
    ops = [A.GnttabTransfer(0x9000, 1, ref)]
    assert gt.grant_table_op(hv, d0, O.GNTTABOP_transfer, ops, 1) == 0
    assert ops[0].status == O.GNTST_okay
    assert ggt.flags[ref] & O.GTF_transfer_completed and ggt.frame[ref] == 0x9000
    assert hv.meter.price(hv.profile)["io.grant"] == pytest.approx(hv.profile.cycles("io.grant_transfer_cycles"))
    assert hv.meter.counts["grant.transfer"] == 1
    again = [A.GnttabTransfer(0x9001, 1, ref)]  # already committed
    gt.grant_table_op(hv, d0, O.GNTTABOP_transfer, again, 1)
    assert again[0].status == O.GNTST_general_error
    assert ggt.end_transfer(ref) == 0x9000 and ggt.flags[ref] == 0
    ref2 = ggt.grant_foreign_transfer(5, pfn=0x124)  # accepts only from domain 5
    wrong = [A.GnttabTransfer(0x9002, 1, ref2), A.GnttabTransfer(0x9003, 1, 10**6), A.GnttabTransfer(0x9004, 77, ref2)]
    gt.grant_table_op(hv, d0, O.GNTTABOP_transfer, wrong, 3)
    assert [w.status for w in wrong] == [O.GNTST_general_error, O.GNTST_bad_gntref, O.GNTST_bad_domain]
    access = ggt.grant_access(0, 0x200)  # an access grant is no transfer grant
    w = [A.GnttabTransfer(0x9005, 1, access)]
    gt.grant_table_op(hv, d0, O.GNTTABOP_transfer, w, 1)
    assert w[0].status == O.GNTST_general_error
    assert HYPERVISOR_grant_table_op  # the hypercall the backend makes


class _OS:
    """The reporting face of a VcpuOS over a platform (for the flip helpers)."""

    def __init__(self, mode, profile):
        self.kernel, _, _ = _kernel(mode, profile)
        self.meter = Meter()
        self.hv = self.kernel.p.hv

    def work(self, cause, price, n=1):
        self.meter.add(cause, price, n)

    def count(self, name, n=1):
        self.meter.count(name, n)


def test_flip_batch_hand_calc():
    os_ = _OS("pv", "xeon-2003")
    prof = os_.hv.profile
    n = 16
    flip_pte_updates(os_, 2 * n, entries=2 * n)  # netback: zap + replacement map per packet
    flip_flush(os_, ("multicall",))
    want = 2 * n * (prof.cycles("xen.pte_validate_cycles") + prof.cycles("xen.multicall_entry_cycles")) \
        + prof.cycles("io.grant_tlb_flush_cycles")
    assert os_.meter.price(prof)["io.flip"] == pytest.approx(want)
    assert os_.meter.counts["flip.pte_update"] == 2 * n and os_.meter.counts["flip.tlb_flush"] == 1
    assert os_.meter.counts["hypercall.multicall"] == 1


def test_page_flipping_counts_per_packet():
    """xeon-2003 flips by default: one GNTTABOP_transfer per received frame, four validated PTE
    updates per frame (netback's zap and replacement map, netfront's map of the received page and
    its zap of the refilled buffer), no grant copy on receive; modern copies unless asked to flip."""
    flip = run_io("ttcp-500", "pv", ms=20, profile="xeon-2003")
    copy = run_io("ttcp-500", "pv", ms=20, profile="xeon-2003", options={"netback_rx": "copy"})
    c = flip["counts"]
    assert c["grant.transfer"] > 100
    assert c["flip.pte_update"] == pytest.approx(4 * c["grant.transfer"], rel=0.01)
    assert "grant.transfer" not in copy["counts"] and "flip.pte_update" not in copy["counts"]
    # receive grant copies are gone: the copy run's extra grant copies are its received frames
    assert copy["counts"]["grant.copy"] > c["grant.copy"]
    assert flip["dom0_breakdown_ns"]["io.flip"] > 0
    modern = run_io("ttcp-500", "pv", ms=6)
    assert "grant.transfer" not in modern["counts"]
    assert run_io("ttcp-500", "pv", ms=6, options={"netback_rx": "flip"})["counts"]["grant.transfer"] > 0


@pytest.mark.parametrize("field,bad", [("container_net", "macvlan"), ("netback_rx", "swap")])
def test_bad_network_option_names_the_field(field, bad):
    with pytest.raises(ScenarioError, match=f"options.{field}"):
        Scenario.from_dict(scenario_dict("netperf-rr", "pv", options={field: bad}))


def test_pv_drivers_in_hvm_guests_never_flip():
    r = run_io("netperf-rr", "pvhvm", ms=4, options={"netback_rx": "flip"})
    assert "grant.transfer" not in r["counts"] and r["counts"]["grant.copy"] > 0
