"""pvsim remus / failover / convert: results, and bad input as one line naming the field, exit 2."""

import json

import pytest
from typer.testing import CliRunner

from pvsim.cli import app

SC = "examples/two_hosts.toml"


def run(*args):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("args,field", [
    (["failover", SC, "--fail", "h9"], "--fail"),
    (["convert", "--kind", "v2v", "--mode", "hvm", "--to-mode", "pv", "--to-vmm", "kvm"], "--to-mode"),
    (["convert", "--kind", "v2p", "--image-hw", "r640", "--target-hw", "dl380"], "--target-hw"),
    (["convert", "--kind", "x2y"], "--kind"),
    (["remus", SC, "-d", "db", "--to", "h9"], "--to"),
    (["remus", SC, "-d", "db", "--to", "h2", "--interval-ms", "0"], "--interval-ms"),
])
def test_bad_input(args, field):
    r = run(*args)
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"pvsim: error: {field}:")
    assert "Traceback" not in r.output


def test_remus_failover_json(tmp_path):
    p = tmp_path / "r.json"
    r = run("remus", SC, "-d", "db", "--to", "h2", "--interval-ms", "100", "--duration-ms", "600",
            "--fail-at-ms", "333", "--json", str(p))
    assert r.exit_code == 0, r.output
    row = json.loads(p.read_text())["results"][0]
    assert row["memory_equal"] and row["disk_equal"]
    assert row["packets_missing"] == 0 and row["packets_repeated"] == 0


def test_failover_and_convert(tmp_path):
    p = tmp_path / "f.json"
    assert run("failover", SC, "--fail", "h1", "--at-ms", "2500", "--json", str(p)).exit_code == 0
    rows = json.loads(p.read_text())["results"]
    assert {r["domain"] for r in rows if r["kind"] == "domain"} == {"db", "web"}
    assert run("convert", "--kind", "p2v", "--size-gib", "1").exit_code == 0


@pytest.mark.parametrize("args,field", [
    (["xl", "remus", SC, "db", "h9"], "HOST"),
    (["xl", "remus", SC, "dbx", "h2"], "DOM"),
    (["xl", "remus", SC, "db", "h2", "-i", "0"], "--interval-ms"),
])
def test_xl_remus_bad_input(args, field):
    r = run(*args)
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"pvsim: error: {field}:")
    assert "Traceback" not in r.output


def test_xl_remus_is_pvsim_remus(tmp_path):
    """xl remus dispatches to the same Remus model: the rows are those of pvsim remus, byte for byte."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    ra = run("xl", "remus", SC, "db", "h2", "-i", "100", "--duration-ms", "500", "--fail-at-ms", "333",
             "--json", str(a))
    rb = run("remus", SC, "-d", "db", "--to", "h2", "-i", "100", "--duration-ms", "500", "--fail-at-ms", "333",
             "--json", str(b))
    assert ra.exit_code == 0 and rb.exit_code == 0, ra.output + rb.output
    rows_a, rows_b = json.loads(a.read_text())["results"], json.loads(b.read_text())["results"]
    assert rows_a == rows_b
    assert rows_a[0]["interval_ms"] == 100 and rows_a[0]["packets_repeated"] == 0


def test_xl_remus_default_interval_is_200(tmp_path):
    p = tmp_path / "r.json"
    assert run("xl", "remus", SC, "db", "h2", "--duration-ms", "380", "--json", str(p)).exit_code == 0
    row = json.loads(p.read_text())["results"][0]
    assert row["interval_ms"] == 200 and row["checkpoints"] == 2  # epochs start at 0 and ~204.5 ms (< 380), the next at ~409


def test_availability_refuses_a_failure_of_a_host_that_does_not_exist(tmp_path):
    """The sweep draws its own crashes, but a scenario whose [[failures]] names an unknown host is bad
    input there too (it used to be ignored silently), and nothing is written."""
    text = open("examples/ha.toml").read()
    assert text.count('at_ms = 2700\nhost = "h1"') == 1
    f = tmp_path / "bad.toml"
    f.write_text(text.replace('at_ms = 2700\nhost = "h1"', 'at_ms = 2700\nhost = "h9"'))
    out = tmp_path / "a.csv"
    r = run("availability", str(f), "--rate", "1", "--reps", "2", "--csv", str(out))
    assert r.exit_code == 2 and r.output.strip() == "pvsim: error: failures[0].host: unknown host 'h9'; allowed: h1, h2"
    assert not out.exists()
