"""Several hosts in one scenario: each with its own Domain-0 and scheduler, links between them and to
shared storage; per-host and per-domain rows."""

import json
import pathlib

import pytest

from pvsim.core.errors import ScenarioError
from pvsim.scenario import Scenario
from pvsim.system import build

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def run():
    system = build(Scenario.from_toml(EXAMPLES / "two_hosts.toml"))
    return system, system.run()


def test_each_host_has_its_own_domain0_and_scheduler(run):
    system, res = run
    assert [h.name for h in system.hosts] == ["h1", "h2"]
    assert [h.runner.sched.name for h in system.hosts] == ["credit", "credit2"]
    for h in system.hosts:
        assert h.control is not None and h.control.spec.name == "Domain-0" and h.control.domid == 0
        assert h.control.domain in h.hv.domains.values()
    assert system.hosts[0].hv is not system.hosts[1].hv
    rows = {(r["host"], r["domain"]): r for r in res.rows}
    assert set(rows) == {("h1", "Domain-0"), ("h1", "db"), ("h1", "web"), ("h2", "Domain-0"), ("h2", "batch"),
                         ("h2", "logs")}
    for r in res.rows:
        assert sum(r["breakdown_ns"].values()) == r["elapsed_ns"] and r["value"] > 0


def test_per_host_rows(run):
    system, res = run
    hosts = {h["host"]: h for h in res.host_rows}
    assert set(hosts) == {"h1", "h2"} and hosts["h1"]["pcpus"] == 4 and hosts["h2"]["scheduler"] == "credit2"
    assert 0 < hosts["h2"]["cpu_utilisation"] <= 1
    assert {r["host"] for r in res.sched_rows} == {"h1", "h2"}
    assert json.loads(res.to_json())["hosts"] == res.host_rows


def test_shared_storage_serves_both_hosts_over_their_links(run):
    system, res = run
    filer_h1 = system.hosts[0].remote["filer"]
    filer_h2 = system.hosts[1].remote["filer"]
    assert filer_h1.completed > 0 and filer_h2.completed > 0
    assert system.domain("db").disk_port is filer_h1 and system.domain("logs").disk_port is filer_h2
    assert system.hosts[1].disk.completed == 0  # on h2 only logs does I/O, all of it on the filer
    link = system.links[frozenset(("h1", "filer"))]
    assert link.pipe_from("h1").bytes > 0 and link.pipe_from("filer").bytes > 0


def test_a_single_host_file_keeps_working():
    sc = Scenario.from_toml(EXAMPLES / "consolidation.toml")
    assert len(sc.hosts) == 1 and sc.single_host and all(d.host == sc.hosts[0].name for d in sc.domains)


def _base():
    return json.loads(json.dumps({
        "hosts": [{"name": "a", "pcpus": 2}, {"name": "b", "pcpus": 2}],
        "storage": [{"name": "nas"}],
        "links": [{"between": ["a", "b"]}, {"between": ["a", "nas"]}],
        "domains": [{"name": "g", "mode": "pv", "host": "a", "workload": "fio-rand4k", "disk": "nas"}]}))


@pytest.mark.parametrize("change,field", [
    (lambda d: d["domains"][0].update(host="c"), "domains[0].host"),
    (lambda d: d["domains"][0].pop("host"), "domains[0].host"),
    (lambda d: d["links"].append({"between": ["a", "mars"]}), "links[2].between"),
    (lambda d: d["domains"][0].update(host="b"), "domains[0].disk"),  # the nas is not linked to b
    (lambda d: d["domains"][0].update(disk="san"), "domains[0].disk"),
    (lambda d: d.update(host={"pcpus": 1}), "hosts"),
    (lambda d: d["hosts"][1].update(name="a"), "hosts"),
])
def test_bad_multihost_scenarios(change, field):
    d = _base()
    change(d)
    with pytest.raises(ScenarioError) as e:
        Scenario.from_dict(d)
    assert e.value.field.startswith(field), e.value
