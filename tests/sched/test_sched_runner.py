"""The dispatcher with the simple round-robin scheduler: (who, when) traces and runstate sums."""

import pytest
from sched_helpers import MS, assert_runstates_sum

from pvsim.core.errors import ScenarioError
from pvsim.sched import Block, Done, Run, Wait, validate_sched_params
from pvsim.sched.workloads import CpuHog, IoBound


class Script:
    """Replays a list of demands, then Done."""

    def __init__(self, *demands):
        self.demands = list(demands)
        self.calls = []

    def next(self, now):
        self.calls.append(now)
        return self.demands.pop(0) if self.demands else Done()


def test_rr_alternates_two_hogs_every_slice(host):
    e, r, log = host("rr", {"tslice_ms": 10}, trace=True)
    r.add_vcpu(1, 0, CpuHog())
    r.add_vcpu(2, 0, CpuHog())
    r.start()
    e.run(50 * MS)
    assert log.log == [(0, 0, 1), (10 * MS, 0, 2), (20 * MS, 0, 1), (30 * MS, 0, 2), (40 * MS, 0, 1)]
    st = assert_runstates_sum(r)
    assert st.vcpu(1).running_ns == 30 * MS and st.vcpu(2).running_ns == 20 * MS
    assert st.vcpu(2).runnable_ns == 30 * MS


def test_preempted_run_keeps_its_remainder(host):
    e, r, log = host("rr", {"tslice_ms": 10}, trace=True)
    a = Script(Run(15 * MS))
    r.add_vcpu(1, 0, a)
    r.add_vcpu(2, 0, CpuHog())
    r.start()
    e.run(60 * MS)
    # A runs 0-10, B 10-20, A 20-25 (finishes its 15 ms and goes offline), B from 25 on
    assert log.log == [(0, 0, 1), (10 * MS, 0, 2), (20 * MS, 0, 1), (25 * MS, 0, 2)]
    assert a.calls == [0, 25 * MS]
    st = assert_runstates_sum(r)
    assert st.vcpu(1).running_ns == 15 * MS and st.vcpu(1).offline_ns == 35 * MS


def test_block_and_wake_trace_and_latency(host):
    e, r, log = host("rr", {"tslice_ms": 10}, n=1, trace=True)
    io = Script(Run(3 * MS), Block(5 * MS), Run(1 * MS), Block(100 * MS))
    r.add_vcpu(1, 0, io)
    r.start()
    e.run(20 * MS)
    assert log.log == [(0, 0, 1), (3 * MS, 0, None), (8 * MS, 0, 1), (9 * MS, 0, None)]
    st = assert_runstates_sum(r)
    v = st.vcpu(1)
    assert v.running_ns == 4 * MS and v.blocked_ns == 16 * MS
    assert list(v.wake_latency_ns) == [0]
    assert st.pcpu_idle_ns == [16 * MS]


def test_wake_latency_behind_a_hog(host):
    e, r, log = host("rr", {"tslice_ms": 10}, trace=True)
    r.add_vcpu(1, 0, CpuHog())
    r.add_vcpu(2, 0, Script(Block(2 * MS), Run(1 * MS)))
    r.start()
    e.run(30 * MS)
    # the sleeper wakes at 2 ms but rr never preempts: it waits until the hog's slice ends at 10 ms
    assert log.log[:3] == [(0, 0, 1), (10 * MS, 0, 2), (11 * MS, 0, 1)]
    assert list(r.stats().vcpu(2).wake_latency_ns) == [8 * MS]


def test_wait_on_event_fired_later_and_already_fired(host):
    e, r, log = host("rr", trace=True)
    ev_later = e.event()
    ev_done = e.event()
    ev_done.succeed()
    e.run(1)  # process ev_done
    w = Script(Run(MS), Wait(ev_later), Run(2 * MS), Wait(ev_done), Run(MS))
    r.add_vcpu(1, 0, w)
    r.start()
    e.env.process(_fire_at(e, ev_later, 10 * MS))
    e.run(30 * MS)
    # runs 1 ms, waits until 10 ms, runs 2 ms + (ev_done already fired: no block) 1 ms, then Done
    assert log.log == [(1, 0, 1), (1 + MS, 0, None), (10 * MS, 0, 1), (13 * MS, 0, None)]
    assert_runstates_sum(r)


def _fire_at(e, ev, t):
    yield e.timeout_ns(t - e.now_ns)
    ev.succeed()


def test_two_pcpus_share_three_hogs_and_count_migrations(host):
    e, r, _ = host("rr", {"tslice_ms": 10}, n=2)
    for d in (1, 2, 3):
        r.add_vcpu(d, 0, CpuHog())
    r.start()
    e.run(600 * MS)
    st = assert_runstates_sum(r)
    cpu = [v.cpu_ns for v in st.vcpus]
    assert sum(cpu) == 2 * 600 * MS  # work conserving
    assert max(cpu) - min(cpu) <= 10 * MS
    assert st.migrations > 0
    assert st.pcpu_idle_ns == [0, 0]


def test_hard_affinity_is_respected(host):
    e, r, log = host("rr", {"tslice_ms": 10}, n=2, trace=True)
    r.add_vcpu(1, 0, CpuHog(), affinity={1})
    r.add_vcpu(2, 0, CpuHog(), affinity={1})
    r.start()
    e.run(100 * MS)
    assert {cpu for _t, cpu, d in log.log if d is not None} == {1}
    st = assert_runstates_sum(r)
    assert st.pcpu_idle_ns[0] == 100 * MS
    assert st.vcpu(1).cpu_ns + st.vcpu(2).cpu_ns == 100 * MS


def test_vcpu_pin_moves_a_running_vcpu(host):
    e, r, log = host("rr", {"tslice_ms": 10}, n=2, trace=True)
    r.add_vcpu(1, 0, CpuHog(), affinity={0})
    r.at(25 * MS, lambda run: run.pin(1, 0, hard={1}))
    r.start()
    e.run(50 * MS)
    assert (25 * MS, 0, None) in log.log and (25 * MS, 1, 1) in log.log
    st = assert_runstates_sum(r)
    assert st.vcpu(1).running_ns == 50 * MS and st.vcpu(1).migrations == 1


def test_switch_cost_delays_work_and_counts_as_running(host):
    e, r, log = host("rr", {"tslice_ms": 10}, switch_cost_ns=lambda p, n: MS // 2, trace=True)
    a = Script(Run(9 * MS))
    r.add_vcpu(1, 0, a)
    r.add_vcpu(2, 0, CpuHog())
    r.start()
    e.run(40 * MS)
    # A: 0.5 ms switch + 9 ms work, done at 9.5 ms
    assert a.calls == [0, 9 * MS + MS // 2]
    assert_runstates_sum(r)


def test_runstates_sum_to_elapsed_with_io_mix(host):
    import numpy as np

    e, r, _ = host("rr", {"tslice_ms": 5}, n=3)
    rng = np.random.default_rng(1)
    for d in range(1, 9):
        r.add_vcpu(d, 0, IoBound(2 * MS, 3 * MS, rng=rng) if d % 2 else CpuHog(7 * MS))
    r.at(100 * MS, lambda run: run.add_vcpu(20, 0, CpuHog()))
    r.start()
    e.run(400 * MS)
    assert_runstates_sum(r)


def test_validation_names_fields(host):
    with pytest.raises(ScenarioError, match=r"scheduler.params.tslice_ms: must be 1..1000, got 0"):
        validate_sched_params("credit", {"tslice_ms": 0}, "scheduler.params")
    with pytest.raises(ScenarioError, match="unknown"):
        validate_sched_params("credit", {"bogus": 1}, "scheduler.params")
    with pytest.raises(ScenarioError, match="ratelimit_us"):
        validate_sched_params("credit", {"ratelimit_us": 50}, "scheduler.params")
    with pytest.raises(ScenarioError, match="scheduler.name"):
        validate_sched_params("nope", {}, "scheduler.params")
    e, r, _ = host("rr", n=2)
    with pytest.raises(ScenarioError, match=r"weight: must be 1..65535, got 0"):
        r.add_vcpu(1, 0, CpuHog(), weight=0)
    with pytest.raises(ScenarioError, match=r"cap: must be 0..200"):
        r.add_vcpu(1, 0, CpuHog(), cap=201)
    with pytest.raises(ScenarioError, match="pCPUs must be 0..1"):
        r.add_vcpu(1, 0, CpuHog(), affinity={2})
    r.add_vcpu(1, 0, CpuHog())
    with pytest.raises(ScenarioError, match="added twice"):
        r.add_vcpu(1, 0, CpuHog())


def test_same_seed_same_trace(host):
    import numpy as np

    def run(seed):
        e, r, log = host("rr", {"tslice_ms": 3}, n=2, seed=seed, trace=True)
        for d in range(1, 6):
            r.add_vcpu(d, 0, IoBound(MS, 2 * MS, rng=e.rng(f"w{d}")))
        r.start()
        e.run(200 * MS)
        return log.log

    assert run(3) == run(3)
    assert run(3) != run(4)
    np.testing.assert_equal(len(run(3)) > 10, True)


class Cuttable(Script):
    """A Script that accepts being cut short, logging (when, ns left)."""

    def __init__(self, *demands):
        super().__init__(*demands)
        self.cuts = []
        self.e = None

    def preempt(self, ns):
        self.cuts.append((self.e.now_ns, ns))
        self.demands.insert(0, Run(ns))  # resume the rest after whatever comes next
        return True


def test_interrupt_cuts_a_running_run_and_keeps_its_remainder(host):
    e, r, log = host("rr", {"tslice_ms": 30}, trace=True)
    a = Cuttable(Run(10 * MS))
    a.e = e
    u = r.add_vcpu(1, 0, a)
    r.start()
    r.at(3 * MS, lambda _r: r.interrupt(u))
    r.at(int(9.95 * MS), lambda _r: r.interrupt(u))  # 50 us left: not worth a cut
    e.run(20 * MS)
    assert a.cuts == [(3 * MS, 7 * MS)]
    assert a.calls == [0, 3 * MS, 10 * MS]  # asked again at the interrupt, then when all 10 ms ran
    assert r.stats().vcpu(1).running_ns == 10 * MS  # nothing lost, nothing run twice


def test_interrupt_of_a_runnable_vcpu_takes_its_run_back(host):
    e, r, log = host("rr", {"tslice_ms": 10}, trace=True)
    a = Cuttable(Run(15 * MS))
    a.e = e
    r.add_vcpu(2, 0, CpuHog())
    u = r.add_vcpu(1, 0, a)
    r.start()
    e.run(MS)
    assert not u.is_running
    r.interrupt(u)
    assert a.cuts == [(MS, 15 * MS)] and u.remaining == 0
    e.run(40 * MS)
    assert r.stats().vcpu(1).running_ns == 15 * MS


def test_behaviour_without_preempt_is_never_cut(host):
    e, r, log = host("rr", {"tslice_ms": 30})
    a = Script(Run(10 * MS))
    u = r.add_vcpu(1, 0, a)
    r.start()
    r.at(3 * MS, lambda _r: r.interrupt(u))
    e.run(20 * MS)
    assert a.calls == [0, 10 * MS]
