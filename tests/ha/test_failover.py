"""Host failure: every domain of a failed host restarts elsewhere or is reported down with its reason;
detection follows the heartbeat settings; the reserve is honoured; bad input names its field."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pvsim.core.errors import ScenarioError
from pvsim.ha import failover as fo
from pvsim.scenario import Scenario

SC = Scenario.from_toml("examples/two_hosts.toml")


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 1e6), st.floats(1, 5000), st.integers(1, 10))
def test_detection_follows_the_heartbeat(at, hb, missed):
    s = fo.HaSettings(heartbeat_ms=hb, missed=missed)
    d = fo.detection_ms(at, s) - at
    assert (missed - 1) * hb - 1e-6 <= d <= missed * hb + 1e-6


@pytest.mark.parametrize("host", ["h1", "h2"])
def test_every_domain_of_a_failed_host_is_accounted_for(host):
    ev, rows = fo.run(SC, fo.parse_failures([{"at_ms": 1234, "host": host}], SC), fo.HaSettings())
    on = {d.name for d in SC.domains_on(host) if d.name != "Domain-0"}
    assert {r["domain"] for r in rows} == on
    for r in rows:
        assert r["status"] in ("restarted", "down")
        if r["status"] == "down":
            assert r["reason"]
        else:
            assert r["to"] != host and r["downtime_ms"] == pytest.approx(r["detect_ms"] + r["boot_ms"])
    assert ev[0]["detect_ms"] == pytest.approx(fo.detection_ms(1234, fo.HaSettings(), 0.02) - 1234)


def test_local_disk_stays_down_and_shared_restarts():
    _, rows = fo.run(SC, fo.parse_failures([{"at_ms": 500, "host": "h1"}], SC), fo.HaSettings(durable_ms=200))
    by = {r["domain"]: r for r in rows}
    assert by["db"]["status"] == "restarted" and by["db"]["to"] == "h2"
    assert by["db"]["lost_work_ms"] == pytest.approx(100)
    assert by["web"]["status"] == "down" and "local storage" in by["web"]["reason"]


def test_a_restart_onto_a_host_that_crashes_before_it_ends_never_serves():
    # examples/ha.toml: h2 crashes at 1000 ms (detected 3 s later); logs (shared storage) is sent to h1,
    # which has itself crashed at 2700 ms, before the 6 s boot could end: the restart fails
    sc = Scenario.from_toml("examples/ha.toml")
    fails = fo.parse_failures([{"at_ms": 1000, "host": "h2"}, *sc.failures], sc)
    _, rows = fo.run(sc, fails, fo.parse_settings(sc.ha))
    logs = [r for r in rows if r["domain"] == "logs"]
    assert [r["status"] for r in logs] == ["restart-failed", "down"]
    assert logs[0]["to"] == "h1" and "h1 crashed at 2700" in logs[0]["reason"]
    assert logs[0]["downtime_ms"] == pytest.approx(2700 - 1000)  # then the h1 crash's row takes over
    assert logs[1]["failed_at_ms"] == 2700
    # down from 1000 ms to the horizon, counted once
    horizon = 3.6e6
    a = fo.availability([r for r in rows if r["domain"] == "logs"], sc, horizon)
    n = len([d for d in sc.domains if d.name != "Domain-0"])
    assert 1 - a == pytest.approx((horizon - 1000) / (n * horizon))


def test_the_reserve_refuses_what_does_not_fit():
    s = fo.HaSettings(reserve_frac=0.9)
    _, rows = fo.run(SC, fo.parse_failures([{"at_ms": 500, "host": "h1"}], SC), s)
    db = next(r for r in rows if r["domain"] == "db")
    assert db["status"] == "down" and "reserve" in db["reason"]


def test_a_link_cut_fences_the_minority():
    ev, rows = fo.run(SC, fo.parse_failures([{"at_ms": 10, "link": ["h1", "h2"]}], SC), fo.HaSettings())
    assert ev[0]["fenced"] == ["h2"]
    assert {r["domain"] for r in rows} == {"batch", "logs"}


@pytest.mark.parametrize("raw,field", [
    ([{"at_ms": 1, "host": "h9"}], "failures[0].host"),
    ([{"at_ms": 1, "link": ["h1", "h9"]}], "failures[0].link"),
    ([{"at_ms": -1, "host": "h1"}], "failures[0].at_ms"),
    ([{"at_ms": 1}], "failures[0]"),
    ([{"at_ms": 1, "host": "h1", "colour": 1}], "failures[0].colour"),
])
def test_bad_failures(raw, field):
    with pytest.raises(ScenarioError) as e:
        fo.parse_failures(raw, SC)
    assert e.value.field == field


def test_bad_settings():
    with pytest.raises(ScenarioError) as e:
        fo.parse_settings({"missed": 0})
    assert e.value.field == "ha.missed"
