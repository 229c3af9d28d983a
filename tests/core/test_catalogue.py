"""One workload catalogue: every workload `pvsim list workloads` shows runs in a scenario file (beside
other domains), in `compare` and in a two-point sweep."""

import json

import pytest
from typer.testing import CliRunner

from pvsim.cli import _listing, app
from pvsim.compare import compare
from pvsim.scenario import Scenario
from pvsim.sweep import sweep
from pvsim.system import build
from pvsim.workloads import BUILTIN

LISTED = [r["workload"] for r in _listing("workloads")]


def _run(name):
    spec = BUILTIN[name]
    if spec.metric in ("us_per_op", "cycles_per_op"):
        return {"ops": 4}
    return {"duration_ms": 4.0}


def _scenario(name):
    return {"seed": 2, "host": {"pcpus": 2, "memory_mib": 8192, "profile": "modern"}, "run": _run(name),
            "domains": [{"name": "w", "mode": "pv", "workload": name},
                        {"name": "neighbour", "mode": "pvh", "workload": "cpu-int"}]}


def test_the_listing_is_the_catalogue():
    assert LISTED == list(BUILTIN)
    assert len(LISTED) >= 50


@pytest.mark.parametrize("name", LISTED)
def test_every_workload_runs_in_a_scenario_in_compare_and_in_a_sweep(name, tmp_path):
    res = build(Scenario.from_dict(_scenario(name))).run()
    row = next(r for r in res.rows if r["domain"] == "w")
    assert row["workload"] == name and row["value"] >= 0
    assert sum(row["breakdown_ns"].values()) == row["elapsed_ns"]
    run = _run(name)
    rows = compare([name], ["pv"], "modern", ops=run.get("ops"), duration_ms=run.get("duration_ms"))
    assert [r["mode"] for r in rows] == ["pv"] and rows[0]["workload"] == name
    swept = sweep(_scenario(name), {"domains[1].weight": [128, 512]}, [0])
    assert len({r["run_id"] for r in swept}) == 2
    assert sorted({r["param.neighbour.weight"] for r in swept}) == [128, 512]


def test_a_scenario_file_runs_a_catalogue_workload_through_the_cli(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[host]\npcpus = 2\n[run]\nduration_ms = 5\n[[domains]]\nname = "g"\nmode = "pvhvm"\n'
                 'workload = "ttcp-500"\n')
    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["run", str(f), "--json", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    rows = json.loads(out.read_text())["results"]
    assert {x["domain"] for x in rows} == {"Domain-0", "g"}
