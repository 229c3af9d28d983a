"""Every input of issue 16 gives one line ``pvsim: error: ...``, exit 2, and leaves no file behind."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pvsim.cli import app
from pvsim.estimate import estimate
from pvsim.scenario import Scenario

GOOD = ('[host]\npcpus = 2\n[run]\nops = 5\n[[domains]]\nname = "g"\nmode = "pv"\n'
        'workload = "lmbench.null_call"\n')
BIG = "0-100000000000"


def one_line(r, needle=""):
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pvsim: error: ") and needle in lines[0], r.output


def invoke(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def files(tmp_path):
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))


SCENARIOS = {
    "domain_cpus": (GOOD + f'cpus = "{BIG}"\n', "domains[0].cpus"),
    "timeline_cpus": (GOOD + f'[[timeline]]\nat_ms = 1\ndomain = "g"\ncpus = "{BIG}"\n', "timeline[0].cpus"),
    "options_not_a_table": (GOOD + 'options = "fast"\n', "options"),
    "option_wrong_type": (GOOD + 'options = { batch = "many" }\n', "batch"),
    "option_out_of_range": (GOOD + 'options = { batch = 0 }\n', "batch"),
    "option_bool_as_int": (GOOD + 'options = { indirect = 3 }\n', "indirect"),
    "option_unknown_key": (GOOD + 'options = { turbo = true }\n', "turbo"),
    "profile_empty": (GOOD.replace("pcpus = 2\n", 'pcpus = 2\nprofile = ""\n'), "profile"),
    "profile_a_directory": (GOOD.replace("pcpus = 2\n", 'pcpus = 2\nprofile = "{dir}"\n'), "profile"),
    "profile_not_utf8": (GOOD.replace("pcpus = 2\n", 'pcpus = 2\nprofile = "{bad}"\n'), "profile"),
    "invalid_toml": ("[host\npcpus = ", ""),
    "seed_too_big": (f"seed = {2 ** 63}\n" + GOOD, "seed"),
    "ops_huge": (GOOD.replace("ops = 5", "ops = 1_000_000_000_000"), "estimate"),
}


def _scenario(tmp_path, text):
    d = tmp_path / "adir"
    d.mkdir(exist_ok=True)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe[x]\n")
    f = tmp_path / "s.toml"
    f.write_text(text.replace("{dir}", str(d)).replace("{bad}", str(bad)))
    return f


@pytest.mark.parametrize("case", sorted(SCENARIOS))
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_bad_scenario_files(tmp_path, case, command):
    text, needle = SCENARIOS[case]
    f = _scenario(tmp_path, text)
    before = files(tmp_path)
    one_line(invoke([command, f, "--json", tmp_path / "o.json", "--csv", tmp_path / "o.csv"]), needle)
    assert files(tmp_path) == before


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_directory_or_undecodable_scenario(tmp_path, command):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe[x]\n")
    one_line(invoke([command, tmp_path]))
    one_line(invoke([command, bad]))
    one_line(invoke([command, tmp_path / "missing.toml"]))
    assert files(tmp_path) == ["bad.toml"]


@pytest.mark.parametrize("command", [["compare", "--workload", "lmbench.null_call", "--modes", "pv", "--ops", "5"],
                                     ["lmbench", "--modes", "pv", "--ops", "5"],
                                     ["nanobench", "--modes", "native", "--ops", "5"]])
def test_bad_profiles_for_every_command(tmp_path, command):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe[x]\n")
    broken = tmp_path / "broken.toml"
    broken.write_text("[constants\n")
    for prof in (tmp_path, bad, broken, "", "no-such-profile"):
        one_line(invoke([*command, "--profile", prof, "--json", tmp_path / "o.json"]), "profile")
    assert files(tmp_path) == ["bad.toml", "broken.toml"]


@pytest.mark.parametrize("param,needle", [("seed.x=1", "seed.x"), ("domains.weight=1", "domains.weight"),
                                          (f"domains[0].cpus={BIG}", "cpus"), ("host.pcpus=1,x", "host.pcpus"),
                                          ("domains[5].weight=1", "domains[5]"), ("=1", "--param"),
                                          ("nothing", "--param"), ("run.ops=1e12", "estimate")])
def test_bad_sweep_params(tmp_path, param, needle):
    f = _scenario(tmp_path, GOOD)
    before = files(tmp_path)
    one_line(invoke(["sweep", f, "--param", param, "--json", tmp_path / "o.json"]), needle)
    assert files(tmp_path) == before


@pytest.mark.parametrize("args", [["run", "{f}", "--seed", str(2 ** 63)], ["run", "{f}", "--seed", "-1"],
                                  ["sweep", "{f}", "--seeds", f"0,{2 ** 63}"],
                                  ["compare", "--workload", "lmbench.null_call", "--modes", "pv", "--ops", "5",
                                   "--seed", str(2 ** 63)],
                                  ["lmbench", "--modes", "pv", "--ops", "5", "--seed", str(2 ** 64)],
                                  ["nanobench", "--modes", "native", "--ops", "5", "--seed", "-3"]])
def test_seeds_checked_as_in_files(tmp_path, args):
    f = _scenario(tmp_path, GOOD)
    one_line(invoke([a.replace("{f}", str(f)) for a in args]), "seed")


def test_outputs_all_or_nothing(tmp_path):
    f = _scenario(tmp_path, GOOD)
    d = tmp_path / "outdir"
    d.mkdir()
    before = files(tmp_path)
    one_line(invoke(["run", f, "--json", tmp_path / "o.json", "--csv", d]), "--csv")
    one_line(invoke(["run", f, "--json", "/proc/x.json"]), "x.json")
    one_line(invoke(["run", f, "--json", tmp_path / "o.json", "--csv", "/proc/x.csv"]), "x.csv")
    assert files(tmp_path) == before


def test_huge_run_refused_with_its_estimate_and_limit(tmp_path):
    f = _scenario(tmp_path, GOOD.replace("ops = 5", "ops = 1_000_000_000_000"))
    r = invoke(["run", f])
    one_line(r, "estimate")
    assert "limit" in r.output and "--no-limit" in r.output


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_run_past_the_given_limit_is_refused_and_runs_with_no_limit(tmp_path, command):
    f = _scenario(tmp_path, GOOD.replace("ops = 5", "duration_ms = 2"))
    before = files(tmp_path)
    if command == "sweep":  # a run in the cwd's sweep cache from an earlier session needs no estimate
        command = [command, "--cache", tmp_path.parent / f"{tmp_path.name}-cache"]
    else:
        command = [command]
    r = invoke([*command, f, "--max-wall-s", "1e-9", "--json", tmp_path / "o.json"])
    one_line(r, "estimate")
    assert "simulated" in r.output and "--no-limit" in r.output
    assert files(tmp_path) == before
    r = invoke([*command, f, "--max-wall-s", "1e-9", "--no-limit", "--json", tmp_path / "o.json"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o.json").exists()
    one_line(invoke([*command, f, "--max-wall-s", "0"]), "--max-wall-s")


def test_the_estimate_extrapolates_a_measured_probe():
    sc = Scenario.from_dict({"host": {"pcpus": 1}, "run": {"ops": 10 ** 12},
                             "domains": [{"name": "g", "mode": "pv", "workload": "lmbench.null_call"}]})
    e = estimate(sc)
    assert e.known and not e.finished_in_probe and 0 < e.probe_sim_ns < e.sim_ns_needed
    # 10**12 units at the probe's rate: the simulated time scales with the units asked for
    e2 = estimate(Scenario.from_dict({"host": {"pcpus": 1}, "run": {"ops": 10 ** 11},
                                      "domains": [{"name": "g", "mode": "pv", "workload": "lmbench.null_call"}]}))
    assert 5 < e.sim_ns_needed / e2.sim_ns_needed < 20
