"""One vCPU: the hypervisor's vCPU is the dispatcher's unit, so SCHEDOP_block, SCHEDOP_yield,
SCHEDOP_poll, set_timer_op and VCPUOP_down/up change a run, not a flag nobody reads."""

import pytest

from hypercalls import args as A
from hypercalls import ops as O
from hypercalls.table import (
    HYPERVISOR_event_channel_op,
    HYPERVISOR_sched_op,
    HYPERVISOR_set_timer_op,
    HYPERVISOR_vcpu_op,
)
from pvsim.compare import single_scenario
from pvsim.core.engine import Engine, Run
from pvsim.core.profile import load_profile
from pvsim.hypervisor.domain import Domain
from pvsim.hypervisor.hypervisor import Hypervisor
from pvsim.io import evtchn as ev
from pvsim.sched import HostRunner, make_scheduler
from pvsim.system import build

MS = 1_000_000


class Script:
    """A vCPU behaviour that makes the given hypercall at its n-th decision, else runs 1 ms."""

    def __init__(self, hv, vcpu, calls: dict):
        self.hv, self.vcpu, self.calls, self.n = hv, vcpu, calls, 0
        self.times: list[int] = []

    def next(self, now):
        self.times.append(now)
        self.n += 1
        call = self.calls.get(self.n)
        if call is not None:
            call(self.hv, self.vcpu, now)
        return Run(MS)


def host(n_pcpus=1, scheduler="credit"):
    eng = Engine(seed=1)
    hv = Hypervisor(load_profile("modern"), eng)
    runner = HostRunner(eng, make_scheduler(scheduler), n_pcpus)
    hv.sched = runner
    return eng, hv, runner


def guest(hv, runner, domid, calls, name=None):
    dom = hv.add_domain(Domain(domid, name or f"d{domid}", "pv", "pv64", nr_vcpus=1))
    ev.evtchn_for(dom).on_kick = lambda v, d=dom: runner.wake_vcpu(d.vcpus[v])
    b = Script(hv, dom.vcpus[0], calls)
    runner.add_vcpu(domid, 0, b, vcpu=dom.vcpus[0], name=f"{dom.name}.0")
    return dom, b


def test_the_hypervisor_vcpu_is_the_dispatchers_unit():
    eng, hv, runner = host()
    dom, _b = guest(hv, runner, 1, {})
    assert runner.units[0] is dom.vcpus[0] and runner.domains[1] is dom


def test_block_deschedules_until_an_event_wakes_it():
    eng, hv, runner = host()
    block = {2: lambda hv, v, now: hv.hypercall(v, HYPERVISOR_sched_op, O.SCHEDOP_block, None)}
    dom, b = guest(hv, runner, 1, block)
    d2, _ = guest(hv, runner, 2, {})
    port = ev.alloc_unbound(hv, dom, 1, 2)
    rport = ev.bind_interdomain(hv, d2, 1, port)
    runner.start()
    eng.run(20 * MS)
    v = dom.vcpus[0]
    assert v.blocked and v.runstate == O.RUNSTATE_blocked  # blocked since its second 1 ms Run ended
    t_block = b.times[1] + MS
    ev.send(hv, d2, rport)  # d2 notifies it at 20 ms: vcpu_kick unblocks it
    eng.run(40 * MS)
    assert not v.blocked and len(b.times) > 2 and b.times[2] >= 20 * MS
    rs = runner.runstate_ns(v)
    assert rs[O.RUNSTATE_blocked] == 20 * MS - t_block


def test_block_with_an_event_pending_does_not_block():
    eng, hv, runner = host()

    def pending_then_block(hv, v, now):
        v.evtchn_upcall_pending = 1
        hv.hypercall(v, HYPERVISOR_sched_op, O.SCHEDOP_block, None)

    dom, b = guest(hv, runner, 1, {2: pending_then_block})
    runner.start()
    eng.run(10 * MS)
    assert runner.runstate_ns(dom.vcpus[0])[O.RUNSTATE_blocked] == 0 and len(b.times) >= 9


def test_yield_gives_the_pcpu_to_the_other_vcpu():
    def run(yielding: bool):
        eng, hv, runner = host()
        calls = {i: (lambda hv, v, now: hv.hypercall(v, HYPERVISOR_sched_op, O.SCHEDOP_yield, None))
                 for i in range(1, 500)} if yielding else {}
        d1, _ = guest(hv, runner, 1, calls)
        d2, _ = guest(hv, runner, 2, {})
        runner.start()
        eng.run(300 * MS)
        return runner.stats()
    plain, yielded = run(False), run(True)
    # credit: a yielding vCPU goes behind the other (CSCHED_FLAG_UNIT_YIELD) each time it decides,
    # so it runs 1 ms per 30 ms slice of the other instead of sharing the pCPU half and half
    assert abs(plain.vcpus[0].running_ns / 300e6 - 0.5) < 0.05
    assert yielded.vcpus[0].running_ns < 0.1 * plain.vcpus[0].running_ns


def test_poll_blocks_until_its_timeout():
    eng, hv, runner = host()

    def poll(hv, v, now):
        port = ev.bind_virq(hv, v.domain, O.VIRQ_DEBUG, 0)
        hv.hypercall(v, HYPERVISOR_sched_op, O.SCHEDOP_poll,
                     A.SchedPoll(ports=[port], nr_ports=1, timeout=now + 7 * MS))

    dom, b = guest(hv, runner, 1, {1: poll})
    runner.start()
    eng.run(20 * MS)
    # the poll was made at 0 in a decision whose 1 ms Run then ended: blocked from 1 ms to 7 ms
    assert runner.runstate_ns(dom.vcpus[0])[O.RUNSTATE_blocked] == 6 * MS
    assert b.times[1] == 7 * MS


def test_set_timer_op_wakes_a_blocked_vcpu_through_virq_timer():
    eng, hv, runner = host()

    def arm_and_block(hv, v, now):
        ev.bind_virq(hv, v.domain, O.VIRQ_TIMER, 0)
        hv.hypercall(v, HYPERVISOR_set_timer_op, now + 5 * MS)
        hv.hypercall(v, HYPERVISOR_sched_op, O.SCHEDOP_block, None)

    dom, b = guest(hv, runner, 1, {1: arm_and_block})
    runner.start()
    eng.run(20 * MS)
    assert b.times[1] == 5 * MS  # woken by VIRQ_TIMER at the deadline
    assert runner.runstate_ns(dom.vcpus[0])[O.RUNSTATE_blocked] == 4 * MS


def test_vcpu_down_and_up_take_it_offline_and_back():
    eng, hv, runner = host()
    calls = {2: lambda hv, v, now: hv.hypercall(v, HYPERVISOR_vcpu_op, O.VCPUOP_down, 1, None)}
    dom = hv.add_domain(Domain(1, "d1", "pv", "pv64", nr_vcpus=2))
    behs = [Script(hv, dom.vcpus[i], calls if i == 0 else {}) for i in range(2)]
    for i in range(2):
        runner.add_vcpu(1, i, behs[i], vcpu=dom.vcpus[i])
    runner.start()
    eng.run(10 * MS)
    v1 = dom.vcpus[1]
    assert v1.runstate == O.RUNSTATE_offline and not dom.vcpus[1].online
    hv.hypercall(dom.vcpus[0], HYPERVISOR_vcpu_op, O.VCPUOP_up, 1, None)
    off = runner.runstate_ns(v1)[O.RUNSTATE_offline]
    eng.run(20 * MS)
    assert runner.runstate_ns(v1)[O.RUNSTATE_offline] == off  # online again
    assert runner.runstate_ns(v1)[O.RUNSTATE_running] > 0


def test_event_channel_hypercall_wakes_a_blocked_peer():
    """The same through the hypercall: EVTCHNOP_send by one domain unblocks the other."""
    eng, hv, runner = host(2)
    block = {1: lambda hv, v, now: hv.hypercall(v, HYPERVISOR_sched_op, O.SCHEDOP_block, None)}
    dom, b = guest(hv, runner, 1, block)
    port = ev.alloc_unbound(hv, dom, 1, 2)
    holder = {}

    def send(hv, v, now):
        hv.hypercall(v, HYPERVISOR_event_channel_op, O.EVTCHNOP_send, A.EvtchnSend(holder["p"]))

    d2, _ = guest(hv, runner, 2, {5: send})
    holder["p"] = ev.bind_interdomain(hv, d2, 1, port)
    runner.start()
    eng.run(20 * MS)
    # blocked when its first Run ended (1 ms); d2's fifth decision (at 4 ms) sends, which unblocks it
    # at once on the other pCPU
    assert b.times[1] == 4 * MS
    assert runner.runstate_ns(dom.vcpus[0])[O.RUNSTATE_blocked] == 3 * MS


@pytest.mark.parametrize("mode,count", [("pv", "hypercall.sched_op"), ("pv32", "hypercall.sched_op"),
                                        ("hvm", "exit.hlt"), ("pvh", "exit.hlt")])
def test_every_guest_kernel_idles_its_own_way(mode, count):
    """An idle vCPU blocks the way its kernel does: SCHEDOP_block for PV (32- and 64-bit), a HLT
    exit under VT-x; once per idle period."""
    res = build(single_scenario("sched.io-bound", mode, "modern", duration_ms=100.0)).run()
    row = next(r for r in res.rows if r["domain"] == "guest")
    assert row["counts"].get(count, 0) >= row["units"] - 1 > 0
