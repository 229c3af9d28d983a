"""Failures inside ``pvsim run``: a crashed host's vCPUs stop at once, the heartbeat detects it, each
admitted domain boots again on the survivor as a new incarnation and its workload continues there;
the run and ``pvsim failover`` agree on detection, placement and restart instant; scenarios without
failures are untouched; bad input is one line and exit 2."""

import json
import math

import pytest
from typer.testing import CliRunner

from pvsim.cli import app
from pvsim.core.errors import ScenarioError
from pvsim.ha import failover as fo
from pvsim.scenario import Scenario
from pvsim.system import build

SMALL = """name = "fail-small"
seed = 5

[[hosts]]
name = "h1"
pcpus = 2
memory_mib = 8192
scheduler = { name = "credit" }

[[hosts]]
name = "h2"
pcpus = 2
memory_mib = 8192
scheduler = { name = "credit2" }

[[storage]]
name = "filer"
kind = "nfs"
latency_us = 150
throughput_mbps = 8000
iops = 200000

[[links]]
between = ["h1", "h2"]
rate_mbps = 10000
latency_us = 20

[[links]]
between = ["h1", "filer"]
rate_mbps = 10000
latency_us = 50

[[links]]
between = ["h2", "filer"]
rate_mbps = 10000
latency_us = 50

[run]
duration_ms = 120
warmup_ms = 5

[[domains]]
name = "app"
host = "h1"
mode = "pv"
workload = "cpu-int"
memory_mib = 256
disk = "filer"

[[domains]]
name = "io"
host = "h1"
mode = "pv"
workload = "fio-rand4k"
params = { iodepth = 2 }
memory_mib = 256
disk = "filer"

[[domains]]
name = "loc"
host = "h1"
mode = "pv"
workload = "cpu-int"
memory_mib = 256

[[domains]]
name = "other"
host = "h2"
mode = "pv"
workload = "cpu-int"
memory_mib = 256

[[failures]]
at_ms = 40
host = "h1"

[ha]
heartbeat_ms = 10
missed = 2
durable_ms = 15
boot_ms = { pv = 20 }
"""
THIRD = """
[[hosts]]
name = "h3"
pcpus = 2
memory_mib = 8192
scheduler = { name = "credit" }

[[links]]
between = ["h2", "h3"]
rate_mbps = 10000
latency_us = 20

[[links]]
between = ["h1", "h3"]
rate_mbps = 10000
latency_us = 20
"""


def _text(dispatcher="python", failures=True, extra=""):
    t = SMALL
    if dispatcher == "compiled":
        t = t.replace('{ name = "credit" }', '{ name = "credit", dispatcher = "compiled" }')
    if not failures:
        t = t[:t.index("[[failures]]")]
    elif failures is not True:
        t = t.replace('[[failures]]\nat_ms = 40\nhost = "h1"\n', failures)
    return t + extra


def _file(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _run(tmp_path, **kw):
    return build(Scenario.from_toml(_file(tmp_path, _text(**kw)))).run()


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("dispatcher", ["python", "compiled"])
def test_run_and_failover_agree(tmp_path, dispatcher):
    """Same detection time, same placement, same restart instant; the run measures the restart there."""
    p = _file(tmp_path, _text(dispatcher))
    a, b = tmp_path / "fo.json", tmp_path / "run.json"
    assert cli("failover", p, "--json", a).exit_code == 0
    r = cli("run", p, "--json", b, "-q")
    assert r.exit_code == 0, r.output
    analytic = json.loads(a.read_text())["results"]
    ran = json.loads(b.read_text())["failures"]
    ev_a = [x for x in analytic if x["kind"] == "failure"]
    ev_r = [x for x in ran if x["kind"] == "failure"]
    assert [(x["detect_ms"], x["fenced"]) for x in ev_a] == [(x["detect_ms"], x["fenced"]) for x in ev_r]
    dom_a = {x["domain"]: x for x in analytic if x["kind"] == "domain"}
    dom_r = {x["domain"]: x for x in ran if x["kind"] == "restart"}
    assert set(dom_a) == set(dom_r) == {"app", "io", "loc"}
    for name, x in dom_a.items():
        y = dom_r[name]
        for k in ("status", "to", "detect_ms", "restart_at_ms", "downtime_ms", "lost_work_ms", "reason"):
            assert x[k] == y[k], (name, k)
        if x["status"] == "restarted":
            assert y["in_run"] == "restarted"
            assert y["resumed_at_ms"] == pytest.approx(x["restart_at_ms"], abs=1e-6)
            assert y["service_downtime_ms"] == pytest.approx(x["downtime_ms"], abs=1e-6)
            assert y["new_domid"] != y["domid"]
        else:
            assert y["in_run"] == "down" and y["reason"]
    # the detection follows the heartbeat: last beat at 40, two missed, 20 us link latency
    assert ev_r[0]["detect_ms"] == pytest.approx(fo.detection_ms(40, fo.HaSettings(heartbeat_ms=10, missed=2),
                                                                  0.02) - 40)


@pytest.mark.parametrize("dispatcher", ["python", "compiled"])
def test_the_failed_host_stops_and_the_restart_continues_on_the_survivor(tmp_path, dispatcher):
    sc = Scenario.from_toml(_file(tmp_path, _text(dispatcher)))
    system = build(sc)
    src = {d.spec.name: d for d in system.domains}
    system.advance(int(41e6))
    at_41 = {n: system.snap(src[n])["units"] for n in ("app", "io", "loc", "other")}
    system.advance(int(79e6))
    at_79 = {n: system.snap(src[n])["units"] for n in ("app", "io", "loc", "other")}
    for n in ("app", "io", "loc"):  # stopped at 40 ms: no more work from 41 ms on
        assert at_79[n] == at_41[n], n
    assert at_79["other"] > at_41["other"]  # the survivor's own guest runs on
    assert [d.spec.name for d in system.domains if d.host.name == "h2"] == ["Domain-0", "other"]
    system.advance(int(119e6))
    new = {d.spec.name: d for d in system.domains if d.host.name == "h2"}
    assert set(new) == {"Domain-0", "other", "app", "io"}  # loc (local disk) stays down
    assert system.snap(new["app"])["units"] > 0 and system.snap(new["io"])["units"] > 0
    assert new["app"].domid not in (src["app"].domid, 0)


def test_rows_per_incarnation(tmp_path):
    res = _run(tmp_path)
    rows = {(r["host"], r["domain"]): r for r in res.rows}
    assert rows[("h1", "app")]["elapsed_ns"] == int(35e6)  # warm-up end (5 ms) to the crash (40 ms)
    assert rows[("h2", "app")]["elapsed_ns"] == int(120e6) - int(round(80.02e6))  # restart to run end
    assert ("h2", "loc") not in rows and rows[("h1", "loc")]["elapsed_ns"] == int(35e6)
    assert rows[("h2", "io")]["value"] > 0  # its I/O reaches the filer from h2


def test_nothing_lost_of_a_finite_workload(tmp_path):
    """With a unit budget, the restarted incarnation does what was not durable: durable + redone = ops."""
    t = _text().replace("duration_ms = 120\nwarmup_ms = 5", "ops = 12")
    sc = Scenario.from_toml(_file(tmp_path, t))
    system = build(sc)
    res = system.run()
    f = system.failures
    app = next(r for r in f.restarts if r.row["domain"] == "app")
    assert app.restarted_ns is not None
    # the restarted incarnation is handed (and claims) exactly what was not durable, and does it
    assert app.durable_units + app.dst.claimed == pytest.approx(12)
    assert 0 < app.durable_units < app.units_at_stop < 12 and app.dst.os.units >= app.dst.budget > 0
    assert any(r["host"] == "h2" and r["domain"] == "app" for r in res.rows)


def test_determinism(tmp_path):
    a = _run(tmp_path).to_json()
    b = _run(tmp_path).to_json()
    assert a == b and '"failures"' in a


def test_a_failure_that_changes_nothing_leaves_the_rows_identical(tmp_path):
    """The feature's code path (plan, timers, dead link) on a cut of an idle link that isolates nobody
    (h1-h3 in a triangle): every row byte-identical to the run without [[failures]]."""
    cut = '[[failures]]\nat_ms = 30\nlink = ["h1", "h3"]\n'
    with_cut = _run(tmp_path, failures=cut, extra=THIRD)
    without = _run(tmp_path, failures=False, extra=THIRD)
    assert with_cut.failure_rows and with_cut.failure_rows[0]["fenced"] == []
    assert json.dumps(with_cut.rows, sort_keys=True) == json.dumps(without.rows, sort_keys=True)
    assert json.dumps(with_cut.host_rows, sort_keys=True) == json.dumps(without.host_rows, sort_keys=True)
    assert without.failure_rows == [] and '"failures"' not in without.to_json()


def test_a_cut_storage_link_stops_the_io_and_a_cut_host_link_fences_the_minority(tmp_path):
    cut = '[[failures]]\nat_ms = 30\nlink = ["h1", "filer"]\n'
    system = build(Scenario.from_toml(_file(tmp_path, _text(failures=cut))))
    io = system.domain("io")
    system.advance(int(32e6))
    u = system.snap(io)["units"]
    system.advance(int(100e6))
    assert system.snap(io)["units"] <= u + 2  # at most the requests already answered
    assert system.snap(system.domain("app"))["units"] > 0
    cut = '[[failures]]\nat_ms = 30\nlink = ["h1", "h2"]\n'
    res = _run(tmp_path, failures=cut)
    ev = res.failure_rows[0]
    assert ev["fenced"] == ["h2"] and ev["stopped_at_ms"] == pytest.approx(ev["detect_at_ms"])
    rs = [r for r in res.failure_rows if r["kind"] == "restart"]
    assert [r["domain"] for r in rs] == ["other"] and rs[0]["status"] == "down"


@pytest.mark.parametrize("failures,field", [
    ('[[failures]]\nat_ms = 40\nhost = "h9"\n', "failures[0].host"),
    ('[[failures]]\nat_ms = 120\nhost = "h1"\n', "failures[0].at_ms"),
    ('[[failures]]\nat_ms = 5000\nhost = "h1"\n', "failures[0].at_ms"),
    ('[[failures]]\nat_ms = 4\nlink = ["h1", "h9"]\n', "failures[0].link"),
])
def test_bad_failures_via_pvsim_run(tmp_path, failures, field):
    p = _file(tmp_path, _text(failures=failures))
    out = tmp_path / "o.json"
    r = cli("run", p, "--json", out)
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"pvsim: error: {field}:"), r.output
    assert not out.exists()


def test_failures_and_migrations_together_are_refused(tmp_path):
    t = _text() + '\n[[migrations]]\ndomain = "other"\nto = "h1"\nat_ms = 10\n'
    with pytest.raises(ScenarioError) as e:
        build(Scenario.from_toml(_file(tmp_path, t)))
    assert e.value.field == "failures"


def test_the_example_runs(tmp_path):
    """examples/failover_in_run.toml: db restarts on h2, web (local disk) is reported down."""
    sc = Scenario.from_toml("examples/failover_in_run.toml")
    ev, rows = fo.run(sc, fo.parse_failures(list(sc.failures), sc), fo.parse_settings(sc.ha))
    by = {r["domain"]: r for r in rows}
    assert by["db"]["to"] == "h2" and by["web"]["status"] == "down"
    assert math.isclose(by["db"]["restart_at_ms"], 220.02)
