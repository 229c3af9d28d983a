"""COLO through the one Remus command (pvsim remus -c / pvsim xl remus -c): rows beside Remus's, a
clean failover, and a bad divergence rate as one line naming the field, exit 2."""

import json

from typer.testing import CliRunner

from pvsim.cli import app

SC = "examples/two_hosts.toml"


def run(*args):
    return CliRunner().invoke(app, list(args))


def test_colo_rows_beside_remus(tmp_path):
    p = tmp_path / "c.json"
    r = run("xl", "remus", SC, "db", "h2", "-c", "--duration-ms", "1000", "--divergence", "1e-3", "--json", str(p))
    assert r.exit_code == 0, r.output
    rows = json.loads(p.read_text())["results"]
    assert [x["mode"] for x in rows] == ["remus", "colo"]
    remus, colo = rows
    assert colo["checkpoints"] > 0 and "divergence_per_packet" in colo and "divergence_per_packet" not in remus
    assert colo["added_latency_ms_mean"] < 1.0 < remus["added_latency_ms_mean"]


def test_colo_failover_nothing_lost(tmp_path):
    p = tmp_path / "f.json"
    r = run("remus", SC, "-d", "db", "--to", "h2", "--colo", "--divergence", "1e-3", "--duration-ms", "800",
            "--fail-at-ms", "400", "--json", str(p))
    assert r.exit_code == 0, r.output
    row = json.loads(p.read_text())["results"][0]
    assert row["mode"] == "colo" and row["lost_work_ms"] == 0.0
    assert row["packets_missing"] == 0 and row["packets_repeated"] == 0
    assert row["memory_equal"] and row["disk_equal"]


def test_without_colo_rows_unchanged(tmp_path):
    p = tmp_path / "r.json"
    assert run("remus", SC, "-d", "db", "--to", "h2", "--duration-ms", "500", "--json", str(p)).exit_code == 0
    row = json.loads(p.read_text())["results"][0]
    assert "mode" not in row and "divergence_per_packet" not in row


def test_bad_divergence():
    for args in (["xl", "remus", SC, "db", "h2", "-c", "--divergence", "1.5"],
                 ["remus", SC, "-d", "db", "--to", "h2", "-c", "--divergence", "-1"]):
        r = run(*args)
        assert r.exit_code == 2
        lines = [x for x in r.output.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("pvsim: error: --divergence:")
