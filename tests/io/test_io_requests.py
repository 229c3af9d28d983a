"""Per-request I/O prices for scenario runs come from the I/O subsystem's own device paths."""

import pytest

from pvsim.io.requests import block_price, net_price, packet_price
from pvsim.pricing import op_cost


def _cyc(price):
    return dict(price.cycles)


def test_block_request_paths_differ_by_mode_as_the_subsystem_says():
    native, pv, hvm = (_cyc(block_price(m, "modern", 8192, True)) for m in ("native", "pv", "hvm"))
    assert not any(k.startswith(("io.grant", "dom0.", "exit.", "device.")) for k in native)
    assert pv.get("io.grant", 0) > 0 and pv.get("dom0.io.grant", 0) > 0  # blkfront grants, blkback maps
    assert hvm.get("dom0.device.emulation", 0) > 0 and any(k.startswith("exit.") for k in hvm)  # device model
    assert sum(native.values()) < sum(pv.values()) < sum(hvm.values())


def test_prices_are_deterministic_and_scale_with_the_request():
    a = block_price("pv", "modern", 4096, False)
    block_price.cache_clear()
    assert block_price("pv", "modern", 4096, False) == a
    big = _cyc(block_price("pv", "modern", 65536, False))
    assert big["io.grant"] > _cyc(a)["io.grant"]  # 16 granted pages instead of 1
    one, ten = net_price("pv", "modern", 1), net_price("pv", "modern", 10)
    per = sum(_cyc(packet_price("pv", "modern")).values())
    assert sum(_cyc(ten).values()) - sum(_cyc(one).values()) == pytest.approx(9 * per)


@pytest.mark.parametrize("mode,cause", [("pv", "io.grant"), ("pvh", "io.grant"), ("hvm", "dom0.device.emulation"),
                                        ("bt", "device.emulation")])
def test_op_mix_io_actions_carry_the_subsystem_causes(mode, cause):
    c = op_cost("oltp", mode, "modern")
    assert c.cycles.get(cause, 0) > 0
    assert c.cycles["idle.io_wait"] > 0  # the device's own time, blocked


def test_a_request_split_across_ring_slots_completes():
    """A 64 KiB request is two blkif requests (11 + 5 segments). The second one's disk completion
    can arrive while blkback is still running; the wake must not be lost (blkback's waiting_reqs)."""
    from pvsim.io.workloads import run_io_workload
    from pvsim.profile import load_profile

    row = run_io_workload("fio-rand4k", "pv", load_profile("modern"), seed=0, duration_ns=20_000_000, iodepth=1,
                          read_frac=1.0, block_bytes=65536, disk_kind="exp", mean_service_ns=20_000.0)
    assert row["completed_ops"] > 50
    assert abs(row["ring_requests"] - 2 * row["completed_ops"]) <= 2  # two ring requests per I/O
