"""pvsim migrate: rows, outputs, scenario [[migrations]], and bad input (one line naming the field, exit 2)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvsim.cli import app

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples" / "two_hosts.toml"
run = CliRunner().invoke


def _scenario(tmp_path, extra="", h2_mib=8192, link=True):
    text = EX.read_text().replace('memory_mib = 8192', f'memory_mib = {h2_mib}')
    if not link:
        text = re.sub(r'\[\[links\]\]\nbetween = \["h1", "h2"\]\nrate_mbps = 10000\nlatency_us = 20\n', '', text)
    p = tmp_path / "s.toml"
    p.write_text(text + extra)
    return str(p)


def test_migrate_rows_json_and_csv(tmp_path):
    js, cs = tmp_path / "m.json", tmp_path / "m.csv"
    r = run(app, ["migrate", str(EX), "--domain", "db", "--to", "h2", "--json", str(js), "--csv", str(cs), "-q"])
    assert r.exit_code == 0, r.output
    rows = json.loads(js.read_text())["results"]
    m = [x for x in rows if x["kind"] == "migration"]
    assert len(m) == 1 and m[0]["pages_lost"] == 0 and m[0]["from"] == "h1"
    parts = m[0]["downtime_breakdown_ms"]
    assert abs(sum(parts.values()) - m[0]["downtime_ms"]) < 1e-6
    assert sum(x["bytes"] for x in rows if x["kind"] == "round") <= m[0]["bytes"]
    assert "downtime_breakdown_ms.final_copy" in cs.read_text().splitlines()[0]
    again = tmp_path / "n.json"
    run(app, ["migrate", str(EX), "--domain", "db", "--to", "h2", "--json", str(again), "-q"])
    assert again.read_text() == js.read_text()  # same scenario and seed: byte-identical


def test_migrations_in_the_scenario_share_the_link(tmp_path):
    one = _scenario(tmp_path, '\n[[migrations]]\ndomain = "db"\nto = "h2"\n')
    js = tmp_path / "a.json"
    assert run(app, ["migrate", one, "--json", str(js), "-q"]).exit_code == 0
    alone = next(x for x in json.loads(js.read_text())["results"] if x["kind"] == "migration")
    js2 = tmp_path / "b.json"
    r = run(app, ["migrate", one, "--domain", "web", "--to", "h2", "--json", str(js2), "-q"])
    assert r.exit_code == 0, r.output
    both = [x for x in json.loads(js2.read_text())["results"] if x["kind"] == "migration"]
    assert both[0]["total_ms"] > 1.5 * alone["total_ms"]  # two streams on one 10 GbE link


@pytest.mark.parametrize("args,field", [
    (["--domain", "nope", "--to", "h2"], "--domain"),
    (["--domain", "db", "--to", "h1"], "--to"),
    (["--domain", "db", "--to", "h9"], "--to"),
    (["--domain", "db", "--to", "h2", "--policy", "fast"], "--policy"),
    (["--domain", "db"], "--to"),
])
def test_bad_input(tmp_path, args, field):
    js = tmp_path / "o.json"
    p = subprocess.run([sys.executable, "-c", "from pvsim.cli import main; main()", "migrate", str(EX), *args, "--json", str(js)],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and p.stderr.startswith(f"pvsim: error: {field}") and len(p.stderr.splitlines()) == 1
    assert not js.exists()


def test_no_link_and_no_memory(tmp_path):
    r = run(app, ["migrate", _scenario(tmp_path, link=False), "--domain", "db", "--to", "h2"])
    assert r.exit_code == 2 and "no link joins" in r.output
    r = run(app, ["migrate", _scenario(tmp_path, h2_mib=3000), "--domain", "db", "--to", "h2"])
    assert r.exit_code == 2 and "MiB free" in r.output
