"""Sweeps: stable run ids, parameters carried in rows, same rows serially and on a pool."""

from pathlib import Path

import pytest

from pvsim.core.errors import ScenarioError
from pvsim.sweep import expand, parse_param, sweep

BASE = {
    "name": "sw", "host": {"pcpus": 1, "memory_mib": 4096, "profile": "modern"},
    "scheduler": {"name": "credit"}, "run": {"duration_ms": 50},
    "domains": [{"name": "a", "mode": "pv", "workload": "oltp"}, {"name": "b", "mode": "pv", "workload": "cpu-int"}],
}


def test_grid_and_params_in_rows():
    rows = sweep(BASE, {"domains[1].weight": [128, 512]}, seeds=[0, 1])
    assert {r["param.domains[1].weight"] for r in rows} == {128, 512}
    assert {r["param.seed"] for r in rows} == {0, 1}
    assert len({r["run_id"] for r in rows}) == 4


def test_pool_equals_serial():
    grid = {"domains[1].weight": [128, 512]}
    a = sweep(BASE, grid, seeds=[3], workers=1)
    b = sweep(BASE, grid, seeds=[3], workers=2)
    assert a == b


def test_bad_path_is_refused_before_running():
    with pytest.raises(ScenarioError, match="domains\\[5\\]"):
        expand(BASE, {"domains[5].weight": [1]})
    with pytest.raises(ScenarioError, match="weight"):
        expand(BASE, {"domains[0].weight": [0]})


def test_parse_param():
    assert parse_param("host.pcpus=1,2") == ("host.pcpus", [1, 2])
    assert parse_param("scheduler.name=credit,credit2") == ("scheduler.name", ["credit", "credit2"])


def test_cli_sweep(tmp_path):
    from typer.testing import CliRunner

    from pvsim.cli import app

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "s.json"
    r = CliRunner().invoke(app, ["sweep", str(root / "examples" / "quickstart.toml"), "--param",
                                 "domains[0].mode=pv,hvm", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert out.exists()
