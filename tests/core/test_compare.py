"""pvsim compare on the modern profile: breakdown sums, container/pv on cpu-int, pv vs pv32."""

import json

import pytest

from pvsim.compare import compare

MODES = ["native", "container", "pv", "bt", "hvm-shadow", "hvm", "pvh"]


@pytest.fixture(scope="module")
def rows():
    return compare(["cpu-int", "kernel-build", "forkwait"], MODES, "modern", seed=3, duration_ms=300.0)


def test_every_breakdown_sums_to_elapsed(rows):
    assert len(rows) == 3 * len(MODES)
    for r in rows:
        total = sum(r["breakdown_ns"].values())
        assert abs(total - r["elapsed_ns"]) <= 0.001 * r["elapsed_ns"], (r["workload"], r["mode"])
        assert all(v >= 0 for v in r["breakdown_ns"].values()), r["breakdown_ns"]


def test_container_and_pv_within_2_percent_on_cpu_int(rows):
    by = {r["mode"]: r for r in rows if r["workload"] == "cpu-int"}
    for m in ("container", "pv"):
        assert abs(by[m]["relative_to_native"] - 1) <= 0.02, (m, by[m]["relative_to_native"])


def test_virtualized_modes_are_not_faster_than_native(rows):
    for r in rows:
        from pvsim.plots import LATENCY_METRICS

        if r["metric"] not in LATENCY_METRICS:
            assert r["relative_to_native"] <= 1.0 + 1e-9, (r["workload"], r["mode"])


def test_pv_slower_than_pv32_on_syscall_heavy_work():
    rows = compare(["lmbench.null_call", "dbench"], ["pv", "pv32"], "modern", seed=1, ops=2000)
    by = {(r["workload"], r["mode"]): r for r in rows}
    assert by[("lmbench.null_call", "pv")]["value"] > by[("lmbench.null_call", "pv32")]["value"]
    assert by[("dbench", "pv")]["value"] < by[("dbench", "pv32")]["value"]  # ops/s


def test_breakdown_names_causes(rows):
    pv = next(r for r in rows if r["workload"] == "forkwait" and r["mode"] == "pv")
    assert any(k.startswith("hypercall.mmu_update") for k in pv["breakdown_ns"])
    assert "mmu.validate" in pv["breakdown_ns"]
    sh = next(r for r in rows if r["workload"] == "forkwait" and r["mode"] == "hvm-shadow")
    assert any(k.startswith("exit.") for k in sh["breakdown_ns"])
    assert "mmu.emulated_pte_write" in sh["breakdown_ns"]
    json.dumps(rows)  # tidy rows serialise
