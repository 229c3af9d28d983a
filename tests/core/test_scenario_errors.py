"""Bad input: one line naming the field, exit code 2, nothing written."""

import pytest
from typer.testing import CliRunner

from pvsim.cli import app

GOOD = """
seed = 1
[host]
pcpus = 2
memory_mib = 4096
profile = "modern"
[run]
ops = 10
[[domains]]
name = "g"
mode = "pv"
workload = "forkwait"
vcpus = 1
memory_mib = 1024
"""

CASES = {
    "unknown mode": (('mode = "pv"', 'mode = "pvx"'), "domains[0].mode"),
    "zero vcpus": (("vcpus = 1", "vcpus = 0"), "domains[0].vcpus"),
    "weight 70000": (("vcpus = 1", "vcpus = 1\nweight = 70000"), "domains[0].weight"),
    "memory beyond host": (("memory_mib = 1024", "memory_mib = 8192"), "memory_mib"),
    "unknown key": (("vcpus = 1", "vcpus = 1\ncolour = \"blue\""), "domains[0].colour"),
    "unknown workload": (('workload = "forkwait"', 'workload = "nope"'), "domains[0].workload"),
    "bad cpu list": (("vcpus = 1", "vcpus = 1\ncpus = \"7\""), "domains[0].cpus"),
    "unknown profile": (('profile = "modern"', 'profile = "nosuch"'), "host.profile"),
    "hvm on 2003": (('mode = "pv"\n', 'mode = "hvm"\n'), "domains[0].mode"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_scenario_one_line_exit_2_nothing_written(tmp_path, case):
    (old, new), field = CASES[case]
    text = GOOD.replace(old, new, 1)
    if case == "hvm on 2003":
        text = text.replace('profile = "modern"', 'profile = "xeon-2003"')
    f = tmp_path / "bad.toml"
    f.write_text(text)
    out = tmp_path / "out.json"
    r = CliRunner().invoke(app, ["run", str(f), "--json", str(out)])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    assert lines[0].startswith("pvsim: error: ") and field in lines[0], lines[0]
    assert not out.exists()


def test_good_scenario_runs(tmp_path):
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    r = CliRunner().invoke(app, ["run", str(f), "--quiet"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args,field", [
    (["compare", "--workload", "cpu-int", "--modes", "native,warp"], "--modes"),
    (["compare", "--workload", "nosuch", "--modes", "native"], "--workload"),
    (["lmbench", "--profile", "nosuch"], "--profile"),
    (["nanobench", "--profile", "xeon-2003", "--modes", "hvm-shadow"], "VT-x"),
    (["nanobench", "--profile", "p4-2006", "--modes", "hvm"], "EPT"),
    (["list", "things"], "list"),
])
def test_bad_cli_values(args, field):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert field in r.output


@pytest.mark.parametrize("extra,field", [
    ("[scheduler]\nname = \"credit\"\nparams = { tslice_ms = 0 }\n", "scheduler.params.tslice_ms"),
    ("[scheduler]\nname = \"fifo\"\n", "scheduler.name"),
    ("[[timeline]]\nat_ms = 5\ndomain = \"nobody\"\nweight = 5\n", "timeline[0].domain"),
    ("[[timeline]]\nat_ms = 5\ndomain = \"g\"\nweight = 0\n", "timeline[0].weight"),
])
def test_bad_scheduler_and_timeline(tmp_path, extra, field):
    f = tmp_path / "bad.toml"
    f.write_text(GOOD.replace("[run]", extra + "[run]", 1) if extra.startswith("[scheduler]") else GOOD + extra)
    r = CliRunner().invoke(app, ["run", str(f)])
    assert r.exit_code == 2, r.output
    assert field in r.output


def test_timeline_changes_shares():
    from pvsim.scenario import Scenario
    from pvsim.system import build

    base = {"seed": 1, "host": {"pcpus": 1, "memory_mib": 4096, "profile": "modern"}, "run": {"duration_ms": 2000},
            "domains": [{"name": "a", "mode": "pv", "workload": "cpu-int"},
                        {"name": "b", "mode": "pv", "workload": "cpu-int"}]}
    flat = build(Scenario.from_dict(base)).run()
    base["timeline"] = [{"at_ms": 0, "domain": "a", "weight": 768}]
    skew = build(Scenario.from_dict(base)).run()
    share = {r["domain"]: r["cpu_share"] for r in skew.rows}
    flat_share = {r["domain"]: r["cpu_share"] for r in flat.rows}
    assert abs(flat_share["a"] - flat_share["b"]) < 0.05
    assert share["a"] > 2.5 * share["b"]
