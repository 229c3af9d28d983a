"""A user defines workloads in TOML without touching code: an op mix, an I/O generator and memory
behaviour; mistakes get one line naming the field with a suggestion, exit 2, and no output file."""

import json
import pathlib

import pytest
from typer.testing import CliRunner

from pvsim.cli import app
from pvsim.core.errors import ScenarioError
from pvsim.scenario import Scenario
from pvsim.system import build

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _one_line_exit_2(r, *needles):
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pvsim: error: "), r.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_each_kind_of_user_workload_runs_from_a_scenario_file(tmp_path):
    out = tmp_path / "u.json"
    r = CliRunner().invoke(app, ["run", str(EXAMPLES / "user_workloads.toml"), "--json", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    rows = {x["domain"]: x for x in json.loads(out.read_text())["results"]}
    assert rows["build"]["workload"] == "my-compile" and rows["build"]["value"] > 0  # op mix
    assert rows["build"]["breakdown_ns"].get("mmu.validate", 0) > 0  # its forks validated by Xen
    kv = rows["kv"]  # I/O generator, 16 threads from the scenario's params
    assert kv["value"] > 0 and kv["dom0_breakdown_ns"]["dom0.backend"] > 0 and kv["latency_us"]["p99"] > 0
    cache = rows["cache"]  # memory behaviour on real page tables
    assert cache["value"] > 0 and cache["counts"]["mmu.walk_refs"] > 0


def test_inline_workloads_and_parameters():
    sc = Scenario.from_dict({
        "host": {"pcpus": 2}, "run": {"duration_ms": 20},
        "workloads": [{"name": "pinger", "peer": "rr", "metric": "trans_per_s", "params": {"size": 64},
                       "steps": [{"request": {"bytes": "$size", "response_bytes": "$size"}}, {"sleep": {"ns": 50000}}]}],
        "domains": [{"name": "p", "mode": "pv", "workload": "pinger", "params": {"size": 512}}]})
    row = next(r for r in build(sc).run().rows if r["domain"] == "p")
    assert row["value"] > 0 and row["requests"] > 0


BAD_WORKLOADS = {
    "misspelled action": ('["syscall", { times = 200 }]', '["syscal", { times = 200 }]', "syscal", "`syscall`"),
    "misspelled step": ("{ syscalls = 2 }", "{ syscals = 2 }", "syscals", "`syscalls`"),
    "misspelled field": ('op = "read", bytes = 4096, pattern = "random"', 'op = "read", bytez = 4096, pattern = "random"',
                         "bytez", "`bytes`"),
    "unknown parameter": ('threads = "$threads"', 'threads = "$thread"', "thread", "`threads`"),
    "bad argument": ('["fork", 200]', '["fork", "many"]', "fork.pages", ""),
}


@pytest.mark.parametrize("case", list(BAD_WORKLOADS))
def test_a_mistake_in_a_workload_file_is_one_line_with_a_suggestion(tmp_path, case):
    old, new, name, hint = BAD_WORKLOADS[case]
    text = (EXAMPLES / "my_workloads.toml").read_text()
    assert old in text
    (tmp_path / "my_workloads.toml").write_text(text.replace(old, new, 1))
    (tmp_path / "s.toml").write_text((EXAMPLES / "user_workloads.toml").read_text())
    out = tmp_path / "out.json"
    r = CliRunner().invoke(app, ["run", str(tmp_path / "s.toml"), "--json", str(out)])
    _one_line_exit_2(r, name, hint)
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_a_misspelled_profile_constant_is_one_line_with_a_suggestion(tmp_path):
    prof = tmp_path / "mine.toml"
    prof.write_text('base = "modern"\nname = "mine"\n[hvm]\nvmexitt_cycles = { value = 400, source = "what-if" }\n')
    out = tmp_path / "l.json"
    r = CliRunner().invoke(app, ["lmbench", "--profile", str(prof), "--modes", "native", "--json", str(out)])
    _one_line_exit_2(r, "hvm.vmexitt_cycles", "`vmexit_cycles`")
    assert not out.exists()
    with pytest.raises(ScenarioError, match="vmexit_cycles"):
        Scenario.from_dict({"host": {"profile": str(prof)}, "domains": [{"name": "g", "mode": "pv"}]})


def test_a_good_override_is_used(tmp_path):
    prof = tmp_path / "fast.toml"
    prof.write_text('base = "p4-2006"\nname = "fast-exits"\n[hvm]\nvmexit_cycles = { value = 500, source = "what-if" }\n')
    from pvsim.pricing import op_cost

    slow = op_cost("nano.divzero", "hvm-shadow", "p4-2006").total_cycles
    ins = op_cost("nano.in", "hvm-shadow", "p4-2006").total_cycles
    assert op_cost("nano.in", "hvm-shadow", str(prof)).total_cycles < ins
    assert op_cost("nano.divzero", "hvm-shadow", str(prof)).total_cycles == pytest.approx(slow)  # no exit
