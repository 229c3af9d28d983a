"""Conversions: cold P2V's total is used blocks / min(disk, link) + injection + boot within 1 %; hot
P2V's downtime is the final sync plus the switch-over; V2V and V2P refuse what cannot run; the block
kernels equal their references."""

import numpy as np
import pytest

from pvsim.convert.model import BOOT_VM_MS, DRIVER_INJECT_MS, SWITCH_ADDR_MS, DiskArgs, p2v, v2p, v2v
from pvsim.core.errors import ScenarioError
from pvsim.ha.disk import Disk


@pytest.mark.parametrize("disk,link", [(500, 1000), (100, 10000), (2000, 10000)])
def test_cold_p2v_total(disk, link):
    a = DiskArgs(size_gib=4, used_frac=0.3, disk_mb_per_s=disk, link_mbps=link)
    r = p2v(a)
    used = round(0.3 * 4 * 2**30 / 4096)
    expect = used * 4096 / min(disk * 1e6, link * 1e6 / 8) * 1e3 + DRIVER_INJECT_MS + BOOT_VM_MS
    assert r["total_ms"] == pytest.approx(expect, rel=0.01)
    assert r["blocks_copied"] == used and r["image_matches"]


def test_hot_p2v_downtime_is_sync_plus_switch():
    r = p2v(DiskArgs(size_gib=2, used_frac=0.5, write_mb_per_s=40, hot_mib=64), hot=True)
    assert r["sync_blocks"] > 0 and r["image_matches"]
    assert r["downtime_ms"] == pytest.approx(r["sync_ms"] + DRIVER_INJECT_MS + BOOT_VM_MS + SWITCH_ADDR_MS)
    assert r["downtime_ms"] < p2v(DiskArgs(size_gib=2, used_frac=0.5))["downtime_ms"]


def test_kernels_equal_references():
    a, b = Disk(32, 0.6, 80, 4, seed=5), Disk(32, 0.6, 80, 4, seed=5, compiled=False)
    da, db = np.zeros(a.n, np.int64), np.zeros(b.n, np.int64)
    assert a.copy_used_to(da) == b.copy_used_to(db)
    a.run(1e8)
    b.run(1e8)
    assert a.sync_to(da) == b.sync_to(db) > 0
    assert np.array_equal(da, db) and np.array_equal(da, a.version)


def test_v2v_and_its_refusals():
    r = v2v(DiskArgs(size_gib=2), "pv", "kvm-virtio", "kvm")
    assert r["drivers_ms"] > 0 and r["kernel_swap_ms"] == 0 and r["image_matches"]
    with pytest.raises(ScenarioError) as e:
        v2v(DiskArgs(), "hvm", "pv", "kvm")
    assert e.value.field == "--to-mode"
    with pytest.raises(ScenarioError) as e:
        v2v(DiskArgs(), "pv32", "kvm-virtio", "kvm")
    assert e.value.field == "--to-mode"
    assert v2v(DiskArgs(size_gib=1), "pv32", "kvm-virtio", "kvm", swap_kernel=True)["kernel_swap_ms"] > 0


def test_v2p_hardware_profile():
    with pytest.raises(ScenarioError) as e:
        v2p(DiskArgs(size_gib=1), "dell-r640", "hp-dl380")
    assert e.value.field == "--target-hw"
    assert v2p(DiskArgs(size_gib=1), "dell-r640", "hp-dl380", inject=True)["drivers_ms"] > 0
    assert v2p(DiskArgs(size_gib=1), "dell-r640", "dell-r640")["drivers_ms"] == 0
