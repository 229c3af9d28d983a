"""gups / stream / page-table churn: workloads of the catalogue, run on the structural MMU through
Scenario -> build -> run like every other."""

import json

import pytest
from typer.testing import CliRunner

from pvsim.cli import app
from pvsim.compare import compare
from pvsim.core.errors import ScenarioError
from pvsim.scenario import Scenario
from pvsim.system import build
from pvsim.workloads import BUILTIN

MODES = ["native", "pv", "bt", "hvm-shadow", "hvm"]
MM_WORKLOADS = [n for n, s in BUILTIN.items() if s.group == "mm"]


def test_the_memory_workloads_are_in_the_catalogue():
    assert set(MM_WORKLOADS) == {"gups", "stream", "ptchurn-mmap", "ptchurn-fork"}


@pytest.fixture(scope="module")
def rows():
    return compare(MM_WORKLOADS, MODES, "modern", seed=5)


def _row(rows, w, m):
    return next(r for r in rows if r["workload"] == w and r["mode"] == m)


def test_every_row_is_complete_and_its_breakdown_sums(rows):
    assert len(rows) == len(MM_WORKLOADS) * len(MODES)
    for r in rows:
        assert r["value"] > 0 and r["relative_to_native"] > 0
        assert sum(r["breakdown_ns"].values()) == r["elapsed_ns"]
        assert r["profile"] == "modern" and r["seed"] == 5 and r["pvsim_version"]


def test_two_dimensional_walks_cost_hap_on_tlb_bound_work(rows):
    g = {m: _row(rows, "gups", m) for m in MODES}
    for m in ("pv", "bt", "hvm-shadow"):  # one-dimensional walks of the guest's or the shadow tables
        assert g[m]["value"] == pytest.approx(g["native"]["value"], rel=1e-3)
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
    a = compare(["ptchurn-fork"], ["bt"], "p4-2006", seed=9)
    b = compare(["ptchurn-fork"], ["bt"], "p4-2006", seed=9)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_bad_input_names_the_field():
    with pytest.raises(ScenarioError, match="workload"):
        compare(["nope"], ["native"], "modern")
    with pytest.raises(ScenarioError, match="VT-x"):
        compare(["gups"], ["hvm"], "xeon-2003")  # no VT-x on the 2003 machine


def test_memory_workloads_run_in_scenario_files_beside_other_domains():
    sc = Scenario.from_dict({"host": {"pcpus": 2, "memory_mib": 4096, "profile": "modern"},
                             "domains": [{"name": "g", "mode": "pv", "workload": "gups"},
                                         {"name": "h", "mode": "hvm", "workload": "ptchurn-mmap"},
                                         {"name": "c", "mode": "pv", "workload": "cpu-int"}],
                             "run": {"duration_ms": 150}})
    res = build(sc).run()
    by = {r["domain"]: r for r in res.rows}
    assert by["g"]["value"] > 0 and by["h"]["value"] > 0 and by["c"]["value"] > 0
    assert by["g"]["counts"]["mmu.walk_refs"] > 0


def test_cli_lists_and_compares_memory_workloads(tmp_path):
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
