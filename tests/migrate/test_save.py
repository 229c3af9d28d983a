"""The save engines' stop rules and the SimGrid acceptance figures."""

import pytest

from pvsim.migrate.save import DEF_MAX_FACTOR, DEF_MAX_ITERS, SIMGRID_GUARD_ROUNDS, SPP_MAX_ITERATIONS
from tests.migrate.helpers import migrate

# SimGrid 4.1, CM02, 1 GiB, 125 MB/s, 100 us, working set 90 %, max downtime 30 ms (issue 11)
SIMGRID = [(0, 8.590, 0.10), (10, 9.337, 4.51), (50, 14.308, 14.24)]


@pytest.mark.parametrize("mbs,total_s,down_ms", SIMGRID)
def test_simgrid_policy_matches_simgrid(mbs, total_s, down_ms):
    o = migrate("simgrid", ram_mib=1024, rate_mbps=1000, latency_us=100, ram_frac=0.9, mb_per_s=mbs,
                pattern="sequential")
    assert abs(o.total_ns / 1e9 - total_s) / total_s < 0.01
    assert abs(o.downtime_ns / 1e6 - down_ms) < 0.2


def test_idle_guest_takes_ram_over_link_plus_records():
    o = migrate("xen", ram_mib=256, rate_mbps=1000, latency_us=100)
    ram_s = 256 * 2**20 * 8 / 1e9
    assert o.iterations == 1 and o.stop_reason == "dirty<50"
    assert ram_s < o.total_ns / 1e9 < ram_s * 1.01 + 0.01
    assert o.bytes > 256 * 2**20  # pages plus pfn lists and records


def _hot(policy, ws_mib, **kw):  # dirties far faster than a 100 Mbit/s link carries
    return migrate(policy, ram_mib=64, rate_mbps=100, ws_mib=ws_mib, mb_per_s=400, **kw)


def test_xen_stops_at_five_iterations_when_dirtying_beats_the_link():
    o = _hot("xen", 16)
    assert o.iterations == SPP_MAX_ITERATIONS and o.stop_reason == "iterations>=5"
    assert len([r for r in o.rounds if r.live]) == SPP_MAX_ITERATIONS + 1  # round 1 + 5 dirty sets


def test_legacy_stops_by_iterations_or_factor_never_the_50_page_rule():
    o = _hot("xen-legacy", 16)
    assert "sent+skipped<50" not in o.stop_reason
    assert o.stop_reason in ("iter>=max_iters", "total>max_factor*p2m") or "," in o.stop_reason
    assert o.iterations <= DEF_MAX_ITERS
    assert o.pages_sent <= (DEF_MAX_FACTOR + 1) * 64 * 256 + 64 * 256


def test_downtime_grows_with_the_writable_working_set():
    d = [_hot("xen", ws).downtime_ns for ws in (2, 8, 32)]
    assert d[0] < d[1] < d[2]
    d = [_hot("xen-legacy", ws).downtime_ns for ws in (2, 8, 32)]
    assert d[0] < d[1] < d[2]


def test_adaptive_rate_limit_starts_slow():
    plain = migrate("xen-legacy", ram_mib=64, rate_mbps=1000)
    slow = migrate("xen-legacy", ram_mib=64, rate_mbps=1000, adaptive=True)
    assert slow.total_ns > 4 * plain.total_ns  # 100 Mbit/s first round vs the 1 Gbit/s link


def test_qemu_zero_pages_and_bandwidth_cap():
    o = migrate("qemu", ram_mib=64, rate_mbps=10000, free_frac=0.5)
    assert o.bytes < 0.6 * 64 * 2**20  # half the RAM is zero pages sent as flags
    full = migrate("qemu", ram_mib=64, rate_mbps=10000)
    # max-bandwidth 128 MiB/s paces every batch but the last, which leaves at the link's 10 Gbit/s
    batches = 64 * 2**20 // (1024 * 4096)
    assert full.rounds[0].duration_ns / 1e9 >= 64 * 2**20 / (128 << 20) * (batches - 1) / batches * 0.99


def test_qemu_auto_converge_throttles_a_busy_guest():
    kw = dict(ram_mib=64, rate_mbps=100, ws_mib=16, mb_per_s=400)
    plain = migrate("qemu", downtime_limit_ms=30, **kw)
    conv = migrate("qemu", downtime_limit_ms=30, auto_converge=True, **kw)
    assert conv.iterations < plain.iterations or conv.downtime_ns < plain.downtime_ns


def test_same_seed_same_result():
    a, b = _hot("xen-legacy", 8, seed=4), _hot("xen-legacy", 8, seed=4)
    assert [(r.pages, r.bytes, r.end_ns) for r in a.rounds] == [(r.pages, r.bytes, r.end_ns) for r in b.rounds]


def test_simgrid_stage_2_that_cannot_converge_stops_at_the_guard():
    o = migrate("simgrid", ram_mib=8, rate_mbps=50.0, ws_mib=4, mb_per_s=300.0)  # dirtying >> link
    assert o.stop_reason.startswith("no convergence") and o.iterations == SIMGRID_GUARD_ROUNDS
    assert int((o.receiver != o.sender).sum()) == 0
