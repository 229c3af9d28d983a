"""Availability over injected host crashes: reproducible streams, zero rate, the expected downtime of
a Poisson process priced by the failover model, monotone in the rate, Remus above the restart path,
overlapping repairs, and bad input as one line naming the field, exit 2, nothing written."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from pvsim import results
from pvsim.cli import app
from pvsim.core.errors import ScenarioError
from pvsim.ha import availability as av
from pvsim.ha import failover as fo
from pvsim.scenario import Scenario

SC_PATH = "examples/ha.toml"
SC = Scenario.from_toml(SC_PATH)
S = fo.parse_settings(SC.ha)


def _by(rows, rate, domain, kind="rep"):
    return [r for r in rows if r["kind"] == kind and r["rate_per_host_year"] == rate and r["domain"] == domain]


def test_same_seed_same_rows_and_streams_do_not_depend_on_the_rest_of_the_sweep():
    a, ma = av.sweep(SC, [1.0, 3.0], years=5, reps=6, seed=7)
    b, mb = av.sweep(SC, [1.0, 3.0], years=5, reps=6, seed=7)
    assert a == b and ma == mb
    alone, _ = av.sweep(SC, [3.0], years=5, reps=3, seed=7)  # another rate set, fewer reps: same draws
    assert alone == [r for r in a if r["rate_per_host_year"] == 3.0 and r["rep"] < 3]
    other, _ = av.sweep(SC, [1.0, 3.0], years=5, reps=6, seed=8)
    assert other != a


def test_zero_rate_is_full_availability():
    rows, means = av.sweep(SC, [0.0], years=50, reps=4)
    assert all(r["availability"] == 1.0 and r["downtime_ms"] == 0.0 and r["host_failures"] == 0 for r in rows)
    assert all(r["nines"] is None for r in rows)
    for m in means:
        assert m["availability_mean"] == m["availability_ci_low"] == m["availability_ci_high"] == 1.0


def test_the_crash_phase_gives_the_failover_models_downtime():
    """Per crash, a restarted domain's downtime is what pvsim.ha.failover.run says for a crash at that
    instant (the detection's heartbeat phase), a domain left down waits for the repair and boots."""
    out = av.Outcomes(SC, S, [])
    rng = np.random.default_rng(3)
    t = rng.uniform(0, 1e9, 50)
    h1 = out.hosts.index("h1")
    pat = np.full(len(t), out.keys[(h1, ())])
    kind, dt = av.downtimes(out, S, pat, t, np.zeros(len(t), int), 7.2e6, {})
    for e, at in enumerate(t):
        _, rows = fo.run(SC, [fo.Failure(float(at), host="h1")], S)
        for r in rows:
            i = out.index[r["domain"]]
            if r["status"] == "restarted":
                assert kind[e, i] == av.RESTARTED and dt[e, i] == pytest.approx(r["downtime_ms"], abs=1e-6)
            else:
                assert kind[e, i] == av.DOWN and dt[e, i] == pytest.approx(7.2e6 + fo.BOOT_MS["pvh"])
    assert (kind[:, out.index["batch"]] == av.UNAFFECTED).all()


def _per_event_mean(domain, host, n=4000):
    """Mean downtime of a crash of ``host`` at a uniform instant, straight from failover.run."""
    ats = np.random.default_rng(11).uniform(0, 1e8, n)
    return float(np.mean([next(r for r in fo.run(SC, [fo.Failure(float(a), host=host)], S)[1]
                               if r["domain"] == domain)["downtime_ms"] for a in ats[:400]]))


@pytest.mark.parametrize("rate", [2.0, 20.0])
def test_expected_downtime_is_rate_times_years_times_the_per_crash_downtime(rate):
    """A Poisson process of rate r over Y years crashes h1 r*Y times on average; with repairs too short
    to overlap, db's mean downtime is r*Y times the mean per-crash downtime (within 4 standard errors
    of the mean over reps), and web (local disk) r*Y times the repair plus its boot."""
    years, reps, repair_h = 5.0, 400, 0.001
    rows, means = av.sweep(SC, [rate], years=years, reps=reps, repair_h=repair_h, seed=5)
    for dom, per in (("db", _per_event_mean("db", "h1")), ("web", repair_h * 3.6e6 + fo.BOOT_MS["pvh"])):
        d = np.array([r["downtime_ms"] for r in _by(rows, rate, dom)])
        se = d.std(ddof=1) / math.sqrt(reps)
        assert abs(d.mean() - rate * years * per) < 4 * se, (dom, d.mean(), rate * years * per, se)
        n = sum(r["domain_failures"] for r in _by(rows, rate, dom))  # per crash: far tighter than per rep
        assert abs(d.sum() / n - per) < 0.01 * per, (dom, d.sum() / n, per)
        m = next(x for x in means if x["domain"] == dom)
        assert m["availability_ci_low"] < m["availability_mean"] < m["availability_ci_high"]
        assert m["availability_mean"] == pytest.approx(1 - d.mean() / (years * av.HOURS_PER_YEAR * 3.6e6))
    hf = np.array([r["host_failures"] for r in _by(rows, rate, None)])
    assert abs(hf.mean() - 2 * rate * years) < 4 * hf.std(ddof=1) / math.sqrt(reps)  # two hosts


def test_availability_falls_strictly_with_the_rate():
    rates = [0.25, 0.5, 1, 2, 4, 8]
    _, means = av.sweep(SC, rates, years=10, reps=100, seed=1)
    for dom in (None, "web", "batch"):
        a = [next(m for m in means if m["rate_per_host_year"] == r and m["domain"] == dom)["availability_mean"]
             for r in rates]
        assert all(x > y for x, y in zip(a, a[1:])), (dom, a)
    pool = [m for m in means if m["scope"] == "pool"]
    assert [m["nines"] for m in pool] == sorted((m["nines"] for m in pool), reverse=True)


def test_remus_protected_domain_is_more_available_than_restarted():
    p = av.parse_remus("db:h2", SC)
    plain, mp = av.sweep(SC, [1.0, 4.0], years=10, reps=60, seed=2, remus=[])
    prot, mr = av.sweep(SC, [1.0, 4.0], years=10, reps=60, seed=2, remus=[p])
    for rate in (1.0, 4.0):
        a = [r["availability"] for r in _by(plain, rate, "db")]
        b = [r["availability"] for r in _by(prot, rate, "db")]
        assert all(y >= x for x, y in zip(a, b))  # the same crashes
        ma = next(m for m in mp if m["domain"] == "db" and m["rate_per_host_year"] == rate)
        mb = next(m for m in mr if m["domain"] == "db" and m["rate_per_host_year"] == rate)
        assert mb["availability_mean"] > ma["availability_mean"] and mb["protection"] == "remus"
        # the other domains see the same crashes and the same outcome
        assert _by(plain, rate, "logs") == _by(prot, rate, "logs")
    dts = av.remus_downtimes(SC, p)
    assert len(dts) == av.REMUS_PHASES
    # the backup waits for the stream's silence (timeout past the interval) and resumes: about a second,
    # less than detection (3 beats) plus a PV boot
    assert (dts > 1000).all() and (dts < p.interval_ms + 1000 + 50).all()
    assert dts.max() < _per_event_mean("db", "h1")


def test_a_crash_during_a_repair_and_a_crash_of_a_host_already_down():
    out = av.Outcomes(SC, S, [])
    h1, h2 = out.hosts.index("h1"), out.hosts.index("h2")
    hour = 3.6e6
    t = np.array([0.0, 1 * hour, 2 * hour, 10 * hour])
    h = np.array([h1, h2, h1, h2])
    pat, eff, left = av._patterns(out, t, h, 4 * hour)
    assert list(eff) == [True, True, False, True]  # h1 was still down at 2 h
    assert left == {1: {h1: 3 * hour}}
    kind, dt = av.downtimes(out, S, pat[eff], t[eff], np.zeros(3, int), 4 * hour, {},
                            {1: left[1]})
    db, logs = out.index["db"], out.index["logs"]
    assert kind[1, db] == av.DOWN and dt[1, db] == pytest.approx(3 * hour + fo.BOOT_MS["pv"])  # back with h1
    assert kind[1, logs] == av.DOWN and dt[1, logs] == pytest.approx(4 * hour + fo.BOOT_MS["pv"])  # with h2
    assert kind[2, db] == av.UNAFFECTED and kind[2, logs] == av.RESTARTED  # h1 is back at 10 h


def test_overlapping_down_intervals_are_merged():
    rep = np.array([0, 0, 0, 1])
    got = av._union(rep, np.array([0.0, 5.0, 20.0, 1.0]), np.array([10.0, 8.0, 25.0, 2.0]), 3)
    assert list(got) == [15.0, 1.0, 0.0]


def run(*args):
    return CliRunner().invoke(app, list(args))


def test_cli_outputs_and_byte_identical_rerun(tmp_path):
    outs = {k: tmp_path / f"a.{k}" for k in ("json", "csv", "parquet")}
    png = tmp_path / "a.png"
    args = ["availability", SC_PATH, "--rate", "0,1,4", "--years", "5", "--reps", "5", "--remus", "db:h2",
            "--json", str(outs["json"]), "--csv", str(outs["csv"]), "--parquet", str(outs["parquet"]),
            "--plot", str(png)]
    r = run(*args)
    assert r.exit_code == 0, r.output
    first = outs["json"].read_bytes()
    doc = json.loads(first)
    means = [x for x in doc["results"] if x["kind"] == "mean"]
    assert len(means) == 3 * 5 and len(doc["results"]) == 3 * 5 * (1 + 5)
    assert next(m for m in means if m["domain"] == "db")["protection"] == "remus"
    assert png.stat().st_size > 0
    assert len(results.load(outs["parquet"])) == len(results.load(outs["csv"])) == len(doc["results"])
    assert run(*args).exit_code == 0
    assert outs["json"].read_bytes() == first


def test_scenario_marks_the_remus_domain(tmp_path):
    text = open(SC_PATH).read() + '\nremus = { domain = "db", to = "h2", interval_ms = 100 }\n'
    p = tmp_path / "ha_remus.toml"
    p.write_text(text)
    sc = Scenario.from_toml(p)
    assert av.protections(sc) == [av.Protection("db", "h2", 100.0)]
    j = tmp_path / "r.json"
    assert run("availability", str(p), "--rate", "2", "--reps", "3", "--json", str(j)).exit_code == 0
    rows = json.loads(j.read_text())["results"]
    assert {r["protection"] for r in rows if r["domain"] == "db"} == {"remus"}
    assert run("failover", str(p)).exit_code == 0  # the restart command still takes the scenario


@pytest.mark.parametrize("args,field", [
    (["--rate", "1,x"], "--rate"),
    (["--rate", "-1"], "--rate"),
    (["--rate", ","], "--rate"),
    (["--rate", "1,1"], "--rate"),
    (["--years", "0"], "--years"),
    (["--reps", "1"], "--reps"),
    (["--repair-h", "-2"], "--repair-h"),
    (["--seed", "-1"], "--seed"),
    (["--rate", "1000", "--years", "1000", "--reps", "100"], "--reps"),
    (["--remus", "db"], "--remus"),
    (["--remus", "db:h9"], "--remus"),
    (["--remus", "nosuch:h2"], "--remus"),
    (["--remus", "db:h1"], "--remus"),
    (["--remus", "db:h2", "--remus-interval-ms", "0"], "--remus-interval-ms"),
    (["--remus-interval-ms", "100"], "--remus-interval-ms"),
    (["--remus", "db:h2", "--remus", "db:h2"], "--remus"),
    (["--plot", "/nonexistent-dir/a.png"], "--plot"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(args, field, tmp_path):
    j = tmp_path / "never.json"
    r = run("availability", SC_PATH, *args, "--json", str(j))
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"pvsim: error: {field}:"), r.output
    assert not j.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("remus,field", [
    ('{ domain = "db", to = "h2", colour = 1 }', "ha.remus.colour"),
    ('{ domain = "db" }', "ha.remus.to"),
    ('{ domain = "db", to = "h2", interval_ms = "fast" }', "ha.remus.interval_ms"),
    ('{ domain = "web", to = "h9" }', "ha.remus.to"),
    ('"db:h2"', "ha.remus"),
    ('[{ domain = "db", to = "h2" }, { domain = "logs", to = "h2" }]', "ha.remus[1].to"),
])
def test_bad_scenario_remus(remus, field, tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(open(SC_PATH).read() + f"\nremus = {remus}\n")  # [ha] is the file's last table
    with pytest.raises(ScenarioError) as e:
        av.protections(Scenario.from_toml(p))
    assert e.value.field == field
    r = run("availability", str(p), "--rate", "1", "--reps", "2")
    assert r.exit_code == 2 and r.output.startswith(f"pvsim: error: {field}:")
