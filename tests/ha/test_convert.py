"""Conversions: cold P2V's total is used blocks / min(disk, link) + injection + boot within 1 %; hot
P2V's downtime is the final sync plus the switch-over; V2V and V2P refuse what cannot run; the block
kernels equal their references."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pvsim import hacli
from pvsim.cli import app
from pvsim.compare import compare
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


def test_p2v_performance_rows_are_compares():
    """The P2V row: the workload native (the physical host), hvm (emulated devices) and pvhvm (PV
    drivers), the very rows pvsim compare gives for those modes, labelled by stage."""
    rows = hacli.p2v_performance("fio-rand4k", "modern", 0, ops=300)
    ref = compare(["fio-rand4k"], ["native", "hvm", "pvhvm"], "modern", seed=0, ops=300)
    assert [r["stage"] for r in rows] == ["physical", "emulated devices", "PV drivers"]
    assert [r["mode"] for r in rows] == ["native", "hvm", "pvhvm"]
    assert [r["value"] for r in rows] == [r["value"] for r in ref]
    assert rows[0]["relative_to_native"] == 1.0
    # emulated disk I/O exits to the device model per request; PV drivers batch through a ring
    assert rows[1]["value"] < rows[2]["value"] < rows[0]["value"]


def test_p2v_performance_cli(tmp_path):
    p = tmp_path / "p.json"
    r = CliRunner().invoke(app, ["convert", "--kind", "p2v", "--size-gib", "1", "--workload", "fio-rand4k",
                                 "--ops", "300", "--json", str(p)])
    assert r.exit_code == 0, r.output
    rows = json.loads(p.read_text())["results"]
    assert [x["kind"] for x in rows] == ["p2v", "p2v-performance", "p2v-performance", "p2v-performance"]


@pytest.mark.parametrize("args,field", [
    (["--kind", "v2p", "--workload", "fio-rand4k"], "--workload"),
    (["--kind", "p2v", "--workload", "nosuch"], "--workload"),
    (["--kind", "p2v", "--workload", "fio-rand4k", "--profile", "xeon-2003"], "--profile"),
])
def test_p2v_performance_bad_input(args, field, tmp_path):
    p = tmp_path / "x.json"
    r = CliRunner().invoke(app, ["convert", "--size-gib", "1", *args, "--json", str(p)])
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"pvsim: error: {field}:")
    assert not p.exists()  # refused before the conversion: nothing written
