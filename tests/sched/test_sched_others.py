"""rtds, null, bvt, credit2 specifics, and invariants that hold for every scheduler."""

import numpy as np
import pytest
from sched_helpers import MS, assert_runstates_sum

from pvsim.core.engine import Engine
from pvsim.sched import SCHEDULER_NAMES, HostRunner, make_scheduler
from pvsim.sched.workloads import CpuHog, IoBound, Mix, Periodic

S = 1_000_000_000


@pytest.mark.parametrize("sched", SCHEDULER_NAMES)
def test_runstates_sum_to_elapsed_for_every_scheduler(sched):
    e = Engine(seed=7)
    r = HostRunner(e, make_scheduler(sched), 3)
    for d in range(1, 7):
        for v in range(2):
            b = [CpuHog(5 * MS), IoBound(MS, 4 * MS, rng=e.rng(f"{d}.{v}")), Periodic(7 * MS, MS, v * MS),
                 Mix([(CpuHog(), 30 * MS), (IoBound(MS, 2 * MS), 40 * MS)])][(d + v) % 4]
            r.add_vcpu(d, v, b, weight=128 * d, cap=(60 if d == 2 else 0))
    r.at(150 * MS, lambda run: run.pin(1, None, hard={2}))
    r.start()
    e.run(400 * MS)
    st = assert_runstates_sum(r)
    busy = sum(v.cpu_ns for v in st.vcpus)
    assert busy + sum(st.pcpu_idle_ns) == 3 * 400 * MS  # every pCPU ns is someone's or idle


@pytest.mark.parametrize("sched", SCHEDULER_NAMES)
def test_same_seed_same_result(sched):
    def run():
        e = Engine(seed=3)
        r = HostRunner(e, make_scheduler(sched), 2)
        for d in range(1, 5):
            r.add_vcpu(d, 0, IoBound(2 * MS, 3 * MS, rng=e.rng(f"d{d}")), weight=100 * d)
        r.start()
        e.run(200 * MS)
        return [(v.cpu_ns, v.context_switches, tuple(v.wake_latency_ns)) for v in r.stats().vcpus]

    assert run() == run()


# ---------------------------------------------------------------- rtds
def _per_period_cpu(r, unit, period, until):
    samples = []

    def sample(now):
        samples.append(r.cpu_ns(unit, now))
        if now + period <= until:
            r.timer(period, sample)

    r.timer(0, sample)
    return samples


def test_rtds_schedulable_set_gets_its_budget_every_period_under_overload():
    e = Engine()
    s = make_scheduler("rtds")
    r = HostRunner(e, s, 1)
    rt = {1: (10_000, 3_000), 2: (20_000, 5_000), 3: (40_000, 10_000)}  # us; utilisation 0.8
    units = {d: r.add_vcpu(d, 0, CpuHog(), params={"period_us": p, "budget_us": b, "extratime": False})
             for d, (p, b) in rt.items()}
    for d in (4, 5):  # CPU hogs with a small reservation and extratime: the overload
        r.add_vcpu(d, 0, CpuHog(), params={"period_us": 100_000, "budget_us": 1_000, "extratime": True})
    until = 400 * MS
    samples = {d: _per_period_cpu(r, units[d], rt[d][0] * 1000, until) for d in rt}
    r.start()
    e.run(until + 1)
    for d, (p, b) in rt.items():
        got = np.diff(samples[d])
        assert len(got) == until // (p * 1000)
        assert np.all(got == b * 1000), (d, got)
    misses = s.deadline_misses()
    assert all(misses[(d, 0)] == 0 for d in rt)
    st = r.stats()
    assert sum(st.pcpu_idle_ns) == 0  # hogs soak up the 18 % left over (extratime)
    assert st.vcpu(4).cpu_ns + st.vcpu(5).cpu_ns == pytest.approx(0.2 * until, rel=0.02)


def test_rtds_over_subscribed_set_reports_deadline_misses():
    e = Engine()
    s = make_scheduler("rtds")
    r = HostRunner(e, s, 1)
    for d in (1, 2):  # 2 x 6/10 = 1.2 of one pCPU
        r.add_vcpu(d, 0, CpuHog(), params={"period_us": 10_000, "budget_us": 6_000, "extratime": False})
    r.start()
    e.run(200 * MS)
    misses = s.deadline_misses()
    assert sum(misses.values()) >= 15
    info = s.unit_info(r.units[0])
    assert info["periods"] >= 19


def test_rtds_defaults_and_extratime_share_spare_capacity():
    e = Engine()
    s = make_scheduler("rtds")
    r = HostRunner(e, s, 1)
    r.add_vcpu(1, 0, CpuHog())
    r.add_vcpu(2, 0, CpuHog())
    r.start()
    e.run(S)
    st = r.stats()
    assert s.unit_info(r.units[0])["period_us"] == 10_000 and s.unit_info(r.units[0])["budget_us"] == 4_000
    assert st.vcpu(1).cpu_ns == pytest.approx(0.5 * S, rel=0.05)


def test_rtds_deferrable_server_keeps_budget_while_blocked():
    """A periodic task inside its reservation is never delayed by a hog beyond its budget."""
    e = Engine()
    s = make_scheduler("rtds")
    r = HostRunner(e, s, 1)
    r.add_vcpu(1, 0, CpuHog(), params={"period_us": 100_000, "budget_us": 90_000})
    p = Periodic(10 * MS, MS, phase_ns=3 * MS)
    r.add_vcpu(2, 0, p, params={"period_us": 10_000, "budget_us": 2_000, "extratime": False})
    r.start()
    e.run(S)
    resp = np.array(p.response_ns[1:])
    assert resp.size > 90 and resp.max() <= 10 * MS


def test_rtds_adjust_per_vcpu():
    e = Engine()
    s = make_scheduler("rtds")
    r = HostRunner(e, s, 1)
    r.add_vcpu(1, 0, CpuHog(), params={"extratime": False})
    r.at(100 * MS, lambda run: run.adjust(1, vcpu=0, budget_us=1000))
    r.start()
    e.run(200 * MS)
    st = r.stats()
    # 4 ms per 10 ms for 100 ms, then 1 ms per 10 ms
    assert st.vcpu(1).cpu_ns == pytest.approx(40 * MS + 10 * MS, abs=1 * MS)


# ---------------------------------------------------------------- null
def test_null_assigns_one_pcpu_per_vcpu_and_queues_the_rest():
    e = Engine()
    r = HostRunner(e, make_scheduler("null"), 2)
    r.add_vcpu(1, 0, CpuHog(until_ns=100 * MS))
    r.add_vcpu(2, 0, CpuHog())
    r.add_vcpu(3, 0, CpuHog())  # waits in the waitqueue until d1 goes offline
    r.start()
    e.run(300 * MS)
    st = assert_runstates_sum(r)
    assert st.vcpu(1).cpu_ns == 100 * MS
    assert st.vcpu(2).cpu_ns == 300 * MS and st.vcpu(2).context_switches == 1
    assert st.vcpu(3).cpu_ns == 200 * MS and st.vcpu(3).runnable_ns == 100 * MS
    assert st.context_switches == 3


def test_null_pcpu_idles_when_its_vcpu_blocks():
    e = Engine()
    r = HostRunner(e, make_scheduler("null"), 1)
    r.add_vcpu(1, 0, IoBound(MS, MS))
    r.add_vcpu(2, 0, CpuHog())
    r.start()
    e.run(100 * MS)
    st = r.stats()
    assert st.vcpu(2).cpu_ns == 0 and st.pcpu_idle_ns[0] == pytest.approx(50 * MS, abs=MS)


# ---------------------------------------------------------------- bvt
def test_bvt_shares_follow_mcu_advance():
    e = Engine()
    r = HostRunner(e, make_scheduler("bvt"), 1)
    r.add_vcpu(1, 0, CpuHog(), params={"mcu_advance": 10})
    r.add_vcpu(2, 0, CpuHog(), params={"mcu_advance": 20})  # half the weight
    r.add_vcpu(3, 0, CpuHog(), params={"mcu_advance": 40})
    r.start()
    e.run(4 * S)
    st = assert_runstates_sum(r)
    sh = np.array([st.vcpu(d).cpu_ns for d in (1, 2, 3)]) / (4 * S)
    assert sh == pytest.approx(np.array([4, 2, 1]) / 7, abs=0.01)


def test_bvt_warp_gives_low_latency_dispatch():
    """A light-weight (mcu_advance 100) vCPU that overruns its share is ahead in virtual time, so
    it waits for the hogs when it wakes; with a warp it borrows virtual time and preempts at once."""

    def run(warp_us):
        e = Engine()
        r = HostRunner(e, make_scheduler("bvt"), 1)
        for d in (1, 2):
            r.add_vcpu(d, 0, CpuHog())
        p = Periodic(10 * MS, 2 * MS, phase_ns=5 * MS)
        r.add_vcpu(3, 0, p, params={"mcu_advance": 100, "warp_us": warp_us, "warpl_ms": 50, "warpu_ms": 10})
        r.start()
        e.run(2 * S)
        return np.array(r.stats().wake_latency_ns(3)[3:])

    no_warp, warp = run(0), run(10_000_000)
    assert warp.size > 50 and warp.mean() < 0.1 * MS
    assert no_warp.mean() > 2 * MS


# ---------------------------------------------------------------- credit2
def test_credit2_no_boost_but_high_credit_sleeper_preempts():
    e = Engine()
    s = make_scheduler("credit2")
    r = HostRunner(e, s, 1)
    r.add_vcpu(1, 0, CpuHog())
    r.add_vcpu(2, 0, IoBound(200_000, 5 * MS))
    r.start()
    e.run(S)
    lat = r.stats().wake_latency_ns(2)
    assert lat.size > 100 and np.percentile(lat, 90) <= 1 * MS  # bounded by the ratelimit


def test_credit2_runqueues_per_socket_and_balancing():
    e = Engine()
    s = make_scheduler("credit2", {"cpus_per_socket": 2})
    r = HostRunner(e, s, 4)
    assert len(s.rqds) == 2
    for d in range(1, 9):
        r.add_vcpu(d, 0, CpuHog())
    r.start()
    e.run(S)
    st = assert_runstates_sum(r)
    assert sum(st.pcpu_idle_ns) < 0.02 * 4 * S
    cpu = np.array([v.cpu_ns for v in st.vcpus]) / S
    assert np.allclose(cpu, 0.5, atol=0.1)


def test_credit2_cap_replenishes_every_10ms():
    e = Engine()
    s = make_scheduler("credit2")
    r = HostRunner(e, s, 2)
    r.add_vcpu(1, 0, CpuHog(), cap=30)
    r.add_vcpu(1, 1, CpuHog(), cap=30)
    r.start()
    e.run(S)
    st = r.stats()
    assert (st.vcpu(1, 0).cpu_ns + st.vcpu(1, 1).cpu_ns) / S == pytest.approx(0.30, abs=0.01)


@pytest.mark.parametrize("sched", ["credit", "credit2", "null"])
def test_soft_affinity_is_preferred(sched):
    from sched_helpers import SwitchLog

    e = Engine()
    r = HostRunner(e, make_scheduler(sched), 2)
    log = SwitchLog(e)
    r.add_vcpu(1, 0, IoBound(MS, 3 * MS), soft_affinity={1})
    r.add_vcpu(2, 0, IoBound(MS, 3 * MS))
    r.start()
    e.run(300 * MS)
    on = [c for _t, c, d in log.log if d == 1]
    assert len(on) > 50 and set(on) == {1}
