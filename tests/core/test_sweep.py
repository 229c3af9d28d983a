"""Sweeps: stable run ids, columns for people, one set of rows whatever the engine (serial, local
pool, Dask), a cache that makes a rerun or a resumed sweep compute only what is missing, and no run
lost or counted twice when a worker dies (with the mutant that drops lost work)."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvsim import sweep as sw
from pvsim.cli import app
from pvsim.core.errors import ScenarioError
from pvsim.results import load
from pvsim.sweep import expand, parse_param, run_sweep, sweep

ROOT = Path(__file__).resolve().parents[2]
BASE = {
    "name": "sw", "host": {"pcpus": 1, "memory_mib": 4096, "profile": "modern"},
    "scheduler": {"name": "credit"}, "run": {"duration_ms": 20},
    "domains": [{"name": "a", "mode": "pv", "workload": "oltp"}, {"name": "b", "mode": "pv", "workload": "cpu-int"}],
}
GRID12 = {"domains[1].weight": [128, 256, 512], "domains[0].mode": ["pv", "hvm"]}  # x 2 seeds = 12 runs


def test_grid_columns_for_people_and_one_seed_column():
    rows = sweep(BASE, {"domains[1].weight": [128, 512]}, seeds=[0, 1])
    assert {r["param.b.weight"] for r in rows} == {128, 512}
    assert not any(k.startswith("param.seed") or "[" in k for r in rows for k in r)
    assert {r["seed"] for r in rows} == {0, 1}
    assert len({r["run_id"] for r in rows}) == 4
    named = sweep(BASE, {"domains[1].weight": [128]}, names={"domains[1].weight": "w_b"})
    assert "param.w_b" in named[0]


def test_run_id_is_stable_and_depends_on_every_input():
    a = expand(BASE, {"domains[1].weight": [128, 512]}, [0, 1])
    b = expand(BASE, {"domains[1].weight": [128, 512]}, [0, 1])
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert len({r.run_id for r in a}) == 4


def test_bad_input_is_refused_before_running():
    with pytest.raises(ScenarioError, match="domains\\[5\\]"):
        expand(BASE, {"domains[5].weight": [1]})
    with pytest.raises(ScenarioError, match="weight"):
        expand(BASE, {"domains[0].weight": [0]})
    with pytest.raises(ScenarioError, match="--name"):
        expand(BASE, {"domains[0].weight": [1]}, names={"host.pcpus": "x"})
    with pytest.raises(ScenarioError, match="--engine"):
        run_sweep(expand(BASE, {}, [0]), engine="spark")


def test_parse_param():
    assert parse_param("host.pcpus=1,2") == ("host.pcpus", [1, 2])
    assert parse_param("scheduler.name=credit,credit2") == ("scheduler.name", ["credit", "credit2"])


def test_a_timeline_that_resets_a_swept_field_is_named():
    base = sw.load_base(ROOT / "examples" / "consolidation.toml")
    msgs = sw.timeline_overrides(base, ["domains[3].cap", "domains[1].weight"])
    assert len(msgs) == 1 and "domains[3].cap" in msgs[0] and "1000" in msgs[0]


def test_serial_pool_and_dask_give_identical_rows(tmp_path):
    serial = sweep(BASE, GRID12, seeds=[0, 1], workers=1)
    assert len({r["run_id"] for r in serial}) == 12
    assert sweep(BASE, GRID12, seeds=[0, 1], workers=2) == serial
    assert sweep(BASE, GRID12, seeds=[0, 1], workers=2, chunk=1) == serial
    assert sweep(BASE, GRID12, seeds=[0, 1], workers=2, engine="dask") == serial


def test_a_rerun_computes_nothing_and_gives_the_same_rows(tmp_path):
    seen = []
    first = run_sweep(expand(BASE, GRID12, [0]), cache=tmp_path / "c")
    again = run_sweep(expand(BASE, GRID12, [0]), cache=tmp_path / "c", progress=lambda st: seen.append(st.cached))
    assert first.progress.done == 6 and again.progress.cached == 6 and again.progress.done == 0
    assert again.rows == first.rows and seen[0] == 6
    assert len(list((tmp_path / "c").glob("*.json"))) == 6


def _kill_first_attempt(marker: Path, index: int):
    real = sw._rows_of

    def rows_of(run):
        if run.index == index and not marker.exists():
            marker.write_text("died")
            os._exit(1)  # the worker process dies mid-run
        return real(run)

    return rows_of


def test_a_dead_pool_worker_loses_only_its_run_and_nothing_is_doubled(tmp_path, monkeypatch):
    runs = expand(BASE, GRID12, [0, 1])
    serial = run_sweep(runs).rows
    monkeypatch.setattr(sw, "_rows_of", _kill_first_attempt(tmp_path / "m", 5))  # forked workers inherit it
    res = run_sweep(runs, workers=2, chunk=3, cache=tmp_path / "c")
    assert (tmp_path / "m").exists()  # the worker did die
    assert res.rows == serial and res.progress.done == 12 and not res.failures
    assert sorted(p.stem for p in (tmp_path / "c").glob("*.json")) == sorted(r.run_id for r in runs)


def test_the_mutant_that_drops_lost_work_is_caught(tmp_path, monkeypatch):
    runs = expand(BASE, GRID12, [0])
    monkeypatch.setattr(sw, "_rows_of", _kill_first_attempt(tmp_path / "m", 2))
    with pytest.raises(RuntimeError, match="lost"):
        run_sweep(runs, workers=2, chunk=2, _engine_options={"resubmit": False})


def test_a_killed_dask_worker_still_gives_every_point_exactly_once(tmp_path):
    from distributed import Client, LocalCluster

    runs = expand(BASE, GRID12, [0, 1])
    serial = run_sweep(runs).rows
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("res", run_sweep(
            runs, engine="dask", address=cluster.scheduler_address, workers=2, chunk=1, cache=tmp_path / "c")))
        t.start()
        killed = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and killed is None and t.is_alive():
            if list((tmp_path / "c").glob("*.json")) if (tmp_path / "c").exists() else []:
                with Client(cluster) as c:
                    pids = sorted(c.run(os.getpid).values())
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        t.join(300)
    assert killed is not None, "the sweep finished before a worker could be killed"
    res = out["res"]
    assert res.rows == serial and not res.failures
    assert sorted(p.stem for p in (tmp_path / "c").glob("*.json")) == sorted(r.run_id for r in runs)


def test_cli_sweep_writes_json_csv_and_parquet_with_one_schema(tmp_path):
    j, c, p = tmp_path / "s.json", tmp_path / "s.csv", tmp_path / "s.parquet"
    r = CliRunner().invoke(app, ["sweep", str(ROOT / "examples" / "quickstart.toml"), "--param",
                                 "domains[0].mode=pv,hvm", "--json", str(j), "--csv", str(c), "--parquet", str(p),
                                 "--cache", str(tmp_path / "cache"), "-q"])
    assert r.exit_code == 0, r.output
    dj, dc, dp = load(j), load(c), load(p)
    assert list(dc.columns) == list(dp.columns) and sorted(dj.columns) == sorted(dc.columns)
    assert list(dp[dp["domain"] == "guest"]["param.guest.mode"]) == ["pv", "hvm"]
    assert any(col.startswith("n.") for col in dp.columns) and any(col.startswith("bd.") for col in dp.columns)
    assert "param.seed" not in dp.columns
    assert (dp["value"].round(9) == dc["value"].round(9)).all()


def test_cli_bad_engine_options_are_one_line(tmp_path):
    qs = str(ROOT / "examples" / "quickstart.toml")
    for args, field in ((["--engine", "spark"], "--engine"), (["--scheduler", "tcp://x:1"], "--scheduler"),
                        (["--workers", "0"], "--workers"), (["--chunk", "0"], "--chunk"),
                        (["--name", "host.pcpus=p"], "--name")):
        r = CliRunner().invoke(app, ["sweep", qs, "--param", "domains[0].mode=pv", *args, "--no-cache"])
        assert r.exit_code == 2, (args, r.output)
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and field in lines[0], (args, r.output)


def test_a_killed_sweep_resumes_with_only_the_missing_runs(tmp_path):
    """The command itself, killed halfway with SIGKILL and run again."""
    scen = tmp_path / "base.toml"
    scen.write_text((ROOT / "examples" / "quickstart.toml").read_text().replace("ops = 5000", "ops = 20000"))
    cmd = [sys.executable, "-c", "from pvsim.cli import main; main()", "sweep", str(scen), "--param",
           "domains[0].weight=64,128,256,512,1024,2048", "--seeds", "0,1", "--cache", str(tmp_path / "c")]
    whole = subprocess.run([*cmd[:-2], "--cache", str(tmp_path / "whole"), "--json", str(tmp_path / "whole.json")],
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (tmp_path / "c").exists() and len(list((tmp_path / "c").glob("*.json"))) >= 3:
            proc.kill()
            break
        time.sleep(0.01)
    proc.wait(60)
    cached = len(list((tmp_path / "c").glob("*.json")))
    assert 3 <= cached < 12, "the sweep was not stopped halfway"
    again = subprocess.run([*cmd, "--json", str(tmp_path / "again.json")], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"12 runs, {cached} cached, {12 - cached} to run" in again.stderr
    a, b = load(tmp_path / "whole.json"), load(tmp_path / "again.json")
    assert a.equals(b)
