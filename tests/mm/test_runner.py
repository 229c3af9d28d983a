"""gups / stream / page-table churn as comparison rows on the structural MMU."""

import json

import pytest

from pvsim.compare import compare
from pvsim.errors import ScenarioError
from pvsim.mm.runner import MM_WORKLOADS, run_mm_workload
from pvsim.profile import load_profile

MODES = ["native", "pv", "bt", "hvm-shadow", "hvm"]


@pytest.fixture(scope="module")
def rows():
    return compare(list(MM_WORKLOADS), MODES, "modern", seed=5)


def _row(rows, w, m):
    return next(r for r in rows if r["workload"] == w and r["mode"] == m)


def test_every_row_is_complete_and_its_breakdown_sums(rows):
    assert len(rows) == len(MM_WORKLOADS) * len(MODES)
    for r in rows:
        assert r["value"] > 0 and r["relative_to_native"] > 0
        assert abs(sum(r["breakdown_ns"].values()) - r["elapsed_ns"]) <= 1e-3 * r["elapsed_ns"]
        assert r["profile"] == "modern" and r["seed"] == 5 and r["pvsim_version"]


def test_two_dimensional_walks_cost_hap_on_tlb_bound_work(rows):
    g = {m: _row(rows, "gups", m) for m in MODES}
    for m in ("pv", "bt", "hvm-shadow"):  # one-dimensional walks of the guest's or the shadow tables
        assert g[m]["value"] == pytest.approx(g["native"]["value"])
    assert g["hvm"]["value"] < g["native"]["value"]
    assert g["hvm"]["counts"]["mmu.walk_refs"] > 2 * g["native"]["counts"]["mmu.walk_refs"]


def test_page_table_churn_is_where_the_mmu_modes_differ(rows):
    for w in ("ptchurn-mmap", "ptchurn-fork"):
        r = {m: _row(rows, w, m)["value"] for m in MODES}
        assert r["native"] < r["hvm"] < min(r["pv"], r["bt"], r["hvm-shadow"]), (w, r)
    fork = {m: _row(rows, "ptchurn-fork", m)["breakdown_ns"] for m in MODES}
    assert "mmu.validate" in fork["pv"]  # Xen's validation of the child's tables
    assert "mmu.emulated_pte_write" in fork["bt"] and "mmu.emulated_pte_write" in fork["hvm-shadow"]


def test_same_seed_same_bytes():
    a = run_mm_workload("ptchurn-fork", "bt", load_profile("p4-2006"), seed=9)
    b = run_mm_workload("ptchurn-fork", "bt", load_profile("p4-2006"), seed=9)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_bad_input_names_the_field():
    with pytest.raises(ScenarioError, match="workload"):
        run_mm_workload("nope", "native", load_profile("modern"))
    with pytest.raises(ScenarioError):
        run_mm_workload("gups", "hvm", load_profile("xeon-2003"))  # no VT-x on the 2003 machine


def test_scenario_files_point_to_compare_for_memory_workloads():
    from pvsim.scenario import Scenario

    with pytest.raises(ScenarioError, match="memory workload"):
        Scenario.from_dict({"host": {"pcpus": 1, "memory_mib": 2048, "profile": "modern"},
                            "domains": [{"name": "g", "mode": "pv", "workload": "gups"}], "run": {"ops": 10}})


def test_cli_lists_and_compares_memory_workloads(tmp_path):
    from typer.testing import CliRunner

    from pvsim.cli import app

    r = CliRunner().invoke(app, ["list", "workloads", "--json", str(tmp_path / "w.json")])
    assert r.exit_code == 0, r.output
    listed = {x["workload"]: x for x in json.loads((tmp_path / "w.json").read_text())["results"]}
    assert all(listed[w]["group"] == "mm" for w in MM_WORKLOADS)
    out = tmp_path / "c.json"
    r = CliRunner().invoke(app, ["compare", "--workload", "ptchurn-mmap", "--modes", "native,pv32", "--profile",
                                 "xeon-2003", "--json", str(out), "--csv", str(tmp_path / "c.csv")])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())["results"]
    assert [x["mode"] for x in res] == ["native", "pv32"] and res[1]["relative_to_native"] > 1
