"""The migration sweep (``pvsim sweep --migrate``): each point runs only its scenario's migrations, as
``pvsim migrate`` does, through the one sweep engine (grid, run ids, cache, workers); rows carry the
migration's outputs and the swept values; bad points are refused, naming the field and the point,
before anything runs."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pvsim import sweep as sw
from pvsim.cli import app
from pvsim.core.errors import ScenarioError
from pvsim.migrate import live

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples" / "migration_sweep.toml"


def _base(mib=32):
    base = sw.load_base(EX)
    base["domains"][0]["memory_mib"] = mib
    return base


def test_each_point_is_its_migration_with_the_swept_values():
    grid = {"migrations[0].policy": ["xen", "simgrid", "postcopy"], "domains[0].memory_mib": [16, 32],
            "links[0].rate_mbps": [1000, 10000], "workloads[0].writable.mb_per_s": [0, 40]}
    rows = sw.sweep(_base(), grid, runner="migrate")
    assert len(rows) == 3 * 2 * 2 * 2 and {r["kind"] for r in rows} == {"migration"}
    for r in rows:
        assert r["policy"] == r["param.migrations[0].policy"] and r["memory_mib"] == r["param.vm.memory_mib"]
        assert r["downtime_ms"] > 0 and r["total_ms"] >= r["downtime_ms"] and r["bytes_over_ram"] >= 1.0
        assert r["pages_lost"] == 0 and r["seed"] == 0
    by = {(r["policy"], r["memory_mib"], r["param.links[0].rate_mbps"], r["param.workloads[0].writable.mb_per_s"]): r
          for r in rows}
    # an idle guest: twice the RAM takes about twice as long, a 10x link about a tenth (plus fixed costs)
    a, b = by[("simgrid", 16, 1000, 0)], by[("simgrid", 32, 1000, 0)]
    assert 1.9 < b["total_ms"] / a["total_ms"] < 2.05
    assert by[("simgrid", 32, 10000, 0)]["total_ms"] < 0.15 * b["total_ms"]
    # dirtying makes pre-copy resend pages; post-copy sends each page once
    assert by[("xen", 32, 1000, 40)]["bytes_over_ram"] > by[("xen", 32, 1000, 0)]["bytes_over_ram"]
    assert by[("postcopy", 32, 1000, 40)]["bytes_over_ram"] < by[("xen", 32, 1000, 40)]["bytes_over_ram"]


def test_the_rows_are_those_of_pvsim_migrate():
    base = _base()
    (run,) = sw.expand(base, {"migrations[0].policy": ["qemu"]}, runner="migrate")
    sc = sw.scenario_of(run.data)
    want, _rounds = live.run(sc, live.parse_requests(list(sc.migrations)))
    (got,) = sw.sweep(base, {"migrations[0].policy": ["qemu"]}, runner="migrate")
    assert {k: v for k, v in got.items() if k not in ("kind", "seed", "run_id") and not k.startswith("param.")} \
        == json.loads(json.dumps(want[0]))


def test_run_ids_keep_full_runs_apart_and_unchanged():
    data = sw.expand(_base(), {})[0].data
    assert sw.run_id(data) == sw.run_id(data, "run")  # a full run's identity is as before
    assert sw.run_id(data, "migrate") != sw.run_id(data)
    assert sw.expand(_base(), {}, runner="migrate")[0].run_id == sw.run_id(data, "migrate")


def test_serial_and_pool_give_identical_rows_and_a_rerun_computes_nothing(tmp_path):
    grid = {"migrations[0].policy": ["xen", "xen-legacy", "hybrid"], "workloads[0].writable.mb_per_s": [5, 60]}
    serial = sw.sweep(_base(), grid, seeds=(0, 1), runner="migrate", cache=tmp_path / "c")
    pool = sw.sweep(_base(), grid, seeds=(0, 1), runner="migrate", workers=2)
    assert json.dumps(serial, sort_keys=True) == json.dumps(pool, sort_keys=True)
    res = sw.run_sweep(sw.expand(_base(), grid, (0, 1), runner="migrate"), cache=tmp_path / "c")
    assert res.progress.cached == 12 and res.progress.done == 0 and res.rows == serial


def test_bad_points_are_refused_before_any_run():
    with pytest.raises(ScenarioError) as e:  # a 1 GiB guest does not fit a 512 MiB h2
        sw.expand(_base(1024), {"hosts[1].memory_mib": [4096, 512]}, runner="migrate")
    assert e.value.field == "migrations[0].to" and "(at h2.memory_mib=512)" in e.value.message
    with pytest.raises(ScenarioError) as e:
        sw.expand(_base(), {"migrations[0].policy": ["xen", "precopy"]}, runner="migrate")
    assert e.value.field == "migrations[0].policy"
    no_mig = {k: v for k, v in _base().items() if k != "migrations"}
    with pytest.raises(ScenarioError) as e:
        sw.expand(no_mig, {}, runner="migrate")
    assert e.value.field == "migrations"
    with pytest.raises(ScenarioError):
        sw.expand(_base(), {}, runner="replay")


def test_cli_migrate_sweep_writes_the_rows(tmp_path):
    scn = tmp_path / "s.toml"
    scn.write_text(EX.read_text().replace("memory_mib = 1024", "memory_mib = 32"))
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(app, ["sweep", str(scn), "--migrate", "--no-cache", "-q", "--csv", str(out),
                                 "--param", "migrations[0].policy=xen,simgrid", "--name", "migrations[0].policy=policy",
                                 "--param", "links[0].rate_mbps=1000,10000"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert len(df) == 4 and list(df["param.policy"]) == ["xen", "xen", "simgrid", "simgrid"]
    assert {"downtime_ms", "total_ms", "bytes_over_ram", "downtime_breakdown_ms.final_copy"} <= set(df.columns)


def test_cli_migrate_sweep_without_migrations_is_one_line_exit_2(tmp_path):
    scn = tmp_path / "s.toml"
    scn.write_text(EX.read_text().split("[[migrations]]")[0])
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(app, ["sweep", str(scn), "--migrate", "--no-cache", "--csv", str(out)])
    assert r.exit_code == 2 and "migrations" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()
