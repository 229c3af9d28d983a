"""A migration inside a scenario run: the guest runs on the source while pre-copy goes on, its vCPUs
leave the source's dispatcher at the end and join the target's, and it continues there."""

import json
from pathlib import Path
from types import SimpleNamespace as S

import pytest
from typer.testing import CliRunner

from pvsim.cli import app
from pvsim.core.engine import Engine
from pvsim.io.devices import Pipe
from pvsim.migrate.dirty import GuestMemory, WriteModel
from pvsim.migrate.save import Migration, MigrationOptions
from pvsim.scenario import Scenario
from pvsim.system import build

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples" / "migrate_in_run.toml"


def _text(dispatcher="python", policy="xen", at_ms=10, mib=32, duration=60, extra=""):
    t = EX.read_text().replace("duration_ms = 120", f"duration_ms = {duration}").replace("at_ms = 30", f"at_ms = {at_ms}")
    t = t.replace('policy = "xen"', f'policy = "{policy}"').replace("memory_mib = 64", f"memory_mib = {mib}")
    if dispatcher == "compiled":
        t = t.replace('{ name = "credit" }', '{ name = "credit", dispatcher = "compiled" }')
    return t + extra


def _run(tmp_path, **kw):
    p = tmp_path / "s.toml"
    p.write_text(_text(**kw))
    return build(Scenario.from_toml(p)).run()


@pytest.mark.parametrize("dispatcher", ["python", "compiled"])
def test_guest_moves_to_the_target_and_keeps_running(tmp_path, dispatcher):
    res = _run(tmp_path, dispatcher=dispatcher)
    mig = [r for r in res.migration_rows if r["kind"] == "migration"]
    assert len(mig) == 1 and mig[0]["state"] == "done" and mig[0]["pages_lost"] == 0
    m = mig[0]
    rows = {(r["host"], r["domain"]): r for r in res.rows}
    src, dst = rows[("h1", "app")], rows[("h2", "app")]
    # the source incarnation is measured until its vCPUs were destroyed, the target's from its resume
    end_ns = (m["start_ms"] + m["total_ms"]) * 1e6
    assert abs((5e6 + src["elapsed_ns"]) - end_ns) < 1e3
    assert abs(dst["elapsed_ns"] - (60e6 - end_ns)) < 1e3
    assert dst["units"] > 0 and dst["cpu_share"] > 0.9  # it runs on h2's dispatcher
    # the source was paused for the downtime: it ran less than the whole of its span
    assert src["cpu_share"] < 1 - 0.9 * m["downtime_ms"] * 1e6 / src["elapsed_ns"]
    tp = m["throughput"]
    assert tp["before"] > 0 and tp["during"] > 0 and tp["after"] > 0
    assert abs(tp["after"] - tp["before"]) / tp["before"] < 0.05  # an idle target host: as fast as before
    h2 = next(h for h in res.host_rows if h["host"] == "h2")
    assert "app" in h2["domains"]
    rounds = [r for r in res.migration_rows if r["kind"] == "round"]
    assert [r["round"] for r in rounds] == list(range(1, m["rounds"] + 1))
    assert rounds[-1]["live"] is False and sum(r["bytes"] for r in rounds) <= m["bytes"]


def test_a_migration_still_under_way_at_the_end_is_reported_so(tmp_path):
    res = _run(tmp_path, at_ms=50, mib=256)
    m = next(r for r in res.migration_rows if r["kind"] == "migration")
    assert m["state"] == "precopy"
    assert {(r["host"], r["domain"]) for r in res.rows} >= {("h1", "app")}
    assert ("h2", "app") not in {(r["host"], r["domain"]) for r in res.rows}


def test_run_json_is_byte_identical_and_lists_the_migration(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(_text())
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for out in (a, b):
        r = CliRunner().invoke(app, ["run", str(p), "--json", str(out)])
        assert r.exit_code == 0, r.output
    assert a.read_text() == b.read_text()
    doc = json.loads(a.read_text())
    assert [r["kind"] for r in doc["migrations"]][0] == "migration"
    assert "throughput" in r.output  # the table of migrations on stdout


def test_bad_migration_in_a_run_is_one_line_exit_2(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(_text().replace('to = "h2"', 'to = "h1"'))
    r = CliRunner().invoke(app, ["run", str(p), "-q"])
    assert r.exit_code == 2
    assert "migrations[0].to" in r.output and "Traceback" not in r.output


def test_target_out_of_memory_mid_migration_aborts_and_the_guest_stays(tmp_path):
    # h2 holds Domain-0 (512 MiB) and 64 MiB more: each 48 MiB guest fits alone, not both together
    extra = ('\n[[domains]]\nname = "app2"\nhost = "h1"\nmode = "pv"\nworkload = "cpu-int"\nmemory_mib = 48\n'
             '\n[[migrations]]\ndomain = "app2"\nto = "h2"\nat_ms = 10\n')
    p = tmp_path / "s.toml"
    p.write_text(_text(mib=48, duration=100, extra=extra).replace("memory_mib = 4096\nscheduler = { name = \"credit2\" }",
                                                                  "memory_mib = 576\nscheduler = { name = \"credit2\" }"))
    res = build(Scenario.from_toml(p)).run()
    mig = {r["domain"]: r for r in res.migration_rows if r["kind"] == "migration"}
    states = sorted(r["state"] for r in mig.values())
    assert states == ["aborted", "done"], mig
    lost = next(r for r in mig.values() if r["state"] == "aborted")
    assert lost["stop_reason"].startswith("aborted: target out of memory") and lost["total_ms"] > 0
    rows = {(r["host"], r["domain"]): r for r in res.rows}
    stayed = rows[("h1", lost["domain"])]
    # it kept running on h1 for the whole run (three cpu-bound guests on 2 pCPUs until the other left)
    assert stayed["elapsed_ns"] == 95_000_000 and stayed["cpu_share"] > 0.6 and stayed["units"] > 0
    assert ("h2", lost["domain"]) not in rows
    won = next(r for r in mig.values() if r["state"] == "done")
    assert ("h2", won["domain"]) in rows and won["pages_lost"] == 0


def test_save_loop_aborts_when_the_receiver_cannot_populate():
    e = Engine(seed=1)
    w = S(mib=None, ram_frac=None, mb_per_s=5.0, pattern="uniform", hot_frac=0.1, hot_share=0.9, free_frac=0.0)
    mem = GuestMemory(WriteModel.of(w, 16, seed_offset=1), 1)
    m = Migration(e, Pipe(e, 1000.0, 100.0), mem, MigrationOptions())
    room = [3000]  # frames the target can still allocate: less than the guest's 4096

    def populate(n):
        if room[0] < n:
            return False
        room[0] -= n
        return True

    seen = []
    m.on_populate, m.on_abort = populate, seen.append
    m.on_resume = lambda _m: seen.append("resumed")
    e.run_until(e.process(m.process()))
    assert seen == [m] and m.out.stop_reason.startswith("aborted: target out of memory")
    assert not mem.logdirty and m.running  # log-dirty off, the guest still runs at the source
    assert m.out.rounds == [] and m.out.bytes < 4096 * 4096


@pytest.mark.parametrize("target", ["python", "compiled"])
def test_postcopy_stalls_are_taken_from_the_guest_on_the_target(tmp_path, target):
    """Each remote fault's stall is charged to a vCPU of the target's incarnation: its throughput
    after the resume drops below the same run's pre-copy guest by the total stall per vCPU over the
    window (the hand calculation from the rows), under either dispatcher on the target."""
    def one(policy):
        p = tmp_path / f"{policy}.toml"
        p.write_text(_text(policy=policy).replace('{ name = "credit2" }',
                                                  f'{{ name = "credit2", dispatcher = "{target}" }}'))
        res = build(Scenario.from_toml(p)).run()
        m = next(r for r in res.migration_rows if r["kind"] == "migration")
        dst = next(r for r in res.rows if (r["host"], r["domain"]) == ("h2", "app"))
        return m, dst

    pre, pre_dst = one("xen")
    pc, pc_dst = one("postcopy")
    assert pre["state"] == pc["state"] == "done"
    assert pc["remote_faults"] > 0 and pc["stall_total_ms"] > 0.5
    assert "postcopy.stall" not in pre_dst["breakdown_ns"]
    assert pc_dst["counts"]["postcopy.remote_fault"] == pc["remote_faults"]
    assert pc_dst["breakdown_ns"]["postcopy.stall"] > 0
    # the vCPU does no useful work while it waits: after = pre-copy's after x (1 - stall / (vcpus x window))
    window_ns = pc_dst["elapsed_ns"]
    lost = pc["stall_total_ms"] * 1e6 / (pc_dst["vcpus"] * window_ns)
    expect = pre["throughput"]["after"] * (1.0 - lost)
    got = pc["throughput"]["after"]
    assert got < pre["throughput"]["after"] * (1.0 - 0.5 * lost)
    assert abs(got - expect) / expect < 0.005, (got, expect, lost)
